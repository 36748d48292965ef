//! The request path inside a key's object: rows 3–14 and the reservation of an
//! admitted request's credits, its settlement (commit or release) and the release
//! of one no settlement came for.

use super::*;

/// One request: an undo of its admission under a superseded plan, the plan it
/// carries, then rows 3–14.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_item(
    rec: &mut KeyRecord,
    ledger: &mut Ledger,
    reservations: &mut Reservations,
    book: &mut LeaseBook,
    cfg: &Config,
    item: CheckItem,
    now: i64,
) -> Outcome {
    let CheckItem {
        request,
        facts,
        cost,
        plan,
        undo,
        want_lease,
        hot,
        region: _,
        free,
    } = item;
    let mut fx = Effects::none();
    if let Some(r) = undo.and_then(|id| reservations.take(id)) {
        fx.buckets.extend(ledger.remove(r.at, r.cost));
        super::spending::refund(rec, r.at, r.spent, &mut fx);
        fx.release.push(r.id);
        fx.log_updates
            .push(LogUpdate::Discard { reservation: r.id });
    }
    if let Some(copy) = plan {
        fx = fx.then(take_plan(rec, copy));
    }
    // A refill that fell due is done before the request spends.
    super::spending::refill(rec, cfg, now, &mut fx);
    // A hot isolate's request may bring back a lease for the next ones.
    let want = (facts.via == Via::Gate).then_some((book, want_lease, hot));
    let (checked, reply) = check(
        rec,
        ledger,
        reservations,
        cfg,
        &request,
        &facts,
        cost,
        want,
        !free,
        now,
    );
    (fx.then(checked), reply)
}

/// One settlement: the request counts as a use when it is charged (`CHARGE_ON`);
/// otherwise its credits go back. Either way its log row is completed. A
/// reservation already settled or released is not touched again.
#[allow(clippy::too_many_arguments)]
pub(super) fn settle(
    rec: &mut KeyRecord,
    ledger: &mut Ledger,
    usage: &mut Usage,
    reservations: &mut Reservations,
    cfg: &Config,
    s: Settlement,
    now: i64,
    fx: &mut Effects,
) {
    let Some(r) = reservations.take(s.id) else {
        return;
    };
    fx.release.push(r.id);
    let charged = s.code.is_none() && cfg.charge_on.charges(s.origin_status);
    if charged {
        rec.usage_count += 1;
        rec.last_used_at = rec.last_used_at.max(Some(r.at));
        fx.usage.push(usage.add(r.at, r.cost));
        fx.usage_prune = usage.prune(now);
        if fx.record == Change::None {
            fx.record = Change::Use;
        }
    } else {
        fx.buckets.extend(ledger.remove(r.at, r.cost));
        super::spending::refund(rec, r.at, r.spent, fx);
    }
    fx.log_updates.push(LogUpdate::Settle {
        reservation: r.id,
        state: LogState::Completed,
        status: s.status,
        code: s.code,
        duration_ms: s.duration_ms,
        credits: if charged { r.cost } else { 0 },
    });
}

/// A reservation no settlement came for (the isolate died, the answer was never
/// reported): its credits go back, here and in the account's object, and its
/// row says so.
pub(super) fn abandon(
    rec: &mut KeyRecord,
    ledger: &mut Ledger,
    cfg: &Config,
    r: Reservation,
    fx: &mut Effects,
) {
    fx.buckets.extend(ledger.remove(r.at, r.cost));
    super::spending::refund(rec, r.at, r.spent, fx);
    fx.release.push(r.id);
    fx.log_updates.push(LogUpdate::Settle {
        reservation: r.id,
        state: LogState::Abandoned,
        status: 0,
        code: None,
        duration_ms: 0,
        credits: 0,
    });
    let plan = cfg.plan(rec.plan.as_deref()).1;
    if plan.is_some_and(|p| p.account_limits != Default::default()) {
        fx.notices.push(Notice::AccountRefund {
            account: rec.account.clone(),
            at: r.at,
            cost: r.cost,
        });
    }
}

/// The account's plan, when newer than the key's copy. Not a management change of
/// the key: its revision (and the index row) stay as they are.
pub(super) fn take_plan(rec: &mut KeyRecord, copy: PlanCopy) -> Effects {
    if copy.version <= rec.plan_version {
        return Effects::none();
    }
    rec.plan = Some(copy.plan);
    rec.plan_version = copy.version;
    Effects::put()
}

/// A management change: applied, given the next revision, persisted and answered.
#[allow(clippy::too_many_arguments)]
pub(super) fn check(
    rec: &mut KeyRecord,
    ledger: &mut Ledger,
    reservations: &mut Reservations,
    cfg: &Config,
    request: &AccessRequest,
    facts: &RequestFacts,
    cost: u64,
    lease: Option<(&mut LeaseBook, u64, bool)>,
    spends: bool,
    now: i64,
) -> Outcome {
    let refuse = |mut fx: Effects, e: ApiError| {
        fx.logs.push(facts.refused(now, &e));
        (fx, Err(e))
    };
    // A hot isolate's request refused on rows 13–14 may yet be admitted from its
    // own lease: that isolate writes the refusal's row if it stands
    // (`edge::request::leased`).
    let hot = lease.as_ref().is_some_and(|(_, _, hot)| *hot);
    let refuse_limit = |fx: Effects, e: ApiError| {
        if hot {
            (fx, Err(e))
        } else {
            refuse(fx, e)
        }
    };
    let plan = cfg.plan(rec.plan.as_deref()).1;
    let identity = match check_key(rec, request, plan, now) {
        // A verify call answers with the key's metadata; the gate does not need it.
        Ok(identity) if facts.via == Via::Verify => Identity {
            metadata: Some(rec.metadata.clone()),
            ..identity
        },
        Ok(identity) => identity,
        // Not this key's holder: nothing to log against the key.
        Err(ApiError::InvalidKey) => return (Effects::none(), Err(ApiError::InvalidKey)),
        Err(e) => return refuse(Effects::none(), e),
    };
    let admission = KeyAdmission {
        ledger,
        rate: admission::effective_rate_limits(&rec.rate_limits, plan),
        quotas: rec.quotas,
        breaker: cfg.breaker,
        suspended_until: rec.suspended_until,
        created_at: rec.created_at,
    };
    match admission::decide(&admission, now, cost) {
        Verdict::Refuse(ApiError::RateLimited { retry_after }) => {
            let mut fx = Effects::none();
            let rate = admission::effective_rate_limits(&rec.rate_limits, plan);
            let exceeded: Vec<LimitState> =
                admission::key_limit_states(ledger, &rate, &Quotas::default(), now)
                    .into_iter()
                    .filter(|l| l.remaining < cost)
                    .collect();
            if let Some(alert) =
                alerts::rate_limited_alert(&mut rec.alerts, &exceeded, retry_after, now)
            {
                fx.record = Change::Put;
                announce(&mut fx, rec, cfg, now, alert);
            }
            refuse_limit(fx, ApiError::RateLimited { retry_after })
        }
        Verdict::Refuse(e @ ApiError::QuotaExceeded { .. }) => refuse_limit(Effects::none(), e),
        Verdict::Refuse(e) => refuse(Effects::none(), e),
        Verdict::Trip {
            until,
            count,
            threshold,
            baseline,
        } => {
            rec.suspended_until = Some(until);
            let details = json!({
                "suspended_until": to_rfc3339(until),
                "window_seconds": cfg.breaker.window_ms / 1000,
                "credits_in_window": count,
                "threshold": threshold,
                "baseline": baseline,
                "factor": cfg.breaker.factor,
            });
            let mut fx = Effects::put();
            fx.notices.push(Notice::Audit {
                event: event(rec, cfg, now, "key.suspended", details.clone()),
            });
            fx.notices.push(Notice::Webhook {
                event: "key.suspended".into(),
                at: now,
                data: key_data(&rec.id, &rec.account, &rec.prefix, &details),
            });
            fx.alarm_at = Some(until);
            let retry_after = crate::time_fmt::retry_after(until - now);
            refuse(fx, ApiError::KeySuspended { retry_after })
        }
        Verdict::Admit(limit) => {
            // Row 16, after every limit admitted: the balance pays or nothing is taken.
            let spent = if spends { cost } else { 0 };
            if let Err(e) = super::spending::covers(rec, spent, now) {
                return refuse(Effects::none(), e);
            }
            // Reserved: counted against every limit now, a use once settled.
            let r = reservations.open(now, cost, cfg.reservation_timeout_ms);
            let r = match rec.credits.is_some() && spent > 0 {
                true => reservations.spending(r.id, spent).unwrap_or(r),
                false => r,
            };
            let mut fx = Effects::none();
            super::spending::spend(rec, cfg, spent, now, &mut fx);
            fx.buckets = ledger.add(now, cost);
            fx.prune = ledger.prune(now);
            fx.reserve.push(r);
            fx.logs.push(facts.pending(now, cost, r.id));
            if rec.quotas != Quotas::default() && !cfg.alerts.quota_percents.is_empty() {
                let quotas =
                    admission::key_limit_states(ledger, &RateLimits::default(), &rec.quotas, now);
                let before = rec.alerts.clone();
                for alert in
                    alerts::quota_alerts(&mut rec.alerts, &quotas, &cfg.alerts.quota_percents)
                {
                    announce(&mut fx, rec, cfg, now, alert);
                }
                if rec.alerts != before {
                    fx.record = Change::Put;
                }
            }
            let grant = match lease.filter(|(_, want, _)| *want > 0) {
                Some((book, want, _)) => {
                    let (lent, grant) = super::lending::lend(
                        rec,
                        ledger,
                        reservations,
                        book,
                        cfg,
                        request,
                        want,
                        now,
                    );
                    fx = fx.then(lent);
                    grant
                }
                None => None,
            };
            let reply = Admitted {
                identity,
                at: now,
                reservation: r.id,
                limit,
                plan_version: rec.plan_version,
                lease: grant,
                move_to: None,
            };
            (fx, to_value(&reply))
        }
    }
}
