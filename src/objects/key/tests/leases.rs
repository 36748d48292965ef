use super::*;
use crate::objects::held_lease::Held;

// Issue 21 §3: budget leases, the key's side and the isolate's.

fn limited(per_minute: u64) -> KeyState {
    let mut r = rec();
    r.rate_limits = RateLimits {
        per_minute: Some(per_minute),
        ..Default::default()
    };
    state(r)
}

fn hot_check(want: u64) -> KeyCommand {
    KeyCommand::Check(CheckItem {
        want_lease: want,
        ..item("h1", 1)
    })
}

fn admitted(s: &mut KeyState, cmd: KeyCommand, cfg: &Config, now: i64) -> Admitted {
    serde_json::from_value(apply(s, cmd, cfg, now).1.unwrap()).unwrap()
}

fn facts() -> RequestFacts {
    item("h1", 1).facts
}

fn request() -> AccessRequest {
    item("h1", 1).request
}

#[test]
fn a_hot_check_brings_a_slice_the_ledger_counts_whole() {
    let cfg = config(&[]);
    let mut s = limited(100);
    let a = admitted(&mut s, hot_check(40), &cfg, NOW);
    let g = a.lease.expect("a lease");
    // 99 left after the request itself: at most half of it.
    assert_eq!(g.credits, 40);
    assert_eq!((g.granted_at, g.until), (NOW, NOW + 2_000));
    assert_eq!(s.ledger.count(NOW, 60_000), 41);
    assert_eq!(g.limit.as_ref().map(|l| l.remaining), Some(59));
    assert_eq!(s.book.wait_ms(NOW + 500), 1_500);
    // Another isolate asking for more than half of what is left gets half.
    let b = admitted(&mut s, hot_check(1_000), &cfg, NOW + 1);
    assert_eq!(b.lease.map(|g| g.credits), Some(29));
    // A quiet check asks for none.
    assert!(admitted(&mut s, check_cmd("h1"), &cfg, NOW + 2)
        .lease
        .is_none());
}

#[test]
fn no_lease_past_what_rows_3_to_14_allow() {
    // Leases off.
    let cfg = config(&[("KEY_LEASE_MS", "0")]);
    assert!(admitted(&mut limited(100), hot_check(10), &cfg, NOW)
        .lease
        .is_none());
    let cfg = config(&[]);
    // Nothing left after the request itself.
    assert!(admitted(&mut limited(1), hot_check(10), &cfg, NOW)
        .lease
        .is_none());
    // A per-second limit: the lease is shorter than its window.
    let mut r = rec();
    r.rate_limits.per_second = Some(50);
    let g = admitted(&mut state(r), hot_check(10), &cfg, NOW)
        .lease
        .unwrap();
    assert_eq!(g.until - g.granted_at, 999);
    // A lease never outlives the key.
    let mut r = rec();
    r.expires_at = Some(NOW + 700);
    let g = admitted(&mut state(r), hot_check(10), &cfg, NOW)
        .lease
        .unwrap();
    assert_eq!(g.until, NOW + 700);
    // Not to a secret in its grace period, and not asked alone for a revoked key.
    let mut s = limited(100);
    let _ = apply(&mut s, rotate_to("h2"), &cfg, NOW);
    let mut grace = request();
    grace.hash = "h1".into();
    let lease = |request: AccessRequest| KeyCommand::Lease {
        request,
        want: 10,
        plan: None,
    };
    assert_eq!(apply(&mut s, lease(grace), &cfg, NOW).1, Ok(Value::Null));
    let mut s = limited(100);
    let _ = apply(&mut s, KeyCommand::Revoke, &cfg, NOW);
    assert_eq!(
        apply(&mut s, lease(request()), &cfg, NOW + 1).1,
        Ok(Value::Null)
    );
}

#[test]
fn a_report_brings_the_rows_and_charges_only_what_was_used() {
    let cfg = config(&[]);
    let mut s = limited(100);
    let a = admitted(&mut s, hot_check(10), &cfg, NOW);
    let mut held = Held::new(a.lease.unwrap());
    let one = held
        .admit(&cfg, &request(), &facts(), 1, 0, NOW + 10)
        .unwrap();
    let two = held
        .admit(&cfg, &request(), &facts(), 1, 0, NOW + 20)
        .unwrap();
    assert_eq!(one.identity.key_id, "key_1");
    let done = |id: u64, origin: Option<u16>| Settlement {
        id,
        origin_status: origin,
        status: origin.unwrap_or(502),
        code: None,
        duration_ms: 3,
    };
    assert!(held.settle(&done(one.row, Some(200)), true));
    assert!(held.report().is_none(), "not retired yet");
    held.holding.retired = true;
    assert!(held.report().is_none(), "a request is still unsettled");
    assert!(held.settle(&done(two.row, None), false));
    let report = held.report().unwrap();
    assert!(held.report().is_none(), "once");
    assert_eq!(report.rows.len(), 2);
    let (fx, _) = apply(&mut s, KeyCommand::Report(report.clone()), &cfg, NOW + 100);
    assert_eq!(fx.logs.len(), 2);
    assert!(fx.lease_book);
    // The request itself (pending) and the lease's one charged use.
    assert_eq!(s.ledger.count(NOW + 100, 60_000), 2);
    assert_eq!(s.record.as_ref().unwrap().usage_count, 1);
    assert!(s.book.is_empty());
    // The same report again changes nothing.
    let (fx, _) = apply(&mut s, KeyCommand::Report(report), &cfg, NOW + 200);
    assert!(fx.logs.is_empty());
    assert_eq!(s.record.as_ref().unwrap().usage_count, 1);
}

#[test]
fn a_report_writes_each_usage_hour_once() {
    let cfg = config(&[]);
    let mut s = limited(100);
    let a = admitted(&mut s, hot_check(10), &cfg, NOW);
    let mut held = Held::new(a.lease.unwrap());
    for i in 0..5 {
        let one = held
            .admit(&cfg, &request(), &facts(), 1, 0, NOW + 10 + i)
            .unwrap();
        let done = Settlement {
            id: one.row,
            origin_status: Some(200),
            status: 200,
            code: None,
            duration_ms: 3,
        };
        assert!(held.settle(&done, true));
    }
    held.holding.retired = true;
    let (fx, _) = apply(
        &mut s,
        KeyCommand::Report(held.report().unwrap()),
        &cfg,
        NOW + 100,
    );
    assert_eq!(fx.logs.len(), 5);
    assert_eq!(fx.usage.len(), 1, "one write for the hour, not one per row");
    assert_eq!(fx.usage[0].1.requests, 5);
}

#[test]
fn a_lease_admits_only_while_live_within_its_slice_and_plan() {
    let cfg = config(&[]);
    let mut s = limited(100);
    let g = admitted(&mut s, hot_check(2), &cfg, NOW).lease.unwrap();
    let mut held = Held::new(g);
    assert!(
        held.admit(&cfg, &request(), &facts(), 1, 1, NOW).is_none(),
        "another plan version"
    );
    assert!(
        held.admit(&cfg, &request(), &facts(), 3, 0, NOW).is_none(),
        "more than the slice"
    );
    let mut wrong = request();
    wrong.permissions = vec!["admin:all".into()];
    assert!(
        held.admit(&cfg, &wrong, &facts(), 1, 0, NOW).is_none(),
        "the object decides refusals"
    );
    assert!(held.admit(&cfg, &request(), &facts(), 1, 0, NOW).is_some());
    assert!(held.holding.wants_renewal(NOW), "half of it used");
    assert!(held
        .admit(&cfg, &request(), &facts(), 1, 0, NOW + 1)
        .is_some());
    assert!(
        held.admit(&cfg, &request(), &facts(), 1, 0, NOW + 2)
            .is_none(),
        "spent"
    );
    let mut later = Held::new(
        admitted(&mut s, hot_check(2), &cfg, NOW + 10)
            .lease
            .unwrap(),
    );
    let end = later.grant.until;
    assert!(later
        .admit(&cfg, &request(), &facts(), 1, 0, end - 251)
        .is_some());
    assert!(
        later
            .admit(&cfg, &request(), &facts(), 1, 0, end - 250)
            .is_none(),
        "ends early"
    );
}

#[test]
fn a_change_of_the_key_waits_out_its_leases_and_an_unreported_one_counts_at_its_end() {
    let cfg = config(&[]);
    let mut s = limited(100);
    let g = admitted(&mut s, hot_check(10), &cfg, NOW).lease.unwrap();
    assert_eq!(s.book.wait_ms(NOW + 1_500), g.until - NOW - 1_500);
    // A key with a lease outstanding is in use: not deletable.
    assert!(matches!(
        apply(&mut s, KeyCommand::Delete, &cfg, NOW + 1).1,
        Err(ApiError::Conflict { .. })
    ));
    // Never reported: at its end the slice moves there and stays counted.
    let (fx, _) = apply(&mut s, KeyCommand::Get, &cfg, g.until);
    assert!(fx.lease_book);
    assert_eq!(s.ledger.count(g.until + 59_000, 60_000), 10);
    assert_eq!(s.book.wait_ms(g.until), 0);
}
