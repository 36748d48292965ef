//! An account's index of its keys and its audit trail, in the account object's
//! SQLite: listing with filters and paging, alias uniqueness, events. The key's own
//! object stays the source of truth; the index holds a copy of the fields it
//! filters on, re-written after every change (newer revisions win).

use crate::admin::fanout::{self, EventBound};
use crate::notify::audit::{EventPos, Listed};
use crate::objects::account::{self, EventsPage, IndexWrite, KeyCount, Oldest};

use crate::admin::listing::ListQuery;
use crate::error::ApiError;
use crate::key::record::IndexRow;
use crate::notify::audit::{AuditEvent, EventQuery};
use crate::time_fmt::to_rfc3339;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{console_error, SqlStorage, SqlStorageValue};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY, alias TEXT, environment TEXT NOT NULL, category TEXT, status TEXT NOT NULL,
  expires_at INTEGER, revision INTEGER NOT NULL DEFAULT 0, name TEXT NOT NULL DEFAULT '',
  prefix TEXT NOT NULL DEFAULT '');
CREATE UNIQUE INDEX IF NOT EXISTS keys_alias ON keys(alias) WHERE alias IS NOT NULL;
CREATE TABLE IF NOT EXISTS removed (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
  actor TEXT NOT NULL, action TEXT NOT NULL, key_id TEXT, account TEXT NOT NULL, details TEXT NOT NULL,
  scope TEXT, imported INTEGER UNIQUE);
CREATE INDEX IF NOT EXISTS events_at ON events(at, id);
CREATE INDEX IF NOT EXISTS events_key ON events(key_id, at, id);
CREATE TABLE IF NOT EXISTS refusals (bucket TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refusals_bucket ON refusals(bucket, at);
CREATE INDEX IF NOT EXISTS refusals_at ON refusals(at);";

fn text(v: &Option<String>) -> SqlStorageValue {
    v.as_deref()
        .map_or(SqlStorageValue::Null, SqlStorageValue::from)
}

fn exec(sql: &SqlStorage, q: &str, args: Vec<SqlStorageValue>) -> Result<(), ApiError> {
    sql.exec(q, args).map(|_| ()).map_err(ApiError::internal)
}

#[derive(Deserialize)]
struct IdRow {
    id: String,
}

fn ids(sql: &SqlStorage, q: &str, args: Vec<SqlStorageValue>) -> Result<Vec<String>, ApiError> {
    let rows: Vec<IdRow> = sql
        .exec(q, args)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[derive(Deserialize)]
struct Number {
    n: Option<i64>,
}

fn number(sql: &SqlStorage, q: &str, args: Vec<SqlStorageValue>) -> Result<Option<i64>, ApiError> {
    let rows: Vec<Number> = sql
        .exec(q, args)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    Ok(rows.first().and_then(|r| r.n))
}

/// Another key holding `alias`, if one does.
fn alias_holder(sql: &SqlStorage, alias: &str, id: &str) -> Result<Option<String>, ApiError> {
    Ok(ids(
        sql,
        "SELECT id FROM keys WHERE alias = ? AND id <> ?",
        vec![alias.into(), id.into()],
    )?
    .into_iter()
    .next())
}

fn removed(sql: &SqlStorage, id: &str) -> Result<bool, ApiError> {
    Ok(!ids(sql, "SELECT id FROM removed WHERE id = ?", vec![id.into()])?.is_empty())
}

/// Claims `row.alias` for a key before its object changes (see
/// `objects::account::claim`): inserts `row` for a new key; for an existing one
/// only the alias changes (the rest waits for the change's `sync`).
pub fn claim(sql: &SqlStorage, row: &IndexRow, cap: Option<u64>) -> Result<(), ApiError> {
    let holder = match &row.alias {
        Some(alias) => alias_holder(sql, alias, &row.id)?,
        None => None,
    };
    let known = !ids(
        sql,
        "SELECT id FROM keys WHERE id = ?",
        vec![row.id.as_str().into()],
    )?
    .is_empty();
    let held = number(sql, "SELECT COUNT(*) AS n FROM keys", vec![])?.unwrap_or(0);
    account::claim(row, holder.as_deref(), known, held.max(0) as u64, cap)?;
    upsert(sql, row, "alias = excluded.alias")
}

/// The key as its object now holds it. An older revision than the stored one is
/// ignored, and a removed key never comes back.
pub fn sync(sql: &SqlStorage, mut row: IndexRow) -> Result<(), ApiError> {
    if removed(sql, &row.id)? {
        return Ok(());
    }
    // Two keys hold one alias only after a race between concurrent alias changes:
    // it stays with one of them, and the other's next change brings its row over.
    if let Some(alias) = row.alias.clone() {
        if let Some(holder) = alias_holder(sql, &alias, &row.id)? {
            console_error!("index: alias '{alias}' of {} is held by {holder}", row.id);
            row.alias = None;
        }
    }
    upsert(
        sql,
        &row,
        "alias = excluded.alias, environment = excluded.environment,
         category = excluded.category, status = excluded.status,
         expires_at = excluded.expires_at, revision = excluded.revision,
         name = excluded.name, prefix = excluded.prefix
         WHERE excluded.revision >= keys.revision",
    )
}

pub fn remove(sql: &SqlStorage, id: &str, now: i64) -> Result<(), ApiError> {
    exec(sql, "DELETE FROM keys WHERE id = ?", vec![id.into()])?;
    exec(
        sql,
        "INSERT OR IGNORE INTO removed (id, at) VALUES (?, ?)",
        vec![id.into(), now.into()],
    )
}

fn upsert(sql: &SqlStorage, row: &IndexRow, on_conflict: &str) -> Result<(), ApiError> {
    exec(
        sql,
        &format!(
            "INSERT INTO keys (id, alias, environment, category, status, expires_at, revision, name, prefix)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET {on_conflict}"
        ),
        vec![
            row.id.as_str().into(),
            text(&row.alias),
            row.environment.as_str().into(),
            text(&row.category),
            row.status.as_str().into(),
            row.expires_at.map_or(SqlStorageValue::Null, SqlStorageValue::from),
            (row.revision as i64).into(),
            row.name.as_str().into(),
            row.prefix.as_str().into(),
        ],
    )
}

/// Appends an event.
pub fn record(sql: &SqlStorage, e: &AuditEvent) -> Result<(), ApiError> {
    let details = serde_json::to_string(&e.details).map_err(ApiError::internal)?;
    let scope = match &e.scope {
        Some(s) => SqlStorageValue::from(serde_json::to_string(s).map_err(ApiError::internal)?),
        None => SqlStorageValue::Null,
    };
    exec(
        sql,
        "INSERT OR IGNORE INTO events (at, actor, action, key_id, account, details, scope, imported)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        vec![
            e.at.into(),
            e.actor.as_str().into(),
            e.action.as_str().into(),
            text(&e.key_id),
            e.account.as_str().into(),
            details.into(),
            scope,
            SqlStorageValue::Null,
        ],
    )
}

/// A refused management attempt from the client address `bucket`: recorded, and
/// `true`, when fewer than `per_hour` from that address were recorded here in the
/// last `audit::REFUSAL_WINDOW_MS`; else nothing is written.
pub fn record_refusal(
    sql: &SqlStorage,
    e: &AuditEvent,
    bucket: &str,
    per_hour: u32,
) -> Result<bool, ApiError> {
    let since = e.at - crate::notify::audit::REFUSAL_WINDOW_MS;
    exec(
        sql,
        "DELETE FROM refusals WHERE at <= ?",
        vec![since.into()],
    )?;
    let recent = number(
        sql,
        "SELECT COUNT(*) AS n FROM refusals WHERE bucket = ?",
        vec![bucket.into()],
    )?
    .unwrap_or(0);
    if !crate::notify::audit::may_record_refusal(recent.max(0) as u64, per_hour) {
        return Ok(false);
    }
    exec(
        sql,
        "INSERT INTO refusals (bucket, at) VALUES (?, ?)",
        vec![bucket.into(), e.at.into()],
    )?;
    record(sql, e)?;
    Ok(true)
}

/// Retention: events written at or before `events_upto`, tombstones at or before
/// `removed_upto` and refusal counts at or before `refusals_upto` go. Inclusive, so
/// an alarm that fires on the very millisecond the oldest one falls due deletes it
/// (and does not re-arm itself for the time it is running at, which workerd would
/// drop).
pub fn prune(
    sql: &SqlStorage,
    events_upto: i64,
    removed_upto: i64,
    refusals_upto: i64,
) -> Result<(), ApiError> {
    exec(
        sql,
        "DELETE FROM events WHERE at <= ?",
        vec![events_upto.into()],
    )?;
    exec(
        sql,
        "DELETE FROM removed WHERE at <= ?",
        vec![removed_upto.into()],
    )?;
    exec(
        sql,
        "DELETE FROM refusals WHERE at <= ?",
        vec![refusals_upto.into()],
    )
}

/// When the oldest event, tombstone and refusal count were written.
pub fn oldest(sql: &SqlStorage) -> Result<Oldest, ApiError> {
    Ok(Oldest {
        event: number(sql, "SELECT MIN(at) AS n FROM events", vec![])?,
        tombstone: number(sql, "SELECT MIN(at) AS n FROM removed", vec![])?,
        refusal: number(sql, "SELECT MIN(at) AS n FROM refusals", vec![])?,
        outbox: super::outbox::next_due(sql),
    })
}

/// Performs one write of the account's core (`objects::account::IndexWrite`);
/// answers what the write answers (a claim's refusal, whether a refusal was
/// recorded).
pub fn perform(sql: &SqlStorage, write: &IndexWrite) -> Result<Value, ApiError> {
    match write {
        IndexWrite::Claim { row, cap } => claim(sql, row, *cap).map(|_| Value::Null),
        IndexWrite::Sync { row } => sync(sql, row.clone()).map(|_| Value::Null),
        IndexWrite::Remove { id, at } => remove(sql, id, *at).map(|_| Value::Null),
        IndexWrite::Record { event } => record(sql, event).map(|_| Value::Null),
        IndexWrite::Refused {
            event,
            bucket,
            per_hour,
        } => record_refusal(sql, event, bucket, *per_hour).map(Value::Bool),
    }
}

pub fn count_keys(sql: &SqlStorage) -> Result<KeyCount, ApiError> {
    let n = number(sql, "SELECT COUNT(*) AS n FROM keys", vec![])?.unwrap_or(0);
    let newest = ids(sql, "SELECT id FROM keys ORDER BY id DESC LIMIT 1", vec![])?;
    Ok(KeyCount {
        total: n.max(0) as u64,
        newest: newest.into_iter().next(),
    })
}

/// Up to `limit` key ids after `after` and at most `upto`, in id order.
pub fn key_ids_between(
    sql: &SqlStorage,
    after: Option<&str>,
    upto: &str,
    limit: usize,
) -> Result<Vec<String>, ApiError> {
    ids(
        sql,
        "SELECT id FROM keys WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
        vec![
            after.unwrap_or("").into(),
            upto.into(),
            (limit as i64).into(),
        ],
    )
}

/// Key ids newest first: up to `limit + 1`, so the caller knows whether more remain.
pub fn list(
    sql: &SqlStorage,
    q: &ListQuery,
    after: Option<&str>,
    now: i64,
) -> Result<Vec<String>, ApiError> {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut args: Vec<SqlStorageValue> = Vec::new();
    let mut eq = |column: &str, value: &str| {
        clauses.push(format!("{column} = ?"));
        args.push(value.into());
    };
    if let Some(e) = q.environment {
        eq("environment", e.as_str());
    }
    if let Some(c) = &q.category {
        eq("category", c);
    }
    // Ids sort by creation time: `id < cursor` continues a newest-first listing.
    if let Some(c) = after {
        clauses.push("id < ?".into());
        args.push(c.into());
    }
    if let Some(term) = &q.search {
        // instr() rather than LIKE: no pattern to escape, and no limit on its length
        // (the platform caps LIKE patterns at 50 bytes). lower() folds ASCII only.
        clauses.push(
            "(instr(lower(name), lower(?)) > 0 OR instr(lower(alias), lower(?)) > 0
              OR instr(lower(prefix), lower(?)) > 0)"
                .into(),
        );
        args.extend([
            term.as_str().into(),
            term.as_str().into(),
            term.as_str().into(),
        ]);
    }
    match q.status.as_deref() {
        Some("active") => {
            clauses.push("status = 'active' AND (expires_at IS NULL OR expires_at > ?)".into());
            args.push(now.into());
        }
        Some("expired") => {
            clauses.push("status = 'active' AND expires_at <= ?".into());
            args.push(now.into());
        }
        Some(other) => {
            clauses.push("status = ?".into());
            args.push(other.into());
        }
        None => {}
    }
    args.push((i64::from(q.limit) + 1).into());
    ids(
        sql,
        &format!(
            "SELECT id FROM keys WHERE {} ORDER BY id DESC LIMIT ?",
            clauses.join(" AND ")
        ),
        args,
    )
}

/// An events row as stored (here, and in the old registry).
#[derive(Deserialize)]
pub struct EventRow {
    pub id: i64,
    at: i64,
    actor: String,
    action: String,
    key_id: Option<String>,
    account: String,
    details: String,
    scope: Option<String>,
}

impl EventRow {
    pub fn into_event(self) -> AuditEvent {
        AuditEvent {
            at: self.at,
            actor: self.actor,
            action: self.action,
            key_id: self.key_id,
            account: self.account,
            details: serde_json::from_str::<Value>(&self.details).unwrap_or(Value::Null),
            scope: self.scope.and_then(|s| serde_json::from_str(&s).ok()),
        }
    }
}

/// Rows read per step while filtering events for an admin key, and steps per page:
/// a page may come back short, with the position to continue from.
const EVENT_SCAN_BATCH: i64 = 200;
const EVENT_SCAN_STEPS: usize = 10;

/// Up to `limit + 1` events after the cursor, newest first; with a viewer, the scan
/// is bounded and `resume` says where it stopped when the page did not fill.
pub fn events(sql: &SqlStorage, account: &str, q: &EventQuery) -> Result<EventsPage, ApiError> {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut args: Vec<SqlStorageValue> = Vec::new();
    for (column, value) in [("key_id", &q.key_id), ("action", &q.action)] {
        if let Some(v) = value {
            clauses.push(format!("{column} = ?"));
            args.push(v.as_str().into());
        }
    }
    let want = q.limit as usize + 1;
    let batch = match q.viewer {
        None => want as i64,
        Some(_) => EVENT_SCAN_BATCH,
    };
    let mut bound = q.cursor.as_ref().map(|c| fanout::event_bound(account, c));
    let mut page: Vec<Listed> = Vec::new();
    let mut resume = None;
    for step in 0..EVENT_SCAN_STEPS {
        let mut step_clauses = clauses.clone();
        let mut step_args = args.clone();
        match bound {
            Some(EventBound::AtMost(at)) => {
                step_clauses.push("at <= ?".into());
                step_args.push(at.into());
            }
            Some(EventBound::Below(at)) => {
                step_clauses.push("at < ?".into());
                step_args.push(at.into());
            }
            Some(EventBound::Before { at, id }) => {
                step_clauses.push("(at < ? OR (at = ? AND id < ?))".into());
                step_args.extend([at.into(), at.into(), id.into()]);
            }
            None => {}
        }
        step_args.push(batch.into());
        let rows: Vec<EventRow> = sql
            .exec(
                &format!(
                    "SELECT id, at, actor, action, key_id, account, details, scope FROM events
                     WHERE {} ORDER BY at DESC, id DESC LIMIT ?",
                    step_clauses.join(" AND ")
                ),
                step_args,
            )
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        let exhausted = (rows.len() as i64) < batch;
        let mut last = None;
        for r in rows {
            if page.len() == want {
                break;
            }
            last = Some((r.at, r.id));
            let id = r.id;
            let event = r.into_event();
            if q.viewer.as_ref().is_none_or(|v| event.visible_to(v)) {
                page.push(Listed {
                    pos: EventPos {
                        at: event.at,
                        account: event.account.clone(),
                        id,
                    },
                    item: json!({
                        "at": to_rfc3339(event.at), "actor": event.actor, "action": event.action,
                        "key_id": event.key_id, "account": event.account, "details": event.details,
                    }),
                });
            }
        }
        if page.len() == want || exhausted {
            break;
        }
        if let Some((at, id)) = last {
            bound = Some(EventBound::Before { at, id });
            if step + 1 == EVENT_SCAN_STEPS {
                // Scan budget spent before the page filled: continue after the last
                // row read.
                resume = Some(EventPos {
                    at,
                    account: account.to_string(),
                    id,
                });
            }
        }
    }
    Ok(EventsPage {
        events: page,
        resume,
    })
}
