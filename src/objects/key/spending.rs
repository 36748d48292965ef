//! A key's credits inside its object (`limits::credits`): refilled when a refill
//! fell due, spent at admission with the reservation, given back with an
//! unsettled or uncharged request, changed by an admin (`POST /keys/{id}/credits`,
//! once per `Idempotency-Key`), and announced when low (`credits.low`).

use super::*;
use crate::admin::replays::Replays;
use crate::limits::credits::{self, Credits};

/// `Credits`' answer: the route's body (replayed as it was for the same
/// `Idempotency-Key`), the balance before, and the record after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditsChanged {
    pub answer: Value,
    pub replayed: bool,
    pub before: Option<u64>,
    pub record: KeyRecord,
}

/// What the route answers: the key's id and its balance.
pub fn answer(id: &str, c: &Credits, now: i64) -> Value {
    json!({ "id": id, "credits": crate::key::lifecycle::credits_view(Some(c), now) })
}

/// A refill due at `now`, done and audited; the balance is in the use row.
pub(super) fn refill(rec: &mut KeyRecord, cfg: &Config, now: i64, fx: &mut Effects) {
    let Some(c) = rec.credits.as_mut() else {
        return;
    };
    if !c.refill(now) {
        return;
    }
    let details = c.details();
    let mut audit = event(rec, cfg, now, "key.credits_refilled", details);
    audit.actor = "keyward".into();
    fx.notices.push(Notice::Audit { event: audit });
    used(fx);
}

/// Row 16: whether the balance pays `cost` (nothing is taken).
pub(super) fn covers(rec: &KeyRecord, cost: u64, now: i64) -> Result<(), ApiError> {
    match &rec.credits {
        Some(c) if !c.covers(cost) => Err(c.exhausted(now)),
        _ => Ok(()),
    }
}

/// Takes an admitted request's `cost` from the balance, announcing a crossing.
pub(super) fn spend(rec: &mut KeyRecord, cfg: &Config, cost: u64, now: i64, fx: &mut Effects) {
    let Some(c) = rec.credits.as_mut() else {
        return;
    };
    if c.spend(cost, now).is_err() {
        return; // `covers` said it could: not reached
    }
    let crossed = c.crossed(&cfg.alerts.credit_percents);
    let details = c.details();
    used(fx);
    if !crossed.is_empty() {
        fx.record = Change::Put;
    }
    announce_low(fx, rec, cfg, now, &crossed, &details);
}

/// `credits.low` for each mark the balance fell to (`details`, with its percent).
fn announce_low(
    fx: &mut Effects,
    rec: &KeyRecord,
    cfg: &Config,
    now: i64,
    crossed: &[u32],
    details: &Value,
) {
    for percent in crossed {
        let mut d = details.clone();
        d["percent"] = json!(percent);
        let alert = alerts::Alert {
            event: "credits.low",
            details: d,
        };
        announce(fx, rec, cfg, now, alert);
    }
}

/// Gives back a request's credits (taken at `at`) that it will not be charged.
pub(super) fn refund(rec: &mut KeyRecord, at: i64, cost: u64, fx: &mut Effects) {
    if let Some(c) = rec.credits.as_mut() {
        c.refund(at, cost);
        used(fx);
    }
}

/// The balance lives in the use row: written with it.
fn used(fx: &mut Effects) {
    if fx.record == Change::None {
        fx.record = Change::Use;
    }
}

/// An admin's change of the balance. A key without one starts from 0 (so
/// `increment` and `set` give it one); `decrement` of none is refused.
pub(super) fn change(
    rec: &mut KeyRecord,
    replays: &mut Replays,
    cfg: &Config,
    change: credits::Change,
    idempotency_key: Option<String>,
    now: i64,
) -> Outcome {
    let request = serde_json::to_string(&change).unwrap_or_default();
    let before = rec.credits.as_ref().map(|c| c.remaining);
    if let Some(key) = &idempotency_key {
        match replays.find(key, &request, now) {
            Ok(Some(answer)) => {
                let reply = CreditsChanged {
                    answer,
                    replayed: true,
                    before,
                    record: rec.clone(),
                };
                return (Effects::none(), to_value(&reply));
            }
            Ok(None) => {}
            Err(e) => return (Effects::none(), Err(e)),
        }
    }
    if rec.status == AdminStatus::Revoked {
        let e = ApiError::Conflict {
            reason: "key is revoked: its credits cannot be changed".into(),
        };
        return (Effects::none(), Err(e));
    }
    let mut c = match rec.credits.clone() {
        Some(c) => c,
        None if change.op == credits::Op::Decrement => {
            let e = ApiError::Conflict {
                reason: "key has no credits to decrement".into(),
            };
            return (Effects::none(), Err(e));
        }
        None => Credits::new(0, None, now),
    };
    c.refill(now);
    if let Err(e) = c.apply(change, now) {
        return (Effects::none(), Err(e));
    }
    let crossed = c.crossed(&cfg.alerts.credit_percents);
    let details = c.details();
    let answer = answer(&rec.id, &c, now);
    rec.credits = Some(c);
    rec.updated_at = now;
    rec.revision += 1;
    let mut fx = Effects::put();
    announce_low(&mut fx, rec, cfg, now, &crossed, &details);
    if let Some(key) = idempotency_key {
        replays.keep(key, request, answer.clone(), now);
        fx.replays = true;
    }
    let reply = CreditsChanged {
        answer,
        replayed: false,
        before,
        record: rec.clone(),
    };
    (fx, to_value(&reply))
}
