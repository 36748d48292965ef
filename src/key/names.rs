//! What the names a key carries may be: permissions, project ids, account ids and
//! aliases. Each travels in a header, a path or an object name, so each is closed
//! to anything that could split or inject one.

use crate::error::ApiError;
use serde_json::Value;

/// A permission name. Permissions travel to the origin in a header, so the set is
/// closed: nothing that could split or inject one.
pub fn is_permission(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:-".contains(&b))
}

/// A project id (also a path segment and a header value): `[A-Za-z0-9._:-]`.
pub fn is_project_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// Account ids and aliases name Durable Objects and appear in paths: kept plain,
/// exactly as sent, `[A-Za-z0-9._-]{1,64}`.
pub fn identifier(v: &Value, field: &str) -> Result<String, ApiError> {
    match v.as_str() {
        Some(s)
            if (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            Ok(s.to_string())
        }
        _ => Err(ApiError::field(
            field,
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        )),
    }
}

/// Whether `s` is a key id as keyward makes them: `key_` and up to 60 letters and digits.
pub fn is_key_id(s: &str) -> bool {
    s.len() <= 64
        && s.strip_prefix("key_")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A key id in a body (`parent`).
pub fn key_id(v: &Value, field: &str) -> Result<String, ApiError> {
    v.as_str()
        .filter(|s| is_key_id(s))
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::field(field, "must be a key id such as key_0358Nx0rjOy299bq12djBX")
        })
}
