//! `/accounts/{id}`: an account's plan. An admin key reads its own account only and
//! never changes a plan.

use super::caller::Caller;
use crate::admin::input;
use crate::config::Config;
use crate::edge::js::deadline;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::now_ms;
use crate::edge::request::respond;
use crate::error::ApiError;
use crate::key::lifecycle::credits_view;
use crate::limits::credits;
use crate::objects::account::{AccountCommand, AccountView, Declared};
use serde_json::{json, Value};
use worker::{Env, Response};

fn view(cfg: &Config, id: &str, state: &AccountView) -> Result<Response, ApiError> {
    let (plan, details) = cfg.plan(state.plan.as_deref());
    respond::json(
        200,
        &json!({
            "id": id, "plan": plan, "plan_details": details,
            "plan_version": state.plan_version,
            "keys_total": state.keys_total, "keys_updated": state.keys_updated,
            "region": state.region,
            "credits": credits_view(state.credits.as_ref(), now_ms()),
        }),
    )
}

pub async fn get(caller: &Caller, env: &Env, cfg: &Config, id: &str) -> Result<Response, ApiError> {
    let valid = crate::key::names::identifier(&Value::String(id.to_string()), "account").is_ok();
    if !valid || !caller.may_see_account(id) {
        return Err(ApiError::NotFound {
            what: "account".into(),
        });
    }
    let state: AccountView = rpc::ask(env, Object::Account(id), &AccountCommand::Get).await?;
    view(cfg, id, &state)
}

/// Records the new plan in the account's object and answers; the object's alarm
/// then brings every key of the account to it in batches (`plan_change`), and
/// `GET` shows how far it got.
pub async fn put(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    if caller.key().is_some() {
        return Err(ApiError::Forbidden {
            reason: "only the bootstrap admin token may change plans".into(),
        });
    }
    let id = input::account_id(&Value::String(id.to_string()), "account")?;
    // `credits` beside the plan, or alone: every part is checked before any is written.
    let mut rest = body.clone();
    let given = rest.as_object_mut().and_then(|o| o.remove("credits"));
    let set = match given {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => Some(Some(credits::parse(&v, now_ms())?)),
    };
    let credits_alone = set.is_some() && rest.as_object().is_some_and(|o| o.is_empty());
    if credits_alone {
        super::credits::account(caller, env, cfg, &id, set, None, None).await?;
        let state: AccountView = rpc::ask(env, Object::Account(&id), &AccountCommand::Get).await?;
        return view(cfg, &id, &state);
    }
    let (plan, region) = input::parse_account(&rest, cfg.plans.keys())?;
    if set.is_some() {
        super::credits::account(caller, env, cfg, &id, set, None, None).await?;
    }
    let event = caller.event(
        cfg,
        "account.plan_changed",
        None,
        &id,
        json!({ "to": plan }),
    );
    let set = AccountCommand::SetPlan {
        plan,
        region: region.map_or(Declared::Unchanged, Declared::To),
        event,
    };
    // A declared region places the account's object there if this call makes it.
    let hint = region.flatten();
    let state: AccountView = rpc::ask_placed(env, Object::Account(&id), &set, hint).await?;
    // The change bites on every key's next request once it answers: after the
    // last lease on the old plan (at most PLAN_LEASE_SECONDS) has lapsed.
    deadline::sleep(state.leases_wait_ms.min(cfg.plan_lease_ms)).await;
    view(cfg, &id, &state)
}
