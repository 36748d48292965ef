//! The one object protocol. Every Durable Object class (`entry.mjs`) has the Workers
//! RPC method `batch(items)`: JSON commands, answered with one JSON `Answer` each,
//! in order (`lanes.js`). A caller names the object (`Object`), sends a command and
//! reads the answer as the type that command answers with — one decode, no field
//! reads of untyped JSON. Every call has a deadline (`STORAGE_TIMEOUT_SECONDS`):
//! an object that fails or does not answer in time refuses the request, 503 with
//! `Retry-After` — never an admission (fail closed). The cause is logged, not
//! shown. The object side of the protocol is here too: a command from its text,
//! an answer as text.

use super::{runtime, task};
use crate::error::ApiError;
use crate::objects::batch::Answer;
use crate::objects::key::placement;
use crate::objects::key::KeyCommand;
use crate::request::faults::Mode;
use crate::request::regions::Region;
use js_sys::Promise;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_error, Context, Env};

/// The objects keyward keeps, by what they are named after.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    /// One per key, found by its id: the object named by it, or the one the key
    /// has moved to (`objects::key::placement`).
    Key(&'a str),
    /// A key's object by its own name (a move's).
    KeyAt(&'a str),
    /// One per account.
    Account(&'a str),
    /// One per client address bucket (an IPv4 address or an IPv6 /64).
    IpGuard(&'a str),
    /// The deployment's one directory of accounts.
    Directory,
}

impl Object<'_> {
    fn binding(&self) -> &'static str {
        match self {
            Object::Key(_) | Object::KeyAt(_) => "KEY_OBJECTS",
            Object::Account(_) => "ACCOUNT_OBJECTS",
            Object::IpGuard(_) => "IP_GUARDS",
            Object::Directory => "DIRECTORY",
        }
    }

    /// The name of the object asked first.
    fn name(&self) -> String {
        match self {
            Object::Key(id) => runtime::key_home(id).unwrap_or_else(|| id.to_string()),
            Object::KeyAt(n) | Object::Account(n) | Object::IpGuard(n) => n.to_string(),
            Object::Directory => "directory".into(),
        }
    }

    /// A key id is its first object's name; a name of a later one is no key id.
    fn check(&self) -> Result<(), ApiError> {
        match self {
            Object::Key(id) if id.contains('~') => Err(ApiError::NotFound { what: "key".into() }),
            _ => Ok(()),
        }
    }

    fn may_move(&self) -> bool {
        matches!(self, Object::Key(_) | Object::KeyAt(_))
    }
}

/// Moves followed by one call before it gives up (503).
const MAX_HOPS: usize = 4;

/// An object's decoded answer: the command's, or where to ask instead.
enum Reply<A> {
    Done(A),
    Moved(String),
}

#[wasm_bindgen(module = "/src/edge/js/lanes.js")]
extern "C" {
    #[wasm_bindgen(js_name = call)]
    fn js_call(
        env: &JsValue,
        binding: &str,
        name: &str,
        item: String,
        deadline: f64,
        fault: &str,
        from: &str,
        hint: &str,
    ) -> Promise;
    #[wasm_bindgen(js_name = submit)]
    fn js_submit(
        env: &JsValue,
        ctx: &JsValue,
        binding: &str,
        name: &str,
        item: String,
        deadline: f64,
        fault: &str,
        from: &str,
        admission: bool,
        linger: f64,
    ) -> Promise;
}

/// Storage that cannot answer refuses the request: 503 with `Retry-After`, never an
/// admission (fail closed). The cause is logged, not shown.
pub fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    console_error!("{what} cannot answer: {e}");
    ApiError::Unavailable { retry_after: 1 }
}

fn fault_word(fault: Option<Mode>) -> &'static str {
    match fault {
        None => "",
        Some(Mode::Fail) => "fail",
        Some(Mode::Stall) => "stall",
    }
}

/// Where the calling task is, when geography is simulated (`TEST_GEO`): the
/// object waits the round trip from there (`entry.mjs`).
fn from() -> &'static str {
    task::region().map_or("", Region::name)
}

fn deadline_ms(env: &Env) -> f64 {
    runtime::config(env).map_or(5_000.0, |c| c.storage_timeout_ms as f64)
}

/// Sends `cmd` to `to` now and reads its answer as `A`.
pub async fn ask<A: DeserializeOwned>(
    env: &Env,
    to: Object<'_>,
    cmd: &impl Serialize,
) -> Result<A, ApiError> {
    ask_with(env, to, cmd, None).await
}

/// `ask` of a call that may create the object: it is created in `hint`'s region
/// (a location hint; an object that exists stays where it is).
pub async fn ask_placed<A: DeserializeOwned>(
    env: &Env,
    to: Object<'_>,
    cmd: &impl Serialize,
    hint: Option<Region>,
) -> Result<A, ApiError> {
    call(env, to, cmd, None, hint).await
}

/// `ask`, with a test fault for this call (`TEST_FAULTS`).
pub async fn ask_with<A: DeserializeOwned>(
    env: &Env,
    to: Object<'_>,
    cmd: &impl Serialize,
    fault: Option<Mode>,
) -> Result<A, ApiError> {
    call(env, to, cmd, fault, None).await
}

async fn call<A: DeserializeOwned>(
    env: &Env,
    to: Object<'_>,
    cmd: &impl Serialize,
    fault: Option<Mode>,
    hint: Option<Region>,
) -> Result<A, ApiError> {
    let body = serde_json::to_string(cmd).map_err(ApiError::internal)?;
    hopping(env, to, |name| {
        js_call(
            env,
            to.binding(),
            name,
            body.clone(),
            deadline_ms(env),
            fault_word(fault),
            from(),
            hint.map_or("", Region::name),
        )
    })
    .await
}

/// `send(name)` to `to`'s object, then to the object a moved key went to, and so
/// on (at most `MAX_HOPS`): the one loop every call follows moves by.
async fn hopping<A: DeserializeOwned>(
    env: &Env,
    to: Object<'_>,
    send: impl Fn(&str) -> Promise,
) -> Result<A, ApiError> {
    to.check()?;
    let mut name = to.name();
    for _ in 0..MAX_HOPS {
        match answer(to, &name, send(&name)).await? {
            Reply::Done(v) => return Ok(v),
            Reply::Moved(next) => name = follow(env, next).await?,
        }
    }
    Err(moved_too_often(&name))
}

fn moved_too_often(name: &str) -> ApiError {
    unavailable(
        name,
        format!("moved more than {MAX_HOPS} times in one call"),
    )
}

/// A key moved to the object `next`: makes sure `next` holds it (a move another
/// isolate began may not have reached it yet: `MoveIn` takes it there, or says it
/// is there) and remembers it. Answers the name to ask.
async fn follow(env: &Env, mut next: String) -> Result<String, ApiError> {
    for _ in 0..MAX_HOPS {
        let id = placement::locator(&next).to_string();
        if runtime::key_home(&id).as_deref() == Some(next.as_str()) {
            return Ok(next);
        }
        let region = task::client();
        let cmd = KeyCommand::MoveIn {
            name: next.clone(),
            region,
        };
        let body = serde_json::to_string(&cmd).map_err(ApiError::internal)?;
        let there = Object::KeyAt(&next);
        let promise = js_call(
            env,
            there.binding(),
            &next,
            body,
            deadline_ms(env),
            "",
            from(),
            region.map_or("", Region::name),
        );
        match answer::<Value>(there, &next, promise).await? {
            Reply::Done(_) => {
                runtime::learn_key_home(&id, &next);
                return Ok(next);
            }
            Reply::Moved(further) => next = further,
        }
    }
    Err(moved_too_often(&next))
}

/// What a command submitted through a lane waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waits {
    /// A request's admission: it waits only behind a call that carries another
    /// admission (whose answer it would otherwise race), never behind one that
    /// carries only settlements.
    ForAdmissions,
    /// A settlement or refund, after the answer: it rides the next call that
    /// carries an admission, or goes alone after `linger_ms` (`SETTLE_LINGER_MS`).
    Settles { linger_ms: u32 },
}

/// `ask` for the request path: the command waits in the object's lane while a call
/// to it is in flight and travels with the others in the next one (group commit,
/// `objects::batch`). The object decides each command as if it came alone.
pub async fn submit<A: DeserializeOwned>(
    env: &Env,
    ctx: &Context,
    to: Object<'_>,
    cmd: &impl Serialize,
    fault: Option<Mode>,
    waits: Waits,
) -> Result<A, ApiError> {
    let body = serde_json::to_string(cmd).map_err(ApiError::internal)?;
    let js_ctx: &JsValue = ctx.as_ref();
    hopping(env, to, |name| {
        js_submit(
            env,
            js_ctx,
            to.binding(),
            name,
            body.clone(),
            deadline_ms(env),
            fault_word(fault),
            from(),
            waits == Waits::ForAdmissions,
            match waits {
                Waits::ForAdmissions => 0.0,
                Waits::Settles { linger_ms } => linger_ms as f64,
            },
        )
    })
    .await
}

/// The object's answer, decoded once as `A`; its refusals come back as they are.
async fn answer<A: DeserializeOwned>(
    to: Object<'_>,
    name: &str,
    promise: Promise,
) -> Result<Reply<A>, ApiError> {
    let fail = |e: &dyn std::fmt::Display| unavailable(&format!("{}/{name}", to.binding()), e);
    let text = JsFuture::from(promise)
        .await
        .map_err(|e| fail(&format!("{e:?}")))?
        .as_string()
        .ok_or_else(|| fail(&"an answer that is not text"))?;
    match serde_json::from_str::<Answer<A>>(&text).map_err(|e| fail(&e))? {
        Answer::Ok(v) => Ok(Reply::Done(v)),
        Answer::Moved(next) if to.may_move() => Ok(Reply::Moved(next)),
        Answer::Moved(next) => Err(fail(&format!("answered 'moved to {next}'"))),
        Answer::Err(ApiError::Internal { detail }) => Err(fail(&detail)),
        Answer::Err(e) => Err(e),
    }
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

/// Inside an object: `handle` for each command of a batch that needs no I/O, one
/// after the other, without waiting on anything.
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

/// Inside an object: `handle` for each command of a batch, one after the other.
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

/// Which object a background command goes to (owned: it outlives the request's
/// borrows).
pub enum To {
    Key(String),
    Account(String),
}

/// Sends `cmd` after the answer through the object's lane, lingering
/// `linger_ms` (`SETTLE_LINGER_MS`) for the next admission's call; logs a
/// failure. The one way the request path sends what no request waits for:
/// settlements, refunds, lease reports.
pub fn background(ctx: &Context, env: &Env, linger_ms: u32, to: To, cmd: impl Serialize + 'static) {
    let waits = Waits::Settles { linger_ms };
    // The same request's context, owned by the task that outlives this call.
    let lane_ctx = task::owned_context(ctx);
    let env = env.clone();
    task::wait_until(ctx, async move {
        let object = match &to {
            To::Key(id) => Object::Key(id),
            To::Account(a) => Object::Account(a),
        };
        let sent = submit::<Value>(&env, &lane_ctx, object, &cmd, None, waits).await;
        if let Err(e) = sent {
            console_error!("{object:?}: background command failed: {e:?}");
        }
    });
}
