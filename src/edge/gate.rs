//! The request path, on the canonical request line: forwardable method, public
//! paths, what the request needs (every method it may run, every project it names),
//! blocked addresses, then the key — the KV index, then the key's and the account's
//! Durable Objects in one concurrent round trip (a second one, once per key and
//! plan change, when the key's plan copy is older than the account's) — then the
//! origin, then (after the answer) the settlement that commits or releases the
//! request's reserved credits and completes its log row.

use super::account_object::AccountCommand;
use super::ip_guard_object::IpGuardCommand;
use super::objects::{self, ACCOUNTS, IP_GUARDS, KEYS};
use super::runtime::{self, now_ms};
use super::{forward, kv_index, task};
use crate::config::Config;
use crate::error::ApiError;
use crate::key::check::{self, AccessRequest};
use crate::request::inbound::bearer_token;

use crate::key::format::parse_key;
use crate::key::identity::Identity;
use crate::key::record::HashEntry;
use crate::limits::admission::{self, LimitState};
use crate::limits::ip_guard::{address_bucket, FailureOutcome};
use crate::limits::plans::PlanCopy;
use crate::limits::reservation::Settlement;
use crate::notify::logs::{RequestFacts, Via};
use crate::objects::key::{Admitted, CheckItem, KeyCommand};
use crate::request::inbound::{self, RequestLine};
use crate::request::policy::{self, Needs};
use futures_util::future::join;
use serde::Deserialize;
use worker::worker_sys::web_sys;
use worker::{console_error, Context, Env, Headers, Response};

/// A request the key's and the account's objects both admitted: its credits are
/// reserved in both until `settle` reports what the client got.
pub struct Admission {
    pub identity: Identity,
    key_id: String,
    reservation: u64,
    account: String,
    /// When and what the account's object took (given back if not charged).
    account_charge: Option<(i64, u64)>,
    pub limit: Option<LimitState>,
    started: i64,
}

#[derive(Deserialize)]
struct AccountAdmitted {
    at: i64,
    limit: Option<LimitState>,
    charged: u64,
    /// The plan every admission is decided under.
    plan: PlanCopy,
}

pub async fn handle(
    req: web_sys::Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    line: &RequestLine,
) -> Result<Response, ApiError> {
    let started = now_ms();
    inbound::check_method(&line.method)?;
    let headers = Headers(req.headers());
    let ip = client_ip(&headers);
    if policy::is_public(&cfg.public_paths, &line.path) {
        return forward::to_origin(req, line, cfg, ip.as_deref(), None).await;
    }
    let methods = methods_to_check(&headers, line)?;
    let methods: Vec<&str> = methods.iter().map(String::as_str).collect();
    let needs = policy::needs(
        &cfg.route_rules,
        &cfg.route_costs,
        &cfg.project_segment,
        &methods,
        &line.path,
    );
    let admission = authenticate(&headers, env, cfg, ctx, line, &needs, started, true)
        .await
        .map_err(|(e, _)| e)?;

    let outcome =
        forward::to_origin(req, line, cfg, ip.as_deref(), Some(&admission.identity)).await;
    // An error here is keyward's own answer: the origin never answered.
    let (status, origin_status) = match &outcome {
        Ok(resp) => (resp.status_code(), Some(resp.status_code())),
        Err(e) => (e.status(), None),
    };
    settle(ctx, env, cfg, &admission, origin_status, status);
    with_rate_limit_headers(outcome?, admission.limit.as_ref())
}

/// The methods the origin may run: the request's own and any override it carries
/// (in a header of any spelling a server might fold into an override header, or
/// the `_method` query parameter). Overrides are forwarded, so they are checked.
fn methods_to_check(headers: &Headers, line: &RequestLine) -> Result<Vec<String>, ApiError> {
    let mut overrides: Vec<(String, String)> = headers
        .entries()
        .filter(|(name, _)| inbound::is_override_header(name))
        .collect();
    overrides.extend(line.override_params());
    inbound::methods(
        &line.method,
        overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// A credential presented for rows 2–15: from a request's `Authorization` header
/// (the gate, the management routes) or from a verify call's body.
pub struct Presented<'a> {
    pub token: Option<&'a str>,
    pub facts: RequestFacts,
    /// For an account-confined verifier: keys of other accounts are unknown to it,
    /// and the failed attempts it reports count within its account only.
    pub only_account: Option<&'a str>,
    /// Whether a secret in its rotation grace period opens the key: on the request
    /// path and for the key a verify call checks, never for a management caller.
    pub grace: bool,
}

/// Rows 2–15 for a request with these needs, its key in `Authorization: Bearer`;
/// `grace` as in `Presented`. On a refusal, the key the credential located, if any.
#[allow(clippy::too_many_arguments)]
pub async fn authenticate(
    headers: &Headers,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    line: &RequestLine,
    needs: &Needs,
    started: i64,
    grace: bool,
) -> Result<Admission, (ApiError, Option<HashEntry>)> {
    let header = headers.get("Authorization").ok().flatten();
    let presented = Presented {
        token: bearer_token(header.as_deref()),
        facts: RequestFacts {
            method: line.method.clone(),
            path: line.path.clone(),
            ip: client_ip(headers),
            via: Via::Gate,
        },
        only_account: None,
        grace,
    };
    check_located(env, cfg, ctx, presented, needs, started).await
}

/// Rows 2–15, the one implementation for the gate, the management routes and
/// verify. Garbage keys are refused before any storage read; a failed attempt
/// counts against the client's address.
pub async fn check(
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    presented: Presented<'_>,
    needs: &Needs,
    started: i64,
) -> Result<Admission, ApiError> {
    check_located(env, cfg, ctx, presented, needs, started)
        .await
        .map_err(|(e, _)| e)
}

/// `check`, saying on a refusal which key the credential located (when it did).
async fn check_located(
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    presented: Presented<'_>,
    needs: &Needs,
    started: i64,
) -> Result<Admission, (ApiError, Option<HashEntry>)> {
    // A confined verifier's reports count in its account's buckets; a block it
    // caused refuses nobody else. Blocks of the address itself still refuse it.
    let bucket = presented.facts.ip.as_deref().map(address_bucket);
    let counted = bucket.as_deref().map(|b| match presented.only_account {
        Some(account) => format!("{account}|{b}"),
        None => b.to_string(),
    });
    // Row 2, from what this isolate knows: no I/O for anyone not blocked.
    if let Some(until) = [bucket.as_deref(), counted.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|b| runtime::blocked_until(b, started))
    {
        let retry_after = secs_until(until, started);
        return Err((ApiError::IpBlocked { retry_after }, None));
    }
    let (entry, hash) = match locate(env, cfg, &presented).await {
        Ok(found) => found,
        Err(ApiError::InvalidKey) => {
            return Err((failed_attempt(env, cfg, counted.as_deref()).await, None))
        }
        Err(e) => return Err((e, None)),
    };
    // A refusal after row 3 is the located key's own; a secret its key does not
    // take (a stale index entry, or a made-up key naming a real locator) is nobody's.
    match admit(env, cfg, ctx, needs, presented, &entry, hash, started).await {
        Ok(a) => Ok(a),
        Err(ApiError::InvalidKey) => {
            Err((failed_attempt(env, cfg, counted.as_deref()).await, None))
        }
        Err(e) => Err((e, Some(entry))),
    }
}

/// Row 3's first half: the well-formed key's index entry, from KV (or the key's
/// object when KV has no copy yet), and the key's hash; to a confined verifier,
/// keys of other accounts are unknown.
async fn locate(
    env: &Env,
    cfg: &Config,
    presented: &Presented<'_>,
) -> Result<(HashEntry, String), ApiError> {
    let token = presented.token.ok_or(ApiError::InvalidKey)?;
    let parsed = parse_key(&cfg.key_prefix, token).ok_or(ApiError::InvalidKey)?;
    let entry = kv_index::resolve(env, cfg, &parsed)
        .await?
        .filter(|e| presented.only_account.is_none_or(|a| a == e.account))
        .ok_or(ApiError::InvalidKey)?;
    Ok((entry, parsed.hash))
}

#[allow(clippy::too_many_arguments)]
async fn admit(
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    needs: &Needs,
    presented: Presented<'_>,
    entry: &HashEntry,
    hash: String,
    started: i64,
) -> Result<Admission, ApiError> {
    let Presented { facts, grace, .. } = presented;
    let cost = needs.cost;
    let entry = entry.clone();

    let item = |plan: Option<PlanCopy>, undo: Option<u64>| CheckItem {
        request: AccessRequest {
            hash: hash.clone(),
            deployment_env: cfg.environment,
            client_ip: facts.ip.clone(),
            permissions: needs.permissions.clone(),
            projects: needs.projects.clone(),
            grace,
        },
        facts: facts.clone(),
        cost,
        plan,
        undo,
    };
    // One round trip: the key's object and the account's, concurrently. The key's
    // check carries the account's plan as this isolate last saw it.
    let first = KeyCommand::Check(item(runtime::known_plan(&entry.account), None));
    // Each goes through its object's lane: while a call is in flight, it waits and
    // travels with the others in the next one (group commit).
    let (mut key, account) = join(
        objects::submit_as::<_, Admitted>(env, ctx, KEYS, &entry.id, &first),
        objects::submit_as::<_, AccountAdmitted>(
            env,
            ctx,
            ACCOUNTS,
            &entry.account,
            &AccountCommand::Admit { cost },
        ),
    )
    .await;
    // The plan rule (`plan_change`): a request the key admitted under an older plan
    // than the account's is undone and checked again under the current one, in the
    // key's object, before anything is admitted. A refusal under the older plan
    // stands; the next request carries the new plan.
    if let Ok(a) = &account {
        runtime::remember_plan(&entry.account, &a.plan);
        if let Some(undo) = key
            .as_ref()
            .ok()
            .filter(|k| k.plan_version < a.plan.version)
            .map(|k| k.reservation)
        {
            let again = KeyCommand::Check(item(Some(a.plan.clone()), Some(undo)));
            key = objects::submit_as::<_, Admitted>(env, ctx, KEYS, &entry.id, &again).await;
        }
    }

    // All-or-nothing: when one side refused, what the other reserved is given
    // back after the answer (see README); the key's row records the refusal.
    let reservation = key.as_ref().ok().map(|k| k.reservation);
    let account_charge = account
        .as_ref()
        .ok()
        .filter(|a| a.charged > 0)
        .map(|a| (a.at, a.charged));
    let (key, account) = match check::combine(key, account) {
        Ok(both) => both,
        Err(e) => {
            if let Some(id) = reservation {
                let refused = Settlement {
                    id,
                    origin_status: None,
                    status: e.status(),
                    code: Some(e.code().to_string()),
                    duration_ms: elapsed(started),
                };
                queue_settlement(ctx, env, &entry.id, refused);
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
        reservation: key.reservation,
        account: entry.account,
        account_charge,
        limit: admission::tighter(key.limit, account.limit),
        started,
    })
}

fn elapsed(started: i64) -> u32 {
    (now_ms() - started).clamp(0, i64::from(u32::MAX)) as u32
}

/// Sends `cmd` to an object after the answer, through its lane (it rides the next
/// call when one is in flight), logging a failure.
fn background<C: serde::Serialize + 'static>(
    ctx: &Context,
    env: &Env,
    binding: &'static str,
    name: String,
    cmd: C,
) {
    // The same request's context, owned by the task that outlives this call.
    let inner: &worker::worker_sys::Context = ctx.as_ref();
    let js: &wasm_bindgen::JsValue = inner.as_ref();
    let lane_ctx = Context::new(wasm_bindgen::JsCast::unchecked_into(js.clone()));
    let env = env.clone();
    task::wait_until(ctx, async move {
        if let Err(e) = objects::submit(&env, &lane_ctx, binding, &name, &cmd).await {
            console_error!("{binding}/{name}: background command failed: {e:?}");
        }
    });
}

/// After the answer: commits the request's reservation (charged per `CHARGE_ON`)
/// or releases it, and completes its log row. `origin_status` is `None` when the
/// origin never answered. A request not charged gives the account's credits back.
pub fn settle(
    ctx: &Context,
    env: &Env,
    cfg: &Config,
    a: &Admission,
    origin_status: Option<u16>,
    status: u16,
) {
    if !cfg.charge_on.charges(origin_status) {
        if let Some((at, cost)) = a.account_charge {
            let refund = AccountCommand::Refund { at, cost };
            background(ctx, env, ACCOUNTS, a.account.clone(), refund);
        }
    }
    let s = Settlement {
        id: a.reservation,
        origin_status,
        status,
        code: None,
        duration_ms: elapsed(a.started),
    };
    queue_settlement(ctx, env, &a.key_id, s);
}

/// The settlement rides the key's lane: at once when no call to the key is in
/// flight, else in the next one. A settlement lost with the isolate leaves its
/// reservation to the key's alarm (released, its row `abandoned`).
fn queue_settlement(ctx: &Context, env: &Env, key_id: &str, s: Settlement) {
    let settle = KeyCommand::Settle { items: vec![s] };
    background(ctx, env, KEYS, key_id.to_string(), settle);
}

/// Row 3 happened: count it against the address's bucket; the answer is row 2 if
/// the address was already blocked.
async fn failed_attempt(env: &Env, cfg: &Config, bucket: Option<&str>) -> ApiError {
    let Some(bucket) = bucket.filter(|_| cfg.ip_block.threshold > 0) else {
        return ApiError::InvalidKey;
    };
    let fail = objects::call_as::<_, FailureOutcome>(env, IP_GUARDS, bucket, &IpGuardCommand::Fail);
    match fail.await {
        Ok(outcome) => {
            let now = now_ms();
            if let Some(until) = outcome.blocked_until {
                runtime::remember_block(bucket, until, now);
                if outcome.was_blocked {
                    return ApiError::IpBlocked {
                        retry_after: secs_until(until, now),
                    };
                }
            }
            ApiError::InvalidKey
        }
        // Refused either way; the count is lost (logged by the call).
        Err(_) => ApiError::InvalidKey,
    }
}

/// Row 2, asked of the address's own object (exact across isolates): for the
/// management routes, before any credential is compared.
pub async fn check_not_blocked(env: &Env, cfg: &Config, headers: &Headers) -> Result<(), ApiError> {
    let Some(bucket) = client_ip(headers)
        .as_deref()
        .map(address_bucket)
        .filter(|_| cfg.ip_block.threshold > 0)
    else {
        return Ok(());
    };
    let status =
        objects::call_as::<_, FailureOutcome>(env, IP_GUARDS, &bucket, &IpGuardCommand::Status);
    let now = now_ms();
    match status.await?.blocked_until.filter(|u| *u > now) {
        Some(until) => {
            runtime::remember_block(&bucket, until, now);
            Err(ApiError::IpBlocked {
                retry_after: secs_until(until, now),
            })
        }
        None => Ok(()),
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
    let copy = web_sys::Headers::new_with_headers(&resp.headers().0)
        .map_err(|e| ApiError::internal(format!("{e:?}")))?;
    let headers = Headers(copy);
    for (name, value) in admission::rate_limit_headers(limit) {
        headers.set(name, &value).map_err(ApiError::internal)?;
    }
    Ok(resp.with_headers(headers))
}

/// The client's address as Cloudflare reports it (the client cannot set it there).
pub fn client_ip(headers: &Headers) -> Option<String> {
    headers.get("CF-Connecting-IP").ok().flatten()
}
