//! `Idempotency-Key`: a retried change applies once. The object that applies the
//! change keeps, for 24 hours, each key it was sent with, what the request asked
//! and what it answered; the same key again gets the same answer, and the same key
//! with another request is refused (409), as Stripe does.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// How long an answer is replayed.
pub const KEEP_MS: i64 = 86_400_000;
/// Bound on the answers one object keeps; past it the oldest go first.
const MAX_KEPT: usize = 1_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Replays {
    kept: BTreeMap<String, Replay>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Replay {
    at: i64,
    request: String,
    answer: Value,
}

/// The header's value: 1–255 visible ASCII characters.
pub fn parse_key(value: &str) -> Result<String, ApiError> {
    let ok = (1..=255).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(value.to_string())
    } else {
        Err(ApiError::InvalidHeader {
            name: "Idempotency-Key".into(),
            reason: "must be 1-255 visible ASCII characters".into(),
        })
    }
}

impl Replays {
    /// The answer kept for `key`, if `request` is the one it was sent with.
    pub fn find(&mut self, key: &str, request: &str, now: i64) -> Result<Option<Value>, ApiError> {
        self.kept.retain(|_, r| r.at > now - KEEP_MS);
        match self.kept.get(key) {
            Some(r) if r.request == request => Ok(Some(r.answer.clone())),
            Some(_) => Err(ApiError::Conflict {
                reason: "Idempotency-Key was already used with a different request".into(),
            }),
            None => Ok(None),
        }
    }

    pub fn keep(&mut self, key: String, request: String, answer: Value, now: i64) {
        while self.kept.len() >= MAX_KEPT {
            let oldest = self
                .kept
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.kept.remove(&k),
                None => break,
            };
        }
        self.kept.insert(
            key,
            Replay {
                at: now,
                request,
                answer,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_request_is_answered_again_for_a_day_and_another_is_refused() {
        let mut r = Replays::default();
        assert_eq!(r.find("k1", "a", 0), Ok(None));
        r.keep("k1".into(), "a".into(), json!({"remaining": 5}), 0);
        assert_eq!(
            r.find("k1", "a", KEEP_MS - 1),
            Ok(Some(json!({"remaining": 5})))
        );
        assert!(matches!(
            r.find("k1", "b", 10),
            Err(ApiError::Conflict { .. })
        ));
        assert_eq!(r.find("k1", "a", KEEP_MS), Ok(None), "forgotten after 24 h");
    }

    #[test]
    fn header_values_are_bounded() {
        assert!(parse_key("retry-7f3a").is_ok());
        assert!(parse_key("").is_err());
        assert!(parse_key("with space").is_err());
        assert!(parse_key(&"x".repeat(256)).is_err());
        assert!(parse_key("é").is_err());
    }
}
