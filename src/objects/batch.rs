//! Group commit. Requests for one Durable Object that arrive while a call to it
//! is in flight travel together in its next call; the object decides them one by
//! one, in arrival order, in one synchronous step, persists once, and answers one
//! `Answer` per request. Every request is still decided by the object, after it
//! arrived, against its current state: exactness and immediacy are unchanged.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most requests one call carries (the rest wait for the next call).
pub const MAX_BATCH: usize = 64;

/// One object's answer to one command (or to one request of a batch): what the
/// command answers with (`T`; JSON inside the object), or its refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer<T = Value> {
    Ok(T),
    Err(ApiError),
    /// The object no longer holds what the command is about: ask the object of
    /// this name (a key's object after a move, `objects::key::placement`).
    Moved(String),
}

impl From<Result<Value, ApiError>> for Answer {
    fn from(r: Result<Value, ApiError>) -> Self {
        match r {
            Ok(v) => Answer::Ok(v),
            Err(e) => Answer::Err(e),
        }
    }
}

impl From<Answer> for Result<Value, ApiError> {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Ok(v) => Ok(v),
            Answer::Err(e) => Err(e),
            Answer::Moved(to) => Err(ApiError::internal(format!("moved to {to}"))),
        }
    }
}

/// The answers of a batch of `n`, matched to its requests in order. A reply that
/// is not a list of `n` answers fails every request (refused, never admitted).
pub fn answers(reply: Result<Value, ApiError>, n: usize) -> Vec<Result<Value, ApiError>> {
    let parsed = reply.and_then(|v| {
        serde_json::from_value::<Vec<Answer>>(v)
            .map_err(|e| ApiError::internal(format!("batch reply: {e}")))
    });
    match parsed {
        Ok(list) if list.len() == n => list.into_iter().map(Into::into).collect(),
        Ok(list) => {
            let e = ApiError::internal(format!("{} answers to {n} requests", list.len()));
            vec![Err(e); n]
        }
        Err(e) => vec![Err(e); n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_matched_in_order_and_a_short_reply_fails_all() {
        let reply = json!([{ "ok": 1 }, { "err": "key_revoked" }]);
        let got = answers(Ok(reply.clone()), 2);
        assert_eq!(got[0], Ok(json!(1)));
        assert_eq!(got[1], Err(ApiError::KeyRevoked));
        assert!(answers(Ok(reply), 3).iter().all(Result::is_err));
        let down = answers(Err(ApiError::Unavailable { retry_after: 1 }), 2);
        assert_eq!(down, vec![Err(ApiError::Unavailable { retry_after: 1 }); 2]);
    }
}
