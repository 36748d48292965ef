//! The Workers adapter: the fetch entry point and the thin layers around the core.
//!
//! Storage the request path reads: the KV index (hash → key id, edge-cached), then
//! the key's Durable Object and its account's, concurrently. Nothing else; after
//! the answer, the key's object is told the request's outcome (the log).

mod account_object;
mod admin;
mod forward;
mod gate;
mod ip_guard_object;
mod key_object;
mod kv_index;
mod ledger_store;
mod objects;
mod registry;
mod respond;
mod runtime;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let cfg = match runtime::config(&env) {
        Ok(cfg) => cfg,
        Err(e) => return respond::error(&e),
    };
    let path = req.path();
    let under_admin = path == cfg.admin_prefix
        || path
            .strip_prefix(cfg.admin_prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/'));
    let outcome = if under_admin {
        admin::handle(req, &env, &cfg, &ctx).await
    } else {
        gate::handle(req, &env, &cfg, &ctx).await
    };
    outcome.or_else(|e| respond::error(&e))
}
