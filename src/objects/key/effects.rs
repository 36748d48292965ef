//! What a command asks storage and the world to do: the record's change, ledger
//! buckets, log rows, reservations, usage hours and notices for the outbox.

use super::*;

/// What storage must do about the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    None,
    /// Only `usage_count` and `last_used_at` changed: they have their own row, so
    /// an admission does not rewrite the whole record.
    Use,
    Put,
    Erase,
}

/// Something to tell the world, delivered by the object's alarm with retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    Audit {
        event: AuditEvent,
    },
    /// A Standard Webhooks notice: its `type`, when it happened, its `data`.
    Webhook {
        event: String,
        at: i64,
        data: Value,
    },
    /// The account index's copy of the key, and the event of the change that made
    /// it.
    IndexSync {
        row: IndexRow,
        event: Option<AuditEvent>,
    },
    IndexRemove {
        id: String,
        account: String,
        event: Option<AuditEvent>,
    },
    /// A KV index entry to write (`expires_at` in Unix seconds) or remove.
    KvPut {
        hash: String,
        entry: HashEntry,
        expires_at: Option<u64>,
    },
    KvRemove {
        hash: String,
    },
    /// What the account's object took for a request whose reservation was
    /// abandoned: given back in its bucket at `at` (the key's admission, decided in
    /// the same round trip as the account's).
    AccountRefund {
        account: String,
        at: i64,
        cost: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    pub record: Change,
    pub buckets: Vec<StoredBucket>,
    /// Per ledger level: delete stored buckets starting before this time.
    pub prune: Vec<(usize, i64)>,
    pub logs: Vec<LogEntry>,
    pub notices: Vec<Notice>,
    pub alarm_at: Option<i64>,
    /// Usage hours to write, and the cut-off below which stored hours go.
    pub usage: Vec<(i64, Tally)>,
    pub usage_prune: Option<i64>,
    /// Reservations opened, and the ids of those settled or released.
    pub reserve: Vec<Reservation>,
    pub release: Vec<u64>,
    pub log_updates: Vec<LogUpdate>,
    /// The lease book changed (`limits::budget_lease`).
    pub lease_book: bool,
    /// The object's home changed (`placement`).
    pub home: bool,
    /// The kept answers of credit changes changed (`admin::replays`).
    pub replays: bool,
    /// The counts of sharing detection changed (`key::sharing`).
    pub sharing: bool,
}

impl Effects {
    /// Nothing to store.
    pub fn is_empty(&self) -> bool {
        self.record == Change::None
            && self.buckets.is_empty()
            && self.prune.is_empty()
            && self.logs.is_empty()
            && self.notices.is_empty()
            && self.usage.is_empty()
            && self.usage_prune.is_none()
            && self.reserve.is_empty()
            && self.release.is_empty()
            && self.log_updates.is_empty()
            && !self.lease_book
            && !self.home
            && !self.replays
            && !self.sharing
    }

    /// These effects followed by `later`'s (storage writes in that order).
    pub(super) fn then(mut self, later: Effects) -> Self {
        // A use after a rewrite is in the rewrite; anything else replaces it.
        match later.record {
            Change::None => {}
            Change::Use if self.record != Change::None => {}
            change => self.record = change,
        }
        self.buckets.extend(later.buckets);
        self.prune.extend(later.prune);
        self.logs.extend(later.logs);
        self.notices.extend(later.notices);
        self.alarm_at = later.alarm_at.or(self.alarm_at);
        self.usage.extend(later.usage);
        self.usage_prune = later.usage_prune.or(self.usage_prune);
        self.reserve.extend(later.reserve);
        self.release.extend(later.release);
        self.log_updates.extend(later.log_updates);
        self.lease_book |= later.lease_book;
        self.home |= later.home;
        self.replays |= later.replays;
        self.sharing |= later.sharing;
        self
    }

    /// One write per stored row: a bucket or an hour touched by several requests
    /// of a batch keeps its last value only.
    pub(super) fn compact(mut self) -> Self {
        self.buckets = admission::last_per_bucket(std::mem::take(&mut self.buckets));
        self.usage = admission::last_per(std::mem::take(&mut self.usage), |u| u.0);
        self.prune = admission::last_per(std::mem::take(&mut self.prune), |p| p.0);
        self
    }

    pub(super) fn none() -> Self {
        Effects {
            record: Change::None,
            buckets: Vec::new(),
            prune: Vec::new(),
            logs: Vec::new(),
            notices: Vec::new(),
            alarm_at: None,
            usage: Vec::new(),
            usage_prune: None,
            reserve: Vec::new(),
            release: Vec::new(),
            log_updates: Vec::new(),
            lease_book: false,
            home: false,
            replays: false,
            sharing: false,
        }
    }

    pub(super) fn put() -> Self {
        Effects {
            record: Change::Put,
            ..Effects::none()
        }
    }
}
