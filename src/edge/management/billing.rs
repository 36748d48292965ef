//! `GET /accounts/{id}/usage`: each key's requests and credits per hour or day
//! in a range, read from the keys' own usage hours (so its totals are the keys'
//! usage exactly), a page of keys at a time. An admin key sees its own account's
//! keys within its reach only.

use super::caller::Caller;
use crate::admin::billing;
use crate::admin::listing::ListQuery;
use crate::config::Config;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::now_ms;
use crate::edge::request::respond;
use crate::error::ApiError;
use crate::objects::account::{AccountCommand, KeyIds};
use crate::objects::key::{KeyCommand, KeyRead, UsageSeries};
use futures_util::future::join_all;
use serde_json::{json, Value};
use worker::{Env, Response};

pub async fn account_usage(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    pairs: &[(String, String)],
) -> Result<Response, ApiError> {
    let valid = crate::key::names::identifier(&Value::String(id.to_string()), "account").is_ok();
    if !valid || !caller.may_see_account(id) {
        return Err(ApiError::NotFound {
            what: "account".into(),
        });
    }
    let now = now_ms();
    let q = billing::parse_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now)?;
    let list = AccountCommand::List {
        query: ListQuery {
            account: Some(id.to_string()),
            limit: q.limit,
            ..Default::default()
        },
        after: q.after.clone(),
        now,
    };
    let mut ids = rpc::ask::<KeyIds>(env, Object::Account(id), &list)
        .await?
        .ids;
    let more = ids.len() > q.limit as usize;
    ids.truncate(q.limit as usize);
    let read = |key: String| async move {
        if caller.key().is_some() {
            let got: KeyRead = rpc::ask(env, Object::Key(&key), &KeyCommand::Get).await?;
            if !caller.reaches(cfg, &got.record) {
                return Ok((key, None));
            }
        }
        let cmd = KeyCommand::UsageBetween {
            from: q.from,
            to: q.to,
            resolution: q.resolution,
        };
        let series: UsageSeries = rpc::ask(env, Object::Key(&key), &cmd).await?;
        Ok::<_, ApiError>((key, Some(series)))
    };
    let mut items = Vec::new();
    for answer in join_all(ids.iter().cloned().map(read)).await {
        match answer {
            Ok((key, Some(series))) => items.extend(series.items.into_iter().map(|p| {
                json!({ "key_id": key, "start": p.start, "requests": p.requests, "credits": p.credits })
            })),
            Ok((_, None)) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let cursor = ids.last().filter(|_| more).cloned();
    respond::json(
        200,
        &json!({ "items": items, "cursor": cursor, "resolution": q.resolution }),
    )
}
