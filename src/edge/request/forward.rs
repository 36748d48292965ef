//! The origin forwarder: the method as sent (PURGE stays PURGE), the canonical path,
//! the query and body unchanged; `Authorization`, `Proxy-Authorization`, the key
//! headers (`KEY_HEADERS`, in every folded spelling), every client header that
//! could be read as keyward's identity and every proxy header a client sent
//! removed;
//! `X-Forwarded-For` (the address keyward judged) and keyward's identity headers
//! added; the origin waited for at most `ORIGIN_TIMEOUT_SECONDS`.

use super::context::RequestContext;
use super::respond;
use crate::config::Config;
use crate::edge::js::deadline;
use crate::edge::js::origin;
use crate::error::ApiError;
use crate::key::identity::Identity;
use crate::request::faults::{Mode, Target};
use crate::request::inbound::{is_key_header, is_proxy_header, is_reserved_header, RequestLine};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;

pub const HEADER_KEY_ID: &str = "X-Keyward-Key-Id";
pub const HEADER_ACCOUNT: &str = "X-Keyward-Account";
pub const HEADER_PERMISSIONS: &str = "X-Keyward-Permissions";
pub const HEADER_ENVIRONMENT: &str = "X-Keyward-Environment";
pub const HEADER_PROJECTS: &str = "X-Keyward-Projects";

/// The forwarded request, awaited: the origin's answer, or 504 past
/// `ORIGIN_TIMEOUT_SECONDS`, 502 when it cannot be reached.
pub async fn to_origin(
    rc: &RequestContext<'_>,
    req: web_sys::Request,
    line: &RequestLine,
    client_ip: Option<&str>,
    identity: Option<&Identity>,
) -> Result<web_sys::Response, ApiError> {
    let ms = rc.cfg.origin_timeout_ms;
    let target = target(rc.cfg, line);
    let answer = match rc.fault(Target::Origin) {
        Some(Mode::Fail) => Err(JsValue::from_str("TEST_FAULTS")),
        Some(Mode::Stall) => match deadline::within(ms, deadline::never()).await {
            Ok(never) => never,
            Err(deadline::Elapsed) => Ok(JsValue::UNDEFINED),
        },
        None => JsFuture::from(send(rc, &req, &target, line, client_ip, identity)?).await,
    };
    match answer {
        Ok(resp) if resp.is_undefined() => Err(failure(&target, ms, None)),
        Ok(resp) => resp
            .dyn_into::<web_sys::Response>()
            .map_err(|_| ApiError::internal("the origin's answer is not a Response")),
        Err(e) => Err(failure(&target, ms, Some(&e))),
    }
}

/// A public path's answer, made without a task: the origin's promise, its
/// failures rendered by `FAILED` when they happen. (No fault is asked of the
/// origin here: those requests take `to_origin`.)
pub fn answered(
    rc: &RequestContext<'_>,
    req: &web_sys::Request,
    line: &RequestLine,
    client_ip: Option<&str>,
) -> Result<Promise, ApiError> {
    let ms = rc.cfg.origin_timeout_ms;
    let target = target(rc.cfg, line);
    let sent = send(rc, req, &target, line, client_ip, None)?;
    Ok(FAILED.with(|failed| origin::answered(&sent, &target, ms, failed)))
}

thread_local! {
    /// `answered`'s failures, rendered: one function per isolate, called in the
    /// request whose origin failed.
    static FAILED: origin::Failed = Closure::new(|target: String, ms: f64, timed_out: bool, e: JsValue| {
        let failure = failure(&target, ms as i64, (!timed_out).then_some(&e));
        respond::rendered(&failure).map(JsValue::from)
    });
}

/// The origin did not answer: 504 past the deadline (`error` none), else 502.
fn failure(target: &str, ms: i64, error: Option<&JsValue>) -> ApiError {
    match error {
        None => {
            worker::console_error!("origin {target}: no answer within {ms} ms");
            ApiError::OriginTimeout
        }
        Some(e) => {
            worker::console_error!("origin {target}: {e:?}");
            ApiError::OriginUnreachable
        }
    }
}

fn target(cfg: &Config, line: &RequestLine) -> String {
    format!("{}{}", cfg.origin_url, line.target())
}

/// The request the origin receives, sent (`origin::send`).
fn send(
    rc: &RequestContext<'_>,
    req: &web_sys::Request,
    target: &str,
    line: &RequestLine,
    client_ip: Option<&str>,
    identity: Option<&Identity>,
) -> Result<Promise, ApiError> {
    let cfg = rc.cfg;
    // The client's headers, less those keyward owns: header names arrive
    // lowercased, and a client must not pose as another key in any spelling a
    // server might fold into ours. A credential sent to a proxy is keyward's, not
    // the origin's. (`Connection` and the headers it names never reach the worker:
    // the runtime consumes them.)
    let names = origin::header_names(&req.headers());
    let drop: Vec<&str> = names
        .split('\n')
        .filter(|name| !name.is_empty())
        .filter(|name| {
            matches!(*name, "authorization" | "proxy-authorization" | "host")
                || is_reserved_header(name)
                || is_proxy_header(name)
                || is_key_header(&cfg.key_headers, name)
        })
        .collect();
    let mut set: Vec<(&str, &str)> = Vec::with_capacity(6);
    // The runtime's address (`CF-Connecting-IP`); anything else is not an address.
    if let Some(ip) = client_ip.filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()) {
        set.push(("X-Forwarded-For", ip));
    }
    let (permissions, projects);
    if let Some(id) = identity {
        permissions = id.permissions.join(",");
        projects = id.projects.join(",");
        set.extend([
            (HEADER_KEY_ID, id.key_id.as_str()),
            (HEADER_ACCOUNT, id.account.as_str()),
            (HEADER_PERMISSIONS, permissions.as_str()),
            (HEADER_ENVIRONMENT, id.environment.as_str()),
            (HEADER_PROJECTS, projects.as_str()),
        ]);
    }
    // Every value is closed to header syntax at input (ids, permissions,
    // projects) and an address parsed: a line break would be a second header.
    if set.iter().any(|(_, v)| v.contains(['\n', '\r'])) {
        return Err(ApiError::internal(
            "a forwarded header value holds a line break",
        ));
    }
    // The method as a string (worker's `Method` maps every method it does not know
    // to GET), redirects not followed, the body for every method but GET and HEAD;
    // within ORIGIN_TIMEOUT_SECONDS, or the answer is 504.
    let out = origin::Outbound {
        url: target,
        method: &line.method,
        with_body: !matches!(line.method.as_str(), "GET" | "HEAD"),
        drop,
        set,
    };
    Ok(origin::send(req, &out, cfg.origin_timeout_ms))
}
