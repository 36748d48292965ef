//! The origin forwarder: method, path, query and body unchanged; `Authorization` and
//! any client-sent identity headers removed; keyward's identity headers added.

use crate::config::Config;
use crate::error::ApiError;
use crate::model::Identity;
use crate::request_url::RequestUrl;
use worker::{Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

pub const HEADER_KEY_ID: &str = "X-Keyward-Key-Id";
pub const HEADER_ACCOUNT: &str = "X-Keyward-Account";
pub const HEADER_PERMISSIONS: &str = "X-Keyward-Permissions";
pub const HEADER_ENVIRONMENT: &str = "X-Keyward-Environment";
pub const HEADER_PROJECTS: &str = "X-Keyward-Projects";

pub async fn to_origin(
    req: Request,
    url: &RequestUrl<'_>,
    cfg: &Config,
    identity: Option<&Identity>,
) -> Result<Response, ApiError> {
    let target = match url.query {
        Some(q) => format!("{}{}?{q}", cfg.origin_url, url.path),
        None => format!("{}{}", cfg.origin_url, url.path),
    };
    let headers = Headers::new();
    for (name, value) in req.headers().entries() {
        // Header names arrive lowercased. A client must not pose as another key.
        if name == "authorization" || name == "host" || name.starts_with("x-keyward-") {
            continue;
        }
        headers.append(&name, &value).map_err(ApiError::internal)?;
    }
    if let Some(id) = identity {
        let set = |name: &str, value: &str| headers.set(name, value).map_err(ApiError::internal);
        set(HEADER_KEY_ID, &id.key_id)?;
        set(HEADER_ACCOUNT, &id.account)?;
        set(HEADER_PERMISSIONS, &id.permissions.join(","))?;
        set(HEADER_ENVIRONMENT, id.environment.as_str())?;
        set(HEADER_PROJECTS, &id.projects.join(","))?;
    }
    let method = req.method();
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        init.with_body(req.inner().body().map(Into::into));
    }
    let outbound = Request::new_with_init(&target, &init).map_err(ApiError::internal)?;
    Fetch::Request(outbound).send().await.map_err(|e| {
        worker::console_error!("origin {target}: {e}");
        ApiError::OriginUnreachable
    })
}
