//! The request path: transport, public paths, blocked addresses, then the key —
//! the KV index, then the key's and the account's Durable Objects in one
//! concurrent round trip — then the origin, then (after the answer) the log.

use super::account_object::AccountCommand;
use super::ip_guard_object::IpGuardCommand;
use super::objects::{self, ACCOUNTS, IP_GUARDS, KEYS};
use super::runtime::{self, now_ms};
use super::{forward, kv_index};
use crate::check::{self, bearer_token, AccessRequest};
use crate::config::Config;
use crate::error::ApiError;
use crate::ip_guard::FailureOutcome;
use crate::key_format::parse_key;
use crate::key_state::{Admitted, KeyCommand};
use crate::limits::{self, LimitState};
use crate::model::Identity;
use crate::policy;
use crate::request_log::{LogEntry, RequestFacts};
use crate::request_url;
use futures_util::future::join;
use serde::Deserialize;
use std::time::Duration;
use worker::{console_error, Context, Delay, Env, Headers, Request, Response};

/// What a route asks of a key: a permission, maybe a project, a cost in credits.
pub struct Need<'a> {
    pub permission: &'a str,
    pub project: Option<&'a str>,
    pub cost: u64,
}

/// A request the key's and the account's objects both admitted.
pub struct Admission {
    pub identity: Identity,
    key_id: String,
    cost: u64,
    pub limit: Option<LimitState>,
    facts: RequestFacts,
    started: i64,
}

#[derive(Deserialize)]
struct AccountAdmitted {
    at: i64,
    limit: Option<LimitState>,
    charged: u64,
}

impl AccountAdmitted {
    /// The account's answer when its plan has no account-wide limits.
    fn nothing() -> Self {
        AccountAdmitted {
            at: 0,
            limit: None,
            charged: 0,
        }
    }
}

pub async fn handle(
    req: Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
) -> Result<Response, ApiError> {
    let started = now_ms();
    let full_url = req.inner().url();
    let url = request_url::split(&full_url);
    check::check_transport(url.scheme, cfg.allow_http)?;
    if policy::is_public(&cfg.public_paths, url.path) {
        return forward::to_origin(req, &url, cfg, None).await;
    }
    let method = req.method();
    let need = Need {
        permission: policy::required_permission(&cfg.route_rules, method.as_ref(), url.path),
        project: policy::project_of(&cfg.project_segment, url.path),
        cost: policy::route_cost(&cfg.route_costs, method.as_ref(), url.path),
    };
    let admission = authenticate(&req, env, cfg, ctx, &need, started).await?;

    let outcome = forward::to_origin(req, &url, cfg, Some(&admission.identity)).await;
    let status = match &outcome {
        Ok(resp) => resp.status_code(),
        Err(e) => e.status(),
    };
    settle(ctx, env, &admission, status);
    with_rate_limit_headers(outcome?, admission.limit.as_ref())
}

/// Rows 2–15 for a request that needs `permission` on `project` and costs `cost`.
/// Garbage keys are refused before any storage read.
pub async fn authenticate(
    req: &Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    need: &Need<'_>,
    started: i64,
) -> Result<Admission, ApiError> {
    let ip = client_ip(req);
    // Row 2, from what this isolate knows: no I/O for anyone not blocked.
    if let Some(until) = ip
        .as_deref()
        .and_then(|ip| runtime::blocked_until(ip, started))
    {
        return Err(ApiError::IpBlocked {
            retry_after: secs_until(until, started),
        });
    }
    let facts = RequestFacts {
        method: req.method().to_string(),
        path: req.path(),
        ip: ip.clone(),
    };
    match admit(req, env, cfg, ctx, need, facts, started).await {
        Err(ApiError::InvalidKey) => Err(failed_attempt(env, cfg, ip.as_deref()).await),
        other => other,
    }
}

async fn admit(
    req: &Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    need: &Need<'_>,
    facts: RequestFacts,
    started: i64,
) -> Result<Admission, ApiError> {
    let cost = need.cost;
    let header = req.headers().get("Authorization").ok().flatten();
    let token = bearer_token(header.as_deref()).ok_or(ApiError::InvalidKey)?;
    let parsed = parse_key(&cfg.key_prefix, token).ok_or(ApiError::InvalidKey)?;
    let entry = kv_index::lookup(env, &parsed.hash, cfg.kv_cache_ttl)
        .await?
        .ok_or(ApiError::InvalidKey)?;

    let check = KeyCommand::Check {
        request: AccessRequest {
            hash: parsed.hash,
            deployment_env: cfg.environment,
            client_ip: facts.ip.clone(),
            permission: need.permission.to_string(),
            project: need.project.map(String::from),
        },
        facts: facts.clone(),
        cost,
    };
    let admit_account = AccountCommand::Admit { cost };
    let key_call = objects::call_as::<_, Admitted>(env, KEYS, &entry.id, &check);
    let account_call =
        || objects::call_as::<_, AccountAdmitted>(env, ACCOUNTS, &entry.account, &admit_account);
    // Row 15 needs the account's object only if the plan has account-wide limits.
    // Whether it has is known from the key's last reply; unknown or yes: ask both
    // at once (one round trip). Known no: ask the key only — and should its reply
    // say otherwise (the plan just changed), ask the account right after.
    let (key, account) = if runtime::account_has_limits(&entry.account) == Some(false) {
        let key = key_call.await;
        let account = match &key {
            Ok(k) if k.account_limits => account_call().await,
            _ => Ok(AccountAdmitted::nothing()),
        };
        (key, account)
    } else {
        join(key_call, account_call()).await
    };
    if let Ok(k) = &key {
        runtime::remember_account_limits(&entry.account, k.account_limits);
    }

    // All-or-nothing: when one side refused, what the other consumed is given
    // back after the answer (see README), and the key's object logs the refusal.
    let key_at = key.as_ref().ok().map(|k| k.at);
    let account_charge = account
        .as_ref()
        .ok()
        .filter(|a| a.charged > 0)
        .map(|a| (a.at, a.charged));
    let (key, account) = match check::combine(key, account) {
        Ok(both) => both,
        Err(e) => {
            if let Some(at) = key_at {
                let settle = KeyCommand::Settle {
                    at,
                    refund: cost,
                    logs: vec![facts.refused(at, &e)],
                };
                background(ctx, env, KEYS, entry.id.clone(), settle);
            }
            if let Some((at, cost)) = account_charge {
                let refund = AccountCommand::Refund { at, cost };
                background(ctx, env, ACCOUNTS, entry.account.clone(), refund);
            }
            return Err(e);
        }
    };
    Ok(Admission {
        identity: key.identity,
        key_id: entry.id,
        cost,
        limit: limits::tighter(key.limit, account.limit),
        facts,
        started,
    })
}

/// Sends `cmd` to an object after the answer, logging a failure.
fn background<C: serde::Serialize + 'static>(
    ctx: &Context,
    env: &Env,
    binding: &'static str,
    name: String,
    cmd: C,
) {
    let env = env.clone();
    ctx.wait_until(async move {
        if let Err(e) = objects::call(&env, binding, &name, &cmd).await {
            console_error!("{binding}/{name}: background command failed: {e:?}");
        }
    });
}

/// How long an admitted request's log row waits to travel with others to its key.
const LOG_BATCH_MS: u64 = 250;

/// Logs an admitted request against its key, after the answer. Rows are batched
/// per key: one call to the key's object per batch, not per request.
pub fn settle(ctx: &Context, env: &Env, a: &Admission, status: u16) {
    let log = LogEntry {
        at: a.started,
        method: a.facts.method.clone(),
        path: a.facts.path.clone(),
        status,
        code: None,
        duration_ms: (now_ms() - a.started).clamp(0, i64::from(u32::MAX)) as u32,
        ip: a.facts.ip.clone(),
        credits: a.cost,
    };
    if !runtime::queue_log(&a.key_id, log) {
        return; // a flush is already scheduled for this key
    }
    let (env, key_id) = (env.clone(), a.key_id.clone());
    ctx.wait_until(async move {
        Delay::from(Duration::from_millis(LOG_BATCH_MS)).await;
        let logs = runtime::take_logs(&key_id);
        let settle = KeyCommand::Settle {
            at: 0,
            refund: 0,
            logs,
        };
        if let Err(e) = objects::call(&env, KEYS, &key_id, &settle).await {
            console_error!("{key_id}: request logs lost: {e:?}");
        }
    });
}

/// Row 3 happened: count it against the address; the answer is row 2 if the
/// address was already blocked.
async fn failed_attempt(env: &Env, cfg: &Config, ip: Option<&str>) -> ApiError {
    let Some(ip) = ip.filter(|_| cfg.ip_block.threshold > 0) else {
        return ApiError::InvalidKey;
    };
    match objects::call_as::<_, FailureOutcome>(env, IP_GUARDS, ip, &IpGuardCommand::Fail).await {
        Ok(outcome) => {
            let now = now_ms();
            if let Some(until) = outcome.blocked_until {
                runtime::remember_block(ip, until, now);
                if outcome.was_blocked {
                    return ApiError::IpBlocked {
                        retry_after: secs_until(until, now),
                    };
                }
            }
            ApiError::InvalidKey
        }
        Err(e) => {
            console_error!("ip guard for {ip} failed: {e:?}");
            ApiError::InvalidKey
        }
    }
}

fn secs_until(until: i64, now: i64) -> u64 {
    ((until - now + 999) / 1000).max(1) as u64
}

/// The origin's answer with `RateLimit-Policy` and `RateLimit` for the tightest
/// limit (a fetched response's headers are immutable: copy them).
fn with_rate_limit_headers(
    resp: Response,
    limit: Option<&LimitState>,
) -> Result<Response, ApiError> {
    let Some(limit) = limit else { return Ok(resp) };
    let headers = Headers::new();
    for (name, value) in resp.headers().entries() {
        headers.append(&name, &value).map_err(ApiError::internal)?;
    }
    for (name, value) in limits::rate_limit_headers(limit) {
        headers.set(name, &value).map_err(ApiError::internal)?;
    }
    Ok(resp.with_headers(headers))
}

/// The client's address as Cloudflare reports it (the client cannot set it there).
pub fn client_ip(req: &Request) -> Option<String> {
    req.headers().get("CF-Connecting-IP").ok().flatten()
}
