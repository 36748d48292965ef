//! `/accounts/{id}`: an account's plan. An admin key reads its own account only and
//! never changes a plan.

use super::caller::Caller;
use crate::config::Config;
use crate::edge::account_object::AccountCommand;
use crate::edge::objects::{self, ACCOUNTS, KEYS};
use crate::edge::registry::{self, RegistryCommand};
use crate::edge::respond;
use crate::error::ApiError;
use crate::input;
use crate::key_state::KeyCommand;
use futures_util::future::join_all;
use serde_json::{json, Value};
use worker::{Env, Response};

fn view(cfg: &Config, id: &str, plan: Option<&str>) -> Result<Response, ApiError> {
    let (plan, details) = cfg.plan(plan);
    respond::json(
        200,
        &json!({ "id": id, "plan": plan, "plan_details": details }),
    )
}

pub async fn get(caller: &Caller, env: &Env, cfg: &Config, id: &str) -> Result<Response, ApiError> {
    let valid = input::identifier(&Value::String(id.to_string()), "account").is_ok();
    if !valid || !caller.may_see_account(id) {
        return Err(ApiError::NotFound {
            what: "account".into(),
        });
    }
    let v = objects::call(env, ACCOUNTS, id, &AccountCommand::Get).await?;
    view(cfg, id, v["plan"].as_str())
}

/// Sets the account's plan, then its copy in every key of the account, so the
/// change bites on each key's next request.
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
    let id = input::identifier(&Value::String(id.to_string()), "account")?;
    let plan = input::parse_plan(body, cfg.plans.keys())?;
    let before = objects::call(env, ACCOUNTS, &id, &AccountCommand::Get).await?;
    objects::call(
        env,
        ACCOUNTS,
        &id,
        &AccountCommand::SetPlan { plan: plan.clone() },
    )
    .await?;
    let listed = registry::call(
        env,
        &RegistryCommand::AccountKeys {
            account: id.clone(),
        },
    )
    .await?;
    let ids: Vec<String> =
        serde_json::from_value(listed["ids"].clone()).map_err(ApiError::internal)?;
    let set = KeyCommand::SetPlan { plan: plan.clone() };
    for chunk in ids.chunks(50) {
        for result in join_all(chunk.iter().map(|k| objects::call(env, KEYS, k, &set))).await {
            match result {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                // The account holds the new plan already: repeating the PUT completes it.
                Err(e) => return Err(e),
            }
        }
    }
    let details = json!({ "from": before["plan"], "to": plan, "keys": ids.len() });
    let event = caller.event("account.plan_changed", None, &id, details);
    registry::call(env, &RegistryCommand::Record { event }).await?;
    view(cfg, &id, Some(&plan))
}
