//! Talking to Durable Objects: one JSON command in, `{"ok": ..}` or `{"err": ..}` out.

use crate::batch::Answer;
use crate::error::ApiError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{console_error, Env, Method, Request, RequestInit, Response};

pub const KEYS: &str = "KEY_OBJECTS";
pub const ACCOUNTS: &str = "ACCOUNT_OBJECTS";
pub const REGISTRY: &str = "REGISTRY";
pub const IP_GUARDS: &str = "IP_GUARDS";
pub const DIRECTORY: &str = "DIRECTORY";
/// The old global registry (read once, by the migration) and the directory of
/// accounts are one object each; neither is on the gate's path.
pub const REGISTRY_NAME: &str = "registry";
pub const DIRECTORY_NAME: &str = "directory";

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
    let fail = |e: &dyn std::fmt::Display| unavailable(&format!("{binding}/{name}"), e);
    let stub = env
        .durable_object(binding)
        .and_then(|ns| ns.id_from_name(name)?.get_stub())
        .map_err(|e| fail(&e))?;
    let body = serde_json::to_string(cmd).map_err(ApiError::internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(JsValue::from_str(&body)));
    let req = Request::new_with_init("https://object/", &init).map_err(ApiError::internal)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(|e| fail(&e))?;
    match resp.json::<Answer>().await.map_err(|e| fail(&e))? {
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

/// Inside an object: the command of a request.
pub async fn command<C: DeserializeOwned>(req: &mut Request) -> Result<C, ApiError> {
    req.json::<C>()
        .await
        .map_err(|e| ApiError::internal(format!("bad object command: {e}")))
}

/// Inside an object: the reply.
pub fn reply(result: Result<Value, ApiError>) -> worker::Result<Response> {
    Response::from_json(&Answer::from(result))
}
