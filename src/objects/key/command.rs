//! The key object's vocabulary: the commands it takes and the answers it gives.

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyCommand {
    Create {
        record: Box<KeyRecord>,
        /// Where the object is made (`placement`).
        #[serde(default)]
        home: Option<Region>,
    },
    /// The record and the live state of every limit.
    Get,
    /// The hot path: rows 3–14; counts the use and consumes `cost` when all pass.
    Check(CheckItem),
    /// A child key's request, to each of its ancestors: rows 4–16 against this
    /// key's own record (its status, expiry, permissions, scope, allowlist,
    /// limits, quotas and credits), reserved and settled like a `Check`; the
    /// child's secret is not this key's, so it is not compared.
    Carve(CheckItem),
    /// Where `hash` leads when the KV index has no copy of it yet (`lookup`): the
    /// key's id and account if it is one of the key's live secrets. Reads only.
    Locate {
        hash: String,
    },
    /// Group commit (`batch`): the `Check`s and `Settle`s of one call, each decided
    /// in order as if it came alone, against the state the ones before it left;
    /// persisted once; answered as a list of `Answer`s.
    Batch {
        items: Vec<KeyCommand>,
    },
    /// A budget lease for a hot isolate (`lending`): up to `want` credits, when
    /// `request` would pass rows 3–11. Answers `Option<LeaseGrant>`.
    Lease {
        request: AccessRequest,
        want: u64,
        #[serde(default)]
        plan: Option<PlanCopy>,
    },
    /// What an isolate admitted from a lease it retired (`lending`).
    Report(LeaseReport),
    /// After the answer (`reservation`): commits or releases each admitted
    /// request's reservation and completes its log row.
    Settle {
        items: Vec<Settlement>,
    },
    Patch {
        patch: Box<KeyPatch>,
    },
    /// `POST /keys/{id}/credits`: answers `CreditsChanged`.
    Credits {
        change: crate::limits::credits::Change,
        #[serde(default)]
        idempotency_key: Option<String>,
    },
    Rotate {
        hash: String,
        prefix: String,
        grace_ms: i64,
    },
    Deactivate,
    Activate,
    Revoke,
    Delete,
    /// The account's plan at `version`; an older version than the key's is ignored.
    SetPlan {
        #[serde(flatten)]
        plan: PlanCopy,
    },
    /// Served from storage by the object itself.
    Logs {
        query: LogQuery,
    },
    /// Requests and credits per hour (24 h) or per day (30 d).
    Usage {
        resolution: Resolution,
    },
    /// The hours or days starting in `[from, to)` that hold any use (billing).
    UsageBetween {
        from: i64,
        to: i64,
        resolution: Resolution,
    },
    /// The object's alarm: ends a suspension that is over.
    Wake,
    /// A report that the secret of `hash` leaked: `action` is applied when it is a
    /// live secret of this key, and `key.leaked` is announced.
    Leak {
        hash: String,
        action: LeakAction,
        source: Option<String>,
        url: Option<String>,
    },
    /// Copies a management route could not write after this object changed: kept
    /// in the outbox and retried by the alarm until they land. Taken with or without
    /// a record (a deleted key's index entries still need removing).
    Enqueue {
        notices: Vec<Notice>,
    },
    /// A move (`placement`), to the key's next object `name`, near `region`: it
    /// takes the key from its predecessor (`Export`) unless it holds it already.
    /// Performed by the edge object.
    MoveIn {
        name: String,
        region: Option<Region>,
    },
    /// A move, to the predecessor: everything it holds, in one step, after which
    /// it answers every command with `to`'s name. Again for the same `to`: the
    /// same. Performed by the edge object.
    Export {
        to: String,
    },
    /// A move, to the predecessor, once `to` holds the key: it drops its copy
    /// (its tombstone and outbox stay).
    Release {
        to: String,
    },
    /// To a key's first object: the key now lives in `to` (a later move).
    Relocated {
        to: String,
    },
    /// The key arrived in this object (`name`), in `region`: its home, the audit
    /// event, and the KV index entries that lead here.
    Arrived {
        name: String,
        region: Option<Region>,
    },
}

/// One request's rows 3–14.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckItem {
    pub request: AccessRequest,
    pub facts: RequestFacts,
    pub cost: u64,
    /// The account's plan as the worker last learned it: taken first when newer
    /// than the key's copy.
    #[serde(default)]
    pub plan: Option<PlanCopy>,
    /// The reservation of this request's admission under a superseded plan,
    /// released (and its row dropped) before the check runs again.
    #[serde(default)]
    pub undo: Option<u64>,
    /// Credits this isolate would like lent with the answer (0: none).
    #[serde(default)]
    pub want_lease: u64,
    /// The key is hot in the asking isolate: a refusal on rows 13–14 is answered
    /// without its row, which the isolate writes if no lease of its own admits
    /// the request.
    #[serde(default)]
    pub hot: bool,
    /// Where the request's client is, when known (`placement`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// A management call of an admin key: its balance is neither checked nor
    /// spent (`Needs::spends`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub free: bool,
}

/// What `Check` answers when the request is admitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Admitted {
    pub identity: Identity,
    /// When the credits were reserved.
    pub at: i64,
    /// The reservation its settlement names.
    pub reservation: u64,
    pub limit: Option<LimitState>,
    /// The version of the plan copy the request was decided under.
    #[serde(default)]
    pub plan_version: u64,
    /// A budget lease, when one was asked for and could be lent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseGrant>,
    /// The key's object asks to be moved near this region (`placement`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<Region>,
}

/// `Get`'s answer: the record and the live state of every limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRead {
    pub record: KeyRecord,
    pub limits: Vec<LimitState>,
    /// Where its requests came from this hour, and the last suspicion of sharing.
    #[serde(default)]
    pub sharing: Option<crate::key::sharing::Sharing>,
}

/// `Rotate`'s answer: the hash that stopped being current, and the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rotated {
    pub old_hash: String,
    pub record: KeyRecord,
}

/// `Leak`'s answer: whether the secret was a live one of this key, what was done
/// (`revoked`, `deactivated`, `notified` or `none`) and the record after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaked {
    pub found: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<KeyRecord>,
}

/// `Usage`'s answer: requests and credits per hour or day, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSeries {
    pub resolution: Resolution,
    pub items: Vec<UsagePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsagePoint {
    /// RFC 3339.
    pub start: String,
    pub requests: u64,
    pub credits: u64,
}
