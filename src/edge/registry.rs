//! The old global registry, kept only to be read once: before the index and audit
//! trail moved to the account objects, one `Registry` object held every key's
//! index row and every event. The directory's migration (`directory::migrate`)
//! pages through it and copies each account's part into that account's object.
//! Nothing writes here any more.

use super::index_store::EventRow;
use super::object_stats;
use super::objects::{self, REGISTRY, REGISTRY_NAME};
use super::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::key::record::IndexRow;
use crate::notify::audit::AuditEvent;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryCommand {
    /// Up to `limit` index rows after key id `keys_after`, and up to `limit` events
    /// after event id `events_after`, each in id order.
    Export {
        keys_after: String,
        events_after: i64,
        limit: u32,
    },
}

/// What one export page holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ExportPage {
    pub rows: Vec<IndexRow>,
    pub events: Vec<(i64, AuditEvent)>,
}

pub async fn export(
    env: &Env,
    keys_after: &str,
    events_after: i64,
    limit: u32,
) -> std::result::Result<ExportPage, ApiError> {
    let cmd = RegistryCommand::Export {
        keys_after: keys_after.to_string(),
        events_after,
        limit,
    };
    objects::call_as(env, REGISTRY, REGISTRY_NAME, &cmd).await
}

#[durable_object]
pub struct Registry {
    state: State,
    env: Env,
}

/// A registry that never held anything (a new installation) has no tables: reading
/// one answers nothing.
fn missing_table(e: &worker::Error) -> bool {
    e.to_string().contains("no such table")
}

impl DurableObject for Registry {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        objects::fetched(req, |cmd| async { self.run(cmd) }).await
    }
}

/// Workers RPC (`objects`): the commands one after the other.
#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl Registry {
    pub async fn batch_later(&self, items: Vec<String>) -> Vec<String> {
        objects::each(items, |cmd| async { self.run(cmd) }).await
    }
}

impl Registry {
    fn run(&self, cmd: RegistryCommand) -> std::result::Result<Value, ApiError> {
        let sql = self.state.storage().sql();
        if let Ok(cfg) = runtime::config(&self.env) {
            object_stats::count(&sql, cfg.object_stats, now_ms());
        }
        let RegistryCommand::Export {
            keys_after,
            events_after,
            limit,
        } = cmd;
        let rows: Vec<IndexRow> = match sql
            .exec(
                "SELECT id, account, alias, environment, category, status, expires_at, revision, name, prefix
                 FROM keys WHERE id > ? ORDER BY id LIMIT ?",
                vec![keys_after.into(), i64::from(limit).into()],
            )
            .and_then(|c| c.to_array())
        {
            Ok(rows) => rows,
            Err(e) if missing_table(&e) => Vec::new(),
            Err(e) => return Err(ApiError::internal(e)),
        };
        let events: Vec<EventRow> = match sql
            .exec(
                "SELECT id, at, actor, action, key_id, account, details, scope FROM events
                 WHERE id > ? ORDER BY id LIMIT ?",
                vec![events_after.into(), i64::from(limit).into()],
            )
            .and_then(|c| c.to_array())
        {
            Ok(rows) => rows,
            Err(e) if missing_table(&e) => Vec::new(),
            Err(e) => return Err(ApiError::internal(e)),
        };
        let events: Vec<(i64, AuditEvent)> =
            events.into_iter().map(|e| (e.id, e.into_event())).collect();
        Ok(json!({ "rows": rows, "events": events }))
    }
}
