//! Rendering: every error answer is made here, from `ApiError`.

use crate::error::ApiError;
use serde::Serialize;
use worker::{console_error, Headers, Response, Result};

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

pub fn json<T: Serialize>(status: u16, body: &T) -> std::result::Result<Response, ApiError> {
    let headers = json_headers().map_err(ApiError::internal)?;
    Response::from_json(body)
        .map(|r| r.with_status(status).with_headers(headers))
        .map_err(ApiError::internal)
}

fn json_headers() -> Result<Headers> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(headers)
}
