//! The Workers adapter: the fetch entry point and the thin layers around the core.
//!
//! Storage the request path reads: the KV index (hash → key id, edge-cached), then
//! the key's Durable Object and its account's, concurrently. Nothing else; after
//! the answer, the key's object is told the request's outcome (the log). The
//! management routes read each account's index in its own object; only the
//! bootstrap token's cross-account views read the directory of accounts.

mod account_object;
mod admin;
mod copies;
mod directory;
mod forward;
mod gate;
mod index_store;
mod ip_guard_object;
mod key_object;
mod kv_index;
mod ledger_store;
mod object_stats;
mod objects;
mod registry;
mod respond;
mod runtime;
mod task;
mod webcrypto;

use crate::error::ApiError;
use crate::request::inbound::{self, RequestLine};
use wasm_bindgen::prelude::*;
use worker::worker_sys::{web_sys, Context as JsContext};
use worker::{Context, Env, Request, Response};

/// The fetch entry point (what `#[event(fetch)]` would generate, but polled by
/// this crate's own executor, `task`: each request's code runs in its own request).
#[wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, ctx: JsContext) -> js_sys::Promise {
    task::promise(async move {
        let ctx = Context::new(ctx);
        let outcome = match runtime::config(&env) {
            Ok(cfg) => route(req, &env, &cfg, &ctx).await,
            Err(e) => Err(e),
        };
        let resp = outcome.or_else(|e| respond::error(&e)).or_else(|e| {
            worker::console_error!("cannot answer: {e}");
            Response::error("Internal error", 500)
        });
        resp.map(|r| JsValue::from(web_sys::Response::from(r)))
            .map_err(JsValue::from)
    })
}

/// Row 1 and the request line, read once in canonical form; then the management
/// routes or the gate, both deciding on that one form.
async fn route(
    req: web_sys::Request,
    env: &Env,
    cfg: &crate::config::Config,
    ctx: &Context,
) -> std::result::Result<Response, ApiError> {
    let line = inbound::request_line(&req.method(), &req.url(), cfg.allow_http)?;
    let under_admin = line
        .path
        .strip_prefix(cfg.admin_prefix.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !under_admin {
        return gate::handle(req, env, cfg, ctx, &line).await;
    }
    // HEAD on a GET route is that GET without its body (RFC 9110 §9.3.2); the
    // origin answers the gate's HEADs itself.
    let req = Request::from(req);
    if line.method != "HEAD" {
        return admin::handle(req, env, cfg, ctx, &line).await;
    }
    let as_get = RequestLine {
        method: "GET".into(),
        ..line.clone()
    };
    let answer = admin::handle(req, env, cfg, ctx, &as_get)
        .await
        .or_else(|e| respond::error(&e).map_err(ApiError::internal))?;
    respond::empty(answer.status_code(), answer.headers().clone())
}
