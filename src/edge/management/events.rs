//! `/events`: the audit trail, kept per account in the account's object. An admin
//! key sees its own account's events, and of those only the ones about keys within
//! its powers; the bootstrap token's unfiltered listing walks the accounts a group
//! at a time (`fanout`).

use super::caller::Caller;
use crate::admin::fanout::{self, Cursor};
use crate::notify::audit::EventPos;

use crate::edge::js::rpc::{self, Object};
use crate::edge::objects::directory_object as directory;
use crate::edge::request::respond;
use crate::error::ApiError;
use crate::notify::audit::EventQuery;
use crate::notify::audit::Listed;
use crate::objects::account::{AccountCommand, EventsPage};
use crate::paging;
use futures_util::future::join_all;
use serde_json::{json, Value};
use worker::{Env, Response};

pub async fn list(
    caller: &Caller,
    env: &Env,
    pairs: &[(String, String)],
) -> Result<Response, ApiError> {
    let mut cursor = None;
    let mut query = EventQuery {
        limit: paging::DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "account" => {
                query.account = Some(crate::key::names::identifier(
                    &Value::String(v.clone()),
                    "account",
                )?)
            }
            "key_id" => query.key_id = Some(v.clone()),
            "action" => query.action = Some(v.clone()),
            "cursor" => cursor = Some(fanout::parse_event_cursor(v)?),
            "limit" => query.limit = paging::parse_limit(v)?,
            other => return Err(ApiError::field(other, "is not a known filter")),
        }
    }
    query.account = caller.confine(query.account)?;
    query.viewer = caller.viewer();
    let cursor = cursor.unwrap_or(Cursor {
        group: None,
        position: None,
    });
    query.cursor = cursor.position.clone();
    let limit = query.limit as usize;
    let page = match query.account.clone() {
        Some(account) => {
            // One account's listing has no groups: a group in the cursor is moot.
            let (listed, resume) = account_events(env, &account, &query).await?;
            let (page, more) = fanout::merge_newest(vec![listed], |e| e.pos.clone(), limit);
            let next = match page.last().filter(|_| more) {
                Some(last) => Some(last.pos.clone()),
                None => resume,
            };
            let next = next.map(|p| {
                fanout::event_cursor(&Cursor {
                    group: None,
                    position: Some(p),
                })
            });
            (page, next)
        }
        None => {
            let (accounts, next_group) = directory::group(env, cursor.group.clone()).await?;
            let lists = join_all(accounts.iter().map(|a| {
                let mut q = query.clone();
                q.account = Some(a.clone());
                async move { account_events(env, a, &q).await.map(|(listed, _)| listed) }
            }))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
            let (page, more) = fanout::merge_newest(lists, |e| e.pos.clone(), limit);
            let last = page.last().map(|e| e.pos.clone());
            let next = fanout::next_cursor(&cursor.group, last, more, next_group)
                .map(|c| fanout::event_cursor(&c));
            (page, next)
        }
    };
    let (page, next) = page;
    let items: Vec<Value> = page.into_iter().map(|e| e.item).collect();
    respond::json(200, &json!({ "items": items, "cursor": next }))
}

/// One account's events after the query's cursor: up to `limit + 1`, and where a
/// bounded scan for an admin key stopped short.
async fn account_events(
    env: &Env,
    account: &str,
    query: &EventQuery,
) -> Result<(Vec<Listed>, Option<EventPos>), ApiError> {
    let cmd = AccountCommand::Events {
        query: query.clone(),
    };
    let page: EventsPage = rpc::ask(env, Object::Account(account), &cmd).await?;
    Ok((page.events, page.resume))
}
