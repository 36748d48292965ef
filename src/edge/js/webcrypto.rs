//! Signature checks by the runtime's WebCrypto (`crypto.subtle`): no elliptic-curve
//! code of our own.

use crate::error::ApiError;
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

fn js_err(what: &str) -> impl Fn(JsValue) -> ApiError + '_ {
    move |e| ApiError::internal(format!("WebCrypto {what}: {e:?}"))
}

fn object(pairs: &[(&str, &str)]) -> Result<Object, ApiError> {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), &(*v).into()).map_err(js_err("params"))?;
    }
    Ok(o)
}

/// Calls `crypto.subtle[method](...args)` and awaits its promise.
async fn subtle(method: &str, args: &[JsValue]) -> Result<JsValue, ApiError> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).map_err(js_err("crypto"))?;
    let subtle = Reflect::get(&crypto, &"subtle".into()).map_err(js_err("subtle"))?;
    let f: Function = Reflect::get(&subtle, &method.into())
        .map_err(js_err(method))?
        .dyn_into()
        .map_err(js_err(method))?;
    let promise: Promise = f
        .apply(&subtle, &args.iter().collect::<Array>())
        .map_err(js_err(method))?
        .dyn_into()
        .map_err(js_err(method))?;
    JsFuture::from(promise).await.map_err(js_err(method))
}

/// Whether `raw_signature` (`r‖s`) is an ECDSA P-256 / SHA-256 signature of
/// `message` by the key in `spki` (DER). A key the runtime cannot import verifies
/// nothing.
pub async fn verify_ecdsa_p256(
    spki: &[u8],
    raw_signature: &[u8; 64],
    message: &[u8],
) -> Result<bool, ApiError> {
    let usages: Array = [JsValue::from("verify")].iter().collect();
    let key = subtle(
        "importKey",
        &[
            "spki".into(),
            Uint8Array::from(spki).into(),
            object(&[("name", "ECDSA"), ("namedCurve", "P-256")])?.into(),
            false.into(),
            usages.into(),
        ],
    )
    .await;
    let Ok(key) = key else { return Ok(false) };
    let verified = subtle(
        "verify",
        &[
            object(&[("name", "ECDSA"), ("hash", "SHA-256")])?.into(),
            key,
            Uint8Array::from(&raw_signature[..]).into(),
            Uint8Array::from(message).into(),
        ],
    )
    .await?;
    Ok(verified.as_bool() == Some(true))
}
