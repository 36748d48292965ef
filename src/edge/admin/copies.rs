//! The copies of a key kept outside its object — the registry's row and the audit
//! event, the KV index entries — written after the object changed. The object's
//! answer is what counts: a copy that cannot be written now never turns a done
//! change into an error (a rotated key's new secret is always returned); it goes
//! to the key's outbox, whose alarm retries it until it lands.

use crate::audit::AuditEvent;
use crate::config::Config;
use crate::edge::kv_index;
use crate::edge::objects::{self, KEYS};
use crate::edge::registry::{self, RegistryCommand};
use crate::error::ApiError;
use crate::key_state::{KeyCommand, Notice};
use crate::model::{HashEntry, KeyRecord, RegistryRow};
use worker::{console_error, Env};

/// Writes each copy now; whatever fails is handed to the key's outbox.
pub async fn write(env: &Env, cfg: &Config, key_id: &str, copies: Vec<Notice>) {
    let mut failed = Vec::new();
    for copy in copies {
        let written = if cfg.test_fail_inline_copies {
            Err(ApiError::internal("TEST_FAIL_INLINE_COPIES"))
        } else {
            write_one(env, &copy).await
        };
        if let Err(e) = written {
            console_error!("{key_id}: copy deferred to the outbox: {e:?}");
            failed.push(copy);
        }
    }
    if failed.is_empty() {
        return;
    }
    let enqueue = KeyCommand::Enqueue { notices: failed };
    if let Err(e) = objects::call(env, KEYS, key_id, &enqueue).await {
        console_error!("{key_id}: copies lost, outbox unreachable: {e:?}");
    }
}

async fn write_one(env: &Env, copy: &Notice) -> Result<(), ApiError> {
    match copy {
        Notice::RegistrySync { row, event } => {
            let cmd = RegistryCommand::Sync {
                row: row.clone(),
                event: event.clone(),
            };
            registry::call(env, &cmd).await.map(|_| ())
        }
        Notice::RegistryRemove { id, event } => {
            let cmd = RegistryCommand::Remove {
                id: id.clone(),
                event: event.clone(),
            };
            registry::call(env, &cmd).await.map(|_| ())
        }
        Notice::KvPut {
            hash,
            entry,
            expires_at,
        } => kv_index::put(env, hash, entry, *expires_at).await,
        Notice::KvRemove { hash } => kv_index::remove(env, hash).await,
        Notice::Audit { event } => registry::call(
            env,
            &RegistryCommand::Record {
                event: event.clone(),
            },
        )
        .await
        .map(|_| ()),
        Notice::Webhook { .. } => Err(ApiError::internal("webhooks go through the outbox")),
    }
}

/// The registry's copy of `rec` and the event of the change that made it.
pub fn sync(rec: &KeyRecord, event: AuditEvent) -> Notice {
    Notice::RegistrySync {
        row: RegistryRow::of(rec),
        event: Some(event),
    }
}

/// The KV index entry locating `rec` under `hash` (expiring at `expires_at`, Unix s).
pub fn index(rec: &KeyRecord, hash: &str, expires_at: Option<u64>) -> Notice {
    Notice::KvPut {
        hash: hash.to_string(),
        entry: HashEntry {
            id: rec.id.clone(),
            account: rec.account.clone(),
        },
        expires_at,
    }
}
