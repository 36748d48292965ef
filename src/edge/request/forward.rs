//! The origin forwarder: the method as sent (PURGE stays PURGE), the canonical path,
//! the query and body unchanged; `Authorization`, `Proxy-Authorization`, the key
//! headers (`KEY_HEADERS`, in every folded spelling), every client header that
//! could be read as keyward's identity and every proxy header a client sent
//! removed;
//! `X-Forwarded-For` (the address keyward judged) and keyward's identity headers
//! added; the origin waited for at most `ORIGIN_TIMEOUT_SECONDS`.

use super::context::RequestContext;
use crate::edge::js::deadline;
use crate::edge::js::origin;
use crate::error::ApiError;
use crate::key::identity::Identity;
use crate::request::faults::{Mode, Target};
use crate::request::inbound::{is_key_header, is_proxy_header, is_reserved_header, RequestLine};
use wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Headers};

pub const HEADER_KEY_ID: &str = "X-Keyward-Key-Id";
pub const HEADER_ACCOUNT: &str = "X-Keyward-Account";
pub const HEADER_PERMISSIONS: &str = "X-Keyward-Permissions";
pub const HEADER_ENVIRONMENT: &str = "X-Keyward-Environment";
pub const HEADER_PROJECTS: &str = "X-Keyward-Projects";

pub async fn to_origin(
    rc: &RequestContext<'_>,
    req: web_sys::Request,
    line: &RequestLine,
    client_ip: Option<&str>,
    identity: Option<&Identity>,
) -> Result<web_sys::Response, ApiError> {
    let cfg = rc.cfg;
    let target = format!("{}{}", cfg.origin_url, line.target());
    // A copy of the client's headers (one call), less those keyward owns: header
    // names arrive lowercased, and a client must not pose as another key in any
    // spelling a server might fold into ours.
    let copy = web_sys::Headers::new_with_headers(&req.headers())
        .map_err(|e| ApiError::internal(format!("{e:?}")))?;
    let headers = Headers(copy);
    // A credential sent to a proxy is keyward's, not the origin's. (`Connection`
    // and the headers it names never reach the worker: the runtime consumes them.)
    let owned: Vec<String> = origin::header_names(&headers.0)
        .into_iter()
        .filter(|name| {
            matches!(
                name.as_str(),
                "authorization" | "proxy-authorization" | "host"
            ) || is_reserved_header(name)
                || is_proxy_header(name)
                || is_key_header(&cfg.key_headers, name)
        })
        .collect();
    for name in owned {
        headers.delete(&name).map_err(ApiError::internal)?;
    }
    // The runtime's address (`CF-Connecting-IP`); anything else is not an address.
    if let Some(ip) = client_ip.filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()) {
        headers
            .set("X-Forwarded-For", ip)
            .map_err(ApiError::internal)?;
    }
    if let Some(id) = identity {
        // Every value is closed to header syntax at input (ids, permissions, projects).
        let set = |name: &str, value: &str| headers.set(name, value).map_err(ApiError::internal);
        set(HEADER_KEY_ID, &id.key_id)?;
        set(HEADER_ACCOUNT, &id.account)?;
        set(HEADER_PERMISSIONS, &id.permissions.join(","))?;
        set(HEADER_ENVIRONMENT, id.environment.as_str())?;
        set(HEADER_PROJECTS, &id.projects.join(","))?;
    }
    let raw = web_sys::RequestInit::new();
    // worker's `Method` maps every method it does not know to GET: set the method
    // as a string on the runtime's own init.
    raw.set_method(&line.method);
    raw.set_headers(&headers.0);
    raw.set_redirect(web_sys::RequestRedirect::Manual);
    if !matches!(line.method.as_str(), "GET" | "HEAD") {
        if let Some(body) = req.body() {
            raw.set_body(&body);
        }
    }
    // Within ORIGIN_TIMEOUT_SECONDS, or the fetch is aborted and the answer is 504.
    let ms = cfg.origin_timeout_ms;
    let answer = match rc.fault(Target::Origin) {
        Some(Mode::Fail) => Err(JsValue::from_str("TEST_FAULTS")),
        Some(Mode::Stall) => match deadline::within(ms, deadline::never()).await {
            Ok(never) => never,
            Err(deadline::Elapsed) => Ok(JsValue::UNDEFINED),
        },
        None => origin::fetch_within(&target, &raw, ms).await,
    };
    match answer {
        Ok(resp) if resp.is_undefined() => {
            worker::console_error!("origin {target}: no answer within {ms} ms");
            Err(ApiError::OriginTimeout)
        }
        Ok(resp) => resp
            .dyn_into::<web_sys::Response>()
            .map_err(|_| ApiError::internal("the origin's answer is not a Response")),
        Err(e) => {
            worker::console_error!("origin {target}: {e:?}");
            Err(ApiError::OriginUnreachable)
        }
    }
}
