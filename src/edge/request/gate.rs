//! The request path, as SPEC §3's table, on the canonical request line:
//!
//! - row 1 (read with the line, by the caller): HTTPS, the one canonical path;
//! - a method that can be forwarded; public paths, forwarded without a key (and
//!   without a task: `public_now`);
//! - what the request needs: every method it may run, every project it names;
//! - row 2: the client's address not blocked (`guard`);
//! - row 3: the key located (`locate`), or a failed attempt counted;
//! - rows 4–15: decided in the key's and the account's objects, in one concurrent
//!   round trip (`decide`);
//! - the origin (`forward`), within `ORIGIN_TIMEOUT_SECONDS`;
//! - after the answer, compensating: the settlement that commits or releases the
//!   request's reserved credits (`settle`).

use super::context::{Presented, RequestContext};
use super::settle::{self, Admission};
use super::{decide, forward, guard, locate};
use crate::config::Config;
use crate::edge::js::task;
use crate::error::ApiError;
use crate::key::record::HashEntry;
use crate::limits::admission::{self, LimitState};
use crate::notify::logs::{RequestFacts, Via};
use crate::request::faults::Target;
use crate::request::inbound::{self, RequestLine};
use crate::request::policy::{self, Needs};
use worker::worker_sys::web_sys;
use worker::{Context, Env, Headers, Response};

pub async fn handle(
    req: web_sys::Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    line: &RequestLine,
    placed: impl FnOnce(),
) -> Result<Reply, ApiError> {
    let headers = Headers(req.headers());
    let rc = RequestContext::new(env, cfg, ctx, &headers)?;
    inbound::check_method(&line.method)?;
    let ip = guard::client_ip(&headers);
    if policy::is_public(&cfg.public_paths, &line.path) {
        return forward::to_origin(&rc, req, line, ip.as_deref(), None)
            .await
            .map(Reply::Passed);
    }
    // The client's region, for its key's object (`placement`).
    placed();
    let needs = needs(cfg, &headers, line)?;
    let admission = authenticate(&rc, &headers, line, &needs, true)
        .await
        .map_err(|(e, _)| e)?;
    let outcome =
        forward::to_origin(&rc, req, line, ip.as_deref(), Some(&admission.identity)).await;
    // An error here is keyward's own answer: the origin never answered.
    let (status, origin_status) = match &outcome {
        Ok(resp) => (resp.status(), Some(resp.status())),
        Err(e) => (e.status(), None),
    };
    settle::settle(
        ctx,
        env,
        cfg,
        &admission,
        origin_status,
        status,
        rc.elapsed(),
    );
    with_rate_limit_headers(outcome?, admission.limit.as_ref())
}

/// A public path's answer, made at once, without a task (`None`: not a public
/// path, or a request whose faults ask the origin to fail, which `handle` serves):
/// the same checks as `handle`'s, then the origin's promise as the answer.
pub fn public_now(
    req: &web_sys::Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    line: &RequestLine,
) -> Result<Option<js_sys::Promise>, ApiError> {
    if !policy::is_public(&cfg.public_paths, &line.path) {
        return Ok(None);
    }
    let headers = Headers(req.headers());
    let rc = RequestContext::new(env, cfg, ctx, &headers)?;
    if rc.fault(Target::Origin).is_some() {
        return Ok(None);
    }
    inbound::check_method(&line.method)?;
    let ip = guard::client_ip(&headers);
    forward::answered(&rc, req, line, ip.as_deref()).map(Some)
}

/// The gate's answer: the origin's response as the runtime gave it (nothing of it
/// read or rebuilt), or one keyward made or changed.
pub enum Reply {
    Passed(web_sys::Response),
    Built(Response),
}

/// What the request needs, for every method the origin may run: the request's own
/// and any override it carries (in a header of any spelling a server might fold
/// into an override header, or the `_method` query parameter). Overrides are
/// forwarded, so they are checked.
fn needs(cfg: &Config, headers: &Headers, line: &RequestLine) -> Result<Needs, ApiError> {
    let mut overrides: Vec<(String, String)> = headers
        .entries()
        .filter(|(name, _)| inbound::is_override_header(name))
        .collect();
    overrides.extend(line.override_params());
    let methods = inbound::methods(
        &line.method,
        overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    let methods: Vec<&str> = methods.iter().map(String::as_str).collect();
    Ok(policy::needs(
        &cfg.route_rules,
        &cfg.route_costs,
        &cfg.project_segment,
        &methods,
        &line.path,
    ))
}

/// Rows 2–15 for a request with these needs, its key in `Authorization: Bearer`;
/// `grace` as in `Presented`. On a refusal, the key the credential opened, if any.
pub async fn authenticate(
    rc: &RequestContext<'_>,
    headers: &Headers,
    line: &RequestLine,
    needs: &Needs,
    grace: bool,
) -> Result<Admission, (ApiError, Option<HashEntry>)> {
    let token = credential(rc.cfg, headers).map_err(|e| (e, None))?;
    let presented = Presented {
        token: token.as_deref(),
        facts: RequestFacts {
            method: line.method.clone(),
            path: line.path.clone(),
            ip: guard::client_ip(headers),
            via: Via::Gate,
            country: task::country(),
        },
        only_account: None,
        grace,
    };
    check_located(rc, presented, needs).await
}

/// The key a request presents: `Authorization: Bearer`, or a key header
/// (`KEY_HEADERS`); two different credentials are 400 (`inbound::credential`).
pub fn credential(cfg: &Config, headers: &Headers) -> Result<Option<String>, ApiError> {
    let header = headers.get("Authorization").ok().flatten();
    let keyed: Vec<(&str, Option<String>)> = cfg
        .key_headers
        .iter()
        .map(|name| (name.as_str(), headers.get(name).ok().flatten()))
        .collect();
    let keyed: Vec<(&str, Option<&str>)> = keyed.iter().map(|(n, v)| (*n, v.as_deref())).collect();
    inbound::credential(header.as_deref(), &keyed).map(|t| t.map(str::to_string))
}

/// Rows 2–15, the one implementation for the gate, the management routes and
/// verify. Garbage keys are refused before any storage read; a failed attempt
/// counts against the client's address (a confined verifier's, its account's).
pub async fn check(
    rc: &RequestContext<'_>,
    presented: Presented<'_>,
    needs: &Needs,
) -> Result<Admission, ApiError> {
    check_located(rc, presented, needs)
        .await
        .map_err(|(e, _)| e)
}

async fn check_located(
    rc: &RequestContext<'_>,
    presented: Presented<'_>,
    needs: &Needs,
) -> Result<Admission, (ApiError, Option<HashEntry>)> {
    let buckets = guard::buckets(presented.facts.ip.as_deref(), presented.only_account);
    guard::blocked_here(&buckets, rc.started).map_err(|e| (e, None))?;
    let (entry, hash) = match locate::locate(rc, &presented).await {
        Ok(found) => found,
        Err(ApiError::InvalidKey) => {
            let e = guard::failed_attempt(rc, buckets.counted.as_deref()).await;
            return Err((e, None));
        }
        Err(e) => return Err((e, None)),
    };
    // A refusal after row 3 is the located key's own; a secret its key does not
    // take (a stale index entry, or a made-up key naming a real locator) is nobody's.
    match decide::admit(rc, needs, presented, entry.clone(), hash).await {
        Ok(a) => Ok(a),
        Err(ApiError::InvalidKey) => {
            let e = guard::failed_attempt(rc, buckets.counted.as_deref()).await;
            Err((e, None))
        }
        Err(e) => Err((e, Some(entry))),
    }
}

/// The origin's answer with `RateLimit-Policy` and `RateLimit` for the tightest
/// limit (a fetched response's headers are immutable: copy them).
fn with_rate_limit_headers(
    resp: web_sys::Response,
    limit: Option<&LimitState>,
) -> Result<Reply, ApiError> {
    let Some(limit) = limit else {
        return Ok(Reply::Passed(resp));
    };
    let copy = web_sys::Headers::new_with_headers(&resp.headers())
        .map_err(|e| ApiError::internal(format!("{e:?}")))?;
    let headers = Headers(copy);
    for (name, value) in admission::rate_limit_headers(limit) {
        headers.set(name, &value).map_err(ApiError::internal)?;
    }
    Ok(Reply::Built(Response::from(resp).with_headers(headers)))
}
