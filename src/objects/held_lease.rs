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
use crate::limits::budget_lease::{Holder, Holding};
use crate::limits::reservation::Settlement;
use crate::notify::logs::{LogEntry, LogState, RequestFacts, Via};
use crate::objects::key::{LeaseGrant, LeaseReport};
use std::collections::BTreeMap;

/// One lease as an isolate holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub grant: LeaseGrant,
    pub holding: Holding,
    next_id: u64,
    /// Rows of admitted requests not settled yet, by id.
    pending: BTreeMap<u64, LogEntry>,
    /// Settled rows, for the report.
    done: Vec<LogEntry>,
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
            holding: Holding::new(grant.credits, grant.granted_at, grant.until),
            grant,
            pending: BTreeMap::new(),
            done: Vec::new(),
        }
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
        if !self.holding.live(now)
            || facts.via != Via::Gate
            || plan_version != self.grant.plan_version
            || rows_left == 0
        {
            return None;
        }
        let rec = &self.grant.record;
        let plan = cfg.plan(rec.plan.as_deref()).1;
        let identity = check_key(rec, request, plan, now).ok()?;
        let left = self.holding.take(cost, now)?;
        let row = self.next_id;
        self.next_id += 1;
        self.pending.insert(row, facts.pending(now, cost, row));
        let limit = self.grant.limit.clone().map(|mut l| {
            l.remaining = l.remaining.saturating_add(left);
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
            self.holding.give_back(row.credits);
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
        if !self.holding.retired || !self.pending.is_empty() || self.holding.reported {
            return None;
        }
        self.holding.reported = true;
        Some(LeaseReport {
            lease: self.grant.id,
            rows: std::mem::take(&mut self.done),
        })
    }

    /// A row for its report: a refusal the key's object left to this isolate.
    pub fn keep_row(&mut self, row: LogEntry) -> bool {
        if self.holding.reported {
            return false;
        }
        self.done.push(row);
        true
    }
}

impl Holder for Held {
    fn id(&self) -> u64 {
        self.grant.id
    }
    fn holding(&self) -> &Holding {
        &self.holding
    }
    fn holding_mut(&mut self) -> &mut Holding {
        &mut self.holding
    }
}
