//! A key's move between objects as storage sees it (`objects::key::placement`):
//! the old object hands over every table that is the key — record, uses, ledger,
//! reservations and request log, usage hours, lease book, home — in one
//! synchronous step, and keeps a tombstone naming the new one; the new object
//! writes them as they were. The outbox stays: the old object's alarm delivers
//! what it had queued, the new one's what it queues.

use super::{key_store, sql_row};
use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{SqlStorage, SqlStorageValue, State};

/// The tables that move with a key (the outbox and the object's counters stay).
const TABLES: [&str; 10] = [
    "record",
    "uses",
    "buckets",
    "ledger_total",
    "logs",
    "usage",
    "lease_book",
    "placement",
    "replays",
    "sharing",
];

/// Where a moved key went (the old object's one row).
const TOMBSTONE: &str = "moved";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The name of the object the key moved to.
    pub to: String,
    pub at: i64,
}

/// Everything a key's object holds of the key, table by table, row by row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handover {
    pub tables: Vec<(String, Vec<Map<String, Value>>)>,
}

/// Where the key went, if it has.
pub fn tombstone(sql: &SqlStorage) -> Result<Option<Tombstone>, ApiError> {
    if !sql_row::has_table(sql, TOMBSTONE)? {
        return Ok(None);
    }
    sql_row::read(sql, TOMBSTONE)
}

/// Points the tombstone at `to` (a later move of the key).
pub fn point(sql: &SqlStorage, to: &str, now: i64) -> Result<(), ApiError> {
    sql.exec(&sql_row::schema(TOMBSTONE), None)
        .map_err(ApiError::internal)?;
    let stone = Tombstone {
        to: to.to_string(),
        at: now,
    };
    sql_row::write(sql, TOMBSTONE, &stone)
}

/// The key's tables, read and tombstoned in one step (no `.await` in between):
/// nothing decided here after it is missing from them. A copy already released
/// is not handed over (it would hand over no key).
pub fn hand_over(sql: &SqlStorage, to: &str, now: i64) -> Result<Handover, ApiError> {
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let rows: Vec<Map<String, Value>> = sql
            .exec(&format!("SELECT * FROM {table}"), None)
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        if table == "record" && rows.is_empty() {
            return Err(ApiError::NotFound { what: "key".into() });
        }
        tables.push((table.to_string(), rows));
    }
    point(sql, to, now)?;
    Ok(Handover { tables })
}

/// Drops the copy once the next object holds the key: a deleted key leaves
/// nothing behind in the objects it moved through.
pub fn release(sql: &SqlStorage) -> Result<(), ApiError> {
    for table in TABLES {
        sql.exec(&format!("DELETE FROM {table}"), None)
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

/// Writes a handover into this object's (empty) tables, all or nothing (one
/// storage transaction: a failure part-way leaves them as they were).
pub fn take_over(state: &State, handover: Handover) -> Result<(), ApiError> {
    let sql = state.storage().sql();
    let failed = Rc::new(RefCell::new(None));
    let failure = failed.clone();
    let write = Closure::once(move || -> Result<(), JsValue> {
        write_all(&sql, &handover).map_err(|e| {
            *failure.borrow_mut() = Some(e);
            JsValue::from_str("handover not written")
        })
    });
    let storage: JsValue = state
        .as_raw()
        .storage()
        .map_err(|e| ApiError::internal(format!("{e:?}")))?
        .into();
    let transaction = js_sys::Reflect::get(&storage, &"transactionSync".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| ApiError::internal("storage without transactionSync"))?;
    match transaction.call1(&storage, write.as_ref().unchecked_ref()) {
        Ok(_) => Ok(()),
        Err(e) => Err(failed
            .borrow_mut()
            .take()
            .unwrap_or_else(|| ApiError::internal(format!("{e:?}")))),
    }
}

fn write_all(sql: &SqlStorage, handover: &Handover) -> Result<(), ApiError> {
    key_store::create_tables(sql);
    for (table, rows) in &handover.tables {
        if !TABLES.contains(&table.as_str()) {
            return Err(ApiError::internal(format!("a handover of table {table}")));
        }
        for row in rows {
            let columns: Vec<&str> = row.keys().map(String::as_str).collect();
            if columns
                .iter()
                .any(|c| !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            {
                return Err(ApiError::internal(format!("a handover column of {table}")));
            }
            let marks = vec!["?"; columns.len()].join(", ");
            let query = format!(
                "INSERT OR REPLACE INTO {table} ({}) VALUES ({marks})",
                columns.join(", ")
            );
            let values = row.values().map(value).collect::<Vec<_>>();
            sql.exec(&query, values).map_err(ApiError::internal)?;
        }
    }
    Ok(())
}

fn value(v: &Value) -> SqlStorageValue {
    match v {
        Value::Null => SqlStorageValue::Null,
        Value::Bool(b) => SqlStorageValue::Integer(*b as i64),
        // Integers come through JavaScript as numbers: whole ones are integers.
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => SqlStorageValue::Integer(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                SqlStorageValue::Integer(f as i64)
            }
            (None, f) => SqlStorageValue::Float(f.unwrap_or(0.0)),
        },
        Value::String(s) => SqlStorageValue::String(s.clone()),
        other => SqlStorageValue::String(other.to_string()),
    }
}
