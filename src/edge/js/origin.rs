//! The origin fetch's two calls into JavaScript (`origin.js`): the fetch with its
//! deadline, and a request's header names in one call.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;

#[wasm_bindgen(module = "/src/edge/js/origin.js")]
extern "C" {
    #[wasm_bindgen(js_name = fetchWithin)]
    fn js_fetch_within(url: &str, init: &web_sys::RequestInit, ms: f64) -> Promise;
    #[wasm_bindgen(js_name = headerNames)]
    fn js_header_names(headers: &web_sys::Headers) -> js_sys::Array;
}

/// `fetch(url, init)` within `ms`: the origin's Response, `undefined` when it did
/// not answer in time (the fetch is aborted), or the failure.
pub async fn fetch_within(
    url: &str,
    init: &web_sys::RequestInit,
    ms: i64,
) -> Result<JsValue, JsValue> {
    JsFuture::from(js_fetch_within(url, init, ms.max(1) as f64)).await
}

/// The names of `headers` (lowercase, as the runtime keeps them).
pub fn header_names(headers: &web_sys::Headers) -> Vec<String> {
    js_header_names(headers)
        .iter()
        .filter_map(|name| name.as_string())
        .collect()
}
