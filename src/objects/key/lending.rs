//! Budget leases, the key's side (`limits::budget_lease`): lending a hot isolate a
//! slice of the key's credits with a copy of the record to check requests
//! against, and taking back its report — the rows of the requests it admitted,
//! what they were charged — when the isolate retires the lease.

use super::*;
use crate::limits::budget_lease;

/// What a lease gives an isolate: credits until a time, a block of log row ids,
/// and the record (and plan version) to decide rows 3–11 with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub id: u64,
    pub credits: u64,
    /// The object's clock; the isolate stops `plan_lease::MARGIN_MS` early.
    pub granted_at: i64,
    pub until: i64,
    /// Row ids `ids_from ..< ids_from + credits`, one per admitted request.
    pub ids_from: u64,
    pub record: Box<KeyRecord>,
    pub plan_version: u64,
    /// The tightest limit with the slice taken: what is left outside it.
    pub limit: Option<LimitState>,
}

/// What an isolate reports of a lease it retired, once every request it
/// admitted from it was settled: their completed log rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseReport {
    pub lease: u64,
    pub rows: Vec<LogEntry>,
}

/// Lends up to `want` credits when the request `request` would pass rows 3–11
/// with the key's current secret and rows 12–14 would admit the whole slice.
#[allow(clippy::too_many_arguments)]
pub(super) fn lend(
    rec: &KeyRecord,
    ledger: &mut Ledger,
    reservations: &mut Reservations,
    book: &mut LeaseBook,
    cfg: &Config,
    request: &AccessRequest,
    want: u64,
    now: i64,
) -> (Effects, Option<LeaseGrant>) {
    let none = (Effects::none(), None);
    // A balance is spent request by request here: never lent (row 16 stays exact).
    // Nor is a child key's: each of its ancestors admits each of its requests.
    let spent_here = rec.credits.is_some() || !rec.parents.is_empty();
    if cfg.key_lease_ms == 0 || want == 0 || rec.hash != request.hash || spent_here {
        return none;
    }
    let plan = cfg.plan(rec.plan.as_deref()).1;
    if check_key(rec, request, plan, now).is_err() {
        return none;
    }
    let rate = admission::effective_rate_limits(&rec.rate_limits, plan);
    let states = admission::key_limit_states(ledger, &rate, &rec.quotas, now);
    let shortest = states
        .iter()
        .filter_map(|s| s.window)
        .map(|w| w as i64 * 1000)
        .chain(cfg.breaker.enabled.then_some(cfg.breaker.window_ms))
        .min();
    let mut until = now + budget_lease::duration(cfg.key_lease_ms, shortest);
    if let Some(end) = rec.expires_at {
        until = until.min(end);
    }
    if until - now < 100 {
        return none;
    }
    let headroom = states.iter().map(|s| s.remaining).min().unwrap_or(u64::MAX);
    let admission = KeyAdmission {
        ledger,
        rate,
        quotas: rec.quotas,
        breaker: cfg.breaker,
        suspended_until: rec.suspended_until,
        created_at: rec.created_at,
    };
    // The whole slice must pass rows 12–14 and the breaker, as one request of
    // that cost would.
    let mut credits = budget_lease::size(want, headroom);
    while credits > 0
        && !matches!(
            admission::decide(&admission, now, credits),
            Verdict::Admit(_)
        )
    {
        credits /= 2;
    }
    if credits == 0 {
        return none;
    }
    let ids_from = reservations.block(now, credits);
    let mut fx = Effects::none();
    fx.buckets = book.grant(ledger, ids_from, credits, now, until);
    fx.lease_book = true;
    let limit = admission::key_limit_states(ledger, &rate, &rec.quotas, now)
        .into_iter()
        .min_by_key(|s| (s.remaining, s.limit));
    let grant = LeaseGrant {
        id: ids_from,
        credits,
        granted_at: now,
        until,
        ids_from,
        record: Box::new(rec.clone()),
        plan_version: rec.plan_version,
        limit,
    };
    (fx, Some(grant))
}

/// A retired lease's report: the slice leaves the ledger, what it charged is
/// counted (no earlier than any of its uses), its rows are written and its
/// charged requests are uses. A lease reported before is ignored.
pub(super) fn take_report(
    rec: &mut KeyRecord,
    ledger: &mut Ledger,
    usage: &mut Usage,
    book: &mut LeaseBook,
    report: LeaseReport,
    now: i64,
) -> Effects {
    let charged: u64 = report
        .rows
        .iter()
        .filter(|r| r.state == LogState::Completed && r.code.is_none())
        .map(|r| r.credits)
        .sum();
    let Some(buckets) = book.settle(ledger, report.lease, charged, now) else {
        // No lease of that id outstanding: only the refusals it carries are rows.
        let refusals = report
            .rows
            .into_iter()
            .filter(|r| r.credits == 0 && r.code.is_some());
        return Effects {
            logs: refusals.collect(),
            ..Effects::none()
        };
    };
    let mut fx = Effects::none();
    fx.buckets = buckets;
    fx.lease_book = true;
    for row in report
        .rows
        .iter()
        .filter(|r| r.credits > 0 && r.code.is_none())
    {
        rec.usage_count += 1;
        rec.last_used_at = rec.last_used_at.max(Some(row.at));
        fx.usage.push(usage.add(row.at, row.credits));
    }
    if rec.usage_count > 0 && charged > 0 {
        fx.usage_prune = usage.prune(now);
        fx.record = Change::Use;
    }
    fx.logs = report.rows;
    fx
}

/// Every lease past its end without a report counts at its end (at most once).
pub(super) fn lapse(ledger: &mut Ledger, book: &mut LeaseBook, now: i64) -> Effects {
    let (buckets, changed) = book.lapse(ledger, now);
    Effects {
        buckets,
        lease_book: changed,
        ..Effects::none()
    }
}
