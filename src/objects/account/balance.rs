//! An account's credits (`limits::credits`), shared by all its keys: spent with
//! each admission of row 15's call, given back with its refund, changed by the
//! bootstrap admin (`PUT /accounts/{id}` sets it, `POST /accounts/{id}/credits`
//! changes it, once per `Idempotency-Key`), audited in the account's trail.

use super::*;
use crate::limits::credits::{self, Credits};
use crate::time_fmt::to_rfc3339;

/// What the routes answer: the account's id and its balance.
pub fn answer(account: &str, c: Option<&Credits>, now: i64) -> Value {
    json!({ "id": account, "credits": crate::key::lifecycle::credits_view(c, now) })
}

/// A refill due at `now`: done, and audited.
pub(super) fn refill(state: &mut AccountState, now: i64, fx: &mut Effects) {
    let Some(c) = state.meta.credits.as_mut() else {
        return;
    };
    if c.refill(now) {
        fx.meta = true;
        let event = AuditEvent {
            at: now,
            actor: "keyward".into(),
            action: "account.credits_refilled".into(),
            key_id: None,
            account: state.meta.account.clone().unwrap_or_default(),
            details: c.details(),
            scope: None,
        };
        fx.index.push(IndexWrite::Record { event });
    }
}

/// Row 16 for an admission the limits passed: spends `cost` or refuses; the
/// `credits.low` data when a mark was crossed.
pub(super) fn spend(
    state: &mut AccountState,
    cfg: &Config,
    cost: u64,
    now: i64,
    fx: &mut Effects,
) -> Result<Option<Value>, ApiError> {
    let Some(c) = state.meta.credits.as_mut() else {
        return Ok(None);
    };
    c.spend(cost, now)?;
    fx.meta = true;
    let crossed = c.crossed(&cfg.alerts.credit_percents);
    Ok(crossed.last().map(|percent| {
        let mut d = c.details();
        d["percent"] = json!(percent);
        d["account"] = json!(state.meta.account);
        d["scope"] = json!("account");
        d
    }))
}

pub(super) fn refund(state: &mut AccountState, at: i64, cost: u64, fx: &mut Effects) {
    if let Some(c) = state.meta.credits.as_mut() {
        c.refund(at, cost);
        fx.meta = true;
    }
}

/// A balance set or changed by the admin.
pub(super) fn change(
    state: &mut AccountState,
    set: Option<Option<Credits>>,
    change: Option<credits::Change>,
    idempotency_key: Option<String>,
    event: AuditEvent,
    now: i64,
    fx: &mut Effects,
) -> Result<Value, ApiError> {
    let account = event.account.clone();
    let request = serde_json::to_string(&(&set, &change)).unwrap_or_default();
    let wait = plan_lease::wait_ms(state.meta.lease_until, now).max(state.meta.book.wait_ms(now));
    if let Some(key) = &idempotency_key {
        if let Some(answer) = state.replays.find(key, &request, now)? {
            let reply = AccountCredits {
                answer,
                replayed: true,
                leases_wait_ms: 0,
            };
            return to_value(&reply);
        }
    }
    let before = state.meta.credits.as_ref().map(|c| c.remaining);
    let after = match (set, change) {
        (Some(new), _) => new,
        (None, Some(change)) => {
            let mut c = match state.meta.credits.clone() {
                Some(c) => c,
                None if change.op == credits::Op::Decrement => {
                    return Err(ApiError::Conflict {
                        reason: "account has no credits to decrement".into(),
                    })
                }
                None => Credits::new(0, None, now),
            };
            c.refill(now);
            c.apply(change, now)?;
            Some(c)
        }
        (None, None) => state.meta.credits.clone(),
    };
    let answer = answer(&account, after.as_ref(), now);
    let mut event = event;
    if let Some(d) = event.details.as_object_mut() {
        d.insert("before".into(), json!(before));
        d.insert("after".into(), json!(after.as_ref().map(|c| c.remaining)));
        d.insert(
            "next_refill_at".into(),
            json!(after
                .as_ref()
                .and_then(Credits::next_refill_at)
                .map(to_rfc3339)),
        );
    }
    state.meta.credits = after;
    fx.meta = true;
    fx.index.push(IndexWrite::Record { event });
    if let Some(key) = idempotency_key {
        state.replays.keep(key, request, answer.clone(), now);
        fx.replays = true;
    }
    to_value(&AccountCredits {
        answer,
        replayed: false,
        leases_wait_ms: wait,
    })
}
