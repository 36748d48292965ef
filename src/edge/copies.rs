//! Writing a key's copies kept outside its object — its index row and audit events
//! in its account's object, its KV index entries. Used by the management routes
//! (inline, right after a change) and by the key's outbox (retries).

use super::account_object::AccountCommand;
use super::kv_index;
use super::objects::{self, ACCOUNTS};
use crate::error::ApiError;
use crate::objects::key::Notice;
use worker::{console_error, Env};

/// Writes one copy. Webhooks are not copies: only the key's outbox sends them.
pub async fn deliver(env: &Env, copy: &Notice) -> Result<(), ApiError> {
    let to_account = |account: &str, cmd: AccountCommand| {
        let account = account.to_string();
        async move {
            objects::call(env, ACCOUNTS, &account, &cmd)
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
            // Outboxes written before the index moved name the account only in
            // the event.
            let account = Some(account.as_str())
                .filter(|a| !a.is_empty())
                .or(event.as_ref().map(|e| e.account.as_str()));
            let Some(account) = account else {
                console_error!("{id}: index removal without an account dropped");
                return Ok(());
            };
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
        } => kv_index::put(env, hash, entry, *expires_at).await,
        Notice::KvRemove { hash } => kv_index::remove(env, hash).await,
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
