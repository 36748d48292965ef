//! `POST /keys/{id}/credits` and `POST /accounts/{id}/credits`: a balance
//! incremented, decremented or set, once per `Idempotency-Key` (the object that
//! holds the balance keeps the answer for 24 hours). A key's change must leave
//! it no freer than the admin key making it; an account's is the bootstrap
//! token's alone, like its plan.

use super::caller::Caller;
use super::keys;
use crate::admin::replays;
use crate::config::Config;
use crate::edge::js::deadline;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::now_ms;
use crate::edge::objects::copies;
use crate::edge::request::respond;
use crate::error::ApiError;
use crate::limits::credits::{self, Credits};
use crate::objects::account::{AccountCommand, AccountCredits};
use crate::objects::key::{CreditsChanged, KeyCommand};
use serde_json::{json, Value};
use worker::{Env, Response};

fn idempotency(header: Option<String>) -> Result<Option<String>, ApiError> {
    header.map(|v| replays::parse_key(&v)).transpose()
}

pub async fn key(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    body: &Value,
    header: Option<String>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let change = credits::parse_change(body)?;
    let idempotency_key = idempotency(header)?;
    let rec = keys::load(caller, env, cfg, id).await?.record;
    // What the key's balance would become must lie within the caller's.
    let mut preview = rec.clone();
    let mut balance = preview
        .credits
        .clone()
        .unwrap_or_else(|| Credits::new(0, None, now));
    balance.refill(now);
    balance.apply(change, now)?;
    preview.credits = Some(balance);
    caller.may_grant(cfg, &preview)?;
    let cmd = KeyCommand::Credits {
        change,
        idempotency_key,
    };
    let out: CreditsChanged = rpc::ask(env, Object::Key(id), &cmd).await?;
    if !out.replayed {
        let after = out.record.credits.as_ref().map(|c| c.remaining);
        let details = json!({
            "op": change.op, "amount": change.amount, "before": out.before, "after": after,
        });
        let event = caller.event(
            cfg,
            "key.credits_changed",
            Some(&out.record),
            &out.record.account,
            details,
        );
        copies::write(env, cfg, id, vec![copies::sync(&out.record, event)]).await;
    }
    respond::json(200, &out.answer)
}

/// An account's balance: `change` from `POST …/credits`, or `set` from
/// `PUT /accounts/{id}`. Answers once the plan leases granted before it lapsed,
/// so the next request of every key spends from it.
pub async fn account(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    set: Option<Option<Credits>>,
    change: Option<credits::Change>,
    header: Option<String>,
) -> Result<Value, ApiError> {
    if caller.key().is_some() {
        return Err(ApiError::Forbidden {
            reason: "only the bootstrap admin token may change an account's credits".into(),
        });
    }
    let idempotency_key = idempotency(header)?;
    let details = match change {
        Some(c) => json!({ "op": c.op, "amount": c.amount }),
        None => json!({ "op": "set" }),
    };
    let event = caller.event(cfg, "account.credits_changed", None, id, details);
    let cmd = AccountCommand::Credits {
        set,
        change,
        idempotency_key,
        event,
    };
    let out: AccountCredits = rpc::ask(env, Object::Account(id), &cmd).await?;
    deadline::sleep(out.leases_wait_ms.min(cfg.plan_lease_ms)).await;
    Ok(out.answer)
}

pub async fn change_account(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    body: &Value,
    header: Option<String>,
) -> Result<Response, ApiError> {
    let id = crate::admin::input::account_id(&Value::String(id.to_string()), "account")?;
    let change = credits::parse_change(body)?;
    let answer = account(caller, env, cfg, &id, None, Some(change), header).await?;
    respond::json(200, &answer)
}
