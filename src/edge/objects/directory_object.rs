//! The directory of accounts (`crate::objects::directory`) in its one Durable
//! Object: account names in name order, added once per account by the account's
//! own object, read a group at a time by cross-account listings.

use super::object_stats;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::objects::directory::{self, AccountNames, DirectoryCommand};
use serde::Deserialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use worker::worker_sys::DurableObjectState;
use worker::{console_error, Env, SqlStorage, State};

/// The class `entry.mjs` wraps (Workers RPC: `batch`).
#[wasm_bindgen]
pub struct Directory {
    state: State,
    env: Env,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY);";

#[wasm_bindgen]
impl Directory {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> Directory {
        let state = State::from(state);
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            console_error!("directory: cannot create its tables: {e}");
        }
        Directory { state, env }
    }

    /// Answers at once: adding a name and reading names are single statements.
    pub fn batch_now(&self, items: Vec<String>) -> Option<Vec<String>> {
        Some(rpc::each_now(&items, |cmd| self.handle(cmd)))
    }
}

impl Directory {
    fn handle(&self, cmd: DirectoryCommand) -> Result<Value, ApiError> {
        let sql = self.state.storage().sql();
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
                let accounts = list(&sql, from.as_deref(), limit)?;
                serde_json::to_value(AccountNames { accounts }).map_err(ApiError::internal)
            }
        }
    }
}

fn list(sql: &SqlStorage, from: Option<&str>, limit: u32) -> Result<Vec<String>, ApiError> {
    #[derive(Deserialize)]
    struct Name {
        name: String,
    }
    let rows: Vec<Name> = sql
        .exec(
            "SELECT name FROM accounts WHERE name >= ? ORDER BY name LIMIT ?",
            vec![from.unwrap_or("").into(), i64::from(limit).into()],
        )
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// The accounts of one cross-account page: the group starting at `group` (the
/// first group when none), and the first account of the next group.
pub async fn group(
    env: &Env,
    group: Option<String>,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let names: AccountNames =
        rpc::ask(env, Object::Directory, &directory::group_query(group)).await?;
    Ok(directory::group_of(names.accounts))
}
