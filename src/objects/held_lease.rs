//! Budget leases, the isolate's side (`limits::budget_lease`): a slice of a key's
//! credits, lent by its object with a copy of its record, from which requests
//! are admitted without a call. Rows 3–11 are decided against the copy exactly
//! as the object would; anything the lease cannot admit (spent, ended, a refusal
//! the object must log) goes to the key's object instead. Each request's row is
//! completed by its settlement; once the lease is retired and every row is
//! complete, its report carries the rows to the key's object.

use crate::config::Config;
use crate::key::check::{check_key, AccessRequest};
use crate::key::identity::Identity;
use crate::limits::admission::LimitState;
use crate::limits::plan_lease;
use crate::limits::reservation::Settlement;
use crate::notify::logs::{LogEntry, LogState, RequestFacts, Via};
use crate::objects::key::{LeaseGrant, LeaseReport};
use std::collections::BTreeMap;

/// One lease as an isolate holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub grant: LeaseGrant,
    /// Credits admitted and not given back.
    used: u64,
    next_id: u64,
    /// Rows of admitted requests not settled yet, by id.
    pending: BTreeMap<u64, LogEntry>,
    /// Settled rows, for the report.
    done: Vec<LogEntry>,
    /// No more admissions: the report goes once `pending` is empty.
    pub retired: bool,
    reported: bool,
}

/// A request admitted from a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalAdmission {
    pub identity: Identity,
    pub lease: u64,
    pub row: u64,
    pub limit: Option<LimitState>,
}

impl Held {
    pub fn new(grant: LeaseGrant) -> Self {
        Held {
            next_id: grant.ids_from,
            grant,
            used: 0,
            pending: BTreeMap::new(),
            done: Vec::new(),
            retired: false,
            reported: false,
        }
    }

    /// Whether it may still admit at the isolate's `now` (`MARGIN_MS` early).
    pub fn live(&self, now: i64) -> bool {
        !self.retired && plan_lease::holds(self.grant.until, now)
    }

    /// Past half its time or half its credits: time to ask for the next one.
    pub fn wants_renewal(&self, now: i64) -> bool {
        let half_time = self.grant.until - now < (self.grant.until - self.grant.granted_at) / 2;
        half_time || self.used * 2 >= self.grant.credits
    }

    /// Admits `cost` credits when the lease is live, has them, and the copy of the
    /// record passes rows 3–11 under the plan version the lease was lent under.
    pub fn admit(
        &mut self,
        cfg: &Config,
        request: &AccessRequest,
        facts: &RequestFacts,
        cost: u64,
        plan_version: u64,
        now: i64,
    ) -> Option<LocalAdmission> {
        let rows_left = self.grant.ids_from + self.grant.credits - self.next_id;
        if !self.live(now)
            || cost == 0
            || facts.via != Via::Gate
            || plan_version != self.grant.plan_version
            || self.used + cost > self.grant.credits
            || rows_left == 0
        {
            return None;
        }
        let rec = &self.grant.record;
        let plan = cfg.plan(rec.plan.as_deref()).1;
        let identity = check_key(rec, request, plan, now).ok()?;
        self.used += cost;
        let row = self.next_id;
        self.next_id += 1;
        self.pending.insert(row, facts.pending(now, cost, row));
        let limit = self.grant.limit.clone().map(|mut l| {
            l.remaining = l.remaining.saturating_add(self.grant.credits - self.used);
            l
        });
        Some(LocalAdmission {
            identity,
            lease: self.grant.id,
            row,
            limit,
        })
    }

    /// Completes an admitted request's row; a request not charged gives its
    /// credits back to the lease. False when the row is not this lease's.
    pub fn settle(&mut self, s: &Settlement, charged: bool) -> bool {
        let Some(mut row) = self.pending.remove(&s.id) else {
            return false;
        };
        if !charged {
            self.used = self.used.saturating_sub(row.credits);
            row.credits = 0;
        }
        row.state = LogState::Completed;
        row.status = s.status;
        row.code = s.code.clone();
        row.duration_ms = s.duration_ms;
        self.done.push(row);
        true
    }

    /// The report, once retired and every row is complete (once).
    pub fn report(&mut self) -> Option<LeaseReport> {
        if !self.retired || !self.pending.is_empty() || self.reported {
            return None;
        }
        self.reported = true;
        Some(LeaseReport {
            lease: self.grant.id,
            rows: std::mem::take(&mut self.done),
        })
    }

    /// A row for its report: a refusal the key's object left to this isolate.
    pub fn keep_row(&mut self, row: LogEntry) -> bool {
        if self.reported {
            return false;
        }
        self.done.push(row);
        true
    }

    /// Whether its report has still to go.
    pub fn report_pending(&self) -> bool {
        !self.reported
    }
}
