//! The origin fetch's calls into JavaScript (`origin.js`), one crossing each: a
//! request's header names; the forwarded request made and sent with its
//! deadline; and an answer made straight from that promise.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use worker::web_sys;

/// Renders keyward's answer when the origin did not answer: `(target, deadline
/// ms, timed out, the failure)`. Made once per isolate by its caller.
pub type Failed = Closure<dyn Fn(String, f64, bool, JsValue) -> Result<JsValue, JsValue>>;

#[wasm_bindgen(module = "/src/edge/js/origin.js")]
extern "C" {
    #[wasm_bindgen(js_name = send)]
    fn js_send(
        url: &str,
        request: &web_sys::Request,
        method: &str,
        drop: &str,
        set: &str,
        with_body: bool,
        ms: f64,
    ) -> Promise;
    #[wasm_bindgen(js_name = answered)]
    fn js_answered(sent: &Promise, url: &str, ms: f64, failed: &Failed) -> Promise;
    #[wasm_bindgen(js_name = headerNames)]
    fn js_header_names(headers: &web_sys::Headers) -> String;
}

/// What the origin receives of a client's request: its method, whether its body,
/// the header names removed and the headers set (names and values without line
/// breaks: the caller's to ensure).
pub struct Outbound<'a> {
    pub url: &'a str,
    pub method: &'a str,
    pub with_body: bool,
    pub drop: Vec<&'a str>,
    pub set: Vec<(&'a str, &'a str)>,
}

/// `request` as `out` says, sent: the promise of the origin's Response,
/// `undefined` when it did not answer within `ms`, rejected with the failure.
pub fn send(request: &web_sys::Request, out: &Outbound<'_>, ms: i64) -> Promise {
    let set: Vec<&str> = out.set.iter().flat_map(|(n, v)| [*n, *v]).collect();
    js_send(
        out.url,
        request,
        out.method,
        &out.drop.join("\n"),
        &set.join("\n"),
        out.with_body,
        ms.max(1) as f64,
    )
}

/// The answer `send`'s promise makes by itself: the origin's Response, or what
/// `failed` renders.
pub fn answered(sent: &Promise, url: &str, ms: i64, failed: &Failed) -> Promise {
    js_answered(sent, url, ms.max(1) as f64, failed)
}

/// The names of `headers` (lowercase, as the runtime keeps them), one per line.
pub fn header_names(headers: &web_sys::Headers) -> String {
    js_header_names(headers)
}
