//! The account object's vocabulary: the commands it takes and the answers it gives.

use super::lending::BudgetGrant;
use crate::admin::listing::ListQuery;
use crate::key::record::IndexRow;
use crate::limits::admission::LimitState;
use crate::limits::credits::{Change, Credits};
use crate::limits::plans::PlanCopy;
use crate::notify::audit::{AuditEvent, EventPos, EventQuery, Listed};
use crate::request::regions::Region;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountCommand {
    /// The plan, its version and the progress of its latest change.
    Get,
    /// Records a new plan (a new version) and starts carrying it to the keys.
    SetPlan {
        plan: String,
        #[serde(default)]
        region: Declared,
        event: AuditEvent,
    },
    /// Row 15: admits `cost` credits against the plan's account-wide limits; the
    /// answer carries the plan version every admission is checked against, and,
    /// with `want`, a slice of those limits lent to the isolate (`lending`).
    Admit {
        cost: u64,
        #[serde(default)]
        want: u64,
        /// A management call: the balance is neither checked nor spent.
        #[serde(default)]
        free: bool,
    },
    /// What a retired budget lease charged (`lending`).
    Report {
        lease: u64,
        charged: u64,
    },
    /// Group commit: the `Admit`s, `Refund`s and `Report`s of one call, in order, stored in
    /// one step; a list of answers.
    Batch {
        items: Vec<AccountCommand>,
    },
    /// `PUT /accounts/{id}`'s `credits` (`set`: a new balance, or none) or
    /// `POST /accounts/{id}/credits` (`change`, once per `Idempotency-Key`);
    /// audited with `event`. Answers `AccountCredits`.
    Credits {
        #[serde(default)]
        set: Option<Option<Credits>>,
        #[serde(default)]
        change: Option<Change>,
        #[serde(default)]
        idempotency_key: Option<String>,
        event: AuditEvent,
    },
    /// Gives back an admission that a key's limit refused, or that was not charged.
    Refund {
        at: i64,
        cost: u64,
    },
    /// Claims a key's alias in the index before its object changes (409 when
    /// another key holds it); for a new key also its place among at most `cap`.
    Claim {
        row: IndexRow,
        #[serde(default)]
        cap: Option<u64>,
    },
    /// The key as its object now holds it, and the event of the change.
    Sync {
        row: IndexRow,
        event: Option<AuditEvent>,
    },
    Remove {
        id: String,
        event: Option<AuditEvent>,
    },
    Record {
        event: AuditEvent,
    },
    /// A refused management attempt from the client address `bucket`, recorded
    /// unless the trail holds `AUDIT_REFUSALS_PER_HOUR` of that address's already;
    /// answers whether it was.
    Refused {
        event: AuditEvent,
        bucket: String,
    },
    /// Key ids newest first after `after`, up to `query.limit + 1`.
    List {
        query: ListQuery,
        after: Option<String>,
        now: i64,
    },
    Events {
        query: EventQuery,
    },
}

/// `Get`'s and `SetPlan`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    /// The plan set for the account (none: the default plan).
    pub plan: Option<String>,
    pub plan_version: u64,
    pub keys_total: u64,
    pub keys_updated: u64,
    /// Where the account's clients are, as declared: its keys' objects are made there.
    #[serde(default)]
    pub region: Option<Region>,
    /// `SetPlan`'s: how long until every lease on the old plan has lapsed, which
    /// the change waits before it answers.
    #[serde(default)]
    pub leases_wait_ms: i64,
    /// The account's balance, if it has one.
    #[serde(default)]
    pub credits: Option<Credits>,
}

/// `Credits`' answer: the route's body (the same again for the same
/// `Idempotency-Key`), and how long the change must wait for plan leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountCredits {
    pub answer: Value,
    pub replayed: bool,
    pub leases_wait_ms: i64,
}

/// What a `SetPlan` says of the account's region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Declared {
    /// Not mentioned: as it was.
    #[default]
    Unchanged,
    /// Declared (or, with none, withdrawn).
    To(Option<Region>),
}

/// `Admit`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountAdmitted {
    /// When the credits were taken (given back in this bucket if not charged).
    pub at: i64,
    pub limit: Option<LimitState>,
    pub charged: u64,
    /// The plan every admission is decided under.
    pub plan: PlanCopy,
    /// Until when (the object's clock) the plan stays as it is, for a plan without
    /// account-wide limits (`limits::plan_lease`).
    #[serde(default)]
    pub lease_until: Option<i64>,
    /// A slice of the account-wide limits lent with this answer.
    #[serde(default)]
    pub budget: Option<BudgetGrant>,
    /// `credits.low` data, when this admission took the balance across a
    /// `CREDIT_ALERT_PERCENTS` mark (sent through the key's outbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits_low: Option<Value>,
}

/// `List`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyIds {
    pub ids: Vec<String>,
}

/// `Events`' answer: up to `limit + 1` events, and where a bounded scan for an
/// admin key stopped short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    pub events: Vec<Listed>,
    pub resume: Option<EventPos>,
}
