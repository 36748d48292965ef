//! Budget leases on accounts in this isolate (`objects::held_budget`): row 15
//! decided from a slice of the account-wide limits without a call to the
//! account's object, per account and region (`lease_slots`). A retired lease's
//! report (what it charged) rides the account's lane once its last request is
//! settled.

use super::context::RequestContext;
use super::lease_slots::{self, Slots};
use crate::config::Config;
use crate::edge::js::rpc::{self, background, Object, To, Waits};
use crate::edge::js::runtime::{self, now_ms};
use crate::edge::js::task;
use crate::limits::admission::LimitState;
use crate::limits::plans::PlanCopy;
use crate::objects::account::{AccountAdmitted, AccountCommand, BudgetGrant};
use crate::objects::held_budget::HeldBudget;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{console_error, Context, Env};

thread_local! {
    static SLOTS: Slots<HeldBudget> = RefCell::new(HashMap::new());
}

/// Row 15 taken from this isolate's slice.
pub struct Taken {
    pub lease: u64,
    pub plan: PlanCopy,
    pub limit: Option<LimitState>,
}

/// Credits to ask the account's object to lend with this admission (0: the
/// account is quiet here).
pub fn want(cfg: &Config, account: &str, now: i64) -> u64 {
    if cfg.key_lease_ms == 0 {
        return 0;
    }
    lease_slots::with_slot(&SLOTS, account, |slot| slot.want(now)).unwrap_or(0)
}

/// Takes `cost` from this isolate's slice of the account's limits, when it
/// holds one that can; asks for the next one in the background past its half.
pub fn take(rc: &RequestContext<'_>, account: &str, cost: u64) -> Option<Taken> {
    let now = now_ms();
    let (taken, renew) = lease_slots::with_slot(&SLOTS, account, |slot| {
        let held = slot.current.as_mut()?;
        let limit = held.take(cost, now)?;
        let taken = Taken {
            lease: held.grant.id,
            plan: held.plan.clone(),
            limit,
        };
        let wants_renewal = held.holding.wants_renewal(now);
        slot.note(now);
        let renew = !slot.renewing && wants_renewal;
        if renew {
            slot.renewing = true;
        }
        Some((taken, renew.then(|| slot.rate_want())))
    })??;
    if let Some(want) = renew {
        renew_later(rc.ctx, rc.env, account, want);
    }
    Some(taken)
}

/// A slice the account's object lent with an admission: replaces the current one.
pub fn install(ctx: &Context, env: &Env, account: &str, grant: BudgetGrant, plan: PlanCopy) {
    let (id, until) = (grant.id, grant.until);
    let held = HeldBudget::new(grant, plan);
    if lease_slots::with_slot(&SLOTS, account, |slot| slot.install(held)).is_none() {
        return;
    }
    flush(ctx, env, account);
    let (ctx2, env2, name) = (task::owned_context(ctx), env.clone(), account.to_string());
    lease_slots::retire_at_end(ctx, &SLOTS, account, id, until, move || {
        flush(&ctx2, &env2, &name)
    });
}

/// A request taken from lease `lease` is done: its `cost` stays charged or
/// comes back to the slice.
pub fn settle(ctx: &Context, env: &Env, account: &str, lease: u64, cost: u64, charged: bool) {
    let found = lease_slots::with_slot(&SLOTS, account, |slot| {
        let held = slot
            .current
            .iter_mut()
            .chain(slot.retired.iter_mut())
            .find(|h| h.grant.id == lease)?;
        held.settle(cost, charged);
        Some(())
    })
    .flatten();
    if found.is_none() {
        console_error!("account {account}: budget lease {lease} not held");
    }
    flush(ctx, env, account);
}

/// Sends the report of every retired slice whose requests are all settled.
fn flush(ctx: &Context, env: &Env, account: &str) {
    let reports = lease_slots::with_slot(&SLOTS, account, |slot| {
        let reports: Vec<_> = slot
            .retired
            .iter_mut()
            .filter_map(HeldBudget::report)
            .collect();
        slot.drop_reported();
        reports
    })
    .unwrap_or_default();
    let linger_ms = runtime::config(env).map_or(0, |c| c.settle_linger_ms);
    for r in reports {
        let cmd = AccountCommand::Report {
            lease: r.lease,
            charged: r.charged,
        };
        background(ctx, env, linger_ms, To::Account(account.to_string()), cmd);
    }
}

/// Asks for the next slice in the background; the current one admits meanwhile.
fn renew_later(ctx: &Context, env: &Env, account: &str, want: u64) {
    let (ctx2, env2, name) = (task::owned_context(ctx), env.clone(), account.to_string());
    task::wait_until(ctx, async move {
        let cmd = AccountCommand::Admit {
            cost: 0,
            want,
            free: false,
        };
        let to = Object::Account(&name);
        let answer =
            rpc::submit::<AccountAdmitted>(&env2, &ctx2, to, &cmd, None, Waits::ForAdmissions)
                .await;
        match answer {
            Ok(AccountAdmitted {
                budget: Some(grant),
                plan,
                ..
            }) => install(&ctx2, &env2, &name, grant, plan),
            _ => {
                lease_slots::with_slot(&SLOTS, &name, |slot| slot.renewing = false);
            }
        }
    });
}
