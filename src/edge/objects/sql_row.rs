//! Tables of one JSON row (`one = 1`): a key's record, an account's meta, an
//! address's failures. One way to read, write and ask for them.

use crate::error::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::SqlStorage;

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

/// The schema of a one-row table named `table`.
pub fn schema(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (one INTEGER PRIMARY KEY CHECK (one = 1), json TEXT NOT NULL)"
    )
}

/// The row, if there is one.
pub fn read<T: DeserializeOwned>(sql: &SqlStorage, table: &str) -> Result<Option<T>, ApiError> {
    let rows: Vec<JsonRow> = sql
        .exec(&format!("SELECT json FROM {table} WHERE one = 1"), None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    match rows.first() {
        Some(row) => serde_json::from_str(&row.json)
            .map(Some)
            .map_err(ApiError::internal),
        None => Ok(None),
    }
}

pub fn write<T: Serialize>(sql: &SqlStorage, table: &str, value: &T) -> Result<(), ApiError> {
    let json = serde_json::to_string(value).map_err(ApiError::internal)?;
    sql.exec(
        &format!("INSERT OR REPLACE INTO {table} (one, json) VALUES (1, ?)"),
        vec![json.into()],
    )
    .map(|_| ())
    .map_err(ApiError::internal)
}

/// Whether the object has a table of that name (objects create theirs on first use).
pub fn has_table(sql: &SqlStorage, table: &str) -> Result<bool, ApiError> {
    #[derive(Deserialize)]
    struct Name {
        #[allow(dead_code)]
        name: String,
    }
    let rows: Vec<Name> = sql
        .exec(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
            vec![table.into()],
        )
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    Ok(!rows.is_empty())
}
