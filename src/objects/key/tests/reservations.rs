use super::*;

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
