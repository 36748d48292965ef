//! Notices as Standard Webhooks (standardwebhooks.com): a JSON body
//! `{"type", "timestamp", "data"}` and three headers — `webhook-id` (the same on
//! every retry), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature`, `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each
//! signing secret, space-separated while a secret rotates. Secrets are
//! `whsec_<base64>`, decoded before use. The HMAC is the RustCrypto `hmac` crate's.

use crate::time_fmt::to_rfc3339;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The `data` of a notice about a key: who it is (`key_id`, `account`, `prefix`)
/// and the event's own `details`. Every key notice is built here.
pub fn key_data(key_id: &str, account: &str, prefix: &str, details: &Value) -> Value {
    let mut data = json!({ "key_id": key_id, "account": account, "prefix": prefix });
    if let (Some(d), Some(more)) = (data.as_object_mut(), details.as_object()) {
        d.extend(more.clone());
    }
    data
}

/// Shortest secret accepted, in decoded bytes (the spec asks for 24 to 64).
const MIN_SECRET_BYTES: usize = 24;

/// The key bytes of a `whsec_<base64>` secret.
pub fn parse_secret(s: &str) -> Result<Vec<u8>, String> {
    let encoded = s
        .strip_prefix("whsec_")
        .ok_or("must be whsec_ followed by base64 (the Standard Webhooks form)")?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| "must be whsec_ followed by valid base64".to_string())?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!("must decode to at least {MIN_SECRET_BYTES} bytes"));
    }
    Ok(bytes)
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // Any key length is valid for HMAC: `new_from_slice` cannot fail here.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

/// The body of a notice.
pub fn body(event_type: &str, occurred_at: i64, data: &Value) -> String {
    json!({ "type": event_type, "timestamp": to_rfc3339(occurred_at), "data": data }).to_string()
}

/// `webhook-signature`: one `v1,<base64>` per secret, current first.
pub fn signature(secrets: &[Vec<u8>], id: &str, timestamp: i64, body: &str) -> String {
    let signed = format!("{id}.{timestamp}.{body}");
    secrets
        .iter()
        .map(|key| {
            format!(
                "v1,{}",
                STANDARD.encode(hmac_sha256(key, signed.as_bytes()))
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::format::hex;

    #[test]
    fn rfc_4231_vectors() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_webhooks_reference_signature() {
        // The example of the Standard Webhooks specification and its libraries.
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotating_secrets_sign_twice() {
        let a = vec![1u8; 32];
        let b = vec![2u8; 32];
        let sig = signature(&[a.clone(), b], "msg_1", 1, "{}");
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&[a], "msg_1", 1, "{}"));
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
    }

    #[test]
    fn secrets_in_the_whsec_form_only() {
        assert!(parse_secret("plain-secret-of-some-length").is_err());
        assert!(parse_secret("whsec_!!!").is_err());
        assert!(parse_secret("whsec_c2hvcnQ=").is_err(), "too short");
        assert_eq!(
            parse_secret(&format!("whsec_{}", STANDARD.encode([7u8; 32]))).unwrap(),
            vec![7u8; 32]
        );
    }

    #[test]
    fn body_shape() {
        let b: Value =
            serde_json::from_str(&body("key.suspended", 0, &json!({"key_id": "k"}))).unwrap();
        assert_eq!(
            b,
            json!({"type": "key.suspended", "timestamp": "1970-01-01T00:00:00.000Z", "data": {"key_id": "k"}})
        );
    }
}
