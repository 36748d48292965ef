//! The management routes of SPEC §4, one module per resource (keys, events,
//! accounts) over one caller and one confinement check (`caller`). Routing is the
//! OpenAPI document's route table: a (method, path) pair that is not one of its
//! operations is 404 or 405 and changes nothing.

mod accounts;
mod billing;
mod caller;
mod credits;
mod events;
mod keys;
mod leak_reports;
mod refusals;
mod verifying;

use super::request::respond;
use crate::admin::openapi::{self, Operation};
use crate::config::Config;
use crate::error::ApiError;
use crate::request::inbound::RequestLine;
use crate::request::policy;
use crate::request::url;
use serde_json::Value;
use worker::{Context, Env, Request, Response};

/// The largest management body read; a bigger one is refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub async fn handle(
    mut req: Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    line: &RequestLine,
) -> Result<Response, ApiError> {
    let route = line
        .path
        .strip_prefix(cfg.admin_prefix.as_str())
        .unwrap_or_default();
    // Unknown routes are 404 and wrong methods 405 before authentication; the
    // document needs no caller; the rest need one.
    let (op, param) = openapi::route(&line.method, route)?;
    if op == Operation::Document {
        return respond::document(&openapi::document(cfg.plans.keys(), &cfg.admin_prefix));
    }
    let headers = req.headers().clone();
    let refused = |who: refusals::Who, e: &ApiError| {
        refusals::record(ctx, env, cfg, &headers, line, who, e);
    };
    // GitHub signs its reports instead of sending credentials: a report without
    // its signature headers is refused before its body is measured or read.
    let unsigned = [
        "Github-Public-Key-Identifier",
        "Github-Public-Key-Signature",
    ]
    .iter()
    .any(|h| headers.get(h).ok().flatten().is_none());
    if op == Operation::GithubLeaks && unsigned {
        refused(refusals::Who::Anonymous, &ApiError::BadSignature);
        return Err(ApiError::BadSignature);
    }
    refuse_large_body(&req)?;
    if op == Operation::GithubLeaks {
        let body = read_bytes(&mut req).await?;
        let answer = leak_reports::github(&req, env, cfg, &body).await;
        if let Err(e) = &answer {
            refused(refusals::Who::Anonymous, e);
        }
        return answer;
    }
    // A key holding only `verify` may verify keys, and nothing else.
    let permission = if op == Operation::Verify {
        policy::VERIFY
    } else {
        "admin"
    };
    let caller = match caller::authenticate(&req, env, cfg, ctx, line, permission).await {
        Ok(caller) => caller,
        Err(caller::Refused { error, key }) => {
            let who = match key {
                Some(k) => refusals::Who::Key {
                    id: k.id,
                    account: k.account,
                    powers: None,
                },
                None => refusals::Who::Anonymous,
            };
            refused(who, &error);
            return Err(error);
        }
    };
    let id = param.unwrap_or_default();
    let query = url::query_pairs(line.query.as_deref());
    let outcome = match op {
        Operation::ListKeys => keys::list(&caller, env, cfg, &query).await,
        Operation::CreateKey => keys::create(&caller, env, cfg, &read_json(&mut req).await?).await,
        Operation::GetKey => keys::get(&caller, env, cfg, id).await,
        Operation::UpdateKey => {
            keys::patch(&caller, env, cfg, id, &read_json(&mut req).await?).await
        }
        Operation::DeleteKey => keys::delete(&caller, env, cfg, id).await,
        Operation::RotateKey => {
            let body = read_optional_json(&mut req).await?;
            keys::rotate(&caller, env, cfg, id, body.as_ref()).await
        }
        Operation::DeactivateKey => keys::deactivate(&caller, env, cfg, id).await,
        Operation::ActivateKey => keys::activate(&caller, env, cfg, id).await,
        Operation::RevokeKey => keys::revoke(&caller, env, cfg, id).await,
        Operation::KeyLogs => keys::logs(&caller, env, cfg, id, &query).await,
        Operation::KeyUsage => keys::usage(&caller, env, cfg, id, &query).await,
        Operation::KeyCredits => {
            let body = read_json(&mut req).await?;
            credits::key(&caller, env, cfg, id, &body, idempotency_key(&headers)).await
        }
        Operation::AccountUsage => billing::account_usage(&caller, env, cfg, id, &query).await,
        Operation::AccountCredits => {
            let body = read_json(&mut req).await?;
            credits::change_account(&caller, env, cfg, id, &body, idempotency_key(&headers)).await
        }
        Operation::ListEvents => events::list(&caller, env, &query).await,
        Operation::GetAccount => accounts::get(&caller, env, cfg, id).await,
        Operation::PutAccount => {
            accounts::put(&caller, env, cfg, id, &read_json(&mut req).await?).await
        }
        Operation::Verify => {
            verifying::verify(&caller, env, cfg, ctx, &read_json(&mut req).await?).await
        }
        Operation::ReportLeak => {
            leak_reports::report(&caller, env, cfg, &read_json(&mut req).await?).await
        }
        Operation::Me => respond::json(200, &caller.view()),
        Operation::Document | Operation::GithubLeaks => Err(ApiError::internal("served above")),
    };
    caller.settle(ctx, env, cfg, &outcome);
    if let (Err(e), Some(me)) = (&outcome, caller.key()) {
        let who = refusals::Who::Key {
            id: me.key_id.clone(),
            account: me.account.clone(),
            powers: Some(Box::new(me.powers.clone())),
        };
        refused(who, e);
    }
    outcome
}

fn idempotency_key(headers: &worker::Headers) -> Option<String> {
    headers.get("Idempotency-Key").ok().flatten()
}

/// A declared length over the limit is refused before anything is read.
fn refuse_large_body(req: &Request) -> Result<(), ApiError> {
    let declared = req.headers().get("Content-Length").ok().flatten();
    match declared.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) if n > MAX_BODY_BYTES as u64 => Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        }),
        Some(Err(_)) => Err(ApiError::InvalidHeader {
            name: "content-length".into(),
            reason: "must be a whole number of bytes".into(),
        }),
        _ => Ok(()),
    }
}

async fn read_json(req: &mut Request) -> Result<Value, ApiError> {
    read_optional_json(req).await?.ok_or(ApiError::InvalidBody {
        reason: "expected a JSON object".into(),
    })
}

/// The raw body, at most `MAX_BODY_BYTES` (bodies sent without a length, chunked,
/// are measured as read).
async fn read_bytes(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    let bytes = req.bytes().await.map_err(|e| ApiError::InvalidBody {
        reason: e.to_string(),
    })?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(bytes)
}

/// The body as JSON, or `None` when empty.
async fn read_optional_json(req: &mut Request) -> Result<Option<Value>, ApiError> {
    let bytes = read_bytes(req).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::InvalidBody {
        reason: "not UTF-8".into(),
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| ApiError::InvalidBody {
            reason: format!("not JSON: {e}"),
        })
}
