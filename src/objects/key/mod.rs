//! What a key's Durable Object does with each command, as a pure function of its
//! state (record and ledger), the command, the configuration and the time. The
//! object loads, calls `apply`, performs the returned effects and replies.

mod command;
mod effects;
mod lending;
mod management;
mod notices;
pub mod placement;
mod request_path;
mod shared;
mod spending;
#[cfg(test)]
mod tests;

pub use command::{
    Admitted, CheckItem, KeyCommand, KeyRead, Leaked, Rotated, UsagePoint, UsageSeries,
};
pub use effects::{Change, Effects, Notice};
pub use lending::{LeaseGrant, LeaseReport};
pub use notices::next_alert_at;
pub use spending::CreditsChanged;

use management::{leak, record_result};
use notices::{announce, event, wake};
use request_path::{abandon, check_item, settle, take_plan};

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
use crate::limits::budget_lease::LeaseBook;
use crate::limits::ledger::{Ledger, StoredBucket, KEY_LEVELS};
use crate::limits::plans::PlanCopy;
use crate::limits::reservation::{Reservation, Reservations, Settlement};
use crate::limits::usage::{Resolution, Tally, Usage};
use crate::notify::alerts::{self, Alert};
use crate::notify::audit::AuditEvent;
use crate::notify::logs::{LogEntry, LogQuery, LogState, LogUpdate, RequestFacts, Via};
use crate::notify::webhook::key_data;
use crate::objects::batch::Answer;
use crate::request::regions::Region;
use crate::time_fmt::to_rfc3339;
use placement::Placement;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub struct KeyState {
    pub record: Option<KeyRecord>,
    pub ledger: Ledger,
    pub usage: Usage,
    pub reservations: Reservations,
    /// Budget leases outstanding (`limits::budget_lease`).
    pub book: LeaseBook,
    /// Where the object is and where its admissions come from (`placement`).
    pub placement: Placement,
    /// Answers of credit changes, by `Idempotency-Key` (`admin::replays`).
    pub replays: crate::admin::replays::Replays,
    /// Where its requests came from this hour (`key::sharing`).
    pub sharing: crate::key::sharing::Sharing,
}

impl KeyState {
    /// A key's object before anything was stored in it.
    pub fn empty() -> Self {
        KeyState {
            record: None,
            ledger: Ledger::new(&KEY_LEVELS),
            usage: Usage::default(),
            reservations: Reservations::default(),
            book: LeaseBook::default(),
            placement: Placement::default(),
            replays: Default::default(),
            sharing: Default::default(),
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
                KeyCommand::Check(_)
                | KeyCommand::Carve(_)
                | KeyCommand::Settle { .. }
                | KeyCommand::Lease { .. }
                | KeyCommand::Report(_) => apply(state, item, cfg, now),
                _ => (
                    Effects::none(),
                    Err(ApiError::internal(
                        "a batch carries checks, settlements, leases and reports only",
                    )),
                ),
            };
            fx = fx.then(one);
            answers.push(Answer::from(reply));
        }
        return (fx.compact(), to_value(&answers));
    }
    state.usage.set_hour(cfg.usage_hour_ms);
    // Leases past their end without a report count at their end from now on.
    let lapsed = lending::lapse(&mut state.ledger, &mut state.book, now);
    let (fx, reply) = apply_one(state, cmd, cfg, now);
    (lapsed.then(fx).compact(), reply)
}

fn apply_one(state: &mut KeyState, cmd: KeyCommand, cfg: &Config, now: i64) -> Outcome {
    let KeyState {
        record,
        ledger,
        usage,
        reservations,
        book,
        placement,
        replays,
        sharing,
    } = state;
    let (rec, cmd) = match (record.as_mut(), cmd) {
        (_, KeyCommand::Enqueue { notices }) => {
            let fx = Effects {
                notices,
                ..Effects::none()
            };
            return (fx, Ok(Value::Null));
        }
        (None, KeyCommand::Create { record: new, home }) => {
            let reply = to_value(&new);
            *record = Some(*new);
            *placement = Placement::at(placement::Home {
                region: home,
                ..Default::default()
            });
            let fx = Effects {
                home: true,
                ..Effects::put()
            };
            return (fx, reply);
        }
        // An index entry without a record (a deleted key) is an unknown key.
        (None, KeyCommand::Check { .. } | KeyCommand::Carve(_) | KeyCommand::Locate { .. }) => {
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
            let read = KeyRead {
                record: rec.clone(),
                limits: states,
                sharing: Some(sharing.clone()),
            };
            (Effects::none(), to_value(&read))
        }
        KeyCommand::Check(item) => {
            let (from, first) = (item.region, rec.last_used_at.is_none());
            let seen = (item.facts.ip.clone(), item.facts.country.clone());
            let (mut fx, mut reply) = check_item(rec, ledger, reservations, book, cfg, item, now);
            if reply.is_ok() {
                let (ip, country) = (seen.0.as_deref(), seen.1.as_deref());
                shared::see(rec, sharing, cfg, ip, country, now, &mut fx);
            }
            if let Ok(Value::Object(admitted)) = &mut reply {
                if let Some(to) = placement.admitted(from, first, cfg.key_move_every_ms, now) {
                    admitted.insert("move_to".into(), json!(to));
                }
            }
            (fx, reply)
        }
        KeyCommand::Carve(mut item) => {
            item.request.hash = rec.hash.clone();
            item.request.grace = false;
            item.want_lease = 0;
            item.hot = false;
            check_item(rec, ledger, reservations, book, cfg, item, now)
        }
        KeyCommand::Arrived { name, region } => {
            let from = placement.home.region;
            placement.arrived(region, now);
            (arrived(rec, cfg, &name, from, region, now), Ok(Value::Null))
        }
        KeyCommand::Lease {
            request,
            want,
            plan,
        } => {
            let mut fx = plan.map_or_else(Effects::none, |copy| take_plan(rec, copy));
            let (lent, grant) =
                lending::lend(rec, ledger, reservations, book, cfg, &request, want, now);
            fx = fx.then(lent);
            (fx, to_value(&grant))
        }
        KeyCommand::Report(report) => {
            // Requests a lease admitted count for sharing detection too (by their
            // address: an isolate's report carries no country).
            let admitted: Vec<(i64, Option<String>)> = report
                .rows
                .iter()
                .filter(|r| r.code.is_none())
                .map(|r| (r.at, r.ip.clone()))
                .collect();
            let mut fx = lending::take_report(rec, ledger, usage, book, report, now);
            for (at, ip) in admitted {
                shared::see(rec, sharing, cfg, ip.as_deref(), None, at.min(now), &mut fx);
            }
            (fx, Ok(Value::Null))
        }
        KeyCommand::Locate { hash } => {
            let found = rec.accepts_hash(&hash, now).then(|| HashEntry {
                id: rec.id.clone(),
                parents: rec.parents.clone(),
                account: rec.account.clone(),
                written_at: None,
                object: None,
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
        KeyCommand::Credits {
            change,
            idempotency_key,
        } => spending::change(rec, replays, cfg, change, idempotency_key, now),
        KeyCommand::Rotate {
            hash,
            prefix,
            grace_ms,
        } => {
            let mut old_hash = String::new();
            let (fx, reply) = record_result(rec, |r| {
                old_hash = lifecycle::rotate(r, hash, prefix, grace_ms, now)?;
                Ok(())
            });
            let reply = reply.and_then(|_| {
                to_value(&Rotated {
                    old_hash,
                    record: rec.clone(),
                })
            });
            (fx, reply)
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
        KeyCommand::Delete => {
            match lifecycle::check_deletable(rec, reservations.len() + book.len()) {
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
            }
        }
        KeyCommand::UsageBetween {
            from,
            to,
            resolution,
        } => {
            let points = usage.between(from, to, resolution);
            (
                Effects::none(),
                to_value(&usage_series(resolution, &points)),
            )
        }
        KeyCommand::Usage { resolution } => {
            let points = usage.series(now, resolution);
            (
                Effects::none(),
                to_value(&usage_series(resolution, &points)),
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
        KeyCommand::MoveIn { .. }
        | KeyCommand::Export { .. }
        | KeyCommand::Release { .. }
        | KeyCommand::Relocated { .. } => (
            Effects::none(),
            Err(ApiError::internal("a move is performed by the edge object")),
        ),
        KeyCommand::Batch { .. } => (
            Effects::none(),
            Err(ApiError::internal("a batch inside a batch")),
        ),
    }
}

/// The key arrived in the object `name` by a move: its home is written, the move
/// audited, and the KV index entries of its live secrets lead here.
fn arrived(
    rec: &KeyRecord,
    cfg: &Config,
    name: &str,
    from: Option<Region>,
    region: Option<Region>,
    now: i64,
) -> Effects {
    let details = json!({ "from": from, "to": region, "object": name });
    let mut notices = vec![Notice::Audit {
        event: AuditEvent {
            actor: "keyward".into(),
            ..event(rec, cfg, now, "key.moved", details)
        },
    }];
    let live = std::iter::once((rec.hash.clone(), None)).chain(
        rec.previous_hash
            .clone()
            .zip(rec.previous_hash_until.filter(|until| *until > now))
            .map(|(h, until)| (h, Some((until / 1000) as u64 + 1))),
    );
    for (hash, expires_at) in live {
        notices.push(Notice::KvPut {
            hash,
            entry: HashEntry {
                id: rec.id.clone(),
                parents: rec.parents.clone(),
                account: rec.account.clone(),
                written_at: None,
                object: Some(name.to_string()),
            },
            expires_at,
        });
    }
    Effects {
        home: true,
        notices,
        ..Effects::none()
    }
}

fn usage_series(resolution: Resolution, points: &[crate::limits::usage::Point]) -> UsageSeries {
    let items = points
        .iter()
        .map(|p| UsagePoint {
            start: to_rfc3339(p.start),
            requests: p.requests,
            credits: p.credits,
        })
        .collect();
    UsageSeries { resolution, items }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}
