//! A ledger's SQLite tables inside a Durable Object. Writes are synchronous and
//! follow the in-memory ledger, so the two never disagree.

use crate::error::ApiError;
use crate::limits::ledger::{Ledger, Level, StoredBucket};
use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS buckets (level INTEGER NOT NULL, start INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (level, start));
CREATE TABLE IF NOT EXISTS ledger_total (one INTEGER PRIMARY KEY CHECK (one = 1), total INTEGER NOT NULL, latest INTEGER);";

/// Brings a table made before `latest` existed up to date (adding the column
/// twice fails harmlessly).
pub fn migrate(sql: &SqlStorage) -> Result<(), ApiError> {
    match sql.exec("ALTER TABLE ledger_total ADD COLUMN latest INTEGER", None) {
        Err(e) if !e.to_string().contains("duplicate column") => Err(ApiError::internal(e)),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct TotalRow {
    total: i64,
    latest: Option<i64>,
}

#[derive(Deserialize)]
struct BucketRow {
    level: i64,
    start: i64,
    count: i64,
}

pub fn load(sql: &SqlStorage, levels: &[Level]) -> Result<Ledger, ApiError> {
    let total: Vec<TotalRow> = sql
        .exec("SELECT total, latest FROM ledger_total WHERE one = 1", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let rows: Vec<BucketRow> = sql
        .exec("SELECT level, start, count FROM buckets", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let buckets = rows
        .into_iter()
        .map(|r| StoredBucket {
            level: r.level.max(0) as usize,
            start: r.start,
            count: r.count.max(0) as u64,
        })
        .collect();
    let latest = total.first().and_then(|t| t.latest);
    let total = total.first().map_or(0, |t| t.total.max(0) as u64);
    Ok(Ledger::restore(levels, total, latest, buckets))
}

pub fn write(
    sql: &SqlStorage,
    ledger: &Ledger,
    buckets: &[StoredBucket],
    prune: &[(usize, i64)],
) -> Result<(), ApiError> {
    if buckets.is_empty() && prune.is_empty() {
        return Ok(());
    }
    // One statement per 33 buckets (the platform binds at most 100 values).
    for chunk in buckets.chunks(33) {
        let mut args: Vec<SqlStorageValue> = Vec::with_capacity(chunk.len() * 3);
        for b in chunk {
            args.extend([
                (b.level as i64).into(),
                b.start.into(),
                (b.count as i64).into(),
            ]);
        }
        let rows = vec!["(?, ?, ?)"; chunk.len()].join(", ");
        sql.exec(
            &format!("INSERT OR REPLACE INTO buckets (level, start, count) VALUES {rows}"),
            args,
        )
        .map_err(ApiError::internal)?;
    }
    for (level, before) in prune {
        sql.exec(
            "DELETE FROM buckets WHERE level = ? AND start < ?",
            vec![(*level as i64).into(), (*before).into()],
        )
        .map_err(ApiError::internal)?;
    }
    let latest = ledger
        .latest
        .map_or(SqlStorageValue::Null, SqlStorageValue::from);
    sql.exec(
        "INSERT OR REPLACE INTO ledger_total (one, total, latest) VALUES (1, ?, ?)",
        vec![(ledger.total as i64).into(), latest],
    )
    .map_err(ApiError::internal)?;
    Ok(())
}
