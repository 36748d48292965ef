//! What a key's Durable Object does with each command, as a pure function of its
//! state (record and ledger), the command, the configuration and the time. The
//! object loads, calls `apply`, performs the returned effects and replies.

use crate::key::lifecycle::KeyPatch;

use crate::config::Config;
use crate::error::ApiError;
use crate::key::check::{check_key, AccessRequest};
use crate::key::identity::Identity;
use crate::key::leaks::LeakAction;
use crate::key::lifecycle;
use crate::key::powers::Powers;
use crate::key::record::{AdminStatus, HashEntry, IndexRow, KeyRecord};
use crate::limits::plans::Quotas;
use crate::limits::plans::RateLimits;

use crate::limits::admission::{self, KeyAdmission, LimitState, Verdict};
use crate::limits::ledger::{Ledger, StoredBucket, KEY_LEVELS};
use crate::limits::plans::PlanCopy;
use crate::limits::reservation::{Reservation, Reservations, Settlement};
use crate::limits::usage::{Resolution, Tally, Usage};
use crate::notify::alerts::{self, Alert};
use crate::notify::audit::AuditEvent;
use crate::notify::logs::{LogEntry, LogQuery, LogState, LogUpdate, RequestFacts, Via};
use crate::objects::batch::Answer;
use crate::time_fmt::to_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyCommand {
    Create {
        record: Box<KeyRecord>,
    },
    /// The record and the live state of every limit.
    Get,
    /// The hot path: rows 3–14; counts the use and consumes `cost` when all pass.
    Check(CheckItem),
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
    /// After the answer (`reservation`): commits or releases each admitted
    /// request's reservation and completes its log row.
    Settle {
        items: Vec<Settlement>,
    },
    Patch {
        patch: Box<KeyPatch>,
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
}

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
    /// it (named `registry_*` in outboxes written before the index moved to the
    /// account's object).
    #[serde(alias = "registry_sync")]
    IndexSync {
        row: IndexRow,
        event: Option<AuditEvent>,
    },
    #[serde(alias = "registry_remove")]
    IndexRemove {
        id: String,
        /// Empty in old outboxes: the event's account is used then.
        #[serde(default)]
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
    }

    /// These effects followed by `later`'s (storage writes in that order).
    fn then(mut self, later: Effects) -> Self {
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
        self
    }

    /// One write per stored row: a bucket or an hour touched by several requests
    /// of a batch keeps its last value only.
    fn compact(mut self) -> Self {
        self.buckets = admission::last_per_bucket(std::mem::take(&mut self.buckets));
        self.usage = admission::last_per(std::mem::take(&mut self.usage), |u| u.0);
        self.prune = admission::last_per(std::mem::take(&mut self.prune), |p| p.0);
        self
    }

    fn none() -> Self {
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
        }
    }

    fn put() -> Self {
        Effects {
            record: Change::Put,
            ..Effects::none()
        }
    }
}

pub struct KeyState {
    pub record: Option<KeyRecord>,
    pub ledger: Ledger,
    pub usage: Usage,
    pub reservations: Reservations,
}

impl KeyState {
    /// A key's object before anything was stored in it.
    pub fn empty() -> Self {
        KeyState {
            record: None,
            ledger: Ledger::new(&KEY_LEVELS),
            usage: Usage::default(),
            reservations: Reservations::default(),
        }
    }
}

type Outcome = (Effects, Result<Value, ApiError>);

pub fn apply(state: &mut KeyState, cmd: KeyCommand, cfg: &Config, now: i64) -> Outcome {
    if let KeyCommand::Batch { items } = cmd {
        let mut fx = Effects::none();
        let mut answers = Vec::with_capacity(items.len());
        for item in items {
            let (one, reply) = match item {
                KeyCommand::Check(_) | KeyCommand::Settle { .. } => apply(state, item, cfg, now),
                _ => (
                    Effects::none(),
                    Err(ApiError::internal(
                        "a batch carries checks and settlements only",
                    )),
                ),
            };
            fx = fx.then(one);
            answers.push(Answer::from(reply));
        }
        return (fx.compact(), to_value(&answers));
    }
    let KeyState {
        record,
        ledger,
        usage,
        reservations,
    } = state;
    let (rec, cmd) = match (record.as_mut(), cmd) {
        (_, KeyCommand::Enqueue { notices }) => {
            let fx = Effects {
                notices,
                ..Effects::none()
            };
            return (fx, Ok(Value::Null));
        }
        (None, KeyCommand::Create { record: new }) => {
            let reply = to_value(&new);
            *record = Some(*new);
            return (Effects::put(), reply);
        }
        // An index entry without a record (a deleted key) is an unknown key.
        (None, KeyCommand::Check { .. } | KeyCommand::Locate { .. }) => {
            return (Effects::none(), Err(ApiError::InvalidKey))
        }
        (None, KeyCommand::Wake) => return (Effects::none(), Ok(Value::Null)),
        (None, _) => {
            return (
                Effects::none(),
                Err(ApiError::NotFound { what: "key".into() }),
            )
        }
        (Some(rec), cmd) => (rec, cmd),
    };
    match cmd {
        KeyCommand::Create { .. } => (
            Effects::none(),
            Err(ApiError::Conflict {
                reason: "key id already exists".into(),
            }),
        ),
        KeyCommand::Get => {
            let plan = cfg.plan(rec.plan.as_deref()).1;
            let rate = admission::effective_rate_limits(&rec.rate_limits, plan);
            let states = admission::key_limit_states(ledger, &rate, &rec.quotas, now);
            let reply = to_value(&rec).map(|r| json!({ "record": r, "limits": states }));
            (Effects::none(), reply)
        }
        KeyCommand::Check(item) => check_item(rec, ledger, reservations, cfg, item, now),
        KeyCommand::Locate { hash } => {
            let found = rec.accepts_hash(&hash, now).then(|| HashEntry {
                id: rec.id.clone(),
                account: rec.account.clone(),
                written_at: None,
            });
            (
                Effects::none(),
                found.ok_or(ApiError::InvalidKey).and_then(|e| to_value(&e)),
            )
        }
        KeyCommand::Settle { items } => {
            let mut fx = Effects::none();
            for item in items {
                settle(rec, ledger, usage, reservations, cfg, item, now, &mut fx);
            }
            (fx.compact(), Ok(Value::Null))
        }
        KeyCommand::Patch { patch } => record_result(rec, |r| lifecycle::patch(r, &patch, now)),
        KeyCommand::Rotate {
            hash,
            prefix,
            grace_ms,
        } => {
            let mut old = String::new();
            let (fx, reply) = record_result(rec, |r| {
                old = lifecycle::rotate(r, hash, prefix, grace_ms, now)?;
                Ok(())
            });
            (fx, reply.map(|r| json!({ "old_hash": old, "record": r })))
        }
        KeyCommand::Deactivate => record_result(rec, |r| lifecycle::deactivate(r, now)),
        KeyCommand::Activate => record_result(rec, |r| lifecycle::activate(r, now)),
        KeyCommand::Revoke => record_result(rec, |r| {
            lifecycle::revoke(r, now);
            Ok(())
        }),
        KeyCommand::SetPlan { plan } => {
            let fx = take_plan(rec, plan);
            (fx, to_value(&rec))
        }
        // A request admitted and not yet settled is a use too.
        KeyCommand::Delete => match lifecycle::check_deletable(rec, reservations.len()) {
            Ok(()) => {
                let reply = to_value(&rec);
                *record = None;
                (
                    Effects {
                        record: Change::Erase,
                        ..Effects::none()
                    },
                    reply,
                )
            }
            Err(e) => (Effects::none(), Err(e)),
        },
        KeyCommand::Usage { resolution } => {
            let items: Vec<Value> = usage
                .series(now, resolution)
                .iter()
                .map(|p| {
                    json!({ "start": to_rfc3339(p.start), "requests": p.requests, "credits": p.credits })
                })
                .collect();
            (
                Effects::none(),
                Ok(json!({ "resolution": resolution, "items": items })),
            )
        }
        KeyCommand::Logs { .. } => (
            Effects::none(),
            Err(ApiError::internal(
                "logs are read from storage by the object",
            )),
        ),
        KeyCommand::Wake => {
            let (mut fx, reply) = wake(rec, cfg, now);
            for r in reservations.overdue(now) {
                abandon(rec, ledger, cfg, r, &mut fx);
            }
            let before = rec.alerts.clone();
            let thresholds = &cfg.alerts.expiry_notice_ms;
            let due = match rec.status {
                AdminStatus::Revoked => Vec::new(),
                _ => alerts::expiry_alerts(&mut rec.alerts, rec.expires_at, thresholds, now),
            };
            for alert in due {
                announce(&mut fx, rec, cfg, now, alert);
            }
            if rec.alerts != before {
                fx.record = Change::Put;
            }
            (fx, reply)
        }
        KeyCommand::Leak {
            hash,
            action,
            source,
            url,
        } => leak(rec, &hash, action, source, url, now),
        KeyCommand::Enqueue { .. } => (Effects::none(), Ok(Value::Null)), // taken above
        KeyCommand::Batch { .. } => (
            Effects::none(),
            Err(ApiError::internal("a batch inside a batch")),
        ),
    }
}

/// One request: an undo of its admission under a superseded plan, the plan it
/// carries, then rows 3–14.
fn check_item(
    rec: &mut KeyRecord,
    ledger: &mut Ledger,
    reservations: &mut Reservations,
    cfg: &Config,
    item: CheckItem,
    now: i64,
) -> Outcome {
    let CheckItem {
        request,
        facts,
        cost,
        plan,
        undo,
    } = item;
    let mut fx = Effects::none();
    if let Some(r) = undo.and_then(|id| reservations.take(id)) {
        fx.buckets.extend(ledger.remove(r.at, r.cost));
        fx.release.push(r.id);
        fx.log_updates
            .push(LogUpdate::Discard { reservation: r.id });
    }
    if let Some(copy) = plan {
        fx = fx.then(take_plan(rec, copy));
    }
    let (checked, reply) = check(rec, ledger, reservations, cfg, &request, &facts, cost, now);
    (fx.then(checked), reply)
}

/// One settlement: the request counts as a use when it is charged (`CHARGE_ON`);
/// otherwise its credits go back. Either way its log row is completed. A
/// reservation already settled or released is not touched again.
#[allow(clippy::too_many_arguments)]
fn settle(
    rec: &mut KeyRecord,
    ledger: &mut Ledger,
    usage: &mut Usage,
    reservations: &mut Reservations,
    cfg: &Config,
    s: Settlement,
    now: i64,
    fx: &mut Effects,
) {
    let Some(r) = reservations.take(s.id) else {
        return;
    };
    fx.release.push(r.id);
    let charged = s.code.is_none() && cfg.charge_on.charges(s.origin_status);
    if charged {
        rec.usage_count += 1;
        rec.last_used_at = rec.last_used_at.max(Some(r.at));
        fx.usage.push(usage.add(r.at, r.cost));
        fx.usage_prune = usage.prune(now);
        if fx.record == Change::None {
            fx.record = Change::Use;
        }
    } else {
        fx.buckets.extend(ledger.remove(r.at, r.cost));
    }
    fx.log_updates.push(LogUpdate::Settle {
        reservation: r.id,
        state: LogState::Completed,
        status: s.status,
        code: s.code,
        duration_ms: s.duration_ms,
        credits: if charged { r.cost } else { 0 },
    });
}

/// A reservation no settlement came for (the isolate died, the answer was never
/// reported): its credits go back, here and in the account's object, and its
/// row says so.
fn abandon(rec: &KeyRecord, ledger: &mut Ledger, cfg: &Config, r: Reservation, fx: &mut Effects) {
    fx.buckets.extend(ledger.remove(r.at, r.cost));
    fx.release.push(r.id);
    fx.log_updates.push(LogUpdate::Settle {
        reservation: r.id,
        state: LogState::Abandoned,
        status: 0,
        code: None,
        duration_ms: 0,
        credits: 0,
    });
    let plan = cfg.plan(rec.plan.as_deref()).1;
    if plan.is_some_and(|p| p.account_limits != Default::default()) {
        fx.notices.push(Notice::AccountRefund {
            account: rec.account.clone(),
            at: r.at,
            cost: r.cost,
        });
    }
}

/// The account's plan, when newer than the key's copy. Not a management change of
/// the key: its revision (and the index row) stay as they are.
fn take_plan(rec: &mut KeyRecord, copy: PlanCopy) -> Effects {
    if copy.version <= rec.plan_version {
        return Effects::none();
    }
    rec.plan = Some(copy.plan);
    rec.plan_version = copy.version;
    Effects::put()
}

/// A management change: applied, given the next revision, persisted and answered.
fn record_result(
    rec: &mut KeyRecord,
    f: impl FnOnce(&mut KeyRecord) -> Result<(), ApiError>,
) -> Outcome {
    match f(rec) {
        Ok(()) => {
            rec.revision += 1;
            (Effects::put(), to_value(&rec))
        }
        Err(e) => (Effects::none(), Err(e)),
    }
}

#[allow(clippy::too_many_arguments)]
fn check(
    rec: &mut KeyRecord,
    ledger: &mut Ledger,
    reservations: &mut Reservations,
    cfg: &Config,
    request: &AccessRequest,
    facts: &RequestFacts,
    cost: u64,
    now: i64,
) -> Outcome {
    let refuse = |mut fx: Effects, e: ApiError| {
        fx.logs.push(facts.refused(now, &e));
        (fx, Err(e))
    };
    let plan = cfg.plan(rec.plan.as_deref()).1;
    let identity = match check_key(rec, request, plan, now) {
        // A verify call answers with the key's metadata; the gate does not need it.
        Ok(identity) if facts.via == Via::Verify => Identity {
            metadata: Some(rec.metadata.clone()),
            ..identity
        },
        Ok(identity) => identity,
        // Not this key's holder: nothing to log against the key.
        Err(ApiError::InvalidKey) => return (Effects::none(), Err(ApiError::InvalidKey)),
        Err(e) => return refuse(Effects::none(), e),
    };
    let admission = KeyAdmission {
        ledger,
        rate: admission::effective_rate_limits(&rec.rate_limits, plan),
        quotas: rec.quotas,
        breaker: cfg.breaker,
        suspended_until: rec.suspended_until,
        created_at: rec.created_at,
    };
    match admission::decide(&admission, now, cost) {
        Verdict::Refuse(ApiError::RateLimited { retry_after }) => {
            let mut fx = Effects::none();
            let rate = admission::effective_rate_limits(&rec.rate_limits, plan);
            let exceeded: Vec<LimitState> =
                admission::key_limit_states(ledger, &rate, &Quotas::default(), now)
                    .into_iter()
                    .filter(|l| l.remaining < cost)
                    .collect();
            if let Some(alert) =
                alerts::rate_limited_alert(&mut rec.alerts, &exceeded, retry_after, now)
            {
                fx.record = Change::Put;
                announce(&mut fx, rec, cfg, now, alert);
            }
            refuse(fx, ApiError::RateLimited { retry_after })
        }
        Verdict::Refuse(e) => refuse(Effects::none(), e),
        Verdict::Trip {
            until,
            count,
            threshold,
            baseline,
        } => {
            rec.suspended_until = Some(until);
            let details = json!({
                "suspended_until": to_rfc3339(until),
                "window_seconds": cfg.breaker.window_ms / 1000,
                "credits_in_window": count,
                "threshold": threshold,
                "baseline": baseline,
                "factor": cfg.breaker.factor,
            });
            let mut fx = Effects::put();
            fx.notices.push(Notice::Audit {
                event: event(rec, cfg, now, "key.suspended", details.clone()),
            });
            let mut data = json!({
                "key_id": rec.id,
                "account": rec.account,
                "prefix": rec.prefix,
            });
            if let (Some(p), Some(d)) = (data.as_object_mut(), details.as_object()) {
                p.extend(d.clone());
            }
            fx.notices.push(Notice::Webhook {
                event: "key.suspended".into(),
                at: now,
                data,
            });
            fx.alarm_at = Some(until);
            let retry_after = ((until - now + 999) / 1000).max(1) as u64;
            refuse(fx, ApiError::KeySuspended { retry_after })
        }
        Verdict::Admit(limit) => {
            // Reserved: counted against every limit now, a use once settled.
            let r = reservations.open(now, cost, cfg.reservation_timeout_ms);
            let mut fx = Effects::none();
            fx.buckets = ledger.add(now, cost);
            fx.prune = ledger.prune(now);
            fx.reserve.push(r);
            fx.logs.push(facts.pending(now, cost, r.id));
            if rec.quotas != Quotas::default() && !cfg.alerts.quota_percents.is_empty() {
                let quotas =
                    admission::key_limit_states(ledger, &RateLimits::default(), &rec.quotas, now);
                let before = rec.alerts.clone();
                for alert in
                    alerts::quota_alerts(&mut rec.alerts, &quotas, &cfg.alerts.quota_percents)
                {
                    announce(&mut fx, rec, cfg, now, alert);
                }
                if rec.alerts != before {
                    fx.record = Change::Put;
                }
            }
            let reply = Admitted {
                identity,
                at: now,
                reservation: r.id,
                limit,
                plan_version: rec.plan_version,
            };
            (fx, to_value(&reply))
        }
    }
}

/// A leaked secret: its key is revoked or deactivated (or left, for `notify`) in
/// this one step, and the webhook goes to the outbox with it. A secret this key
/// no longer accepts is not a live key: nothing changes.
fn leak(
    rec: &mut KeyRecord,
    hash: &str,
    action: LeakAction,
    source: Option<String>,
    url: Option<String>,
    now: i64,
) -> Outcome {
    if !rec.accepts_hash(hash, now) {
        return (Effects::none(), Ok(json!({ "found": false })));
    }
    let applied = match (action, rec.status) {
        (LeakAction::Revoke, AdminStatus::Revoked)
        | (LeakAction::Deactivate, AdminStatus::Revoked) => "none",
        (LeakAction::Revoke, _) => "revoked",
        (LeakAction::Deactivate, AdminStatus::Inactive) => "none",
        (LeakAction::Deactivate, _) => "deactivated",
        (LeakAction::Notify, _) => "notified",
    };
    let (mut fx, reply) = match applied {
        "revoked" => record_result(rec, |r| {
            lifecycle::revoke(r, now);
            Ok(())
        }),
        "deactivated" => record_result(rec, |r| lifecycle::deactivate(r, now)),
        _ => (Effects::none(), to_value(&rec)),
    };
    fx.notices.push(Notice::Webhook {
        event: "key.leaked".into(),
        at: now,
        data: json!({
            "key_id": rec.id, "account": rec.account, "prefix": rec.prefix,
            "source": source, "url": url, "action": applied, "status": rec.effective_status(now),
        }),
    });
    let reply = reply.map(|r| json!({ "found": true, "action": applied, "record": r }));
    (fx, reply)
}

/// Ends a suspension that is over, recording the resume.
fn wake(rec: &mut KeyRecord, cfg: &Config, now: i64) -> Outcome {
    match rec.suspended_until {
        Some(until) if until <= now => {
            rec.suspended_until = None;
            let mut fx = Effects::put();
            let details = json!({ "suspended_until": to_rfc3339(until) });
            fx.notices.push(Notice::Audit {
                event: event(rec, cfg, now, "key.resumed", details),
            });
            (fx, Ok(Value::Null))
        }
        Some(until) => (
            Effects {
                alarm_at: Some(until),
                ..Effects::none()
            },
            Ok(Value::Null),
        ),
        None => (Effects::none(), Ok(Value::Null)),
    }
}

/// An alert, in the audit trail and as a webhook (via the outbox).
fn announce(fx: &mut Effects, rec: &KeyRecord, cfg: &Config, now: i64, alert: Alert) {
    let mut audit = event(rec, cfg, now, alert.event, alert.details.clone());
    audit.actor = "keyward".into();
    fx.notices.push(Notice::Audit { event: audit });
    let mut data = json!({ "key_id": rec.id, "account": rec.account, "prefix": rec.prefix });
    if let (Some(d), Some(more)) = (data.as_object_mut(), alert.details.as_object()) {
        d.extend(more.clone());
    }
    fx.notices.push(Notice::Webhook {
        event: alert.event.into(),
        at: now,
        data,
    });
}

/// When the key's object must wake next for an alert (an expiry notice or the
/// lapse); none for a revoked key.
pub fn next_alert_at(rec: &KeyRecord, cfg: &Config) -> Option<i64> {
    if rec.status == AdminStatus::Revoked {
        return None;
    }
    alerts::next_expiry_check(&rec.alerts, rec.expires_at, &cfg.alerts.expiry_notice_ms)
}

fn event(rec: &KeyRecord, cfg: &Config, now: i64, action: &str, details: Value) -> AuditEvent {
    AuditEvent {
        at: now,
        actor: "circuit_breaker".into(),
        action: action.into(),
        key_id: Some(rec.id.clone()),
        account: rec.account.clone(),
        details,
        scope: Some(Powers::of(rec, cfg.plan(rec.plan.as_deref()).1)),
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::record::{AdminStatus, Environment};
    use crate::limits::plans::{Quotas, RateLimits};
    use std::collections::HashMap;

    const NOW: i64 = 1_800_000_000_000;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars: HashMap<&str, &str> = HashMap::from([("ORIGIN_URL", "http://o")]);
        vars.extend(extra.iter().copied());
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
    }

    fn rec() -> KeyRecord {
        crate::key::lifecycle::test_key(NOW - 1000)
    }

    fn state(r: KeyRecord) -> KeyState {
        KeyState {
            record: Some(r),
            ..KeyState::empty()
        }
    }

    fn rotate_to(hash: &str) -> KeyCommand {
        KeyCommand::Rotate {
            hash: hash.into(),
            prefix: "p".into(),
            grace_ms: 0,
        }
    }

    fn check_cmd(hash: &str) -> KeyCommand {
        KeyCommand::Check(item(hash, 1))
    }

    fn item(hash: &str, cost: u64) -> CheckItem {
        CheckItem {
            request: AccessRequest {
                hash: hash.into(),
                deployment_env: Environment::Production,
                client_ip: None,
                permissions: vec!["read:all".into()],
                projects: vec![],
                grace: true,
            },
            facts: RequestFacts {
                method: "GET".into(),
                path: "/x".into(),
                ip: None,
                via: Default::default(),
            },
            cost,
            plan: None,
            undo: None,
        }
    }

    fn settlement(id: u64, origin: Option<u16>, code: Option<&str>) -> KeyCommand {
        KeyCommand::Settle {
            items: vec![Settlement {
                id,
                origin_status: origin,
                status: origin.unwrap_or(429),
                code: code.map(Into::into),
                duration_ms: 7,
            }],
        }
    }

    /// The origin answered `status`.
    fn commit(id: u64, status: u16) -> KeyCommand {
        settlement(id, Some(status), None)
    }

    /// A later row (the account's) refused the request: it was never forwarded.
    fn refused(id: u64) -> KeyCommand {
        settlement(id, None, Some("rate_limited"))
    }

    /// Checks and, when admitted, commits at once: one whole request.
    fn use_key(s: &mut KeyState, cfg: &Config, now: i64) -> Result<Admitted, ApiError> {
        let a: Admitted = serde_json::from_value(apply(s, check_cmd("h1"), cfg, now).1?).unwrap();
        let _ = apply(s, commit(a.reservation, 200), cfg, now);
        Ok(a)
    }

    fn plan(name: &str, version: u64) -> PlanCopy {
        PlanCopy {
            plan: name.into(),
            version,
        }
    }

    #[test]
    fn create_then_duplicate_create() {
        let mut s = KeyState::empty();
        let cfg = config(&[]);
        let (fx, r) = apply(
            &mut s,
            KeyCommand::Create {
                record: Box::new(rec()),
            },
            &cfg,
            NOW,
        );
        assert!(r.is_ok());
        assert_eq!(fx.record, Change::Put);
        let (fx, r) = apply(
            &mut s,
            KeyCommand::Create {
                record: Box::new(rec()),
            },
            &cfg,
            NOW,
        );
        assert_eq!(fx.record, Change::None);
        assert!(matches!(r, Err(ApiError::Conflict { .. })));
    }

    #[test]
    fn a_passing_check_counts_consumes_and_inherits_plan_limits() {
        let mut s = state(rec());
        let (fx, r) = apply(&mut s, check_cmd("h1"), &config(&[]), NOW + 5);
        let admitted: Admitted = serde_json::from_value(r.unwrap()).unwrap();
        assert_eq!(admitted.identity.key_id, "key_1");
        assert_eq!(admitted.at, NOW + 5);
        // The default plan (pro) gives 500/min and 50,000/day; per-minute is tighter.
        let limit = admitted.limit.unwrap();
        assert_eq!(
            (limit.name.as_str(), limit.limit, limit.remaining),
            ("per_minute", 500, 499)
        );
        // Reserved: counted against the limits, not yet a use.
        assert_eq!(fx.record, Change::None);
        assert_eq!(fx.buckets.len(), KEY_LEVELS.len());
        assert_eq!(fx.reserve.len(), 1);
        assert!(fx.usage.is_empty());
        assert_eq!(fx.logs[0].state, LogState::Pending);
        assert_eq!(fx.logs[0].reservation, Some(admitted.reservation));
        assert_eq!(s.record.as_ref().unwrap().usage_count, 0);
        let (fx, _) = apply(
            &mut s,
            commit(admitted.reservation, 200),
            &config(&[]),
            NOW + 6,
        );
        assert_eq!(fx.record, Change::Use, "a use does not rewrite the record");
        assert_eq!(fx.usage.len(), 1);
        assert_eq!((fx.usage[0].1.requests, fx.usage[0].1.credits), (1, 1));
        assert_eq!(fx.release, vec![admitted.reservation]);
        assert!(matches!(
            fx.log_updates.as_slice(),
            [LogUpdate::Settle {
                state: LogState::Completed,
                status: 200,
                credits: 1,
                duration_ms: 7,
                ..
            }]
        ));
        let (_, chart) = apply(
            &mut s,
            KeyCommand::Usage {
                resolution: Resolution::Hour,
            },
            &config(&[]),
            NOW + 6,
        );
        let chart = chart.unwrap();
        assert_eq!(chart["resolution"], "hour");
        assert_eq!(chart["items"][23]["requests"], 1);
        let r = s.record.as_ref().unwrap();
        assert_eq!((r.usage_count, r.last_used_at), (1, Some(NOW + 5)));
        assert_eq!(s.ledger.total, 1);
    }

    #[test]
    fn refusals_consume_nothing_and_are_logged() {
        let mut r = rec();
        r.rate_limits = RateLimits {
            per_minute: Some(1),
            ..Default::default()
        };
        let mut s = state(r);
        let cfg = config(&[]);
        assert!(use_key(&mut s, &cfg, NOW).is_ok());
        let (fx, res) = apply(&mut s, check_cmd("h1"), &cfg, NOW + 1);
        assert_eq!(res, Err(ApiError::RateLimited { retry_after: 60 }));
        assert_eq!(fx.logs.first().map(|l| l.status), Some(429));
        assert!(fx.buckets.is_empty());
        assert_eq!(s.ledger.total, 1);
        assert_eq!(s.record.as_ref().unwrap().usage_count, 1);
        // A wrong secret is not logged against the key.
        let (fx, res) = apply(&mut s, check_cmd("nope"), &cfg, NOW);
        assert_eq!((fx.logs, res), (vec![], Err(ApiError::InvalidKey)));
    }

    #[test]
    fn the_plan_copy_decides_row_8() {
        let mut s = state(rec());
        let cfg = config(&[]);
        let set = |p| KeyCommand::SetPlan { plan: p };
        let _ = apply(&mut s, set(plan("free", 1)), &cfg, NOW);
        assert_eq!(
            apply(&mut s, check_cmd("h1"), &cfg, NOW).1,
            Err(ApiError::UpgradeRequired)
        );
        let _ = apply(&mut s, set(plan("business", 2)), &cfg, NOW);
        assert!(apply(&mut s, check_cmd("h1"), &cfg, NOW).1.is_ok());
        // A late, older version (the alarm behind the gate) changes nothing.
        let (fx, _) = apply(&mut s, set(plan("free", 1)), &cfg, NOW);
        assert_eq!(fx.record, Change::None);
        assert!(apply(&mut s, check_cmd("h1"), &cfg, NOW).1.is_ok());
        assert_eq!(
            s.record.as_ref().unwrap().revision,
            1,
            "not a management change"
        );
    }

    #[test]
    fn a_check_carrying_a_newer_plan_decides_under_it() {
        let mut s = state(rec());
        let cfg = config(&[]);
        let mut cmd = check_cmd("h1");
        if let KeyCommand::Check(CheckItem { plan: p, .. }) = &mut cmd {
            *p = Some(plan("free", 4));
        }
        assert_eq!(
            apply(&mut s, cmd, &cfg, NOW).1,
            Err(ApiError::UpgradeRequired)
        );
        assert_eq!(s.record.as_ref().unwrap().plan_version, 4);
    }

    #[test]
    fn an_admission_under_a_superseded_plan_is_undone_before_the_recheck() {
        let mut r = rec();
        r.rate_limits = RateLimits {
            per_minute: Some(3),
            ..Default::default()
        };
        let mut s = state(r);
        let cfg = config(&[]);
        let first: Admitted =
            serde_json::from_value(apply(&mut s, check_cmd("h1"), &cfg, NOW).1.unwrap()).unwrap();
        assert_eq!(first.plan_version, 0);
        let mut again = check_cmd("h1");
        if let KeyCommand::Check(CheckItem { plan: p, undo, .. }) = &mut again {
            *p = Some(plan("business", 1));
            *undo = Some(first.reservation);
        }
        let (fx, second) = apply(&mut s, again, &cfg, NOW + 1);
        let second: Admitted = serde_json::from_value(second.unwrap()).unwrap();
        assert_eq!(second.plan_version, 1);
        // One request, counted once: the first admission was given back, its row
        // dropped, and only the second reservation is open.
        assert_eq!(s.ledger.total, 1);
        assert_eq!(s.reservations.len(), 1);
        assert!(fx.log_updates.contains(&LogUpdate::Discard {
            reservation: first.reservation
        }));
        assert_eq!(second.limit.map(|l| l.remaining), Some(2));
        let _ = apply(&mut s, commit(second.reservation, 200), &cfg, NOW + 2);
        assert_eq!(s.record.as_ref().unwrap().usage_count, 1);
    }

    fn batch(items: Vec<CheckItem>) -> KeyCommand {
        KeyCommand::Batch {
            items: items.into_iter().map(KeyCommand::Check).collect(),
        }
    }

    fn answers(r: Result<Value, ApiError>) -> Vec<Result<Value, ApiError>> {
        let list: Vec<Answer> = serde_json::from_value(r.unwrap()).unwrap();
        list.into_iter().map(Into::into).collect()
    }

    fn limited(per_second: Option<u64>, per_minute: Option<u64>) -> KeyState {
        let mut r = rec();
        r.rate_limits = RateLimits {
            per_second,
            per_minute,
            ..Default::default()
        };
        state(r)
    }

    #[test]
    fn a_batch_straddling_a_limit_admits_exactly_up_to_it_in_arrival_order() {
        let mut s = limited(None, Some(3));
        let cmd = batch((0..5).map(|_| item("h1", 1)).collect());
        let (fx, r) = apply(&mut s, cmd, &config(&[]), NOW);
        let got = answers(r);
        assert!(got[..3].iter().all(Result::is_ok));
        assert!(got[3..]
            .iter()
            .all(|a| matches!(a, Err(ApiError::RateLimited { .. }))));
        assert_eq!(s.ledger.total, 3);
        assert_eq!(s.reservations.len(), 3);
        // Persisted once: one row per bucket, three reservations, the two refusals logged,
        // the record rewritten once for the one key.rate_limited alert.
        assert_eq!(fx.record, Change::Put);
        let alerts = fx
            .notices
            .iter()
            .filter(|n| matches!(n, Notice::Webhook { event, .. } if event == "key.rate_limited"));
        assert_eq!(alerts.count(), 1);
        assert_eq!(fx.buckets.len(), KEY_LEVELS.len());
        assert_eq!(fx.reserve.len(), 3);
        assert_eq!(fx.logs.iter().filter(|l| l.status == 429).count(), 2);
        assert_eq!(
            fx.logs
                .iter()
                .filter(|l| l.state == LogState::Pending)
                .count(),
            3
        );
    }

    #[test]
    fn a_batch_behind_a_revoke_is_refused_whole() {
        let mut s = state(rec());
        let cfg = config(&[]);
        let _ = apply(&mut s, KeyCommand::Revoke, &cfg, NOW);
        let (_, r) = apply(&mut s, batch(vec![item("h1", 1); 4]), &cfg, NOW + 1);
        assert_eq!(answers(r), vec![Err(ApiError::KeyRevoked); 4]);
        assert_eq!((s.ledger.total, s.record.unwrap().usage_count), (0, 0));
    }

    #[test]
    fn each_request_of_a_batch_is_all_or_nothing() {
        // 4/s and 100/min: costs 3, 2, 1. The 2 does not fit the second and takes
        // nothing from the minute either; the 1 after it fits.
        let mut s = limited(Some(4), Some(100));
        let cmd = batch(vec![item("h1", 3), item("h1", 2), item("h1", 1)]);
        let got = answers(apply(&mut s, cmd, &config(&[]), NOW).1);
        assert!(got[0].is_ok() && got[2].is_ok());
        assert!(matches!(got[1], Err(ApiError::RateLimited { .. })));
        assert_eq!(s.ledger.total, 4);
        let third: Admitted = serde_json::from_value(got[2].clone().unwrap()).unwrap();
        assert_eq!(
            third.limit.map(|l| (l.name, l.remaining)),
            Some(("per_second".into(), 0))
        );
        let minute = admission::key_limit_states(
            &s.ledger,
            &s.record.as_ref().unwrap().rate_limits,
            &Quotas::default(),
            NOW,
        );
        let per_minute = minute.iter().find(|l| l.name == "per_minute").unwrap();
        assert_eq!(per_minute.remaining, 96);
    }

    #[test]
    fn refunds_of_a_partly_refused_batch_give_back_exactly_the_admitted() {
        let mut s = limited(None, Some(2));
        let cfg = config(&[]);
        let got = answers(apply(&mut s, batch(vec![item("h1", 1); 3]), &cfg, NOW).1);
        let admitted: Vec<Admitted> = got
            .iter()
            .filter_map(|a| a.clone().ok())
            .map(|v| serde_json::from_value(v).unwrap())
            .collect();
        assert_eq!(admitted.len(), 2);
        // The account refused both: each is released once, by its reservation.
        for a in &admitted {
            let _ = apply(&mut s, refused(a.reservation), &cfg, NOW + 1);
            let _ = apply(&mut s, refused(a.reservation), &cfg, NOW + 1);
        }
        assert_eq!(
            (s.ledger.total, s.record.as_ref().unwrap().usage_count),
            (0, 0)
        );
        let again = answers(apply(&mut s, batch(vec![item("h1", 1); 3]), &cfg, NOW + 2).1);
        assert_eq!(again.iter().filter(|a| a.is_ok()).count(), 2);
    }

    #[test]
    fn settle_refunds_exactly_what_check_took() {
        let mut r = rec();
        r.quotas = Quotas {
            total: Some(1),
            ..Default::default()
        };
        let mut s = state(r);
        let cfg = config(&[]);
        let admitted: Admitted =
            serde_json::from_value(apply(&mut s, check_cmd("h1"), &cfg, NOW).1.unwrap()).unwrap();
        assert!(matches!(
            apply(&mut s, check_cmd("h1"), &cfg, NOW + 1).1,
            Err(ApiError::QuotaExceeded { .. })
        ));
        let _ = apply(&mut s, refused(admitted.reservation), &cfg, NOW + 2);
        assert_eq!(s.record.as_ref().unwrap().usage_count, 0);
        let day = s.usage.series(NOW + 2, Resolution::Day);
        assert_eq!(
            day.iter().map(|p| p.requests).sum::<u64>(),
            0,
            "usage refunded too"
        );
        assert!(apply(&mut s, check_cmd("h1"), &cfg, NOW + 3).1.is_ok());
    }

    #[test]
    fn breaker_trips_notifies_and_resumes_on_wake() {
        let cfg = config(&[
            ("BREAKER_WINDOW_SECONDS", "2"),
            ("BREAKER_COOLDOWN_SECONDS", "3"),
            ("BREAKER_FLOOR", "3"),
            ("BREAKER_HISTORY_SECONDS", "60"),
        ]);
        let mut s = state(rec());
        for i in 0..3 {
            assert!(apply(&mut s, check_cmd("h1"), &cfg, NOW + i).1.is_ok());
        }
        let (fx, res) = apply(&mut s, check_cmd("h1"), &cfg, NOW + 10);
        assert_eq!(res, Err(ApiError::KeySuspended { retry_after: 3 }));
        assert_eq!(fx.alarm_at, Some(NOW + 3_010));
        assert_eq!(fx.notices.len(), 2);
        assert!(
            matches!(&fx.notices[1], Notice::Webhook { event, data, .. } if event == "key.suspended" && data["key_id"] == "key_1")
        );
        assert_eq!(
            s.record.as_ref().unwrap().effective_status(NOW + 11),
            "suspended"
        );
        assert_eq!(
            apply(&mut s, check_cmd("h1"), &cfg, NOW + 3_000).1,
            Err(ApiError::KeySuspended { retry_after: 1 })
        );
        // Too early: the alarm is set again. On time: resumed, and said so.
        assert_eq!(
            apply(&mut s, KeyCommand::Wake, &cfg, NOW + 100).0.alarm_at,
            Some(NOW + 3_010)
        );
        let (fx, _) = apply(&mut s, KeyCommand::Wake, &cfg, NOW + 3_010);
        assert!(matches!(&fx.notices[0], Notice::Audit { event } if event.action == "key.resumed"));
        assert_eq!(s.record.as_ref().unwrap().suspended_until, None);
        assert!(apply(&mut s, check_cmd("h1"), &cfg, NOW + 5_100).1.is_ok());
    }

    #[test]
    fn a_leak_revokes_deactivates_or_only_announces() {
        let leak = |action| KeyCommand::Leak {
            hash: "h1".into(),
            action,
            source: Some("pastebin".into()),
            url: None,
        };
        for (action, status, applied) in [
            (LeakAction::Revoke, AdminStatus::Revoked, "revoked"),
            (LeakAction::Deactivate, AdminStatus::Inactive, "deactivated"),
            (LeakAction::Notify, AdminStatus::Active, "notified"),
        ] {
            let mut s = state(rec());
            let (fx, res) = apply(&mut s, leak(action), &config(&[]), NOW);
            let res = res.unwrap();
            assert_eq!(
                (res["found"].as_bool(), res["action"].as_str()),
                (Some(true), Some(applied))
            );
            assert_eq!(s.record.as_ref().unwrap().status, status);
            let Some(Notice::Webhook { event, data, .. }) = fx.notices.first() else {
                panic!("no webhook");
            };
            assert_eq!(
                (event.as_str(), data["prefix"].as_str()),
                ("key.leaked", Some("kw_live_aaaaaa"))
            );
            assert!(!data.to_string().contains("h1"), "never the hash or secret");
        }
        // A secret the key no longer takes is no live key: nothing happens.
        let mut s = state(rec());
        let _ = apply(&mut s, rotate_to("h2"), &config(&[]), NOW);
        let (fx, res) = apply(&mut s, leak(LeakAction::Revoke), &config(&[]), NOW);
        assert_eq!(res.unwrap(), json!({ "found": false }));
        assert!(fx.notices.is_empty() && fx.record == Change::None);
        assert_eq!(s.record.as_ref().unwrap().status, AdminStatus::Active);
    }

    #[test]
    fn copies_are_queued_with_or_without_a_record() {
        let cfg = config(&[]);
        let notices = vec![Notice::KvRemove { hash: "h0".into() }];
        for record in [Some(rec()), None] {
            let mut s = KeyState {
                record,
                ..KeyState::empty()
            };
            let (fx, res) = apply(
                &mut s,
                KeyCommand::Enqueue {
                    notices: notices.clone(),
                },
                &cfg,
                NOW,
            );
            assert_eq!(res, Ok(Value::Null));
            assert_eq!((fx.record, fx.notices), (Change::None, notices.clone()));
        }
    }

    #[test]
    fn management_changes_bump_the_revision_and_uses_do_not() {
        let cfg = config(&[]);
        let mut s = state(rec());
        let r0 = s.record.as_ref().unwrap().revision;
        let _ = apply(&mut s, check_cmd("h1"), &cfg, NOW);
        assert_eq!(s.record.as_ref().unwrap().revision, r0);
        let _ = apply(&mut s, KeyCommand::Deactivate, &cfg, NOW);
        let _ = apply(&mut s, rotate_to("h2"), &cfg, NOW);
        assert_eq!(s.record.as_ref().unwrap().revision, r0 + 2);
    }

    #[test]
    fn locate_answers_for_live_secrets_only_and_stores_nothing() {
        let cfg = config(&[]);
        let locate = |h: &str| KeyCommand::Locate { hash: h.into() };
        // Nothing was ever created here (a made-up key's locator): unknown.
        let (fx, r) = apply(&mut KeyState::empty(), locate("h1"), &cfg, NOW);
        assert!(fx.is_empty());
        assert_eq!(r, Err(ApiError::InvalidKey));
        let mut s = state(rec());
        let (fx, r) = apply(&mut s, locate("h1"), &cfg, NOW);
        assert!(fx.is_empty(), "a read");
        let found: HashEntry = serde_json::from_value(r.unwrap()).unwrap();
        assert_eq!(
            (found.id.as_str(), found.account.as_str()),
            ("key_1", "acme")
        );
        assert_eq!(
            apply(&mut s, locate("h9"), &cfg, NOW).1,
            Err(ApiError::InvalidKey)
        );
        // Rotated with a grace period: both secrets lead here until it ends.
        let rotate = KeyCommand::Rotate {
            hash: "h2".into(),
            prefix: "p".into(),
            grace_ms: 1_000,
        };
        let _ = apply(&mut s, rotate, &cfg, NOW);
        assert!(apply(&mut s, locate("h2"), &cfg, NOW + 1).1.is_ok());
        assert!(apply(&mut s, locate("h1"), &cfg, NOW + 1).1.is_ok());
        assert_eq!(
            apply(&mut s, locate("h1"), &cfg, NOW + 1_001).1,
            Err(ApiError::InvalidKey)
        );
        // Revoked: still located, so the key's own row (4) answers, not row 3.
        let _ = apply(&mut s, KeyCommand::Revoke, &cfg, NOW + 2_000);
        assert!(apply(&mut s, locate("h2"), &cfg, NOW + 2_001).1.is_ok());
    }

    #[test]
    fn lifecycle_commands_and_delete() {
        let cfg = config(&[]);
        let mut s = state(rec());
        let _ = apply(&mut s, KeyCommand::Revoke, &cfg, NOW);
        assert_eq!(s.record.as_ref().unwrap().status, AdminStatus::Revoked);
        let (fx, res) = apply(&mut s, KeyCommand::Activate, &cfg, NOW);
        assert_eq!(fx.record, Change::None);
        assert!(matches!(res, Err(ApiError::Conflict { .. })));
        let mut s = state(rec());
        let (_, res) = apply(&mut s, rotate_to("h2"), &cfg, NOW);
        assert_eq!(res.unwrap()["old_hash"], "h1");
        assert_eq!(
            apply(&mut s, KeyCommand::Delete, &cfg, NOW).0.record,
            Change::Erase
        );
        assert!(s.record.is_none());
        let mut s = state(rec());
        assert!(use_key(&mut s, &cfg, NOW).is_ok());
        assert!(matches!(
            apply(&mut s, KeyCommand::Delete, &cfg, NOW).1,
            Err(ApiError::Conflict { .. })
        ));
    }

    // Issue 11: the reservation ledger.

    fn admit(s: &mut KeyState, cfg: &Config, now: i64) -> Result<Admitted, ApiError> {
        apply(s, check_cmd("h1"), cfg, now)
            .1
            .map(|v| serde_json::from_value(v).unwrap())
    }

    #[test]
    fn reservations_count_against_every_limit_before_any_commit() {
        let mut r = rec();
        r.rate_limits = RateLimits {
            per_minute: Some(2),
            ..Default::default()
        };
        r.quotas = Quotas {
            daily: Some(3),
            ..Default::default()
        };
        let mut s = state(r);
        let cfg = config(&[]);
        let a = admit(&mut s, &cfg, NOW).unwrap();
        let b = admit(&mut s, &cfg, NOW + 1).unwrap();
        // Two in flight, none answered yet: the third waits for the minute.
        assert!(matches!(
            admit(&mut s, &cfg, NOW + 2),
            Err(ApiError::RateLimited { .. })
        ));
        assert_eq!(s.record.as_ref().unwrap().usage_count, 0);
        // One committed, one released (a later row refused it): exactly one use,
        // and the released credit is free again at once.
        let _ = apply(&mut s, commit(a.reservation, 200), &cfg, NOW + 3);
        let _ = apply(&mut s, refused(b.reservation), &cfg, NOW + 3);
        assert_eq!(s.record.as_ref().unwrap().usage_count, 1);
        assert_eq!(s.ledger.count(NOW + 3, 60_000), 1);
        assert!(admit(&mut s, &cfg, NOW + 4).is_ok());
        // Settling the same reservations again changes nothing.
        let _ = apply(&mut s, commit(a.reservation, 200), &cfg, NOW + 5);
        let _ = apply(&mut s, refused(b.reservation), &cfg, NOW + 5);
        assert_eq!(s.record.as_ref().unwrap().usage_count, 1);
        assert_eq!(s.ledger.total, 2);
    }

    #[test]
    fn charge_on_success_gives_back_what_the_origin_failed() {
        let cfg = config(&[("CHARGE_ON", "success")]);
        let mut s = state(rec());
        for (status, charged) in [
            (200, true),
            (302, true),
            (404, false),
            (500, false),
            (503, false),
        ] {
            let a = admit(&mut s, &cfg, NOW).unwrap();
            let before = s.ledger.total;
            let (fx, _) = apply(&mut s, commit(a.reservation, status), &cfg, NOW + 1);
            assert_eq!(s.ledger.total == before, charged, "{status}");
            let credits = match fx.log_updates.as_slice() {
                [LogUpdate::Settle {
                    credits,
                    status: st,
                    ..
                }] if *st == status => *credits,
                other => panic!("{other:?}"),
            };
            assert_eq!(credits, u64::from(charged), "{status}");
        }
        assert_eq!(s.record.as_ref().unwrap().usage_count, 2);
        // A failed fetch (no answer from the origin) is free in either mode.
        let forwarded = config(&[]);
        let a = admit(&mut s, &forwarded, NOW + 2).unwrap();
        let _ = apply(
            &mut s,
            settlement(a.reservation, None, None),
            &forwarded,
            NOW + 3,
        );
        assert_eq!(s.record.as_ref().unwrap().usage_count, 2);
        let a = admit(&mut s, &forwarded, NOW + 4).unwrap();
        let _ = apply(&mut s, commit(a.reservation, 500), &forwarded, NOW + 5);
        assert_eq!(
            s.record.as_ref().unwrap().usage_count,
            3,
            "forwarded charges a 500"
        );
    }

    #[test]
    fn an_unsettled_reservation_is_released_by_the_alarm_once() {
        let cfg = config(&[("RESERVATION_TIMEOUT_SECONDS", "30")]);
        let mut r = rec();
        r.quotas = Quotas {
            total: Some(1),
            ..Default::default()
        };
        let mut s = state(r);
        let a = admit(&mut s, &cfg, NOW).unwrap();
        assert!(
            admit(&mut s, &cfg, NOW + 1).is_err(),
            "the reservation holds the quota"
        );
        assert_eq!(s.reservations.next_due(), Some(NOW + 30_000));
        let (fx, _) = apply(&mut s, KeyCommand::Wake, &cfg, NOW + 29_999);
        assert!(fx.release.is_empty());
        let (fx, _) = apply(&mut s, KeyCommand::Wake, &cfg, NOW + 30_000);
        assert_eq!(fx.release, vec![a.reservation]);
        assert!(matches!(
            fx.log_updates.as_slice(),
            [LogUpdate::Settle {
                state: LogState::Abandoned,
                credits: 0,
                ..
            }]
        ));
        // The default plan has no account-wide limits: nothing to give back there.
        assert!(!fx
            .notices
            .iter()
            .any(|n| matches!(n, Notice::AccountRefund { .. })));
        assert_eq!(
            (s.ledger.total, s.record.as_ref().unwrap().usage_count),
            (0, 0)
        );
        // A settlement arriving after the release is too late: nothing counted.
        let _ = apply(&mut s, commit(a.reservation, 200), &cfg, NOW + 30_001);
        assert_eq!(s.record.as_ref().unwrap().usage_count, 0);
        assert!(admit(&mut s, &cfg, NOW + 30_002).is_ok());
    }

    #[test]
    fn an_abandoned_reservation_gives_the_account_its_credits_back() {
        let plans = r#"{"team":{"api_access":true,"account_limits":{"per_minute":10}}}"#;
        let cfg = config(&[("PLANS", plans), ("DEFAULT_PLAN", "team")]);
        let mut s = state(rec());
        let a = admit(&mut s, &cfg, NOW).unwrap();
        let (fx, _) = apply(&mut s, KeyCommand::Wake, &cfg, NOW + 30_000);
        let refund = fx.notices.iter().find_map(|n| match n {
            Notice::AccountRefund { account, at, cost } => Some((account.clone(), *at, *cost)),
            _ => None,
        });
        assert_eq!(refund, Some(("acme".to_string(), a.at, 1)));
    }

    #[test]
    fn a_release_after_the_window_moved_on_gives_back_nothing() {
        let mut r = rec();
        r.rate_limits = RateLimits {
            per_second: Some(1),
            ..Default::default()
        };
        let mut s = state(r);
        let cfg = config(&[("RESERVATION_TIMEOUT_SECONDS", "3600")]);
        let a = admit(&mut s, &cfg, NOW).unwrap();
        // Three days on, the ledger has pruned the buckets that held it.
        let later = NOW + 3 * 86_400_000;
        let b = admit(&mut s, &cfg, later).unwrap();
        let (fx, _) = apply(&mut s, refused(a.reservation), &cfg, later);
        // Given back only where a level still keeps it (the 7- and 30-day ones);
        // the pruned levels get no bucket recreated in the past.
        assert!(
            fx.buckets.iter().all(|b| b.level >= 3 && b.count == 0),
            "{:?}",
            fx.buckets
        );
        let (fx, _) = apply(&mut s, refused(a.reservation), &cfg, later);
        assert!(
            fx.buckets.is_empty() && fx.log_updates.is_empty(),
            "not twice"
        );
        // b's credit is still there: the per-second limit still refuses.
        assert!(matches!(
            admit(&mut s, &cfg, later + 1),
            Err(ApiError::RateLimited { .. })
        ));
        let _ = apply(&mut s, commit(b.reservation, 200), &cfg, later + 2);
        assert_eq!(s.record.as_ref().unwrap().usage_count, 1);
    }
}
