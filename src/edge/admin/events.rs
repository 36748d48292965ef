//! `/events`: the audit trail. An admin key sees its own account's events, and of
//! those only the ones about keys within its powers.

use super::caller::Caller;
use crate::audit::EventQuery;
use crate::edge::registry::{self, RegistryCommand};
use crate::edge::respond;
use crate::error::ApiError;
use crate::input;
use crate::paging;
use serde_json::Value;
use worker::{Env, Response};

pub async fn list(
    caller: &Caller,
    env: &Env,
    pairs: &[(String, String)],
) -> Result<Response, ApiError> {
    let mut query = EventQuery {
        limit: paging::DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "account" => {
                query.account = Some(input::identifier(&Value::String(v.clone()), "account")?)
            }
            "key_id" => query.key_id = Some(v.clone()),
            "action" => query.action = Some(v.clone()),
            "cursor" => {
                let digits = (1..=18).contains(&v.len())
                    && v.bytes().all(|b| b.is_ascii_digit())
                    && !v.starts_with('0');
                let cursor = v
                    .parse::<i64>()
                    .ok()
                    .filter(|_| digits)
                    .map(|c| c.min(paging::MAX_CURSOR));
                query.cursor = Some(cursor.ok_or_else(|| {
                    ApiError::field("cursor", "is not a cursor from this listing")
                })?);
            }
            "limit" => query.limit = paging::parse_limit(v)?,
            other => return Err(ApiError::field(other, "is not a known filter")),
        }
    }
    query.account = caller.confine(query.account)?;
    query.viewer = caller.viewer();
    let page = registry::call(env, &RegistryCommand::Events { query }).await?;
    respond::json(200, &page)
}
