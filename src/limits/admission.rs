//! Admission: rows 12–15 of the check table as arithmetic over ledgers, with time
//! passed in. Nothing is consumed unless every limit admits (all-or-nothing).

use crate::limits::plans::AccountLimits;
use crate::limits::plans::Plan;
use crate::time_fmt::{ceil_secs as secs_ceil, retry_after};

use crate::error::ApiError;
use crate::limits::plans::Quotas;
use crate::limits::plans::RateLimits;

use crate::limits::ledger::{Ledger, StoredBucket};
use serde::{Deserialize, Serialize};

const SECOND: i64 = 1_000;
const DAY: i64 = 86_400 * SECOND;

/// The state of the tightest limit, for the `RateLimit` headers and key views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitState {
    pub name: String,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the oldest counted credit leaves the window.
    pub reset: u64,
    /// Window length in seconds; none for the all-time quota.
    pub window: Option<u64>,
}

/// A key's limits: its own where set, else its plan's.
pub fn effective_rate_limits(own: &RateLimits, plan: Option<&Plan>) -> RateLimits {
    let inherited = plan.map(|p| p.rate_limits).unwrap_or_default();
    RateLimits {
        per_second: own.per_second.or(inherited.per_second),
        per_minute: own.per_minute.or(inherited.per_minute),
        per_day: own.per_day.or(inherited.per_day),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rate,
    Quota,
}

struct Limit {
    kind: Kind,
    name: &'static str,
    limit: u64,
    window: Option<i64>,
}

fn key_limits(rate: &RateLimits, quotas: &Quotas) -> Vec<Limit> {
    let candidates = [
        (Kind::Rate, "per_second", rate.per_second, Some(SECOND)),
        (Kind::Rate, "per_minute", rate.per_minute, Some(60 * SECOND)),
        (Kind::Rate, "per_day", rate.per_day, Some(DAY)),
        (Kind::Quota, "total", quotas.total, None),
        (Kind::Quota, "daily", quotas.daily, Some(DAY)),
        (Kind::Quota, "weekly", quotas.weekly, Some(7 * DAY)),
        (Kind::Quota, "monthly", quotas.monthly, Some(30 * DAY)),
    ];
    candidates
        .into_iter()
        .filter_map(|(kind, name, limit, window)| {
            limit.map(|limit| Limit {
                kind,
                name,
                limit,
                window,
            })
        })
        .collect()
}

fn used(ledger: &Ledger, now: i64, window: Option<i64>) -> u64 {
    window.map_or(ledger.total, |w| ledger.count(now, w))
}

/// The limit with the least room left after admitting `cost` now.
fn tightest(ledger: &Ledger, limits: &[Limit], now: i64, cost: u64) -> Option<LimitState> {
    states_of(ledger, limits, now, cost)
        .into_iter()
        .min_by_key(|s| (s.remaining, s.limit))
}

/// Every limit of a key with its live state, for `GET /keys/{id}`.
pub fn key_limit_states(
    ledger: &Ledger,
    rate: &RateLimits,
    quotas: &Quotas,
    now: i64,
) -> Vec<LimitState> {
    states_of(ledger, &key_limits(rate, quotas), now, 0)
}

fn states_of(ledger: &Ledger, limits: &[Limit], now: i64, cost: u64) -> Vec<LimitState> {
    limits
        .iter()
        .map(|l| {
            let remaining = l.limit.saturating_sub(used(ledger, now, l.window) + cost);
            let reset = l.window.map_or(0, |w| {
                let r = ledger.reset_in(now, w);
                // After this admission the window holds at least this credit.
                secs_ceil(if r == 0 { w } else { r })
            });
            LimitState {
                name: l.name.to_string(),
                limit: l.limit,
                remaining,
                reset,
                window: l.window.map(|w| (w / SECOND) as u64),
            }
        })
        .collect()
}

/// The breaker's threshold at `now`: `max(factor × baseline, floor)`, where the
/// baseline is the key's mean credits per window over its history before the
/// current window (only the part of history the key has existed for).
pub fn breaker_threshold(
    ledger: &Ledger,
    cfg: &BreakerConfig,
    created_at: i64,
    now: i64,
) -> (u64, f64) {
    let from = (now - cfg.history_ms).max(created_at);
    let to = now - cfg.window_ms;
    let span = to - from;
    let baseline = if span < cfg.window_ms || cfg.window_ms <= 0 {
        0.0
    } else {
        ledger.count_between(now, from, to) as f64 / (span as f64 / cfg.window_ms as f64)
    };
    let threshold = ((cfg.factor * baseline).ceil() as u64).max(cfg.floor);
    (threshold, baseline)
}

/// What the key's object does with a request that passed rows 3–11.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Admit(Option<LimitState>),
    Refuse(ApiError),
    /// The breaker trips now: suspend until `until`; the request is refused.
    Trip {
        until: i64,
        count: u64,
        threshold: u64,
        baseline: f64,
    },
}

pub struct KeyAdmission<'a> {
    pub ledger: &'a Ledger,
    pub rate: RateLimits,
    pub quotas: Quotas,
    pub breaker: BreakerConfig,
    pub suspended_until: Option<i64>,
    pub created_at: i64,
}

/// Rows 12, 13, 14 in order, then the breaker. Consumes nothing: the caller adds
/// `cost` to the ledger only on `Admit`.
pub fn decide(a: &KeyAdmission, now: i64, cost: u64) -> Verdict {
    if let Some(until) = a.suspended_until.filter(|u| *u > now) {
        return Verdict::Refuse(ApiError::KeySuspended {
            retry_after: retry_after(until - now),
        });
    }
    let limits = key_limits(&a.rate, &a.quotas);
    // Row 13: every exceeded rate limit must free up, so wait for the slowest.
    let mut rate_wait: Option<i64> = None;
    for l in limits.iter().filter(|l| l.kind == Kind::Rate) {
        let Some(w) = l.window else { continue };
        let wait = a.ledger.time_until_fits(now, w, l.limit, cost).unwrap_or(w);
        if wait > 0 {
            rate_wait = Some(rate_wait.map_or(wait, |r| r.max(wait)));
        }
    }
    if let Some(wait) = rate_wait {
        return Verdict::Refuse(ApiError::RateLimited {
            retry_after: retry_after(wait),
        });
    }
    // Row 14: the first exhausted quota, in table order.
    for l in limits.iter().filter(|l| l.kind == Kind::Quota) {
        match l.window {
            None if a.ledger.total + cost > l.limit => {
                return Verdict::Refuse(ApiError::QuotaExceeded {
                    window: l.name.into(),
                    retry_after: None,
                })
            }
            Some(w) => {
                let wait = a.ledger.time_until_fits(now, w, l.limit, cost);
                if wait != Some(0) {
                    return Verdict::Refuse(ApiError::QuotaExceeded {
                        window: l.name.into(),
                        retry_after: Some(retry_after(wait.unwrap_or(w))),
                    });
                }
            }
            None => {}
        }
    }
    if a.breaker.enabled {
        let (threshold, baseline) = breaker_threshold(a.ledger, &a.breaker, a.created_at, now);
        let count = a.ledger.count(now, a.breaker.window_ms);
        if count + cost > threshold {
            return Verdict::Trip {
                until: now + a.breaker.cooldown_ms,
                count,
                threshold,
                baseline,
            };
        }
    }
    Verdict::Admit(tightest(a.ledger, &limits, now, cost))
}

/// Row 15, in the account's object.
pub fn decide_account(
    ledger: &Ledger,
    limits: &AccountLimits,
    now: i64,
    cost: u64,
) -> Result<Option<LimitState>, ApiError> {
    let all = [
        ("per-second", "plan_per_second", limits.per_second, SECOND),
        (
            "per-minute",
            "plan_per_minute",
            limits.per_minute,
            60 * SECOND,
        ),
    ];
    let mut states = Vec::new();
    for (window_name, name, limit, w) in all {
        let Some(limit) = limit else { continue };
        let wait = ledger.time_until_fits(now, w, limit, cost).unwrap_or(w);
        if wait > 0 {
            return Err(ApiError::PlanRateLimited {
                window: window_name.into(),
                retry_after: retry_after(wait),
            });
        }
        states.push(Limit {
            kind: Kind::Rate,
            name,
            limit,
            window: Some(w),
        });
    }
    Ok(tightest(ledger, &states, now, cost))
}

/// One request's row-15 answer, when admitted: the tightest account limit and the
/// credits taken (what a refusal by the key's object must give back).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountCharge {
    pub limit: Option<LimitState>,
    pub charged: u64,
}

/// Row 15 for a batch of requests (their costs, in arrival order): each decided
/// against what the ones before it took, all-or-nothing per request. Returns the
/// answers and the buckets to store, one row per bucket.
pub fn admit_accounts(
    ledger: &mut Ledger,
    limits: &AccountLimits,
    now: i64,
    costs: &[u64],
) -> (Vec<Result<AccountCharge, ApiError>>, Vec<StoredBucket>) {
    if limits.per_second.is_none() && limits.per_minute.is_none() {
        let free = AccountCharge {
            limit: None,
            charged: 0,
        };
        return (vec![Ok(free); costs.len()], Vec::new());
    }
    let mut touched = Vec::new();
    let answers = costs
        .iter()
        .map(|&cost| {
            let limit = decide_account(ledger, limits, now, cost)?;
            touched.extend(ledger.add(now, cost));
            Ok(AccountCharge {
                limit,
                charged: cost,
            })
        })
        .collect();
    (answers, last_per_bucket(touched))
}

/// The last written value of each bucket: one storage write per row.
pub fn last_per_bucket(buckets: Vec<StoredBucket>) -> Vec<StoredBucket> {
    last_per(buckets, |b| (b.level, b.start))
}

/// The last of the items with each key, in their original order.
pub fn last_per<T, K: PartialEq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items.into_iter().rev() {
        if !kept.iter().any(|k| key(k) == key(&item)) {
            kept.push(item);
        }
    }
    kept.reverse();
    kept
}

/// The tighter of two limit states (least remaining).
pub fn tighter(a: Option<LimitState>, b: Option<LimitState>) -> Option<LimitState> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if (y.remaining, y.limit) < (x.remaining, x.limit) {
            y
        } else {
            x
        }),
        (x, y) => x.or(y),
    }
}

/// `RateLimit-Policy` and `RateLimit` (IETF httpapi ratelimit-headers draft).
pub fn rate_limit_headers(s: &LimitState) -> [(&'static str, String); 2] {
    let policy = match s.window {
        Some(w) => format!("\"{}\";q={};w={}", s.name, s.limit, w),
        None => format!("\"{}\";q={}", s.name, s.limit),
    };
    [
        ("RateLimit-Policy", policy),
        (
            "RateLimit",
            format!("\"{}\";r={};t={}", s.name, s.remaining, s.reset),
        ),
    ]
}

/// The circuit breaker's settings (SPEC: 3× in 5 minutes → 15 minutes suspended).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BreakerConfig {
    pub enabled: bool,
    pub factor: f64,
    pub window_ms: i64,
    pub cooldown_ms: i64,
    /// Credits per window below which a key never trips, however quiet it was.
    pub floor: u64,
    /// How much history the baseline is learnt from.
    pub history_ms: i64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            factor: 3.0,
            window_ms: 300_000,
            cooldown_ms: 900_000,
            floor: 300,
            history_ms: 86_400_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::ledger::{ACCOUNT_LEVELS, KEY_LEVELS};

    const T0: i64 = 1_800_000_000_000;
    const MIN: i64 = 60 * SECOND;

    fn admission(ledger: &Ledger, rate: RateLimits, quotas: Quotas) -> KeyAdmission<'_> {
        KeyAdmission {
            ledger,
            rate,
            quotas,
            breaker: BreakerConfig {
                enabled: false,
                ..Default::default()
            },
            suspended_until: None,
            created_at: T0 - DAY,
        }
    }

    fn code(v: &Verdict) -> String {
        match v {
            Verdict::Admit(_) => "ok".into(),
            Verdict::Refuse(e) => format!("{} {:?}", e.code(), e.headers()),
            Verdict::Trip { .. } => "trip".into(),
        }
    }

    #[test]
    fn plan_limits_are_inherited_field_by_field() {
        let plan = crate::limits::plans::default_plans().remove("pro");
        let own = RateLimits {
            per_minute: Some(10),
            ..Default::default()
        };
        let eff = effective_rate_limits(&own, plan.as_ref());
        assert_eq!(eff.per_minute, Some(10));
        assert_eq!(eff.per_day, Some(50_000));
        assert_eq!(
            effective_rate_limits(&RateLimits::default(), None),
            RateLimits::default()
        );
    }

    #[test]
    fn per_minute_limit_admits_exactly_l_then_waits_for_the_oldest() {
        let mut l = Ledger::new(&KEY_LEVELS);
        let rate = RateLimits {
            per_minute: Some(3),
            ..Default::default()
        };
        for i in 0..3 {
            let now = T0 + i * 10 * SECOND;
            assert_eq!(
                code(&decide(&admission(&l, rate, Quotas::default()), now, 1)),
                "ok"
            );
            l.add(now, 1);
        }
        let now = T0 + 25 * SECOND;
        let v = decide(&admission(&l, rate, Quotas::default()), now, 1);
        // Oldest bucket [T0, T0+1s) leaves at T0 + 61 s: 36 s from now.
        assert_eq!(
            v,
            Verdict::Refuse(ApiError::RateLimited { retry_after: 36 })
        );
        assert_eq!(
            code(&decide(
                &admission(&l, rate, Quotas::default()),
                T0 + 61 * SECOND,
                1
            )),
            "ok"
        );
    }

    #[test]
    fn the_slowest_exceeded_rate_limit_sets_retry_after() {
        let mut l = Ledger::new(&KEY_LEVELS);
        l.add(T0, 2);
        let rate = RateLimits {
            per_second: Some(2),
            per_minute: Some(2),
            ..Default::default()
        };
        // Both credits are at T0: free at T0 + 60 s, 59.5 s from now.
        let v = decide(&admission(&l, rate, Quotas::default()), T0 + 500, 1);
        assert_eq!(
            v,
            Verdict::Refuse(ApiError::RateLimited { retry_after: 60 })
        );
    }

    #[test]
    fn quotas_in_table_order_with_exact_retry_after() {
        let mut l = Ledger::new(&KEY_LEVELS);
        l.add(T0, 5);
        let q = |total, daily, weekly, monthly| Quotas {
            total,
            daily,
            weekly,
            monthly,
        };
        let now = T0 + 2 * 3_600 * SECOND;
        let v = decide(
            &admission(&l, RateLimits::default(), q(Some(5), Some(5), None, None)),
            now,
            1,
        );
        assert_eq!(
            v,
            Verdict::Refuse(ApiError::QuotaExceeded {
                window: "total".into(),
                retry_after: None
            })
        );
        let v = decide(
            &admission(&l, RateLimits::default(), q(None, Some(5), Some(5), None)),
            now,
            1,
        );
        // Daily: the credits at T0 leave at T0 + 24 h (not at the end of their
        // 1-minute bucket plus a day).
        let daily = secs_ceil(DAY - 2 * 3_600 * SECOND);
        assert_eq!(
            v,
            Verdict::Refuse(ApiError::QuotaExceeded {
                window: "daily".into(),
                retry_after: Some(daily)
            })
        );
        // Weekly and monthly likewise: T0 + 7 d, T0 + 30 d.
        let v = decide(
            &admission(&l, RateLimits::default(), q(None, None, Some(5), None)),
            now,
            1,
        );
        assert_eq!(code(&v), "quota_exceeded [(\"Retry-After\", \"597600\")]");
        let v = decide(
            &admission(&l, RateLimits::default(), q(None, None, None, Some(5))),
            now,
            1,
        );
        assert_eq!(code(&v), "quota_exceeded [(\"Retry-After\", \"2584800\")]");
        let v = decide(
            &admission(&l, RateLimits::default(), q(None, Some(6), None, None)),
            now,
            1,
        );
        assert_eq!(code(&v), "ok");
    }

    #[test]
    fn rate_limits_answer_before_quotas_and_suspension_before_both() {
        let mut l = Ledger::new(&KEY_LEVELS);
        l.add(T0, 1);
        let rate = RateLimits {
            per_minute: Some(1),
            ..Default::default()
        };
        let quotas = Quotas {
            total: Some(1),
            ..Default::default()
        };
        let mut a = admission(&l, rate, quotas);
        assert_eq!(
            code(&decide(&a, T0 + 1, 1)).split(' ').next(),
            Some("rate_limited")
        );
        a.suspended_until = Some(T0 + 10 * SECOND);
        assert_eq!(
            decide(&a, T0 + 1, 1),
            Verdict::Refuse(ApiError::KeySuspended { retry_after: 10 })
        );
        // Suspension ends by itself.
        a.rate = RateLimits::default();
        a.quotas = Quotas::default();
        assert_eq!(code(&decide(&a, T0 + 10 * SECOND, 1)), "ok");
    }

    #[test]
    fn breaker_floor_protects_new_keys_and_the_baseline_scales() {
        let cfg = BreakerConfig {
            enabled: true,
            factor: 3.0,
            window_ms: 5 * MIN,
            cooldown_ms: 15 * MIN,
            floor: 10,
            history_ms: DAY,
        };
        let mut l = Ledger::new(&KEY_LEVELS);
        // A new key: threshold is the floor.
        assert_eq!(breaker_threshold(&l, &cfg, T0, T0 + MIN), (10, 0.0));
        // A key steady at 20 credits per 5 minutes for 2 hours.
        let created = T0 - 2 * 3_600 * SECOND;
        let mut t = created;
        while t < T0 {
            l.add(t, 4);
            t += MIN;
        }
        let (threshold, baseline) = breaker_threshold(&l, &cfg, created, T0);
        assert!((baseline - 20.0).abs() < 0.5, "baseline {baseline}");
        assert_eq!(threshold, 60);
        let mut a = admission(&l, RateLimits::default(), Quotas::default());
        a.breaker = cfg;
        a.created_at = created;
        assert_eq!(code(&decide(&a, T0, 1)), "ok");
        // A burst in the current window beyond 3× trips.
        let mut burst = l.clone();
        burst.add(T0, 60);
        a.ledger = &burst;
        match decide(&a, T0 + SECOND, 1) {
            Verdict::Trip {
                until, threshold, ..
            } => {
                assert_eq!(until, T0 + SECOND + 15 * MIN);
                // One second later the history holds one more minute bucket.
                assert!((60..=61).contains(&threshold), "threshold {threshold}");
            }
            other => panic!("expected a trip, got {other:?}"),
        }
    }

    #[test]
    fn an_account_batch_admits_up_to_the_plan_limit_in_order() {
        let mut l = Ledger::new(&ACCOUNT_LEVELS);
        let limits = AccountLimits {
            per_second: Some(5),
            per_minute: None,
        };
        let (answers, buckets) = admit_accounts(&mut l, &limits, T0, &[2, 2, 2, 1]);
        let charged: Vec<Option<u64>> = answers
            .iter()
            .map(|a| a.as_ref().ok().map(|c| c.charged))
            .collect();
        assert_eq!(charged, vec![Some(2), Some(2), None, Some(1)]);
        assert!(matches!(answers[2], Err(ApiError::PlanRateLimited { .. })));
        assert_eq!(l.total, 5);
        // One stored row per bucket, holding the batch's final count.
        assert_eq!(buckets.len(), ACCOUNT_LEVELS.len());
        assert!(buckets.iter().all(|b| b.count == 5));
        // No account-wide limit: nothing consumed, nothing to refund.
        let none = AccountLimits::default();
        let (answers, buckets) = admit_accounts(&mut l, &none, T0, &[1, 1]);
        assert!(answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|c| c.charged == 0)));
        assert!(buckets.is_empty());
    }

    #[test]
    fn account_limits_and_headers() {
        let mut l = Ledger::new(&crate::limits::ledger::ACCOUNT_LEVELS);
        let limits = AccountLimits {
            per_second: Some(100),
            per_minute: Some(2),
        };
        assert_eq!(
            decide_account(&l, &limits, T0, 1)
                .unwrap()
                .unwrap()
                .remaining,
            1
        );
        l.add(T0, 2);
        assert_eq!(
            decide_account(&l, &limits, T0 + 5 * SECOND, 1),
            Err(ApiError::PlanRateLimited {
                window: "per-minute".into(),
                retry_after: 55
            })
        );
        let s = LimitState {
            name: "per_minute".into(),
            limit: 500,
            remaining: 499,
            reset: 60,
            window: Some(60),
        };
        let [p, r] = rate_limit_headers(&s);
        assert_eq!(
            p,
            ("RateLimit-Policy", "\"per_minute\";q=500;w=60".to_string())
        );
        assert_eq!(r, ("RateLimit", "\"per_minute\";r=499;t=60".to_string()));
        let total = LimitState {
            name: "total".into(),
            limit: 9,
            remaining: 1,
            reset: 0,
            window: None,
        };
        assert_eq!(rate_limit_headers(&total)[0].1, "\"total\";q=9");
        assert_eq!(tighter(Some(s.clone()), Some(total.clone())), Some(total));
        assert_eq!(tighter(None, Some(s.clone())), Some(s));
    }

    #[test]
    fn a_young_keys_first_requests_count_in_its_baseline() {
        // Four groups of 5 requests, 3.2 s apart, on a key made mid-second; then
        // a burst. Window 2 s, floor 5: a new key would trip at its 6th request.
        let cfg = BreakerConfig {
            enabled: true,
            factor: 3.0,
            window_ms: 2000,
            cooldown_ms: 3000,
            floor: 5,
            history_ms: 60_000,
        };
        let created = T0 + 437;
        let mut l = Ledger::new(&KEY_LEVELS);
        let mut t = created + 20;
        for _ in 0..4 {
            for _ in 0..5 {
                l.add(t, 1);
                t += 15;
            }
            t += 3200;
        }
        let (threshold, baseline) = breaker_threshold(&l, &cfg, created, t);
        assert!((3.5..3.7).contains(&baseline), "baseline {baseline}");
        assert_eq!(threshold, 11);
    }
}
