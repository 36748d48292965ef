//! Budget leases in this isolate (`objects::held_lease`): per key and region, the
//! lease requests are admitted from without a call, the retired ones whose
//! reports are still due, and what tells a hot key from a quiet one.
//!
//! A key is hot here when its traffic through this isolate is sustained: at
//! least `HOT_PER_SECOND` requests a second over the last `HOT_MS`, the oldest
//! of them over a second old (a single burst is not sustained traffic, and is
//! decided by the key's object request by request). Its next check asks for a
//! lease. A live lease is renewed in
//! the background once half of it is used or gone, so no request waits for it;
//! it ends at its time (a task of the request that brought it waits for that) or
//! when the next one arrives. A retired lease's report rides the key's lane once
//! its last request is settled.

use super::context::RequestContext;
use crate::config::Config;
use crate::edge::js::rpc::{self, Object, Waits};
use crate::edge::js::runtime::{self, now_ms};
use crate::edge::js::{deadline, task};
use crate::key::check::AccessRequest;
use crate::limits::plan_lease;
use crate::limits::reservation::Settlement;
use crate::notify::logs::LogEntry;
use crate::notify::logs::RequestFacts;
use crate::objects::held_lease::{Held, LocalAdmission};
use crate::objects::key::{KeyCommand, LeaseGrant, LeaseReport};
use crate::request::regions::Region;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use worker::{console_error, Context, Env};

/// Requests per second through this isolate that make a key hot, over `HOT_MS`.
const HOT_PER_SECOND: usize = 8;
const HOT_MS: i64 = 2_000;
/// Bound on the keys this isolate keeps leases for; past it, new ones get none.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
struct Slot {
    current: Option<Held>,
    retired: Vec<Held>,
    renewing: bool,
    /// Recent admissions here (ms), for `want`.
    recent: VecDeque<i64>,
}

thread_local! {
    static SLOTS: RefCell<HashMap<String, Slot>> = RefCell::new(HashMap::new());
}

fn slot_name(key_id: &str) -> String {
    let region = task::region().map_or("", Region::name);
    format!("{key_id}\u{0}{region}")
}

fn with_slot<T>(key_id: &str, f: impl FnOnce(&mut Slot) -> T) -> Option<T> {
    SLOTS.with(|s| {
        let mut map = s.try_borrow_mut().ok()?;
        let name = slot_name(key_id);
        if !map.contains_key(&name) && map.len() >= MAX_KEYS {
            map.retain(|_, slot| slot.current.is_some() || !slot.retired.is_empty());
            if map.len() >= MAX_KEYS {
                return None;
            }
        }
        Some(f(map.entry(name).or_default()))
    })
}

/// Credits to ask a lease for with this admission (0: the key is quiet here):
/// see `rate_want`.
pub fn want(cfg: &Config, key_id: &str, now: i64) -> u64 {
    if cfg.key_lease_ms == 0 {
        return 0;
    }
    with_slot(key_id, |slot| {
        note(slot, now);
        let live = slot.current.as_ref().is_some_and(|h| h.live(now));
        let sustained = slot.recent.front().is_some_and(|t| now - t >= 1_000);
        let busy = slot.recent.len() >= HOT_PER_SECOND * (HOT_MS / 1_000) as usize;
        if live || !sustained || !busy {
            0
        } else {
            rate_want(slot)
        }
    })
    .unwrap_or(0)
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
        let wants_renewal = held.wants_renewal(now);
        note(slot, now);
        let renew = !slot.renewing && wants_renewal;
        if renew {
            slot.renewing = true;
        }
        Some((admitted, renew.then(|| rate_want(slot))))
    })??;
    if let Some(want) = renew {
        renew_later(rc, key_id, request.clone(), want);
    }
    Some(admitted)
}

fn note(slot: &mut Slot, now: i64) {
    slot.recent.push_back(now);
    while slot.recent.front().is_some_and(|t| *t <= now - HOT_MS) {
        slot.recent.pop_front();
    }
}

/// Four times the key's traffic here over the last `HOT_MS`, at least 64: a
/// key admitted without a call is sent more requests than one waiting on its
/// object, and a slice spent before the next arrives sends them to the object.
/// What is not used comes back with the report.
fn rate_want(slot: &Slot) -> u64 {
    (slot.recent.len() as u64 * 4).max(64)
}

/// A lease the key's object lent with a check: replaces the current one.
pub fn install(ctx: &Context, env: &Env, key_id: &str, grant: LeaseGrant) {
    let until = grant.until;
    let id = grant.id;
    let ready = with_slot(key_id, |slot| {
        if let Some(mut old) = slot.current.take() {
            old.retired = true;
            slot.retired.push(old);
        }
        slot.current = Some(Held::new(grant));
        slot.renewing = false;
    });
    if ready.is_none() {
        return;
    }
    flush(ctx, env, key_id);
    // At its end the lease retires even if nothing else comes for the key.
    let (ctx2, env2, key) = (task::owned_context(ctx), env.clone(), key_id.to_string());
    task::wait_until(ctx, async move {
        deadline::sleep(until - plan_lease::MARGIN_MS - now_ms()).await;
        with_slot(&key, |slot| {
            if slot.current.as_ref().is_some_and(|h| h.grant.id == id) {
                if let Some(mut old) = slot.current.take() {
                    old.retired = true;
                    slot.retired.push(old);
                }
            }
        });
        flush(&ctx2, &env2, &key);
    });
}

/// Whether this isolate holds, or still has to report, a lease on the key.
pub fn holds_any(key_id: &str) -> bool {
    with_slot(key_id, |slot| {
        slot.current.is_some() || !slot.retired.is_empty()
    })
    .unwrap_or(false)
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
        slot.retired.retain(|h| h.report_pending());
        reports
    })
    .unwrap_or_default();
    for report in reports {
        send_report(ctx, env, key_id, report);
    }
}

fn send_report(ctx: &Context, env: &Env, key_id: &str, report: LeaseReport) {
    let cmd = KeyCommand::Report(report);
    let (ctx2, env2, key) = (task::owned_context(ctx), env.clone(), key_id.to_string());
    let linger_ms = runtime::config(env).map_or(0, |c| c.settle_linger_ms);
    let waits = Waits::Settles { linger_ms };
    task::wait_until(ctx, async move {
        let sent =
            rpc::submit::<serde_json::Value>(&env2, &ctx2, Object::Key(&key), &cmd, None, waits)
                .await;
        if let Err(e) = sent {
            console_error!("key {key}: lease report failed: {e:?}");
        }
    });
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
