//! The key object's core, command by command.

mod batches;
mod credits;
mod leases;
mod moves;
mod reservations;
mod transitions;

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
            country: None,
        },
        cost,
        plan: None,
        undo: None,
        want_lease: 0,
        hot: false,
        region: None,
        free: false,
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
            home: None,
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
            home: None,
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
