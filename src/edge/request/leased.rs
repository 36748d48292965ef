//! Budget leases on keys in this isolate (`objects::held_lease`): per key and
//! region (`lease_slots`), the lease requests are admitted from without a call,
//! and the retired ones whose reports are still due. A retired lease's report
//! rides the key's lane once its last request is settled.

use super::context::RequestContext;
use super::lease_slots::{self, Slots};
use crate::config::Config;
use crate::edge::js::rpc::{self, background, Object, To, Waits};
use crate::edge::js::runtime::{self, now_ms};
use crate::edge::js::task;
use crate::key::check::AccessRequest;
use crate::limits::reservation::Settlement;
use crate::notify::logs::LogEntry;
use crate::notify::logs::RequestFacts;
use crate::objects::held_lease::{Held, LocalAdmission};
use crate::objects::key::{KeyCommand, LeaseGrant, LeaseReport};
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{Context, Env};

thread_local! {
    static SLOTS: Slots<Held> = RefCell::new(HashMap::new());
}

fn with_slot<T>(key_id: &str, f: impl FnOnce(&mut lease_slots::Slot<Held>) -> T) -> Option<T> {
    lease_slots::with_slot(&SLOTS, key_id, f)
}

/// Credits to ask a lease for with this admission (0: the key is quiet here,
/// or a live lease is held: `lease_slots`).
pub fn want(cfg: &Config, key_id: &str, now: i64) -> u64 {
    if cfg.key_lease_ms == 0 {
        return 0;
    }
    with_slot(key_id, |slot| slot.want(now)).unwrap_or(0)
}

/// Admits from this isolate's lease on the key, when it has one that can.
pub fn admit(
    rc: &RequestContext<'_>,
    key_id: &str,
    request: &AccessRequest,
    facts: &RequestFacts,
    cost: u64,
    plan_version: u64,
) -> Option<LocalAdmission> {
    let now = now_ms();
    let (admitted, renew) = with_slot(key_id, |slot| {
        let held = slot.current.as_mut()?;
        let admitted = held.admit(rc.cfg, request, facts, cost, plan_version, now)?;
        let wants_renewal = held.holding.wants_renewal(now);
        slot.note(now);
        let renew = !slot.renewing && wants_renewal;
        if renew {
            slot.renewing = true;
        }
        Some((admitted, renew.then(|| slot.rate_want())))
    })??;
    if let Some(want) = renew {
        renew_later(rc, key_id, request.clone(), want);
    }
    Some(admitted)
}

/// A lease the key's object lent with a check: replaces the current one.
pub fn install(ctx: &Context, env: &Env, key_id: &str, grant: LeaseGrant) {
    let (id, until) = (grant.id, grant.until);
    if with_slot(key_id, |slot| slot.install(Held::new(grant))).is_none() {
        return;
    }
    flush(ctx, env, key_id);
    let (ctx2, env2, key) = (task::owned_context(ctx), env.clone(), key_id.to_string());
    lease_slots::retire_at_end(ctx, &SLOTS, key_id, id, until, move || {
        flush(&ctx2, &env2, &key)
    });
}

/// Whether this isolate holds, or still has to report, a lease on the key.
pub fn holds_any(key_id: &str) -> bool {
    with_slot(key_id, |slot| slot.holds_any()).unwrap_or(false)
}

/// The row of a refusal the key's object left to this isolate (`CheckItem::hot`):
/// it goes with a lease's report, or alone when none is left to carry it.
pub fn log_refusal(ctx: &Context, env: &Env, key_id: &str, row: LogEntry) {
    let kept = with_slot(key_id, |slot| {
        let mut row = Some(row);
        for held in slot.current.iter_mut().chain(slot.retired.iter_mut()) {
            if let Some(r) = row.take() {
                if !held.keep_row(r.clone()) {
                    row = Some(r);
                }
            }
        }
        row
    });
    if let Some(Some(row)) = kept {
        send_report(
            ctx,
            env,
            key_id,
            LeaseReport {
                lease: 0,
                rows: vec![row],
            },
        );
    }
}

/// Completes a request admitted from lease `lease`; true when it was one.
pub fn settle(
    ctx: &Context,
    env: &Env,
    cfg: &Config,
    key_id: &str,
    lease: u64,
    s: &Settlement,
) -> bool {
    let charged = s.code.is_none() && cfg.charge_on.charges(s.origin_status);
    let found = with_slot(key_id, |slot| {
        slot.current
            .iter_mut()
            .chain(slot.retired.iter_mut())
            .find(|h| h.grant.id == lease)
            .is_some_and(|h| h.settle(s, charged))
    })
    .unwrap_or(false);
    flush(ctx, env, key_id);
    found
}

/// Sends the report of every retired lease whose requests are all settled.
fn flush(ctx: &Context, env: &Env, key_id: &str) {
    let reports = with_slot(key_id, |slot| {
        let reports: Vec<_> = slot.retired.iter_mut().filter_map(Held::report).collect();
        slot.drop_reported();
        reports
    })
    .unwrap_or_default();
    for report in reports {
        send_report(ctx, env, key_id, report);
    }
}

fn send_report(ctx: &Context, env: &Env, key_id: &str, report: LeaseReport) {
    let linger_ms = runtime::config(env).map_or(0, |c| c.settle_linger_ms);
    let to = To::Key(key_id.to_string());
    background(ctx, env, linger_ms, to, KeyCommand::Report(report));
}

/// Asks for the next lease in the background; the current one admits meanwhile.
fn renew_later(rc: &RequestContext<'_>, key_id: &str, request: AccessRequest, want: u64) {
    let (ctx2, env2, key) = (
        task::owned_context(rc.ctx),
        rc.env.clone(),
        key_id.to_string(),
    );
    task::wait_until(rc.ctx, async move {
        let cmd = KeyCommand::Lease {
            request,
            want,
            plan: None,
        };
        let answer = rpc::submit::<Option<LeaseGrant>>(
            &env2,
            &ctx2,
            Object::Key(&key),
            &cmd,
            None,
            Waits::ForAdmissions,
        )
        .await;
        match answer {
            Ok(Some(grant)) => install(&ctx2, &env2, &key, grant),
            _ => {
                with_slot(&key, |slot| slot.renewing = false);
            }
        }
    });
}
