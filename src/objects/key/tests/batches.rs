use super::*;

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
