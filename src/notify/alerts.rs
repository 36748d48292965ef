//! Alerts before trouble, decided in the key's object (time passed in):
//! - `key.expiring` at each `EXPIRY_NOTICE_DAYS` threshold before the key expires,
//!   once per threshold, and `key.expired` when it lapses (from the object's alarm);
//! - `key.quota_threshold` when a quota's use crosses a `QUOTA_ALERT_PERCENTS`
//!   percentage, once per crossing: re-armed only after use falls back below;
//! - `key.rate_limited` when a rate limit starts refusing, at most once per window.
//!
//! What was announced is kept in the key's record (`AlertState`), so an alert is
//! never sent twice for one crossing, whichever isolate or alarm run sees it.

use crate::key::record::AlertState;
use crate::limits::admission::LimitState;
use crate::time_fmt::to_rfc3339;

use serde_json::{json, Value};

/// An alert: its event type and what it says (the key's id, account and prefix
/// are added by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub event: &'static str,
    pub details: Value,
}

fn rearm_expiry(state: &mut AlertState, expires_at: Option<i64>) {
    if state.expiry != expires_at {
        state.expiry = expires_at;
        state.expiring_sent.clear();
        state.expired_sent = false;
    }
}

/// The expiry alerts due at `now` (thresholds in ms before expiry). When several
/// thresholds are crossed at once (a key made or changed close to its expiry), one
/// notice is sent, for the nearest; each threshold is announced once.
pub fn expiry_alerts(
    state: &mut AlertState,
    expires_at: Option<i64>,
    thresholds: &[i64],
    now: i64,
) -> Vec<Alert> {
    rearm_expiry(state, expires_at);
    let Some(expiry) = expires_at else {
        return Vec::new();
    };
    if now >= expiry {
        if state.expired_sent {
            return Vec::new();
        }
        state.expired_sent = true;
        state.expiring_sent = thresholds.to_vec();
        return vec![Alert {
            event: "key.expired",
            details: json!({ "expires_at": to_rfc3339(expiry) }),
        }];
    }
    let due: Vec<i64> = thresholds
        .iter()
        .copied()
        .filter(|t| now >= expiry - t && !state.expiring_sent.contains(t))
        .collect();
    let Some(nearest) = due.iter().copied().min() else {
        return Vec::new();
    };
    state.expiring_sent.extend(due);
    vec![Alert {
        event: "key.expiring",
        details: json!({
            "expires_at": to_rfc3339(expiry),
            "notice_days": nearest as f64 / 86_400_000.0,
            "seconds_left": (expiry - now) / 1000,
        }),
    }]
}

/// When the object's alarm must next look at the expiry: the next threshold not
/// yet announced, or the expiry itself.
pub fn next_expiry_check(
    state: &AlertState,
    expires_at: Option<i64>,
    thresholds: &[i64],
) -> Option<i64> {
    let expiry = expires_at?;
    // A changed expiry: everything is due again.
    let fresh = state.expiry != expires_at;
    let sent = |t: &i64| !fresh && state.expiring_sent.contains(t);
    let notices = thresholds.iter().filter(|t| !sent(t)).map(|t| expiry - t);
    let lapse = (fresh || !state.expired_sent).then_some(expiry);
    notices.chain(lapse).min()
}

/// Quota crossings after an admission: each (quota, percent) newly reached is
/// announced; each fallen back below is re-armed.
pub fn quota_alerts(state: &mut AlertState, quotas: &[LimitState], percents: &[u32]) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for q in quotas {
        let used = q.limit - q.remaining.min(q.limit);
        for &p in percents {
            // The smallest use at or above p% of the limit.
            let threshold = (u128::from(q.limit) * u128::from(p)).div_ceil(100) as u64;
            let key = (q.name.clone(), p);
            let announced = state.quota_crossed.contains(&key);
            if used >= threshold.max(1) {
                if !announced {
                    state.quota_crossed.push(key);
                    alerts.push(Alert {
                        event: "key.quota_threshold",
                        details: json!({
                            "quota": q.name, "percent": p, "limit": q.limit, "used": used,
                            "window_seconds": q.window,
                        }),
                    });
                }
            } else if announced {
                state.quota_crossed.retain(|k| *k != key);
            }
        }
    }
    alerts
}

/// A rate-limit refusal at `now`, the window freeing after `retry_after` seconds:
/// announced unless one was already for this window. `exceeded` names the limits.
pub fn rate_limited_alert(
    state: &mut AlertState,
    exceeded: &[LimitState],
    retry_after: u64,
    now: i64,
) -> Option<Alert> {
    if state.rate_limited_until.is_some_and(|until| now < until) {
        return None;
    }
    state.rate_limited_until = Some(now + retry_after as i64 * 1000);
    let limits: Vec<Value> = exceeded
        .iter()
        .map(|l| json!({ "name": l.name, "limit": l.limit, "window_seconds": l.window }))
        .collect();
    Some(Alert {
        event: "key.rate_limited",
        details: json!({ "retry_after": retry_after, "limits": limits }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_800_000_000_000;

    fn events(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.event).collect()
    }

    #[test]
    fn each_expiry_threshold_is_announced_once_then_the_lapse() {
        let mut s = AlertState::default();
        let th = [7 * DAY, DAY];
        let exp = Some(T0 + 10 * DAY);
        assert_eq!(next_expiry_check(&s, exp, &th), Some(T0 + 3 * DAY));
        assert!(expiry_alerts(&mut s, exp, &th, T0).is_empty());
        let a = expiry_alerts(&mut s, exp, &th, T0 + 3 * DAY);
        assert_eq!(events(&a), ["key.expiring"]);
        assert_eq!(a[0].details["notice_days"], 7.0);
        assert!(expiry_alerts(&mut s, exp, &th, T0 + 4 * DAY).is_empty());
        assert_eq!(next_expiry_check(&s, exp, &th), Some(T0 + 9 * DAY));
        let a = expiry_alerts(&mut s, exp, &th, T0 + 9 * DAY);
        assert_eq!(a[0].details["notice_days"], 1.0);
        assert_eq!(next_expiry_check(&s, exp, &th), Some(T0 + 10 * DAY));
        assert_eq!(
            events(&expiry_alerts(&mut s, exp, &th, T0 + 10 * DAY)),
            ["key.expired"]
        );
        assert!(expiry_alerts(&mut s, exp, &th, T0 + 11 * DAY).is_empty());
        assert_eq!(next_expiry_check(&s, exp, &th), None);
    }

    #[test]
    fn thresholds_crossed_together_make_one_notice_and_a_new_expiry_rearms() {
        let mut s = AlertState::default();
        let th = [7 * DAY, DAY];
        // Made with half a day left: one notice, for the nearest threshold.
        let a = expiry_alerts(&mut s, Some(T0 + DAY / 2), &th, T0);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].details["notice_days"], 1.0);
        // Extended by a month: both thresholds are armed again.
        let later = Some(T0 + 30 * DAY);
        assert_eq!(next_expiry_check(&s, later, &th), Some(T0 + 23 * DAY));
        assert!(expiry_alerts(&mut s, later, &th, T0 + DAY).is_empty());
        assert_eq!(expiry_alerts(&mut s, later, &th, T0 + 23 * DAY).len(), 1);
        // No expiry: nothing to check.
        assert_eq!(next_expiry_check(&s, None, &th), None);
        assert!(expiry_alerts(&mut s, None, &th, T0).is_empty());
    }

    fn quota(used: u64, limit: u64) -> LimitState {
        LimitState {
            name: "daily".into(),
            limit,
            remaining: limit - used,
            reset: 0,
            window: Some(86_400),
        }
    }

    #[test]
    fn a_quota_crossing_is_announced_once_until_use_falls_back() {
        let mut s = AlertState::default();
        let p = [80, 100];
        assert!(quota_alerts(&mut s, &[quota(7, 10)], &p).is_empty());
        let a = quota_alerts(&mut s, &[quota(8, 10)], &p);
        assert_eq!(events(&a), ["key.quota_threshold"]);
        assert_eq!(
            (
                a[0].details["percent"].as_u64(),
                a[0].details["used"].as_u64()
            ),
            (Some(80), Some(8))
        );
        assert!(quota_alerts(&mut s, &[quota(9, 10)], &p).is_empty());
        assert_eq!(quota_alerts(&mut s, &[quota(10, 10)], &p).len(), 1);
        assert!(quota_alerts(&mut s, &[quota(10, 10)], &p).is_empty());
        // The window rolls on: use falls below 80%, and crossing again announces again.
        assert!(quota_alerts(&mut s, &[quota(3, 10)], &p).is_empty());
        assert_eq!(quota_alerts(&mut s, &[quota(8, 10)], &p).len(), 1);
    }

    #[test]
    fn one_big_request_crosses_every_threshold_at_once() {
        let mut s = AlertState::default();
        let a = quota_alerts(&mut s, &[quota(10, 10)], &[80, 100]);
        assert_eq!(a.len(), 2);
        // Percentages of small limits round up: 80% of 3 is reached at 3.
        let mut s = AlertState::default();
        assert!(quota_alerts(&mut s, &[quota(2, 3)], &[80]).is_empty());
        assert_eq!(quota_alerts(&mut s, &[quota(3, 3)], &[80]).len(), 1);
    }

    #[test]
    fn rate_limited_at_most_once_per_window() {
        let mut s = AlertState::default();
        let limit = LimitState {
            name: "per_minute".into(),
            limit: 5,
            remaining: 0,
            reset: 60,
            window: Some(60),
        };
        let a = rate_limited_alert(&mut s, std::slice::from_ref(&limit), 60, T0).unwrap();
        assert_eq!(a.details["limits"][0]["name"], "per_minute");
        assert!(
            rate_limited_alert(&mut s, std::slice::from_ref(&limit), 30, T0 + 30_000).is_none()
        );
        assert!(rate_limited_alert(&mut s, &[limit], 60, T0 + 60_000).is_some());
    }
}
