//! The Workers adapter, in three parts over the pure core:
//! - `js`: the JavaScript boundary — the Worker's module and the Durable Object
//!   classes (`entry.mjs`), object calls with deadlines and group commit
//!   (`lanes.js`, `rpc`), each request's task (`task`), the runtime's clock,
//!   configuration and caches (`runtime`), timers (`deadline`), WebCrypto;
//! - `request`: the request path, as SPEC §3's table (`gate`), and the origin;
//! - `objects`: the Durable Objects, each loading its state, calling its pure core
//!   (`crate::objects`) and performing the effects;
//! - `management`: the routes of SPEC §4.

mod js;
mod management;
mod objects;
mod request;

use crate::error::ApiError;
use crate::request::inbound::{self, RequestLine};
use crate::request::regions::{self, Region};
use js::{runtime, task};
use request::gate::Reply;
use request::respond;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::worker_sys::{web_sys, Context as JsContext};
use worker::{Context, Env, Request};

/// The fetch entry point (what `#[event(fetch)]` would generate, but polled by
/// this crate's own executor, `task`: each request's code runs in its own request).
/// What needs no waiting is decided at once: the configuration, the simulated
/// region's header, row 1 and the request line; a public path's answer is the
/// origin's promise itself (`gate::public_now`); everything else is a task.
#[wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, ctx: JsContext) -> js_sys::Promise {
    let ctx = Context::new(ctx);
    let read = runtime::config(&env).and_then(|cfg| {
        let region = match cfg.test_geo {
            Some(default) => {
                let header = req.headers().get(regions::HEADER).ok().flatten();
                Some(regions::of_request(header.as_deref(), default)?)
            }
            None => None,
        };
        let line = inbound::request_line(&req.method(), &req.url(), cfg.allow_http)?;
        Ok((cfg, region, line))
    });
    let (cfg, region, line) = match read {
        Ok(read) => read,
        Err(e) => return answer(respond::rendered(&e)),
    };
    let under_admin = line
        .path
        .strip_prefix(cfg.admin_prefix.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !under_admin {
        match request::gate::public_now(&req, &env, &cfg, &ctx, &line) {
            Ok(Some(answer)) => return answer,
            Err(e) => return answer(respond::rendered(&e)),
            Ok(None) => {}
        }
    }
    task::promise(async move {
        if region.is_some() {
            task::set_region(region);
        }
        let resp = match route(req, &env, &cfg, &ctx, line, under_admin).await {
            Ok(Reply::Passed(raw)) => return Ok(JsValue::from(raw)),
            Ok(Reply::Built(resp)) => Ok(web_sys::Response::from(resp)),
            Err(e) => respond::rendered(&e),
        };
        resp.map(JsValue::from)
    })
}

/// An answer made at once.
fn answer(resp: Result<web_sys::Response, JsValue>) -> js_sys::Promise {
    match resp {
        Ok(resp) => js_sys::Promise::resolve(&JsValue::from(resp)),
        Err(e) => js_sys::Promise::reject(&e),
    }
}

/// The region nearest the client and its country, from `request.cf` (absent
/// under `wrangler dev`).
fn client_place(req: &web_sys::Request) -> (Option<Region>, Option<String>) {
    let Ok(cf) = js_sys::Reflect::get(req, &"cf".into()) else {
        return (None, None);
    };
    let text = |name: &str| {
        js_sys::Reflect::get(&cf, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let longitude = text("longitude").parse::<f32>().ok();
    let country = text("country");
    let region = regions::nearest(&text("continent"), &country, longitude);
    (region, Some(country).filter(|c| !c.is_empty()))
}

/// The header that names a request's client country (`TEST_COUNTRY_HEADER` only).
const TEST_COUNTRY_HEADER: &str = "x-keyward-test-country";

/// The management routes or the gate, both deciding on the one canonical request
/// line.
async fn route(
    req: web_sys::Request,
    env: &Env,
    cfg: &crate::config::Config,
    ctx: &Context,
    line: RequestLine,
    under_admin: bool,
) -> std::result::Result<Reply, ApiError> {
    // Where the client is matters to a key's object (where it lives), not to a
    // public path: read then, from `request.cf`.
    let placed = {
        // The same request (a handle; `Request::clone` would copy its body).
        let req: web_sys::Request = JsValue::clone(req.as_ref()).unchecked_into();
        move || {
            let (region, country) = client_place(&req);
            if cfg.test_geo.is_none() {
                task::set_client(region);
            }
            let country = match cfg.test_country_header {
                true => req.headers().get(TEST_COUNTRY_HEADER).ok().flatten(),
                false => country,
            };
            task::set_country(country);
        }
    };
    if !under_admin {
        return request::gate::handle(req, env, cfg, ctx, &line, placed).await;
    }
    placed();
    // HEAD on a GET route is that GET without its body (RFC 9110 §9.3.2); the
    // origin answers the gate's HEADs itself.
    let req = Request::from(req);
    if line.method != "HEAD" {
        return management::handle(req, env, cfg, ctx, &line)
            .await
            .map(Reply::Built);
    }
    let as_get = RequestLine {
        method: "GET".into(),
        ..line.clone()
    };
    let answer = management::handle(req, env, cfg, ctx, &as_get)
        .await
        .or_else(|e| respond::error(&e).map_err(ApiError::internal))?;
    respond::empty(answer.status_code(), answer.headers().clone()).map(Reply::Built)
}
