use super::*;
use crate::limits::credits::{Change as CreditChange, Credits, Op};

// Issue 22 §1: a key's credits in its object.

fn with_credits(remaining: u64) -> KeyState {
    let mut r = rec();
    r.credits = Some(Credits::new(remaining, None, NOW - 1000));
    state(r)
}

fn left(s: &KeyState) -> u64 {
    s.record
        .as_ref()
        .unwrap()
        .credits
        .as_ref()
        .unwrap()
        .remaining
}

fn admit(s: &mut KeyState, cfg: &Config, item: CheckItem, now: i64) -> Result<Admitted, ApiError> {
    apply(s, KeyCommand::Check(item), cfg, now)
        .1
        .map(|v| serde_json::from_value(v).unwrap())
}

#[test]
fn admission_spends_and_the_request_that_cannot_pay_is_row_16() {
    let mut s = with_credits(3);
    let cfg = config(&[]);
    let (fx, r) = apply(&mut s, KeyCommand::Check(item("h1", 2)), &cfg, NOW);
    let a: Admitted = serde_json::from_value(r.unwrap()).unwrap();
    assert_eq!(left(&s), 1);
    // The balance is written with the use row, not the whole record.
    assert_eq!(fx.record, Change::Use);
    let (fx, r) = apply(&mut s, KeyCommand::Check(item("h1", 2)), &cfg, NOW + 1);
    assert_eq!(r, Err(ApiError::CreditsExhausted { retry_after: None }));
    assert_eq!(left(&s), 1, "nothing taken");
    assert!(s.reservations.take(a.reservation + 1).is_none());
    assert_eq!(fx.logs[0].code.as_deref(), Some("credits_exhausted"));
    admit(&mut s, &cfg, item("h1", 1), NOW + 2).unwrap();
    assert_eq!(left(&s), 0);
}

#[test]
fn an_earlier_row_refuses_first_and_spends_nothing() {
    let mut r = rec();
    r.credits = Some(Credits::new(0, None, NOW - 1000));
    r.rate_limits.per_minute = Some(1);
    let mut s = state(r);
    let cfg = config(&[]);
    assert!(matches!(
        admit(&mut s, &cfg, item("h1", 1), NOW),
        Err(ApiError::CreditsExhausted { .. })
    ));
    s.record.as_mut().unwrap().credits = Some(Credits::new(5, None, NOW));
    admit(&mut s, &cfg, item("h1", 1), NOW + 1).unwrap();
    assert!(matches!(
        admit(&mut s, &cfg, item("h1", 1), NOW + 2),
        Err(ApiError::RateLimited { .. })
    ));
    assert_eq!(left(&s), 4);
}

#[test]
fn what_is_not_charged_comes_back_and_a_management_call_spends_nothing() {
    let mut s = with_credits(10);
    let cfg = config(&[]);
    let a = admit(&mut s, &cfg, item("h1", 3), NOW).unwrap();
    let _ = apply(&mut s, refused(a.reservation), &cfg, NOW + 1);
    assert_eq!(left(&s), 10);
    let b = admit(&mut s, &cfg, item("h1", 3), NOW + 2).unwrap();
    let _ = apply(&mut s, commit(b.reservation, 200), &cfg, NOW + 3);
    assert_eq!(left(&s), 7);
    // A management call: checked against the limits, not the balance.
    let mut free = item("h1", 1);
    free.free = true;
    let c = admit(&mut s, &cfg, free, NOW + 4).unwrap();
    assert_eq!(left(&s), 7);
    let _ = apply(&mut s, refused(c.reservation), &cfg, NOW + 5);
    assert_eq!(left(&s), 7, "a free call gives nothing back");
    // Abandoned by its isolate: released by the alarm, given back.
    let d = admit(&mut s, &cfg, item("h1", 2), NOW + 6).unwrap();
    assert_eq!(left(&s), 5);
    let late = NOW + 6 + cfg.reservation_timeout_ms + 1;
    let _ = apply(&mut s, KeyCommand::Wake, &cfg, late);
    assert!(s.reservations.take(d.reservation).is_none());
    assert_eq!(left(&s), 7);
}

#[test]
fn a_key_with_credits_is_never_lent_a_slice() {
    let mut s = with_credits(1_000);
    let cfg = config(&[]);
    let mut hot = item("h1", 1);
    hot.want_lease = 64;
    let a = admit(&mut s, &cfg, hot, NOW).unwrap();
    assert!(a.lease.is_none());
    assert!(s.book.is_empty());
}

#[test]
fn a_change_applies_once_per_idempotency_key_and_answers_the_same() {
    let mut s = with_credits(4);
    let cfg = config(&[]);
    let change = |op, amount| KeyCommand::Credits {
        change: CreditChange { op, amount },
        idempotency_key: Some("k-1".into()),
    };
    let (fx, r) = apply(&mut s, change(Op::Increment, 6), &cfg, NOW);
    let first: CreditsChanged = serde_json::from_value(r.unwrap()).unwrap();
    assert_eq!(
        (first.before, first.replayed, left(&s)),
        (Some(4), false, 10)
    );
    assert!(fx.replays && fx.record == Change::Put);
    let (fx, r) = apply(&mut s, change(Op::Increment, 6), &cfg, NOW + 1);
    let again: CreditsChanged = serde_json::from_value(r.unwrap()).unwrap();
    assert_eq!(
        (again.replayed, &again.answer, left(&s)),
        (true, &first.answer, 10)
    );
    assert!(fx.is_empty());
    let (_, r) = apply(&mut s, change(Op::Set, 1), &cfg, NOW + 2);
    assert!(matches!(r, Err(ApiError::Conflict { .. })));
    assert_eq!(left(&s), 10);
}

#[test]
fn credits_low_is_announced_once_per_crossing() {
    let mut s = with_credits(4);
    let cfg = config(&[("CREDIT_ALERT_PERCENTS", "50")]);
    let hooks = |fx: &Effects| {
        fx.notices
            .iter()
            .filter(|n| matches!(n, Notice::Webhook { event, .. } if event == "credits.low"))
            .count()
    };
    let (fx, _) = apply(&mut s, KeyCommand::Check(item("h1", 1)), &cfg, NOW);
    assert_eq!(hooks(&fx), 0);
    let (fx, _) = apply(&mut s, KeyCommand::Check(item("h1", 1)), &cfg, NOW + 1);
    assert_eq!(hooks(&fx), 1);
    assert_eq!(fx.record, Change::Put, "what was announced is kept");
    let (fx, _) = apply(&mut s, KeyCommand::Check(item("h1", 1)), &cfg, NOW + 2);
    assert_eq!(hooks(&fx), 0);
}
