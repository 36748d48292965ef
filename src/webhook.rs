//! Signed notifications. The body is JSON; `X-Keyward-Signature: sha256=<hex>` is
//! HMAC-SHA256 of the exact body bytes under the `WEBHOOK_SECRET`. The body carries
//! `sent_at`, so receivers can refuse stale replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Keyward-Signature";

/// HMAC-SHA256 (RFC 2104), by the RustCrypto `hmac` crate.
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

pub fn signature(secret: &str, body: &str) -> String {
    format!(
        "sha256={}",
        crate::key_format::hex(&hmac_sha256(secret.as_bytes(), body.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_format::hex;

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
        // A key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signature_header_value() {
        assert!(signature("s", "{}").starts_with("sha256="));
        assert_eq!(signature("s", "{}").len(), 7 + 64);
    }
}
