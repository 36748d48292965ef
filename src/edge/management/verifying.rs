//! `POST /verify`: a key checked for a service that is not behind the gate —
//! through the gate's own rows 2–15 (`gate::check`), consuming credits and logged
//! exactly as a forwarded request (the log row says `verify`). A verifying key
//! reaches only keys of its own account; others are unknown to it.

use super::caller::Caller;
use crate::admin::verify;
use crate::config::Config;
use crate::edge::request::context::{Presented, RequestContext};
use crate::edge::request::respond;
use crate::edge::request::{gate, settle};
use crate::error::ApiError;
use crate::notify::logs::{RequestFacts, Via};
use serde_json::Value;
use worker::{Context, Env, Response};

pub async fn verify(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    body: &Value,
) -> Result<Response, ApiError> {
    let call = verify::parse(body)?;
    let (path, needs) = match call.needs(cfg) {
        Ok(found) => found,
        Err(e) => return answer_refusal(e),
    };
    let presented = Presented {
        token: Some(&call.key),
        facts: RequestFacts {
            method: call.method.clone(),
            path,
            ip: call.ip.clone(),
            via: Via::Verify,
            country: None,
        },
        only_account: caller.key().map(|k| k.account.as_str()),
        // The checked key is presented on a request path: its grace period holds.
        grace: true,
    };
    let rc = RequestContext::plain(env, cfg, ctx);
    match gate::check(&rc, presented, &needs).await {
        Ok(admission) => {
            // Logged and counted like a forwarded request that the origin answered.
            settle::settle(ctx, env, cfg, &admission, Some(200), 200, rc.elapsed());
            respond::json(
                200,
                &verify::valid(&admission.identity, admission.limit.as_ref()),
            )
        }
        Err(e) => answer_refusal(e),
    }
}

/// A refusal about the key or the request is the call's answer; anything else
/// (storage unavailable) stays an error.
fn answer_refusal(e: ApiError) -> Result<Response, ApiError> {
    match verify::invalid(&e) {
        Some(answer) => respond::json(200, &answer),
        None => Err(e),
    }
}
