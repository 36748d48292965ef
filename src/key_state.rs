//! What a key's Durable Object does with each command, as a pure function of the
//! stored record, the command and the time. The object only loads, calls `apply`,
//! persists what changed and replies.

use crate::check::{check_key, AccessRequest};
use crate::error::ApiError;
use crate::input::KeyPatch;
use crate::lifecycle;
use crate::model::KeyRecord;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KeyCommand {
    Create {
        record: Box<KeyRecord>,
    },
    Get,
    /// The hot path: rows 3–7 and 9–11, counting the use when they pass.
    Check {
        request: AccessRequest,
    },
    /// Gives back the use counted by a `Check` that a later row refused.
    Refund,
    Patch {
        patch: Box<KeyPatch>,
    },
    Rotate {
        hash: String,
        prefix: String,
        grace_ms: i64,
    },
    Deactivate,
    Activate,
    Revoke,
    Delete,
}

/// What storage must do after a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    None,
    Put(Box<KeyRecord>),
    Erase,
}

pub fn apply(
    stored: Option<KeyRecord>,
    cmd: KeyCommand,
    now: i64,
) -> (Change, Result<Value, ApiError>) {
    match (stored, cmd) {
        (None, KeyCommand::Create { record }) => {
            let reply = to_value(&record);
            (Change::Put(record), reply)
        }
        // An index entry without a record (a deleted key) is an unknown key.
        (None, KeyCommand::Check { .. }) => (Change::None, Err(ApiError::InvalidKey)),
        (None, _) => (Change::None, Err(ApiError::NotFound { what: "key".into() })),
        (Some(rec), cmd) => transition(rec, cmd, now),
    }
}

fn transition(mut rec: KeyRecord, cmd: KeyCommand, now: i64) -> (Change, Result<Value, ApiError>) {
    let outcome: Result<Value, ApiError> = match cmd {
        KeyCommand::Create { .. } => Err(ApiError::Conflict {
            reason: "key id already exists".into(),
        }),
        KeyCommand::Get => return (Change::None, to_value(&rec)),
        KeyCommand::Check { request } => match check_key(&rec, &request, now) {
            Ok(identity) => {
                lifecycle::record_use(&mut rec, now);
                to_value(&identity)
            }
            Err(e) => return (Change::None, Err(e)),
        },
        KeyCommand::Refund => {
            rec.usage_count = rec.usage_count.saturating_sub(1);
            Ok(Value::Null)
        }
        KeyCommand::Patch { patch } => {
            lifecycle::patch(&mut rec, &patch, now).and_then(|_| to_value(&rec))
        }
        KeyCommand::Rotate {
            hash,
            prefix,
            grace_ms,
        } => lifecycle::rotate(&mut rec, hash, prefix, grace_ms, now)
            .and_then(|old| Ok(json!({ "old_hash": old, "record": to_value(&rec)? }))),
        KeyCommand::Deactivate => lifecycle::deactivate(&mut rec, now).and_then(|_| to_value(&rec)),
        KeyCommand::Activate => lifecycle::activate(&mut rec, now).and_then(|_| to_value(&rec)),
        KeyCommand::Revoke => {
            lifecycle::revoke(&mut rec, now);
            to_value(&rec)
        }
        KeyCommand::Delete => {
            return match lifecycle::check_deletable(&rec) {
                Ok(()) => (Change::Erase, to_value(&rec)),
                Err(e) => (Change::None, Err(e)),
            }
        }
    };
    match outcome {
        Ok(v) => (Change::Put(Box::new(rec)), Ok(v)),
        Err(e) => (Change::None, Err(e)),
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{create, Birth};
    use crate::model::{AdminStatus, Environment};

    const NOW: i64 = 1_800_000_000_000;

    fn rec() -> KeyRecord {
        create(
            Birth {
                id: "key_1".into(),
                account: "acme".into(),
                environment: Environment::Production,
                hash: "h1".into(),
                prefix: "kw_live_aaaaaa".into(),
                now: NOW,
            },
            &KeyPatch {
                name: Some("n".into()),
                ..Default::default()
            },
        )
    }

    fn check(hash: &str) -> KeyCommand {
        KeyCommand::Check {
            request: AccessRequest {
                hash: hash.into(),
                deployment_env: Environment::Production,
                client_ip: None,
                permission: "read:all".into(),
                project: None,
            },
        }
    }

    fn stored(change: Change) -> KeyRecord {
        match change {
            Change::Put(r) => *r,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn create_then_duplicate_create() {
        let (c, r) = apply(
            None,
            KeyCommand::Create {
                record: Box::new(rec()),
            },
            NOW,
        );
        assert!(r.is_ok());
        let first = stored(c);
        let (c, r) = apply(
            Some(first),
            KeyCommand::Create {
                record: Box::new(rec()),
            },
            NOW,
        );
        assert_eq!(c, Change::None);
        assert!(matches!(r, Err(ApiError::Conflict { .. })));
    }

    #[test]
    fn a_passing_check_counts_and_a_failing_one_does_not() {
        let (c, r) = apply(Some(rec()), check("h1"), NOW + 5);
        assert_eq!(r.unwrap()["key_id"], "key_1");
        let used = stored(c);
        assert_eq!((used.usage_count, used.last_used_at), (1, Some(NOW + 5)));
        let (c, r) = apply(Some(used.clone()), check("nope"), NOW);
        assert_eq!((c, r), (Change::None, Err(ApiError::InvalidKey)));
        let refunded = stored(apply(Some(used), KeyCommand::Refund, NOW).0);
        assert_eq!(refunded.usage_count, 0);
    }

    #[test]
    fn missing_record() {
        assert_eq!(apply(None, check("h1"), NOW).1, Err(ApiError::InvalidKey));
        assert!(matches!(
            apply(None, KeyCommand::Get, NOW).1,
            Err(ApiError::NotFound { .. })
        ));
    }

    #[test]
    fn lifecycle_commands_persist() {
        let r = stored(apply(Some(rec()), KeyCommand::Revoke, NOW).0);
        assert_eq!(r.status, AdminStatus::Revoked);
        let (c, res) = apply(Some(r), KeyCommand::Activate, NOW);
        assert_eq!(c, Change::None);
        assert!(matches!(res, Err(ApiError::Conflict { .. })));
        let (c, res) = apply(
            Some(rec()),
            KeyCommand::Rotate {
                hash: "h2".into(),
                prefix: "p".into(),
                grace_ms: 0,
            },
            NOW,
        );
        assert_eq!(res.unwrap()["old_hash"], "h1");
        assert_eq!(stored(c).hash, "h2");
        assert_eq!(apply(Some(rec()), KeyCommand::Delete, NOW).0, Change::Erase);
        let mut used = rec();
        used.usage_count = 1;
        assert_eq!(apply(Some(used), KeyCommand::Delete, NOW).0, Change::None);
    }
}
