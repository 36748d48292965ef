//! Per-object call counters for `make scale` (`OBJECT_STATS=true`): each Durable
//! Object counts the calls it serves in its own SQLite, and the simulation reads
//! them from the local state after the run. Off, they cost one branch.

use worker::{console_error, SqlStorage};

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS object_stats (one INTEGER PRIMARY KEY CHECK (one = 1),
  calls INTEGER NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL)";

pub fn count(sql: &SqlStorage, on: bool, now: i64) {
    if !on {
        return;
    }
    let counted = sql.exec(SCHEMA, None).and_then(|_| {
        sql.exec(
            "INSERT INTO object_stats (one, calls, first_at, last_at) VALUES (1, 1, ?, ?)
             ON CONFLICT(one) DO UPDATE SET calls = calls + 1, last_at = excluded.last_at",
            vec![now.into(), now.into()],
        )
    });
    if let Err(e) = counted {
        console_error!("object stats: {e}");
    }
}

const BATCH_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS batch_stats (one INTEGER PRIMARY KEY CHECK (one = 1),
  batches INTEGER NOT NULL, requests INTEGER NOT NULL, largest INTEGER NOT NULL)";

/// Counts one call that carried `n` requests' admissions (group commit): the
/// object's own evidence that coalescing happened.
pub fn count_batch(sql: &SqlStorage, on: bool, n: usize) {
    if !on || n == 0 {
        return;
    }
    let n = n as i64;
    let counted = sql.exec(BATCH_SCHEMA, None).and_then(|_| {
        sql.exec(
            "INSERT INTO batch_stats (one, batches, requests, largest) VALUES (1, 1, ?, ?)
             ON CONFLICT(one) DO UPDATE SET batches = batches + 1, requests = requests + excluded.requests,
               largest = MAX(largest, excluded.largest)",
            vec![n.into(), n.into()],
        )
    });
    if let Err(e) = counted {
        console_error!("batch stats: {e}");
    }
}
