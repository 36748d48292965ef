//! Talking to Durable Objects over Workers RPC (`lanes.js`, and the classes of
//! `entry.mjs`): each object's `batch` method takes JSON commands and answers one
//! `{"ok": ..}` or `{"err": ..}` per command, in order. No Request or Response is
//! built per call.

use crate::error::ApiError;
use crate::objects::batch::Answer;
use js_sys::Promise;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_error, Context, Env, Request, Response};

pub const KEYS: &str = "KEY_OBJECTS";
pub const ACCOUNTS: &str = "ACCOUNT_OBJECTS";
pub const REGISTRY: &str = "REGISTRY";
pub const IP_GUARDS: &str = "IP_GUARDS";
pub const DIRECTORY: &str = "DIRECTORY";
/// The old global registry (read once, by the migration) and the directory of
/// accounts are one object each; neither is on the gate's path.
pub const REGISTRY_NAME: &str = "registry";
pub const DIRECTORY_NAME: &str = "directory";

#[wasm_bindgen(module = "/src/edge/lanes.js")]
extern "C" {
    #[wasm_bindgen(js_name = call)]
    fn js_call(env: &JsValue, binding: &str, name: &str, item: String) -> Promise;
    #[wasm_bindgen(js_name = submit)]
    fn js_submit(env: &JsValue, ctx: &JsValue, binding: &str, name: &str, item: String) -> Promise;
}

/// Storage that cannot answer refuses the request: 503 with `Retry-After`, never an
/// admission (fail closed). The cause is logged, not shown.
pub fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    console_error!("{what} cannot answer: {e}");
    ApiError::Unavailable { retry_after: 1 }
}

/// Sends `cmd` to the object `name` of namespace `binding`. An object that cannot
/// be reached, or fails inside, answers `Unavailable`; its refusals come back as
/// they are.
pub async fn call<C: Serialize>(
    env: &Env,
    binding: &str,
    name: &str,
    cmd: &C,
) -> Result<Value, ApiError> {
    let body = serde_json::to_string(cmd).map_err(ApiError::internal)?;
    answer(binding, name, js_call(env, binding, name, body)).await
}

/// `call` for the request path: the command waits in the object's lane while a
/// call to it is in flight and travels with the others in the next one (group
/// commit, `batch`). The object decides each command as if it came alone.
pub async fn submit<C: Serialize>(
    env: &Env,
    ctx: &Context,
    binding: &str,
    name: &str,
    cmd: &C,
) -> Result<Value, ApiError> {
    let body = serde_json::to_string(cmd).map_err(ApiError::internal)?;
    let js_ctx: &JsValue = ctx.as_ref();
    answer(binding, name, js_submit(env, js_ctx, binding, name, body)).await
}

async fn answer(binding: &str, name: &str, promise: Promise) -> Result<Value, ApiError> {
    let fail = |e: &dyn std::fmt::Display| unavailable(&format!("{binding}/{name}"), e);
    let text = JsFuture::from(promise)
        .await
        .map_err(|e| fail(&format!("{e:?}")))?
        .as_string()
        .ok_or_else(|| fail(&"an answer that is not text"))?;
    match serde_json::from_str::<Answer>(&text).map_err(|e| fail(&e))? {
        Answer::Ok(v) => Ok(v),
        Answer::Err(ApiError::Internal { detail }) => Err(fail(&detail)),
        Answer::Err(e) => Err(e),
    }
}

/// `call`, with the reply read as `T`.
pub async fn call_as<C: Serialize, T: DeserializeOwned>(
    env: &Env,
    binding: &str,
    name: &str,
    cmd: &C,
) -> Result<T, ApiError> {
    let v = call(env, binding, name, cmd).await?;
    serde_json::from_value(v).map_err(ApiError::internal)
}

/// `submit`, with the reply read as `T`.
pub async fn submit_as<C: Serialize, T: DeserializeOwned>(
    env: &Env,
    ctx: &Context,
    binding: &str,
    name: &str,
    cmd: &C,
) -> Result<T, ApiError> {
    let v = submit(env, ctx, binding, name, cmd).await?;
    serde_json::from_value(v).map_err(ApiError::internal)
}

/// Inside an object: a command from its text.
pub fn parse<C: DeserializeOwned>(text: &str) -> Result<C, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::internal(format!("bad object command: {e}")))
}

/// Inside an object: one answer as text.
pub fn encode(result: Result<Value, ApiError>) -> String {
    serde_json::to_string(&Answer::from(result))
        .unwrap_or_else(|_| r#"{"err":{"internal":{"detail":"unencodable answer"}}}"#.into())
}

/// Inside an object: `handle` for each command of an RPC batch that needs no I/O,
/// one after the other, without waiting on anything.
pub fn each_now<C, F>(items: &[String], handle: F) -> Vec<String>
where
    C: DeserializeOwned,
    F: Fn(C) -> Result<Value, ApiError>,
{
    items
        .iter()
        .map(|item| encode(parse(item).and_then(&handle)))
        .collect()
}

/// Inside an object: sets its alarm `at` (Unix ms) at once. A command's answer
/// need not wait for the write (the runtime holds it until its storage writes
/// are done); an alarm handler must, or the write may land after the handler's
/// end deletes the alarm.
pub fn set_alarm_now(state: &worker::State, at: i64) -> Result<Promise, ApiError> {
    let storage = state
        .as_raw()
        .storage()
        .map_err(|e| ApiError::internal(format!("{e:?}")))?;
    let when = js_sys::Date::new(&JsValue::from_f64(at as f64));
    storage
        .set_alarm(when, js_sys::Object::new())
        .map_err(|e| ApiError::internal(format!("{e:?}")))
}

/// Inside an object: `handle` for each command of an RPC batch, one after the
/// other (objects whose commands need no group decision).
pub async fn each<C, F, Fut>(items: Vec<String>, handle: F) -> Vec<String>
where
    C: DeserializeOwned,
    F: Fn(C) -> Fut,
    Fut: Future<Output = Result<Value, ApiError>>,
{
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let result = match parse(&item) {
            Ok(cmd) => handle(cmd).await,
            Err(e) => Err(e),
        };
        out.push(encode(result));
    }
    out
}

/// Inside an object: a command sent by `fetch` (a worker of an earlier build,
/// during a deployment), answered as `batch` would.
pub async fn fetched<C, F, Fut>(mut req: Request, handle: F) -> worker::Result<Response>
where
    C: DeserializeOwned,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = Result<Value, ApiError>>,
{
    let result = match req.text().await {
        Ok(text) => match parse(&text) {
            Ok(cmd) => handle(cmd).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(ApiError::internal(e)),
    };
    Response::from_json(&Answer::from(result))
}
