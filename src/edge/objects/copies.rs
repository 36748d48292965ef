//! The copies of a key kept outside its object — its index row and audit events in
//! its account's object, its KV index entries — written after the object changed.
//! The object's answer is what counts: a copy that cannot be written now never
//! turns a done change into an error (a rotated key's new secret is always
//! returned); it goes to the key's outbox, whose alarm retries it until it lands.

use crate::config::Config;
use crate::edge::js::rpc::{self, Object};
use crate::edge::request::kv_index;
use crate::error::ApiError;
use crate::key::record::{HashEntry, IndexRow, KeyRecord};
use crate::notify::audit::AuditEvent;
use crate::objects::account::AccountCommand;
use crate::objects::key::{KeyCommand, Notice};
use serde_json::Value;
use worker::{console_error, Env};

/// Writes each copy now; whatever fails is handed to the key's outbox.
pub async fn write(env: &Env, cfg: &Config, key_id: &str, copies: Vec<Notice>) {
    let mut failed = Vec::new();
    for copy in copies {
        let written = if cfg.test_fail_inline_copies {
            Err(ApiError::internal("TEST_FAIL_INLINE_COPIES"))
        } else {
            deliver(env, cfg, &copy).await
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
    if let Err(e) = rpc::ask::<Value>(env, Object::Key(key_id), &enqueue).await {
        console_error!("{key_id}: copies lost, outbox unreachable: {e:?}");
    }
}

/// The account index's copy of `rec` and the event of the change that made it.
pub fn sync(rec: &KeyRecord, event: AuditEvent) -> Notice {
    Notice::IndexSync {
        row: IndexRow::of(rec),
        event: Some(event),
    }
}

/// The KV index entry locating `rec` under `hash` (expiring at `expires_at`, Unix s).
pub fn index(rec: &KeyRecord, hash: &str, expires_at: Option<u64>) -> Notice {
    Notice::KvPut {
        hash: hash.to_string(),
        entry: HashEntry {
            id: rec.id.clone(),
            parents: rec.parents.clone(),
            account: rec.account.clone(),
            written_at: None,
            object: None,
        },
        expires_at,
    }
}

/// Writes one copy. Webhooks are not copies: only the key's outbox sends them.
pub async fn deliver(env: &Env, cfg: &Config, copy: &Notice) -> Result<(), ApiError> {
    let to_account = |account: &str, cmd: AccountCommand| {
        let account = account.to_string();
        async move {
            rpc::ask::<Value>(env, Object::Account(&account), &cmd)
                .await
                .map(|_| ())
        }
    };
    match copy {
        Notice::IndexSync { row, event } => {
            let cmd = AccountCommand::Sync {
                row: row.clone(),
                event: event.clone(),
            };
            to_account(&row.account, cmd).await
        }
        Notice::IndexRemove { id, account, event } => {
            let cmd = AccountCommand::Remove {
                id: id.clone(),
                event: event.clone(),
            };
            to_account(account, cmd).await
        }
        Notice::Audit { event } => {
            let cmd = AccountCommand::Record {
                event: event.clone(),
            };
            to_account(&event.account, cmd).await
        }
        Notice::KvPut {
            hash,
            entry,
            expires_at,
        } => kv_index::put(env, cfg, hash, entry, *expires_at).await,
        Notice::KvRemove { hash } => kv_index::remove(env, cfg, hash).await,
        Notice::AccountRefund { account, at, cost } => {
            let cmd = AccountCommand::Refund {
                at: *at,
                cost: *cost,
            };
            to_account(account, cmd).await
        }
        Notice::Webhook { .. } => Err(ApiError::internal("webhooks go through the outbox")),
    }
}
