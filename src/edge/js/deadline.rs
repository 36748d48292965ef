//! A deadline on any wait that is not an object call (those have theirs in
//! `lanes.js`): KV, the origin, a webhook receiver. The timer is the runtime's,
//! set by the request that waits, so it wakes that request's own task.

use js_sys::{Function, Promise};
use std::future::Future;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

/// The wait did not end within its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// `future`'s output, or `Elapsed` once `ms` have passed.
pub async fn within<F: Future>(ms: i64, future: F) -> Result<F::Output, Elapsed> {
    let timer = JsFuture::from(timer(ms.max(1)));
    let future = std::pin::pin!(future);
    match futures_util::future::select(future, timer).await {
        futures_util::future::Either::Left((out, _)) => Ok(out),
        futures_util::future::Either::Right(_) => Err(Elapsed),
    }
}

/// A promise the runtime resolves after `ms`. (worker's `Delay` wakes its task
/// before it marks itself due, which an executor that polls where it is woken,
/// as `task` does, reads as not due yet.)
fn timer(ms: i64) -> Promise {
    Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        if let Some(set) = set {
            let _ = set.call2(&global, &resolve, &JsValue::from_f64(ms as f64));
        }
    })
}

/// Waits `ms` (bounded by its caller: a plan change waiting out its leases).
pub async fn sleep(ms: i64) {
    if ms > 0 {
        let _ = JsFuture::from(timer(ms)).await;
    }
}

/// A wait that never ends (a stalled call, `TEST_FAULTS`): only a deadline ends it.
pub async fn never<T>() -> T {
    std::future::pending().await
}
