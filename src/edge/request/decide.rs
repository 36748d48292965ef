//! Rows 4–15 in one concurrent round trip: the key's object decides rows 3–14
//! against its authoritative record (and a copy of the account's plan), the
//! account's object row 15 (account-wide limits) and answers with the plan
//! version every admission is decided under. Both go through their object's lane
//! (group commit); either side may be decided here instead, from a budget lease
//! this isolate holds (`leased`, `account_leased`). When one side refuses, what
//! the other reserved is given back after the answer (`settle`); the key's log
//! row records the refusal.

use super::account_leased;
use super::context::{Presented, RequestContext};
use super::leased;
use super::relocate;
use super::settle::{self, Admission};
use crate::edge::js::rpc::{self, Object, Waits};
use crate::edge::js::runtime::{self, now_ms};
use crate::edge::js::task;
use crate::error::ApiError;
use crate::key::check::{self, AccessRequest};
use crate::key::record::HashEntry;
use crate::limits::admission;
use crate::limits::plans::PlanCopy;
use crate::limits::reservation::Settlement;
use crate::notify::logs::Via;
use crate::objects::account::{AccountAdmitted, AccountCommand};
use crate::objects::held_lease::LocalAdmission;
use crate::objects::key::{Admitted, CheckItem, KeyCommand};
use crate::request::faults::Target;
use crate::request::policy::Needs;
use futures_util::future::{join, join_all};

pub async fn admit(
    rc: &RequestContext<'_>,
    needs: &Needs,
    presented: Presented<'_>,
    entry: HashEntry,
    hash: String,
) -> Result<Admission, ApiError> {
    let Presented { facts, grace, .. } = presented;
    let cost = needs.cost;
    let request = AccessRequest {
        hash: hash.clone(),
        deployment_env: rc.cfg.environment,
        client_ip: facts.ip.clone(),
        permissions: needs.permissions.clone(),
        projects: needs.projects.clone(),
        grace,
    };
    let leased_plan = runtime::leased_plan(&entry.account, now_ms());
    if leased_plan.is_some()
        && runtime::renew_plan_now(&entry.account, now_ms(), rc.cfg.plan_lease_ms)
    {
        renew_plan(rc, &entry.account);
    }
    // Row 15 from this isolate's slice of the account-wide limits, when it
    // holds one (`account_leased`): the plan is the one it was lent under.
    let budget = match &leased_plan {
        None if facts.via == Via::Gate => account_leased::take(rc, &entry.account, cost),
        _ => None,
    };
    let known_plan = leased_plan.or_else(|| budget.as_ref().map(|b| b.plan.clone()));
    let budget_taken = budget.as_ref().map(|b| (b.lease, cost));
    let budget_limit = budget.as_ref().and_then(|b| b.limit.clone());
    let local_admission = |local: LocalAdmission, entry: HashEntry| Admission {
        identity: local.identity,
        key_id: entry.id,
        reservation: local.row,
        account: entry.account,
        account_charge: None,
        account_lease: budget_taken,
        limit: admission::tighter(local.limit, budget_limit.clone()),
        started: rc.started,
        lease: Some(local.lease),
        parents: Vec::new(),
    };
    // A hot key with a budget lease here: admitted without a call (`leased`).
    if let Some(plan) = &known_plan {
        if let Some(local) = leased::admit(rc, &entry.id, &request, &facts, cost, plan.version) {
            return Ok(local_admission(local, entry));
        }
    }
    // A key's traffic here counts towards a lease whether or not the plan is
    // known now: lent meanwhile, its lease admits once the plan is.
    // A child key's ancestors admit each of its requests: it is never lent a slice.
    let child = !entry.parents.is_empty();
    let want_lease = match facts.via {
        Via::Gate if !child => leased::want(rc.cfg, &entry.id, now_ms()),
        _ => 0,
    };
    let hot = known_plan.is_some()
        && facts.via == Via::Gate
        && (want_lease > 0 || leased::holds_any(&entry.id));
    let item = |plan: Option<PlanCopy>, undo: Option<u64>| CheckItem {
        request: request.clone(),
        facts: facts.clone(),
        cost,
        plan,
        undo,
        want_lease: if undo.is_none() { want_lease } else { 0 },
        hot,
        region: task::client(),
        free: !needs.spends,
    };
    // One round trip: the key's object and the account's, concurrently. The key's
    // check carries the account's plan as this isolate last saw it. While this
    // isolate holds a lease on the plan, or a slice of its account-wide limits,
    // the account's answer is known and only the key is asked.
    // A child key's ancestors each admit it too, in the same round trip (`Carve`).
    let carves = join_all(entry.parents.iter().map(|parent| {
        let plan = known_plan
            .clone()
            .or_else(|| runtime::known_plan(&entry.account));
        check_key(rc, parent, KeyCommand::Carve(item(plan, None)))
    }));
    let pair = async {
        match known_plan.clone() {
            Some(plan) => {
                let check = KeyCommand::Check(item(Some(plan.clone()), None));
                let key = check_key(rc, &entry.id, check).await;
                let known = AccountAdmitted {
                    at: rc.started,
                    limit: budget_limit.clone(),
                    charged: 0,
                    plan,
                    lease_until: None,
                    budget: None,
                    credits_low: None,
                };
                (key, Ok(known))
            }
            None => {
                let want = match facts.via {
                    Via::Gate => account_leased::want(rc.cfg, &entry.account, now_ms()),
                    _ => 0,
                };
                let first = KeyCommand::Check(item(runtime::known_plan(&entry.account), None));
                join(
                    check_key(rc, &entry.id, first),
                    rpc::submit::<AccountAdmitted>(
                        rc.env,
                        rc.ctx,
                        Object::Account(&entry.account),
                        &AccountCommand::Admit {
                            cost,
                            want,
                            free: !needs.spends,
                        },
                        rc.fault(Target::AccountObject),
                        Waits::ForAdmissions,
                    ),
                )
                .await
            }
        }
    };
    let ((mut key, mut account), carved) = join(pair, carves).await;
    if let Ok(a) = &mut account {
        if let Some(grant) = a.budget.take() {
            account_leased::install(rc.ctx, rc.env, &entry.account, grant, a.plan.clone());
        }
        if let Some(data) = a.credits_low.take() {
            settle::announce(rc.ctx, rc.env, &entry.id, "credits.low", data);
        }
    }
    // The plan rule (`limits::plans`): a request the key admitted under an older
    // plan than the account's is undone and checked again under the current one,
    // in the key's object, before anything is admitted. A refusal under the older
    // plan stands; the next request carries the new plan.
    if let Ok(a) = &account {
        runtime::remember_plan(&entry.account, &a.plan, a.lease_until);
        if let Some(undo) = key
            .as_ref()
            .ok()
            .filter(|k| k.plan_version < a.plan.version)
            .map(|k| k.reservation)
        {
            let again = KeyCommand::Check(item(Some(a.plan.clone()), Some(undo)));
            key = check_key(rc, &entry.id, again).await;
        }
    }
    if let Some(grant) = key.as_mut().ok().and_then(|k| k.lease.take()) {
        leased::install(rc.ctx, rc.env, &entry.id, grant);
    }
    // Refused on rows 13–14 while credits were lent out (`CheckItem::hot`): this
    // isolate's own lease may admit it; if not, the refusal's row is ours to write.
    if let (true, Err(e @ (ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. }))) =
        (hot, &key)
    {
        let version = known_plan.as_ref().map_or(0, |p| p.version);
        if let Some(local) = leased::admit(rc, &entry.id, &request, &facts, cost, version) {
            return Ok(local_admission(local, entry));
        }
        leased::log_refusal(rc.ctx, rc.env, &entry.id, facts.refused(rc.started, e));
    }
    let reservation = key.as_ref().ok().map(|k| k.reservation);
    let account_charge = account
        .as_ref()
        .ok()
        .filter(|a| a.charged > 0)
        .map(|a| (a.at, a.charged));
    // All or nothing up the chain: what the ancestors reserved, and the lowest
    // row any of them refused on.
    let mut parents = Vec::with_capacity(carved.len());
    let mut parent_limit = None;
    let mut parent_refusal: Option<ApiError> = None;
    for (id, answer) in entry.parents.iter().zip(carved) {
        match answer {
            Ok(a) => {
                parents.push((id.clone(), a.reservation));
                parent_limit = admission::tighter(parent_limit, a.limit);
            }
            Err(e) if parent_refusal.as_ref().is_none_or(|p| e.row() < p.row()) => {
                parent_refusal = Some(e)
            }
            Err(_) => {}
        }
    }
    let combined = match (check::combine(key, account), parent_refusal) {
        (Ok(both), None) => Ok(both),
        (Ok(_), Some(e)) => Err(e),
        (Err(a), Some(b)) if b.row() < a.row() => Err(b),
        (Err(a), _) => Err(a),
    };
    match combined {
        Ok((key, account)) => Ok(Admission {
            identity: key.identity,
            key_id: entry.id,
            reservation: key.reservation,
            account: entry.account,
            account_charge,
            account_lease: budget_taken,
            limit: admission::tighter(admission::tighter(key.limit, account.limit), parent_limit),
            started: rc.started,
            lease: None,
            parents,
        }),
        Err(e) => {
            for (parent, id) in &parents {
                let refused = Settlement {
                    id: *id,
                    origin_status: None,
                    status: e.status(),
                    code: Some(e.code().to_string()),
                    duration_ms: rc.elapsed(),
                };
                settle::queue(rc.ctx, rc.env, rc.cfg, parent, refused);
            }
            if let Some(id) = reservation {
                let refused = Settlement {
                    id,
                    origin_status: None,
                    status: e.status(),
                    code: Some(e.code().to_string()),
                    duration_ms: rc.elapsed(),
                };
                settle::queue(rc.ctx, rc.env, rc.cfg, &entry.id, refused);
            }
            if let Some((at, cost)) = account_charge {
                settle::refund(rc.ctx, rc.env, rc.cfg, &entry.account, at, cost);
            }
            if let Some((lease, cost)) = budget_taken {
                account_leased::settle(rc.ctx, rc.env, &entry.account, lease, cost, false);
            }
            Err(e)
        }
    }
}

/// Renews the account's plan lease after the answer (an admission of nothing):
/// a request never waits for it.
fn renew_plan(rc: &RequestContext<'_>, account: &str) {
    let env = rc.env.clone();
    let account = account.to_string();
    let ctx = task::owned_context(rc.ctx);
    task::wait_until(rc.ctx, async move {
        let cmd = AccountCommand::Admit {
            cost: 0,
            want: 0,
            free: false,
        };
        let to = Object::Account(&account);
        let answer =
            rpc::submit::<AccountAdmitted>(&env, &ctx, to, &cmd, None, Waits::ForAdmissions).await;
        if let Ok(a) = answer {
            runtime::remember_plan(&account, &a.plan, a.lease_until);
        }
    });
}

/// A check through the key's lane.
async fn check_key(
    rc: &RequestContext<'_>,
    id: &str,
    cmd: KeyCommand,
) -> Result<Admitted, ApiError> {
    let fault = rc.fault(Target::KeyObject);
    let admitted: Admitted = rpc::submit(
        rc.env,
        rc.ctx,
        Object::Key(id),
        &cmd,
        fault,
        Waits::ForAdmissions,
    )
    .await?;
    if let Some(region) = admitted.move_to {
        relocate::start(rc.ctx, rc.env, id, region);
    }
    Ok(admitted)
}
