//! The account object's core: row 15, plan versions and their progress, index and
//! audit writes, the alarm's decisions.

use super::*;
use crate::limits::plans::PlanCopy;
use serde_json::json;
use std::collections::HashMap;

const NOW: i64 = 1_800_000_000_000;

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<&str, &str> = HashMap::from([("ORIGIN_URL", "http://o")]);
    vars.extend(extra.iter().copied());
    Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
}

fn capped() -> Config {
    let plans = r#"{"pro":{"api_access":true},"team":{"api_access":true,"account_limits":{"per_minute":2}}}"#;
    config(&[("PLANS", plans), ("DEFAULT_PLAN", "team")])
}

fn event(action: &str) -> AuditEvent {
    AuditEvent {
        at: NOW,
        actor: "admin_token".into(),
        action: action.into(),
        key_id: None,
        account: "acme".into(),
        details: json!({}),
        scope: None,
    }
}

fn now(reply: Reply) -> Result<Value, ApiError> {
    match reply {
        Reply::Now(r) => r,
        other => panic!("not answered now: {other:?}"),
    }
}

fn admitted(r: Result<Value, ApiError>) -> Result<AccountAdmitted, ApiError> {
    r.map(|v| serde_json::from_value(v).unwrap())
}

#[test]
fn row_15_admits_up_to_the_account_limit_then_refuses_with_retry_after() {
    let cfg = capped();
    let mut s = AccountState::empty();
    let keys = KeyCount::default();
    for i in 0..2 {
        let (fx, r) = apply(
            &mut s,
            AccountCommand::Admit {
                cost: 1,
                want: 0,
                free: false,
            },
            &cfg,
            NOW + i,
            &keys,
        );
        let a = admitted(now(r)).unwrap();
        assert_eq!((a.charged, a.at, a.plan.version), (1, NOW + i, 0));
        assert!(!fx.buckets.is_empty(), "counted in storage");
    }
    let (fx, r) = apply(
        &mut s,
        AccountCommand::Admit {
            cost: 1,
            want: 0,
            free: false,
        },
        &cfg,
        NOW + 2,
        &keys,
    );
    assert!(matches!(
        now(r),
        Err(ApiError::PlanRateLimited { retry_after, .. }) if (1..=60).contains(&retry_after)
    ));
    assert!(fx.buckets.is_empty(), "a refusal takes nothing");
    // A refund gives the credit back: the next admission passes.
    let (_, r) = apply(
        &mut s,
        AccountCommand::Refund { at: NOW, cost: 1 },
        &cfg,
        NOW + 3,
        &keys,
    );
    assert_eq!(now(r), Ok(Value::Null));
    let (_, r) = apply(
        &mut s,
        AccountCommand::Admit {
            cost: 1,
            want: 0,
            free: false,
        },
        &cfg,
        NOW + 4,
        &keys,
    );
    assert!(admitted(now(r)).is_ok());
}

#[test]
fn a_plan_without_account_limits_charges_nothing() {
    let mut s = AccountState::empty();
    let (fx, r) = apply(
        &mut s,
        AccountCommand::Admit {
            cost: 5,
            want: 0,
            free: false,
        },
        &config(&[]),
        NOW,
        &KeyCount::default(),
    );
    assert_eq!(admitted(now(r)).unwrap().charged, 0);
    assert!(fx.buckets.is_empty());
}

#[test]
fn a_batch_is_decided_in_order_with_one_write_per_bucket() {
    let cfg = capped();
    let mut s = AccountState::empty();
    let items = vec![
        AccountCommand::Admit {
            cost: 1,
            want: 0,
            free: false,
        },
        AccountCommand::Admit {
            cost: 1,
            want: 0,
            free: false,
        },
        AccountCommand::Admit {
            cost: 1,
            want: 0,
            free: false,
        },
        AccountCommand::Refund { at: NOW, cost: 1 },
        AccountCommand::Admit {
            cost: 1,
            want: 0,
            free: false,
        },
    ];
    let (fx, r) = apply(
        &mut s,
        AccountCommand::Batch { items },
        &cfg,
        NOW,
        &KeyCount::default(),
    );
    let answers: Vec<Answer> = serde_json::from_value(now(r).unwrap()).unwrap();
    let ok: Vec<bool> = answers.iter().map(|a| matches!(a, Answer::Ok(_))).collect();
    assert_eq!(ok, [true, true, false, true, true]);
    let mut seen = std::collections::HashSet::new();
    assert!(
        fx.buckets.iter().all(|b| seen.insert((b.level, b.start))),
        "one write per bucket"
    );
}

#[test]
fn a_plan_change_records_a_version_its_event_and_its_progress() {
    let cfg = config(&[]);
    let mut s = AccountState::empty();
    let keys = KeyCount {
        total: 3,
        newest: Some("key_c".into()),
    };
    let set = AccountCommand::SetPlan {
        plan: "business".into(),
        region: Declared::Unchanged,
        event: event("account.plan_changed"),
    };
    let (fx, r) = apply(&mut s, set, &cfg, NOW, &keys);
    let v: AccountView = serde_json::from_value(now(r).unwrap()).unwrap();
    assert_eq!(
        v,
        AccountView {
            plan: Some("business".into()),
            plan_version: 1,
            keys_total: 3,
            keys_updated: 0,
            region: None,
            leases_wait_ms: 0,
            credits: None,
        }
    );
    assert_eq!((fx.plan.as_deref(), fx.meta), (Some("business"), true));
    match fx.index.as_slice() {
        [IndexWrite::Record { event }] => {
            assert_eq!(
                event.details,
                json!({ "from": "pro", "keys": 3, "version": 1 })
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.meta.account.as_deref(),
        Some("acme"),
        "the account is named"
    );
    // Admissions now carry the new version.
    assert_eq!(
        admit_wanting(&mut s, &cfg, 0, NOW).unwrap().plan,
        PlanCopy {
            plan: "business".into(),
            version: 1
        }
    );
    // The alarm carries it: a batch, its progress, then nothing left.
    let (p, copy) = next_plan_batch(&s, &cfg).unwrap();
    assert_eq!((p.upto.as_deref(), copy.version), (Some("key_c"), 1));
    assert_eq!(next_alarm(&s, &cfg, NOW, &Oldest::default()), Some(NOW));
    let ids: Vec<String> = ["key_a", "key_b", "key_c"].map(String::from).into();
    assert!(record_plan_batch(&mut s, 1, &ids[..2], &[true, false], 2));
    assert_eq!(s.meta.propagation.as_ref().unwrap().keys_updated, 1);
    assert!(
        !record_plan_batch(&mut s, 0, &ids, &[true; 3], 3),
        "an older change records nothing"
    );
    assert!(record_plan_batch(&mut s, 1, &ids[1..], &[true, true], 50));
    assert!(next_plan_batch(&s, &cfg).is_none());
}

#[test]
fn held_plan_updates_leave_the_change_to_later() {
    let cfg = config(&[
        ("TEST_HOLD_PLAN_UPDATES", "true"),
        ("ENVIRONMENT", "development"),
    ]);
    let mut s = AccountState::empty();
    let keys = KeyCount {
        total: 1,
        newest: Some("key_a".into()),
    };
    let set = AccountCommand::SetPlan {
        plan: "business".into(),
        region: Declared::Unchanged,
        event: event("account.plan_changed"),
    };
    let _ = apply(&mut s, set, &cfg, NOW, &keys);
    assert!(next_plan_batch(&s, &cfg).is_none());
}

#[test]
fn index_and_audit_writes_follow_the_command() {
    let cfg = config(&[("AUDIT_REFUSALS_PER_HOUR", "4")]);
    let mut s = AccountState::empty();
    let keys = KeyCount::default();
    let row = IndexRow {
        id: "key_1".into(),
        account: "acme".into(),
        alias: Some("ci".into()),
        environment: "production".into(),
        category: None,
        status: "active".into(),
        expires_at: None,
        revision: 1,
        name: "ci".into(),
        prefix: "kw_live_x".into(),
    };
    let (fx, r) = apply(
        &mut s,
        AccountCommand::Claim {
            row: row.clone(),
            cap: Some(10),
        },
        &cfg,
        NOW,
        &keys,
    );
    assert_eq!(r, Reply::FromStore);
    assert_eq!(
        fx.index,
        vec![IndexWrite::Claim {
            row: row.clone(),
            cap: Some(10)
        }]
    );
    let sync = AccountCommand::Sync {
        row: row.clone(),
        event: Some(event("key.created")),
    };
    let (fx, _) = apply(&mut s, sync, &cfg, NOW, &keys);
    assert!(matches!(
        fx.index.as_slice(),
        [IndexWrite::Sync { .. }, IndexWrite::Record { .. }]
    ));
    let remove = AccountCommand::Remove {
        id: "key_1".into(),
        event: None,
    };
    let (fx, _) = apply(&mut s, remove, &cfg, NOW + 5, &keys);
    assert_eq!(
        fx.index,
        vec![IndexWrite::Remove {
            id: "key_1".into(),
            at: NOW + 5
        }]
    );
    let refused = AccountCommand::Refused {
        event: event("admin.refused"),
        bucket: "203.0.113.9".into(),
    };
    let (fx, r) = apply(&mut s, refused, &cfg, NOW, &keys);
    assert_eq!(r, Reply::FromStore);
    assert!(matches!(
        fx.index.as_slice(),
        [IndexWrite::Refused { per_hour: 4, .. }]
    ));
    // Reads are the store's queries.
    let list = AccountCommand::List {
        query: ListQuery::default(),
        after: None,
        now: NOW,
    };
    assert!(matches!(
        apply(&mut s, list, &cfg, NOW, &keys).1,
        Reply::List { .. }
    ));
    assert!(!writes(&AccountCommand::Get) && writes(&AccountCommand::Record { event: event("x") }));
}

#[test]
fn a_claim_is_refused_for_a_taken_alias_or_past_the_cap() {
    let row = |alias: Option<&str>| IndexRow {
        id: "key_2".into(),
        account: "acme".into(),
        alias: alias.map(String::from),
        environment: "production".into(),
        category: None,
        status: "active".into(),
        expires_at: None,
        revision: 1,
        name: "n".into(),
        prefix: "p".into(),
    };
    assert!(claim(&row(Some("ci")), None, false, 0, Some(3)).is_ok());
    assert!(
        matches!(claim(&row(Some("ci")), Some("key_1"), false, 0, None), Err(ApiError::Conflict { reason }) if reason.contains("alias 'ci'"))
    );
    assert!(
        matches!(claim(&row(None), None, false, 3, Some(3)), Err(ApiError::Conflict { reason }) if reason.contains("MAX_KEYS_PER_ACCOUNT"))
    );
    assert!(
        claim(&row(None), None, true, 3, Some(3)).is_ok(),
        "a key already counted"
    );
    assert!(
        claim(&row(None), None, false, 1_000, None).is_ok(),
        "an alias change has no cap"
    );
}

#[test]
fn the_alarm_wakes_for_registration_and_retention() {
    let cfg = config(&[("AUDIT_RETENTION_DAYS", "1")]);
    let mut s = AccountState::empty();
    assert_eq!(next_alarm(&s, &cfg, NOW, &Oldest::default()), None);
    s.meta.account = Some("acme".into());
    assert_eq!(
        next_alarm(&s, &cfg, NOW, &Oldest::default()),
        Some(NOW + RETRY_MS)
    );
    s.meta.registered = true;
    let oldest = Oldest {
        outbox: None,
        event: Some(NOW),
        tombstone: Some(NOW - TOMBSTONE_MS + 5),
        refusal: Some(NOW - REFUSAL_WINDOW_MS + 9),
    };
    assert_eq!(next_alarm(&s, &cfg, NOW, &oldest), Some(NOW + 5));
    let (events, tombstones, refusals) = retention(&cfg, NOW);
    assert_eq!(
        (events, tombstones, refusals),
        (
            NOW - 86_400_000,
            NOW - TOMBSTONE_MS,
            NOW - REFUSAL_WINDOW_MS
        )
    );
}

#[test]
fn a_declared_region_is_kept_until_declared_again() {
    use crate::request::regions::Region;
    let cfg = config(&[]);
    let mut s = AccountState::empty();
    let keys = KeyCount {
        total: 0,
        newest: None,
    };
    let set = |region| AccountCommand::SetPlan {
        plan: "pro".into(),
        region,
        event: event("account.plan_changed"),
    };
    let region_of = |r: Reply| {
        serde_json::from_value::<AccountView>(now(r).unwrap())
            .unwrap()
            .region
    };
    let (fx, r) = apply(
        &mut s,
        set(Declared::To(Some(Region::Oc))),
        &cfg,
        NOW,
        &keys,
    );
    assert_eq!(region_of(r), Some(Region::Oc));
    match fx.index.as_slice() {
        [IndexWrite::Record { event }] => assert_eq!(event.details["region"], json!("oc")),
        other => panic!("{other:?}"),
    }
    let (_, r) = apply(&mut s, set(Declared::Unchanged), &cfg, NOW, &keys);
    assert_eq!(
        region_of(r),
        Some(Region::Oc),
        "a plan change alone keeps the region"
    );
    let (_, r) = apply(&mut s, set(Declared::To(None)), &cfg, NOW, &keys);
    assert_eq!(region_of(r), None);
    let (_, r) = apply(&mut s, AccountCommand::Get, &cfg, NOW, &keys);
    assert_eq!(region_of(r), None);
}

#[test]
fn a_plan_without_account_limits_is_leased_and_a_change_waits_the_lease_out() {
    let cfg = config(&[("PLAN_LEASE_SECONDS", "4")]);
    let mut s = AccountState::empty();
    let keys = KeyCount::default();
    let admit = |s: &mut AccountState, at: i64| {
        let (fx, r) = apply(
            s,
            AccountCommand::Admit {
                cost: 1,
                want: 0,
                free: false,
            },
            &cfg,
            at,
            &keys,
        );
        (fx.meta, admitted(now(r)).unwrap())
    };
    // Granted, stored once, renewed only once half of it is left.
    let (stored, a) = admit(&mut s, NOW);
    assert_eq!(
        (a.lease_until, a.charged, stored),
        (Some(NOW + 4_000), 0, true)
    );
    let (stored, a) = admit(&mut s, NOW + 2_000);
    assert_eq!((a.lease_until, stored), (Some(NOW + 4_000), false));
    let (stored, a) = admit(&mut s, NOW + 2_001);
    assert_eq!((a.lease_until, stored), (Some(NOW + 6_001), true));
    // A plan change at NOW + 3_000 waits until the last lease on the old plan lapsed.
    let set = AccountCommand::SetPlan {
        plan: "business".into(),
        region: Declared::Unchanged,
        event: event("account.plan_changed"),
    };
    let (_, r) = apply(&mut s, set, &cfg, NOW + 3_000, &keys);
    let v: AccountView = serde_json::from_value(now(r).unwrap()).unwrap();
    assert_eq!((v.plan_version, v.leases_wait_ms), (1, 3_001));
    // Never leased: nothing to wait for.
    let mut fresh = AccountState::empty();
    let set = AccountCommand::SetPlan {
        plan: "business".into(),
        region: Declared::Unchanged,
        event: event("account.plan_changed"),
    };
    let (_, r) = apply(&mut fresh, set, &cfg, NOW, &keys);
    let v: AccountView = serde_json::from_value(now(r).unwrap()).unwrap();
    assert_eq!(v.leases_wait_ms, 0);
}

#[test]
fn a_plan_with_account_limits_or_leases_off_is_never_leased() {
    for cfg in [capped(), config(&[("PLAN_LEASE_SECONDS", "0")])] {
        let mut s = AccountState::empty();
        assert_eq!(
            admit_wanting(&mut s, &cfg, 0, NOW).unwrap().lease_until,
            None
        );
        assert_eq!(s.meta.lease_until, 0);
    }
}

fn wide(extra: &[(&str, &str)]) -> Config {
    let plans = r#"{"pro":{"api_access":true},"team":{"api_access":true,"account_limits":{"per_minute":100}},"burst":{"api_access":true,"account_limits":{"per_second":10,"per_minute":100}}}"#;
    let mut vars = vec![("PLANS", plans), ("DEFAULT_PLAN", "team")];
    vars.extend_from_slice(extra);
    config(&vars)
}

fn admit_wanting(
    s: &mut AccountState,
    cfg: &Config,
    want: u64,
    at: i64,
) -> Result<AccountAdmitted, ApiError> {
    let cmd = AccountCommand::Admit {
        cost: 1,
        want,
        free: false,
    };
    admitted(now(apply(s, cmd, cfg, at, &KeyCount::default()).1))
}

#[test]
fn a_slice_of_the_account_limits_is_at_most_half_of_what_is_left_and_counted_whole() {
    let cfg = wide(&[]);
    let mut s = AccountState::empty();
    let a = admit_wanting(&mut s, &cfg, 80, NOW).unwrap();
    let b = a.budget.expect("a slice lent");
    assert_eq!((b.credits, b.granted_at, b.until), (49, NOW, NOW + 2_000));
    assert_eq!(b.limit.unwrap().remaining, 50, "left outside the slice");
    assert_eq!(a.limit.unwrap().remaining, 99, "this request's own answer");
    // The object admits only what is outside the slice.
    for i in 0..50 {
        assert!(admit_wanting(&mut s, &cfg, 0, NOW + 1 + i).is_ok());
    }
    assert!(matches!(
        admit_wanting(&mut s, &cfg, 80, NOW + 100),
        Err(ApiError::PlanRateLimited { .. })
    ));
    // The report gives back what the slice did not charge.
    let report = AccountCommand::Report {
        lease: b.id,
        charged: 10,
    };
    let (fx, r) = apply(
        &mut s,
        report.clone(),
        &cfg,
        NOW + 200,
        &KeyCount::default(),
    );
    assert_eq!(now(r), Ok(Value::Null));
    assert!(fx.meta && !fx.buckets.is_empty());
    for i in 0..39 {
        assert!(admit_wanting(&mut s, &cfg, 0, NOW + 300 + i).is_ok(), "{i}");
    }
    assert!(admit_wanting(&mut s, &cfg, 0, NOW + 400).is_err());
    // A second report of the same lease changes nothing.
    let (fx, _) = apply(&mut s, report, &cfg, NOW + 500, &KeyCount::default());
    assert!(fx.buckets.is_empty() && !fx.meta);
}

#[test]
fn a_slice_never_reported_counts_at_its_end_and_a_plan_change_waits_it_out() {
    let cfg = wide(&[]);
    let mut s = AccountState::empty();
    let b = admit_wanting(&mut s, &cfg, 98, NOW)
        .unwrap()
        .budget
        .unwrap();
    assert_eq!(b.credits, 49);
    let set = AccountCommand::SetPlan {
        plan: "pro".into(),
        region: Declared::Unchanged,
        event: event("account.plan_changed"),
    };
    let mut other = AccountState::empty();
    admit_wanting(&mut other, &cfg, 98, NOW).unwrap();
    let (_, r) = apply(&mut other, set, &cfg, NOW + 500, &KeyCount::default());
    let v: AccountView = serde_json::from_value(now(r).unwrap()).unwrap();
    assert_eq!(
        v.leases_wait_ms, 1_500,
        "until the slice lent under the old plan ended"
    );
    // Past its end without a report: its 49 stay counted at its end, a minute on.
    assert!(admit_wanting(&mut s, &cfg, 0, NOW + 2_000).is_ok());
    assert!(s.meta.book.lent[&b.id].lapsed);
    for i in 0..49 {
        assert!(
            admit_wanting(&mut s, &cfg, 0, NOW + 60_001 + i).is_ok(),
            "{i}"
        );
    }
    assert!(admit_wanting(&mut s, &cfg, 0, NOW + 60_100).is_err());
    assert!(admit_wanting(&mut s, &cfg, 0, NOW + 62_001).is_ok());
}

#[test]
fn a_slice_is_shorter_than_the_shortest_account_window_and_only_where_asked() {
    let burst = wide(&[("DEFAULT_PLAN", "burst")]);
    let mut s = AccountState::empty();
    let b = admit_wanting(&mut s, &burst, 64, NOW)
        .unwrap()
        .budget
        .unwrap();
    assert_eq!(
        (b.credits, b.until),
        (4, NOW + 999),
        "half of the second's 9"
    );
    for (cfg, want) in [
        (wide(&[]), 0),
        (wide(&[("KEY_LEASE_MS", "0")]), 64),
        (wide(&[("DEFAULT_PLAN", "pro")]), 64),
    ] {
        let mut s = AccountState::empty();
        assert_eq!(admit_wanting(&mut s, &cfg, want, NOW).unwrap().budget, None);
        assert!(s.meta.book.is_empty());
    }
}
