//! The directory of accounts: one small object listing every account's name, for
//! the bootstrap token's cross-account views (`fanout`). An account's object adds
//! itself once, after its first write; nothing else writes here, and no request
//! on the gate's path reads it.
//!
//! It also runs the one-time migration from the old global registry: the first
//! management request of each isolate asks it whether the copy is done; until it
//! is, management routes answer 503 and the copy proceeds in pages (here and from
//! the directory's alarm), each page's accounts imported before its cursor moves.

use super::index_store::Import;
use super::object_stats;
use super::objects::{self, ACCOUNTS, DIRECTORY, DIRECTORY_NAME};
use super::registry;
use super::runtime::{self, now_ms};
use crate::error::ApiError;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{
    console_error, console_log, durable_object, Delay, DurableObject, Env, Request, Response,
    Result, SqlStorage, State,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryCommand {
    Add {
        account: String,
    },
    /// Up to `limit` account names from `from` on (inclusive), in name order.
    Accounts {
        from: Option<String>,
        limit: u32,
    },
    /// Copies the next pages of the old registry; answers whether all is copied.
    Migrate,
}

pub async fn call(env: &Env, cmd: &DirectoryCommand) -> std::result::Result<Value, ApiError> {
    objects::call(env, DIRECTORY, DIRECTORY_NAME, cmd).await
}

/// Account names from `from` on, at most `limit`.
pub async fn accounts(
    env: &Env,
    from: Option<String>,
    limit: u32,
) -> std::result::Result<Vec<String>, ApiError> {
    let v = call(env, &DirectoryCommand::Accounts { from, limit }).await?;
    serde_json::from_value(v["accounts"].clone()).map_err(ApiError::internal)
}

/// Management routes read the account indexes only once the old registry is
/// copied into them; an isolate asks once and remembers.
pub async fn ensure_migrated(env: &Env) -> std::result::Result<(), ApiError> {
    if runtime::migrated() {
        return Ok(());
    }
    let v = call(env, &DirectoryCommand::Migrate).await?;
    if v["done"].as_bool() == Some(true) {
        runtime::set_migrated();
        Ok(())
    } else {
        Err(ApiError::Unavailable { retry_after: 1 })
    }
}

#[durable_object]
pub struct Directory {
    state: State,
    env: Env,
    /// A migration step is running in this instance (steps never overlap).
    migrating: Cell<bool>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS migration (one INTEGER PRIMARY KEY CHECK (one = 1), json TEXT NOT NULL);";

/// Rows and events read from the registry per page, and pages per step: each page
/// costs one registry call and one call per account in it.
const PAGE: u32 = 100;
const PAGES_PER_STEP: usize = 3;
/// How long a request waits for another's migration step before answering 503.
const WAIT_MS: u64 = 25;
const WAIT_STEPS: usize = 200;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Migration {
    done: bool,
    keys_after: String,
    events_after: i64,
    accounts: u64,
    rows: u64,
    events: u64,
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

impl DurableObject for Directory {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            console_error!("directory: cannot create its tables: {e}");
        }
        Self {
            state,
            env,
            migrating: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        objects::fetched(req, |cmd| self.handle(cmd)).await
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.migrate().await {
            console_error!("directory: migration step failed: {e:?}");
        }
        Response::empty()
    }
}

/// Workers RPC (`objects`): the commands one after the other.
#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl Directory {
    pub async fn batch_later(&self, items: Vec<String>) -> Vec<String> {
        objects::each(items, |cmd| self.handle(cmd)).await
    }
}

impl Directory {
    async fn handle(&self, cmd: DirectoryCommand) -> std::result::Result<Value, ApiError> {
        let sql = self.sql();
        if let Ok(cfg) = runtime::config(&self.env) {
            object_stats::count(&sql, cfg.object_stats, now_ms());
        }
        match cmd {
            DirectoryCommand::Add { account } => sql
                .exec(
                    "INSERT OR IGNORE INTO accounts (name) VALUES (?)",
                    vec![account.into()],
                )
                .map(|_| Value::Null)
                .map_err(ApiError::internal),
            DirectoryCommand::Accounts { from, limit } => {
                list(&sql, from.as_deref(), limit).map(|a| json!({ "accounts": a }))
            }
            DirectoryCommand::Migrate => self.migrate().await.map(|done| json!({ "done": done })),
        }
    }
}

fn list(
    sql: &SqlStorage,
    from: Option<&str>,
    limit: u32,
) -> std::result::Result<Vec<String>, ApiError> {
    let rows: Vec<Name> = sql
        .exec(
            "SELECT name FROM accounts WHERE name >= ? ORDER BY name LIMIT ?",
            vec![from.unwrap_or("").into(), i64::from(limit).into()],
        )
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

impl Directory {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn progress(&self) -> std::result::Result<Migration, ApiError> {
        let rows: Vec<JsonRow> = self
            .sql()
            .exec("SELECT json FROM migration WHERE one = 1", None)
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        match rows.first() {
            Some(r) => serde_json::from_str(&r.json).map_err(ApiError::internal),
            None => Ok(Migration::default()),
        }
    }

    fn save(&self, m: &Migration) -> std::result::Result<(), ApiError> {
        let json = serde_json::to_string(m).map_err(ApiError::internal)?;
        self.sql()
            .exec(
                "INSERT OR REPLACE INTO migration (one, json) VALUES (1, ?)",
                vec![json.into()],
            )
            .map(|_| ())
            .map_err(ApiError::internal)
    }

    /// Copies up to `PAGES_PER_STEP` pages; true when the whole registry is copied.
    /// An unfinished copy continues from the alarm.
    async fn migrate(&self) -> std::result::Result<bool, ApiError> {
        let mut m = self.progress()?;
        if m.done {
            return Ok(true);
        }
        if self.migrating.get() {
            // Another request's step is running (the first requests of a fresh
            // deployment arrive together): wait for it rather than refuse them.
            for _ in 0..WAIT_STEPS {
                Delay::from(Duration::from_millis(WAIT_MS)).await;
                if !self.migrating.get() {
                    return Ok(self.progress()?.done);
                }
            }
            return Ok(false);
        }
        self.migrating.set(true);
        let outcome = self.migrate_pages(&mut m).await;
        self.migrating.set(false);
        if !m.done {
            if let Err(e) = self.state.storage().set_alarm(200).await {
                console_error!("directory: cannot set alarm: {e}");
            }
        }
        outcome.map(|_| m.done)
    }

    async fn migrate_pages(&self, m: &mut Migration) -> std::result::Result<(), ApiError> {
        for _ in 0..PAGES_PER_STEP {
            let page = registry::export(&self.env, &m.keys_after, m.events_after, PAGE).await?;
            let mut by_account: BTreeMap<String, Import> = BTreeMap::new();
            for row in &page.rows {
                by_account
                    .entry(row.account.clone())
                    .or_default()
                    .rows
                    .push(row.clone());
            }
            for (id, event) in &page.events {
                by_account
                    .entry(event.account.clone())
                    .or_default()
                    .events
                    .push((*id, event.clone()));
            }
            // Listed first, so an account is never imported but missing here.
            for account in by_account.keys() {
                self.sql()
                    .exec(
                        "INSERT OR IGNORE INTO accounts (name) VALUES (?)",
                        vec![account.as_str().into()],
                    )
                    .map_err(ApiError::internal)?;
            }
            let imports = by_account.into_iter().map(|(account, data)| async move {
                let cmd = super::account_object::AccountCommand::Import {
                    account: account.clone(),
                    data,
                };
                objects::call(&self.env, ACCOUNTS, &account, &cmd).await
            });
            let results = join_all(imports).await;
            let accounts = results.len() as u64;
            if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
                return Err(e);
            }
            m.accounts += accounts;
            m.rows += page.rows.len() as u64;
            m.events += page.events.len() as u64;
            if let Some(last) = page.rows.last() {
                m.keys_after = last.id.clone();
            }
            if let Some((last, _)) = page.events.last() {
                m.events_after = *last;
            }
            let full = page.rows.len() as u32 == PAGE || page.events.len() as u32 == PAGE;
            m.done = !full;
            self.save(m)?;
            if m.done {
                console_log!(
                    "directory: migration from the global registry done: {} index rows, {} events, {} account imports",
                    m.rows, m.events, m.accounts
                );
                break;
            }
        }
        Ok(())
    }
}

/// The accounts of one cross-account page: the group starting at `group` (the
/// first group when none), and the first account of the next group.
pub async fn group(
    env: &Env,
    group: Option<String>,
) -> std::result::Result<(Vec<String>, Option<String>), ApiError> {
    let size = crate::admin::fanout::GROUP;
    let mut names = accounts(env, group, size as u32 + 1).await?;
    let next = (names.len() > size).then(|| names.pop()).flatten();
    Ok((names, next))
}
