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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: i64 = 1_800_000_000_000;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars: HashMap<&str, &str> = HashMap::from([("ORIGIN_URL", "http://o")]);
        vars.extend(extra.iter().copied());
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
    }

    fn admit(
        s: &mut AccountState,
        cfg: &Config,
        cost: u64,
        free: bool,
        now: i64,
    ) -> Result<AccountAdmitted, ApiError> {
        let cmd = AccountCommand::Admit {
            cost,
            want: 0,
            free,
        };
        match apply(s, cmd, cfg, now, &KeyCount::default()).1 {
            Reply::Now(r) => r.map(|v| serde_json::from_value(v).unwrap()),
            other => panic!("{other:?}"),
        }
    }

    fn with_credits(remaining: u64) -> AccountState {
        let mut s = AccountState::empty();
        s.meta.account = Some("acme".into());
        s.meta.credits = Some(Credits::new(remaining, None, NOW - 1));
        s
    }

    fn left(s: &AccountState) -> u64 {
        s.meta.credits.as_ref().unwrap().remaining
    }

    #[test]
    fn a_balance_is_spent_per_admission_never_leased_and_given_back_with_a_refund() {
        let cfg = config(&[("CREDIT_ALERT_PERCENTS", "50")]);
        let mut s = with_credits(4);
        let a = admit(&mut s, &cfg, 1, false, NOW).unwrap();
        assert_eq!(
            (a.charged, a.lease_until, a.credits_low.is_some()),
            (1, None, false)
        );
        let b = admit(&mut s, &cfg, 1, false, NOW + 1).unwrap();
        assert_eq!(b.credits_low.map(|d| d["percent"].clone()), Some(json!(50)));
        assert_eq!(left(&s), 2);
        assert_eq!(
            admit(&mut s, &cfg, 3, false, NOW + 2).err(),
            Some(ApiError::CreditsExhausted { retry_after: None })
        );
        assert_eq!(left(&s), 2, "a refusal spends nothing");
        // A management call is checked against the limits, not the balance.
        assert_eq!(admit(&mut s, &cfg, 1, true, NOW + 3).unwrap().charged, 0);
        assert_eq!(left(&s), 2);
        let cmd = AccountCommand::Refund { at: a.at, cost: 1 };
        let _ = apply(&mut s, cmd, &cfg, NOW + 4, &KeyCount::default());
        assert_eq!(left(&s), 3);
    }

    #[test]
    fn a_refusal_of_the_balance_gives_the_account_limits_back() {
        let plans = r#"{"team":{"api_access":true,"account_limits":{"per_minute":2}}}"#;
        let cfg = config(&[("PLANS", plans), ("DEFAULT_PLAN", "team")]);
        let mut s = with_credits(0);
        for i in 0..3 {
            assert!(matches!(
                admit(&mut s, &cfg, 1, false, NOW + i),
                Err(ApiError::CreditsExhausted { .. })
            ));
        }
        s.meta.credits = Some(Credits::new(10, None, NOW + 5));
        assert!(admit(&mut s, &cfg, 1, false, NOW + 6).is_ok());
        assert!(
            admit(&mut s, &cfg, 1, false, NOW + 7).is_ok(),
            "the refused ones took nothing"
        );
        assert!(matches!(
            admit(&mut s, &cfg, 1, false, NOW + 8),
            Err(ApiError::PlanRateLimited { .. })
        ));
    }

    #[test]
    fn a_change_is_audited_applied_once_per_idempotency_key_and_waits_for_plan_leases() {
        let cfg = config(&[]);
        let mut s = AccountState::empty();
        s.meta.account = Some("acme".into());
        // A plan lease granted to an isolate (a plain account).
        assert!(admit(&mut s, &cfg, 0, false, NOW)
            .unwrap()
            .lease_until
            .is_some());
        let change = |op, amount| AccountCommand::Credits {
            set: None,
            change: Some(credits::Change { op, amount }),
            idempotency_key: Some("k".into()),
            event: AuditEvent {
                at: NOW,
                actor: "admin_token".into(),
                action: "account.credits_changed".into(),
                key_id: None,
                account: "acme".into(),
                details: json!({}),
                scope: None,
            },
        };
        let (fx, r) = apply(
            &mut s,
            change(credits::Op::Set, 5),
            &cfg,
            NOW + 1,
            &KeyCount::default(),
        );
        let Reply::Now(Ok(v)) = r else { panic!() };
        let first: AccountCredits = serde_json::from_value(v).unwrap();
        assert!(
            first.leases_wait_ms > 0,
            "answers once the plan lease lapsed"
        );
        assert_eq!(first.answer["credits"]["remaining"], 5);
        assert!(
            matches!(fx.index.as_slice(), [IndexWrite::Record { event }] if event.details["after"] == 5)
        );
        let (fx, r) = apply(
            &mut s,
            change(credits::Op::Set, 5),
            &cfg,
            NOW + 2,
            &KeyCount::default(),
        );
        let Reply::Now(Ok(v)) = r else { panic!() };
        let again: AccountCredits = serde_json::from_value(v).unwrap();
        assert!(again.replayed && fx.index.is_empty());
        assert_eq!(again.answer, first.answer);
        // With a balance, no plan lease: every admission asks the account.
        assert!(admit(&mut s, &cfg, 1, false, NOW + 3)
            .unwrap()
            .lease_until
            .is_none());
    }
}
