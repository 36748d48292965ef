//! The origin forwarder: the method as sent (PURGE stays PURGE), the canonical path,
//! the query and body unchanged; `Authorization` and every client header that could
//! be read as keyward's identity removed; keyward's identity headers added.

use crate::config::Config;
use crate::error::ApiError;
use crate::inbound::{is_reserved_header, RequestLine};
use crate::model::Identity;
use worker::{web_sys, Fetch, Headers, Request, RequestInit, RequestRedirect, Response};

pub const HEADER_KEY_ID: &str = "X-Keyward-Key-Id";
pub const HEADER_ACCOUNT: &str = "X-Keyward-Account";
pub const HEADER_PERMISSIONS: &str = "X-Keyward-Permissions";
pub const HEADER_ENVIRONMENT: &str = "X-Keyward-Environment";
pub const HEADER_PROJECTS: &str = "X-Keyward-Projects";

pub async fn to_origin(
    req: Request,
    line: &RequestLine,
    cfg: &Config,
    identity: Option<&Identity>,
) -> Result<Response, ApiError> {
    let target = format!("{}{}", cfg.origin_url, line.target());
    let headers = Headers::new();
    for (name, value) in req.headers().entries() {
        // Header names arrive lowercased. A client must not pose as another key,
        // in any spelling a server might fold into ours.
        if name == "authorization" || name == "host" || is_reserved_header(&name) {
            continue;
        }
        headers.append(&name, &value).map_err(ApiError::internal)?;
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
    let mut init = RequestInit::new();
    init.with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    let has_body = !matches!(line.method.as_str(), "GET" | "HEAD");
    if has_body {
        init.with_body(req.inner().body().map(Into::into));
    }
    // worker's `Method` maps every method it does not know to GET: set the method
    // as a string on the runtime's own init instead.
    let raw: web_sys::RequestInit = (&init).into();
    raw.set_method(&line.method);
    let outbound = web_sys::Request::new_with_str_and_init(&target, &raw)
        .map(Request::from)
        .map_err(|e| ApiError::internal(format!("{e:?}")))?;
    Fetch::Request(outbound).send().await.map_err(|e| {
        worker::console_error!("origin {target}: {e}");
        ApiError::OriginUnreachable
    })
}
