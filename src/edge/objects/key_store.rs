//! A key object's SQLite: its record (and the use count in its own row), ledger,
//! usage hours, request log (an admitted request's reservation is its `pending`
//! row) and outbox. Loading builds the pure core's `KeyState`; persisting performs
//! a command's `Effects`, synchronously, so memory and storage never disagree.

use super::ledger_store;
use super::sql_row;
use crate::error::ApiError;
use crate::key::record::KeyRecord;
use crate::limits::ledger::KEY_LEVELS;
use crate::limits::reservation::{Reservation, Reservations};
use crate::limits::usage::{Tally, Usage};
use crate::notify::logs::{LogEntry, LogQuery, LogUpdate};
use crate::objects::key::placement::Placement;
use crate::objects::key::{Change, Effects, KeyState};
use crate::paging;
use crate::time_fmt::to_rfc3339;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{console_error, SqlStorage, SqlStorageValue};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS record (one INTEGER PRIMARY KEY CHECK (one = 1), json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, method TEXT NOT NULL,
  path TEXT NOT NULL, status INTEGER NOT NULL, code TEXT, duration_ms INTEGER NOT NULL, ip TEXT, credits INTEGER NOT NULL,
  via TEXT NOT NULL DEFAULT 'gate');
CREATE INDEX IF NOT EXISTS logs_at ON logs(at, id);
CREATE TABLE IF NOT EXISTS usage (hour INTEGER PRIMARY KEY, requests INTEGER NOT NULL, credits INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS uses (one INTEGER PRIMARY KEY CHECK (one = 1), count INTEGER NOT NULL, last_used_at INTEGER);";

/// Columns added to `logs` since its first schema (adding one twice fails
/// harmlessly), then the indexes settlements and restores find their rows by. An
/// admitted request's reservation is its `pending` row (with `due`): the row and
/// the reservation are one write, and its settlement one update.
const LOG_COLUMNS: [&str; 8] = [
    "ALTER TABLE logs ADD COLUMN via TEXT NOT NULL DEFAULT 'gate'",
    "ALTER TABLE logs ADD COLUMN state TEXT NOT NULL DEFAULT 'completed'",
    "ALTER TABLE logs ADD COLUMN reservation INTEGER",
    "ALTER TABLE logs ADD COLUMN due INTEGER",
    "CREATE INDEX IF NOT EXISTS logs_reservation ON logs(reservation) WHERE reservation IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS logs_pending ON logs(reservation) WHERE state = 'pending'",
    // The key's balance, spent with every admission (`limits::credits`).
    "ALTER TABLE uses ADD COLUMN credits TEXT",
    // What a pending row's request took from that balance.
    "ALTER TABLE logs ADD COLUMN spent INTEGER",
];

/// Creates the tables (and columns) this build uses that are missing.
pub fn create_tables(sql: &SqlStorage) {
    let rows = [
        sql_row::schema("lease_book"),
        sql_row::schema("placement"),
        sql_row::schema("replays"),
        sql_row::schema("sharing"),
    ];
    for schema in [
        SCHEMA,
        super::outbox::SCHEMA,
        ledger_store::SCHEMA,
        &rows[0],
        &rows[1],
        &rows[2],
        &rows[3],
    ] {
        if let Err(e) = sql.exec(schema, None) {
            console_error!("key object: cannot create its tables: {e}");
        }
    }
    for change in LOG_COLUMNS {
        if let Err(e) = sql.exec(change, None) {
            if !e.to_string().contains("duplicate column") {
                console_error!("key object: cannot migrate logs ({change}): {e}");
            }
        }
    }
    if let Err(e) = ledger_store::migrate(sql) {
        console_error!("key object: cannot migrate its ledger: {e:?}");
    }
}

/// Whether this object ever held a key (has its tables).
pub fn stored(sql: &SqlStorage) -> bool {
    sql_row::has_table(sql, "record").unwrap_or(false)
}

pub fn load(sql: &SqlStorage) -> std::result::Result<KeyState, ApiError> {
    #[derive(Deserialize)]
    struct Hour {
        hour: i64,
        requests: i64,
        credits: i64,
    }
    let hours: Vec<Hour> = sql
        .exec("SELECT hour, requests, credits FROM usage", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let usage = Usage::restore(hours.into_iter().map(|h| {
        let tally = Tally {
            requests: h.requests.max(0) as u64,
            credits: h.credits.max(0) as u64,
        };
        (h.hour, tally)
    }));
    let mut record: Option<KeyRecord> = sql_row::read(sql, "record")?;
    // The use row is written with every record and alone on every use: it is newer.
    #[derive(Deserialize)]
    struct Uses {
        count: i64,
        last_used_at: Option<i64>,
        credits: Option<String>,
    }
    let uses: Vec<Uses> = sql
        .exec(
            "SELECT count, last_used_at, credits FROM uses WHERE one = 1",
            None,
        )
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    if let (Some(rec), Some(u)) = (record.as_mut(), uses.first()) {
        rec.usage_count = u.count.max(0) as u64;
        rec.last_used_at = u.last_used_at;
        rec.credits = match &u.credits {
            Some(json) => serde_json::from_str(json).map_err(ApiError::internal)?,
            None => None,
        };
    }
    #[derive(Deserialize)]
    struct Open {
        id: i64,
        at: i64,
        cost: i64,
        due: i64,
        spent: i64,
    }
    let open: Vec<Open> = sql
        .exec(
            "SELECT reservation AS id, at, credits AS cost, COALESCE(due, at + 30000) AS due,
               COALESCE(spent, 0) AS spent
             FROM logs WHERE state = 'pending' AND reservation IS NOT NULL",
            None,
        )
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    #[derive(Deserialize)]
    struct Last {
        n: Option<i64>,
    }
    let last: Vec<Last> = sql
        .exec("SELECT MAX(reservation) AS n FROM logs", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let reservations = Reservations::restore(
        open.into_iter().map(|r| Reservation {
            id: r.id.max(0) as u64,
            at: r.at,
            cost: r.cost.max(0) as u64,
            due: r.due,
            spent: r.spent.max(0) as u64,
        }),
        last.first().and_then(|l| l.n).unwrap_or(0).max(0) as u64,
    );
    Ok(KeyState {
        record,
        ledger: ledger_store::load(sql, &KEY_LEVELS)?,
        usage,
        reservations,
        book: sql_row::read(sql, "lease_book")?.unwrap_or_default(),
        placement: Placement::at(sql_row::read(sql, "placement")?.unwrap_or_default()),
        replays: sql_row::read(sql, "replays")?.unwrap_or_default(),
        sharing: sql_row::read(sql, "sharing")?.unwrap_or_default(),
    })
}

pub fn persist(
    sql: &SqlStorage,
    state: &KeyState,
    fx: &Effects,
    now: i64,
    max_age_ms: i64,
    max_rows: u32,
) -> std::result::Result<(), ApiError> {
    let exec = |q: &str, args: Vec<SqlStorageValue>| {
        sql.exec(q, args).map(|_| ()).map_err(ApiError::internal)
    };
    let write_uses = |rec: &KeyRecord| {
        let last = rec
            .last_used_at
            .map_or(SqlStorageValue::Null, SqlStorageValue::from);
        let credits = match &rec.credits {
            Some(c) => serde_json::to_string(c).map_err(ApiError::internal)?.into(),
            None => SqlStorageValue::Null,
        };
        exec(
            "INSERT OR REPLACE INTO uses (one, count, last_used_at, credits) VALUES (1, ?, ?, ?)",
            vec![(rec.usage_count as i64).into(), last, credits],
        )
    };
    match (&fx.record, &state.record) {
        (Change::Put, Some(rec)) => {
            sql_row::write(sql, "record", rec)?;
            write_uses(rec)?;
        }
        (Change::Use, Some(rec)) => write_uses(rec)?,
        (Change::Erase, _) => {
            for table in [
                "record",
                "logs",
                "outbox",
                "buckets",
                "ledger_total",
                "usage",
                "uses",
                "lease_book",
                "placement",
                "replays",
                "sharing",
            ] {
                exec(&format!("DELETE FROM {table}"), vec![])?;
            }
        }
        _ => {}
    }
    ledger_store::write(sql, &state.ledger, &fx.buckets, &fx.prune)?;
    if fx.lease_book {
        sql_row::write(sql, "lease_book", &state.book)?;
    }
    if fx.home {
        sql_row::write(sql, "placement", &state.placement.home)?;
    }
    if fx.replays {
        sql_row::write(sql, "replays", &state.replays)?;
    }
    if fx.sharing {
        sql_row::write(sql, "sharing", &state.sharing)?;
    }
    for (hour, t) in &fx.usage {
        exec(
            "INSERT INTO usage (hour, requests, credits) VALUES (?, ?, ?)
             ON CONFLICT(hour) DO UPDATE SET requests = excluded.requests, credits = excluded.credits",
            vec![(*hour).into(), (t.requests as i64).into(), (t.credits as i64).into()],
        )?;
    }
    if let Some(cutoff) = fx.usage_prune {
        exec("DELETE FROM usage WHERE hour < ?", vec![cutoff.into()])?;
    }
    insert_logs(sql, &fx.logs, &fx.reserve)?;
    // Retention, by age and by row cap, on about one write in 64; a pending row
    // (an open reservation) stays until it is settled or released.
    if fx.logs.first().is_some_and(|l| l.at % 64 == 0) {
        exec(
            "DELETE FROM logs WHERE at < ? AND state != 'pending'",
            vec![(now - max_age_ms).into()],
        )?;
        exec(
            "DELETE FROM logs WHERE id <= (SELECT MAX(id) FROM logs) - ? AND state != 'pending'",
            vec![i64::from(max_rows).into()],
        )?;
    }
    for update in &fx.log_updates {
        match update {
            LogUpdate::Settle {
                reservation,
                state,
                status,
                code,
                duration_ms,
                credits,
            } => exec(
                "UPDATE logs SET state = ?, status = ?, code = ?, duration_ms = ?, credits = ? WHERE reservation = ?",
                vec![
                    state.as_str().into(),
                    i64::from(*status).into(),
                    code.as_deref()
                        .map_or(SqlStorageValue::Null, SqlStorageValue::from),
                    i64::from(*duration_ms).into(),
                    (*credits as i64).into(),
                    (*reservation as i64).into(),
                ],
            )?,
            LogUpdate::Discard { reservation } => exec(
                "DELETE FROM logs WHERE reservation = ?",
                vec![(*reservation as i64).into()],
            )?,
        }
    }
    for notice in &fx.notices {
        super::outbox::enqueue(sql, notice, now)?;
    }
    Ok(())
}

/// The log rows, 8 to a statement (the platform binds at most 100 values); an
/// admitted request's row carries when its reservation is released if unsettled.
fn insert_logs(
    sql: &SqlStorage,
    logs: &[LogEntry],
    reserved: &[Reservation],
) -> std::result::Result<(), ApiError> {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map_or(SqlStorageValue::Null, SqlStorageValue::from)
    };
    // 13 values a row: 7 rows keep a statement under SQLite's 100 bound parameters.
    for chunk in logs.chunks(7) {
        let mut args: Vec<SqlStorageValue> = Vec::with_capacity(chunk.len() * 13);
        for l in chunk {
            let held = l
                .reservation
                .and_then(|id| reserved.iter().find(|r| r.id == id));
            let due = held.map_or(SqlStorageValue::Null, |r| SqlStorageValue::from(r.due));
            let spent = held.map_or(SqlStorageValue::Null, |r| {
                SqlStorageValue::from(r.spent as i64)
            });
            args.extend([
                l.at.into(),
                l.method.as_str().into(),
                l.path.as_str().into(),
                i64::from(l.status).into(),
                text(&l.code),
                i64::from(l.duration_ms).into(),
                text(&l.ip),
                (l.credits as i64).into(),
                l.via.as_str().into(),
                l.state.as_str().into(),
                l.reservation
                    .map_or(SqlStorageValue::Null, |r| SqlStorageValue::from(r as i64)),
                due,
                spent,
            ]);
        }
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        sql.exec(
            &format!("INSERT INTO logs (at, method, path, status, code, duration_ms, ip, credits, via, state, reservation, due, spent) VALUES {rows}"),
            args,
        )
        .map_err(ApiError::internal)?;
    }
    Ok(())
}

/// A page of the request log, newest first (served from storage: the log is not
/// kept in memory).
pub fn logs(sql: &SqlStorage, q: &LogQuery) -> Result<Value, ApiError> {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut args: Vec<SqlStorageValue> = Vec::new();
    let mut push = |clause: &str, v: i64| {
        clauses.push(clause.to_string());
        args.push(v.into());
    };
    if let Some(v) = q.status_min {
        push("status >= ?", i64::from(v));
    }
    if let Some(v) = q.status_max {
        push("status <= ?", i64::from(v));
    }
    if let Some(v) = q.from {
        push("at >= ?", v);
    }
    if let Some(v) = q.to {
        push("at < ?", v);
    }
    if let Some((at, id)) = q.cursor {
        clauses.push("(at < ? OR (at = ? AND id < ?))".into());
        args.extend([at.into(), at.into(), id.into()]);
    }
    args.push((i64::from(q.limit) + 1).into());
    #[derive(Deserialize)]
    struct Row {
        id: i64,
        at: i64,
        method: String,
        path: String,
        status: i64,
        code: Option<String>,
        duration_ms: i64,
        ip: Option<String>,
        credits: i64,
        via: String,
        state: String,
    }
    let rows: Vec<Row> = sql
        .exec(
            &format!(
                "SELECT id, at, method, path, status, code, duration_ms, ip, credits, via, state FROM logs WHERE {} ORDER BY at DESC, id DESC LIMIT ?",
                clauses.join(" AND ")
            ),
            args,
        )
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let (rows, cursor) = paging::page(rows, q.limit, |r| format!("{}.{}", r.at, r.id));
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            // A pending or abandoned request has no answer to show.
            let status = Some(r.status).filter(|_| r.state == "completed");
            json!({
                "at": to_rfc3339(r.at), "method": r.method, "path": r.path, "status": status,
                "code": r.code, "duration_ms": r.duration_ms, "ip": r.ip, "credits": r.credits,
                "via": r.via, "state": r.state,
            })
        })
        .collect();
    Ok(json!({ "items": items, "cursor": cursor }))
}
