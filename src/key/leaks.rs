//! Leaked keys: what a report says, what is done about it, and GitHub's secret
//! scanning partner protocol — its signed token lists, its public keys and its
//! feedback format. The signature itself is checked by WebCrypto at the edge; this
//! module only reshapes bytes (PEM to DER, DER signatures to raw `r‖s`).

use crate::error::ApiError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What a report does to a live key (`LEAK_ACTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakAction {
    Revoke,
    Deactivate,
    /// Records and announces the leak, and leaves the key as it is.
    Notify,
}

impl LeakAction {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "revoke" => Some(LeakAction::Revoke),
            "deactivate" => Some(LeakAction::Deactivate),
            "notify" => Some(LeakAction::Notify),
            _ => None,
        }
    }
}

/// `POST /leaks`: a secret found where it should not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakReport {
    pub key: String,
    pub source: Option<String>,
}

pub fn parse_report(body: &Value) -> Result<LeakReport, ApiError> {
    let obj = body.as_object().ok_or_else(|| ApiError::InvalidBody {
        reason: "expected a JSON object".into(),
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["key", "source"].contains(&k.as_str()))
    {
        return Err(ApiError::field(k, "is not a known field"));
    }
    let key = match obj.get("key") {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 512 => s.clone(),
        None => return Err(ApiError::field("key", "is required")),
        Some(_) => {
            return Err(ApiError::field(
                "key",
                "must be the leaked secret: 1 to 512 characters",
            ))
        }
    };
    let source = match obj.get("source") {
        None => None,
        Some(Value::String(s))
            if (1..=200).contains(&s.chars().count()) && !s.chars().any(char::is_control) =>
        {
            Some(s.clone())
        }
        Some(_) => {
            return Err(ApiError::field(
                "source",
                "must be 1 to 200 characters without control characters",
            ))
        }
    };
    Ok(LeakReport { key, source })
}

/// One of GitHub's signing keys, as its meta endpoint lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubKey {
    pub identifier: String,
    /// The SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
}

/// `GITHUB_SECRET_SCANNING_KEYS`: `[{"key_identifier", "key": "<PEM>"}, …]`.
pub fn parse_github_keys(json: &str) -> Result<Vec<GithubKey>, String> {
    #[derive(Deserialize)]
    struct Listed {
        key_identifier: String,
        key: String,
    }
    let listed: Vec<Listed> = serde_json::from_str(json).map_err(|e| {
        format!("GITHUB_SECRET_SCANNING_KEYS is not a list of {{key_identifier, key}}: {e}")
    })?;
    listed
        .into_iter()
        .map(|l| {
            let spki = pem_to_der(&l.key).ok_or_else(|| {
                format!(
                    "GITHUB_SECRET_SCANNING_KEYS: key '{}' is not a PEM public key",
                    l.key_identifier
                )
            })?;
            Ok(GithubKey {
                identifier: l.key_identifier,
                spki,
            })
        })
        .collect()
}

/// The DER inside a `-----BEGIN PUBLIC KEY-----` block.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).ok().filter(|d| !d.is_empty())
}

/// An ECDSA P-256 signature in DER (`SEQUENCE { INTEGER r, INTEGER s }`, as GitHub
/// sends it) in the raw `r‖s` form WebCrypto verifies.
pub fn der_signature_to_raw(der: &[u8]) -> Option<[u8; 64]> {
    fn take(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = bytes.split_first()?;
        let (&len, rest) = rest.split_first()?;
        // P-256 signatures are short: one-byte lengths only.
        if t != tag || len >= 0x80 || rest.len() < usize::from(len) {
            return None;
        }
        Some(rest.split_at(usize::from(len)))
    }
    let (seq, trailing) = take(der, 0x30)?;
    if !trailing.is_empty() {
        return None;
    }
    let (r, rest) = take(seq, 0x02)?;
    let (s, rest) = take(rest, 0x02)?;
    if !rest.is_empty() {
        return None;
    }
    let mut raw = [0u8; 64];
    for (int, slot) in [(r, 0usize), (s, 32)] {
        // Drop the sign byte DER adds; what is left must fit in 32 bytes.
        let int = match int {
            [0, tail @ ..] if !tail.is_empty() => tail,
            _ => int,
        };
        if int.is_empty() || int.len() > 32 {
            return None;
        }
        let start = slot + 32 - int.len();
        raw.get_mut(start..slot + 32)?.copy_from_slice(int);
    }
    Some(raw)
}

/// A token GitHub found.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GithubToken {
    pub token: String,
    #[serde(rename = "type", default)]
    pub token_type: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// At most this many tokens are taken from one report.
pub const MAX_GITHUB_TOKENS: usize = 100;

pub fn parse_github_report(body: &[u8]) -> Result<Vec<GithubToken>, ApiError> {
    let tokens: Vec<GithubToken> =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidBody {
            reason: format!("expected GitHub's list of tokens: {e}"),
        })?;
    if tokens.len() > MAX_GITHUB_TOKENS {
        return Err(ApiError::InvalidBody {
            reason: format!("at most {MAX_GITHUB_TOKENS} tokens per report"),
        });
    }
    Ok(tokens)
}

/// GitHub's feedback format: one label per reported token.
pub fn github_feedback(token: &GithubToken, live: bool) -> Value {
    json!({
        "token_raw": token.token,
        "token_type": token.token_type,
        "label": if live { "true_positive" } else { "false_positive" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_name_bad_fields() {
        let r = parse_report(&json!({"key": "kw_x", "source": "pastebin"})).unwrap();
        assert_eq!(
            (r.key.as_str(), r.source.as_deref()),
            ("kw_x", Some("pastebin"))
        );
        for (body, field) in [
            (json!({}), "key"),
            (json!({"key": ""}), "key"),
            (json!({"key": 1}), "key"),
            (json!({"key": "k", "source": ""}), "source"),
            (json!({"key": "k", "source": "a\nb"}), "source"),
            (json!({"key": "k", "extra": 1}), "extra"),
        ] {
            assert!(
                matches!(parse_report(&body), Err(ApiError::InvalidField { field: f, .. }) if f == field),
                "{body}"
            );
        }
        assert_eq!(LeakAction::parse("notify"), Some(LeakAction::Notify));
        assert_eq!(LeakAction::parse("delete"), None);
    }

    #[test]
    fn der_signatures_become_raw() {
        // r with a sign byte (33 bytes), s short (31 bytes): both normalised to 32.
        let mut r = vec![0x00, 0x80];
        r.extend([1u8; 31]);
        let s = vec![2u8; 31];
        let mut der = vec![0x30, (2 + r.len() + 2 + s.len()) as u8, 0x02, r.len() as u8];
        der.extend(&r);
        der.extend([0x02, s.len() as u8]);
        der.extend(&s);
        let raw = der_signature_to_raw(&der).unwrap();
        assert_eq!(raw[0], 0x80);
        assert_eq!(&raw[1..32], &[1u8; 31]);
        assert_eq!(raw[32], 0);
        assert_eq!(&raw[33..], &[2u8; 31]);
        for bad in [
            &der[..der.len() - 1],
            &[0x31, 0][..],
            &[][..],
            &[0x30, 0x02, 0x02, 0x00][..],
        ] {
            assert!(der_signature_to_raw(bad).is_none(), "{bad:?}");
        }
        let mut long = der.clone();
        long.push(0);
        assert!(der_signature_to_raw(&long).is_none(), "trailing bytes");
    }

    #[test]
    fn github_keys_and_reports() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\nAAAA\n-----END PUBLIC KEY-----\n";
        let keys = parse_github_keys(
            &json!([{"key_identifier": "k1", "key": pem, "is_current": true}]).to_string(),
        )
        .unwrap();
        assert_eq!(keys[0].identifier, "k1");
        assert_eq!(&keys[0].spki[..2], &[0x30, 0x59]);
        assert!(
            parse_github_keys(r#"[{"key_identifier": "k", "key": "nope"}]"#)
                .unwrap_err()
                .contains("'k'")
        );
        assert!(parse_github_keys("{}").is_err());
        let tokens = parse_github_report(br#"[{"token": "kw_a", "type": "keyward_api_key", "url": "https://github.com/x", "source": "content"}]"#).unwrap();
        assert_eq!(tokens[0].token_type, "keyward_api_key");
        assert_eq!(
            github_feedback(&tokens[0], false),
            json!({"token_raw": "kw_a", "token_type": "keyward_api_key", "label": "false_positive"})
        );
        assert!(parse_github_report(b"{}").is_err());
    }
}
