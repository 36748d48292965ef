//! The request path: transport, public paths, then the key — KV index, and the key's
//! and the account's Durable Objects in one concurrent round trip — then the origin.

use super::account_object::AccountCommand;
use super::objects::{self, ACCOUNTS, KEYS};
use super::{forward, kv_index};
use crate::check::{self, bearer_token, AccessRequest};
use crate::config::Config;
use crate::error::ApiError;
use crate::key_format::parse_key;
use crate::key_state::KeyCommand;
use crate::model::Identity;
use crate::policy;
use futures_util::future::join;
use worker::{console_error, Context, Env, Request, Response};

pub async fn handle(
    req: Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
) -> Result<Response, ApiError> {
    let url = req.url().map_err(ApiError::internal)?;
    check::check_transport(url.scheme(), cfg.allow_http)?;
    if policy::is_public(&cfg.public_paths, url.path()) {
        return forward::to_origin(req, &url, cfg, None).await;
    }
    let permission =
        policy::required_permission(&cfg.route_rules, req.method().as_ref(), url.path());
    let project = policy::project_of(&cfg.project_segment, url.path());
    let identity = authenticate(&req, env, cfg, ctx, permission, project).await?;
    forward::to_origin(req, &url, cfg, Some(&identity)).await
}

/// Rows 1 and 3–11 for a request that needs `permission` on `project`. Garbage keys
/// are refused before any storage read.
pub async fn authenticate(
    req: &Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    permission: &str,
    project: Option<&str>,
) -> Result<Identity, ApiError> {
    let header = req.headers().get("Authorization").ok().flatten();
    let token = bearer_token(header.as_deref()).ok_or(ApiError::InvalidKey)?;
    let parsed = parse_key(&cfg.key_prefix, token).ok_or(ApiError::InvalidKey)?;
    let entry = kv_index::lookup(env, &parsed.hash, cfg.kv_cache_ttl)
        .await?
        .ok_or(ApiError::InvalidKey)?;

    let access = AccessRequest {
        hash: parsed.hash,
        deployment_env: cfg.environment,
        client_ip: client_ip(req),
        permission: permission.to_string(),
        project: project.map(String::from),
    };
    let key_check = KeyCommand::Check { request: access };
    let (key, account) = join(
        objects::call_as::<_, Identity>(env, KEYS, &entry.id, &key_check),
        objects::call(env, ACCOUNTS, &entry.account, &AccountCommand::Get),
    )
    .await;
    let plan = account.and_then(|v| check::check_plan(cfg.plan(v["plan"].as_str()).1));

    let key_passed = key.is_ok();
    let outcome = check::combine(key, plan);
    if key_passed && outcome.is_err() {
        // The key's object counted a use that a later row refused: give it back,
        // after the response.
        let (env, id) = (env.clone(), entry.id.clone());
        ctx.wait_until(async move {
            if let Err(e) = objects::call(&env, KEYS, &id, &KeyCommand::Refund).await {
                console_error!("refund for {id} failed: {e:?}");
            }
        });
    }
    outcome
}

/// The client's address as Cloudflare reports it (the client cannot set it there).
pub fn client_ip(req: &Request) -> Option<String> {
    req.headers().get("CF-Connecting-IP").ok().flatten()
}
