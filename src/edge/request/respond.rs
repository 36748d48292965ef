//! Rendering: every error answer is made here, from `ApiError`; every answer
//! keyward makes itself carries `X-Content-Type-Options: nosniff` and
//! `Cache-Control: no-store` (management answers may hold a secret).

use crate::error::ApiError;
use serde::Serialize;
use wasm_bindgen::JsValue;
use worker::{console_error, web_sys, Headers, Response, Result};

pub fn error(e: &ApiError) -> Result<Response> {
    match e {
        ApiError::Internal { detail } => console_error!("internal error: {detail}"),
        ApiError::Misconfigured { reason } => console_error!("configuration: {reason}"),
        _ => {}
    }
    let headers = json_headers()?;
    for (name, value) in e.headers() {
        headers.set(name, &value)?;
    }
    Ok(Response::from_json(&e.body())?
        .with_status(e.status())
        .with_headers(headers))
}

/// `e`'s answer as the runtime's Response (a plain 500 if it cannot be made; the
/// runtime's failure if not even that).
pub fn rendered(e: &ApiError) -> std::result::Result<web_sys::Response, JsValue> {
    error(e)
        .or_else(|e| {
            console_error!("cannot answer: {e}");
            Response::error("Internal error", 500)
        })
        .map(web_sys::Response::from)
        .map_err(JsValue::from)
}

pub fn json<T: Serialize>(status: u16, body: &T) -> std::result::Result<Response, ApiError> {
    let headers = json_headers().map_err(ApiError::internal)?;
    Response::from_json(body)
        .map(|r| r.with_status(status).with_headers(headers))
        .map_err(ApiError::internal)
}

/// An answer without a body (204, and HEAD's answers).
pub fn empty(status: u16, headers: Headers) -> std::result::Result<Response, ApiError> {
    let answer = Response::empty().map_err(ApiError::internal)?;
    let headers = own_headers(headers).map_err(ApiError::internal)?;
    Ok(answer.with_status(status).with_headers(headers))
}

/// A JSON document that holds nothing secret (the OpenAPI document): cacheable.
pub fn document(body: &str) -> std::result::Result<Response, ApiError> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(ApiError::internal);
    set("Content-Type", "application/json")?;
    set("X-Content-Type-Options", "nosniff")?;
    Ok(Response::ok(body)
        .map_err(ApiError::internal)?
        .with_headers(headers))
}

fn json_headers() -> Result<Headers> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    own_headers(headers)
}

fn own_headers(headers: Headers) -> Result<Headers> {
    headers.set("Cache-Control", "no-store")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    Ok(headers)
}
