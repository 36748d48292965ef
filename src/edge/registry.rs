//! The registry: one Durable Object indexing every key for the management routes —
//! listing with filters and paging, and alias uniqueness per account. It is never on
//! the request path. The key's own object stays the source of truth; the registry
//! holds a copy of the fields it filters on, re-written after every change.

use super::objects::{self, REGISTRY, REGISTRY_NAME};
use crate::audit::{AuditEvent, EventQuery};
use crate::error::ApiError;
use crate::input::ListQuery;
use crate::model::RegistryRow;
use crate::paging;
use crate::time_fmt::to_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{
    console_error, durable_object, DurableObject, Env, Request, Response, Result, SqlStorage,
    SqlStorageValue, State,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryCommand {
    /// Claims `alias` for a key before its object changes: refused (409) when another
    /// key of the account holds it. Inserts `row` for a new key; for an existing one
    /// only the alias column changes (the rest waits for the change's `Sync`).
    Claim {
        row: RegistryRow,
    },
    /// The key as its object now holds it, and the event of the change. A row older
    /// than the stored one is ignored, so copies converge.
    Sync {
        row: RegistryRow,
        event: Option<AuditEvent>,
    },
    /// The key is gone: its row goes and can never come back (a late `Sync`).
    Remove {
        id: String,
        event: Option<AuditEvent>,
    },
    /// Ids newest first, and the cursor of the next page.
    List {
        query: ListQuery,
        now: i64,
    },
    /// Every key id of an account.
    AccountKeys {
        account: String,
    },
    Record {
        event: AuditEvent,
    },
    Events {
        query: EventQuery,
    },
}

/// Sends a command to the registry.
pub async fn call(env: &Env, cmd: &RegistryCommand) -> std::result::Result<Value, ApiError> {
    objects::call(env, REGISTRY, REGISTRY_NAME, cmd).await
}

#[durable_object]
pub struct Registry {
    state: State,
}

#[derive(Deserialize)]
struct IdRow {
    id: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY, account TEXT NOT NULL, alias TEXT, environment TEXT NOT NULL,
  category TEXT, status TEXT NOT NULL, expires_at INTEGER);
CREATE TABLE IF NOT EXISTS removed (id TEXT PRIMARY KEY);
CREATE UNIQUE INDEX IF NOT EXISTS keys_alias ON keys(account, alias) WHERE alias IS NOT NULL;
CREATE INDEX IF NOT EXISTS keys_account ON keys(account, id);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, key_id TEXT, account TEXT NOT NULL, details TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_account ON events(account, id);
CREATE INDEX IF NOT EXISTS events_key ON events(key_id, id);";

/// Columns added since the first schema; adding one that exists fails harmlessly.
const ADDED_COLUMNS: [&str; 4] = [
    "ALTER TABLE keys ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE events ADD COLUMN scope TEXT",
    "ALTER TABLE keys ADD COLUMN name TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE keys ADD COLUMN prefix TEXT NOT NULL DEFAULT ''",
];

impl DurableObject for Registry {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(SCHEMA, None) {
            console_error!("registry: cannot create its tables: {e}");
        }
        for alter in ADDED_COLUMNS {
            if let Err(e) = sql.exec(alter, None) {
                if !e.to_string().contains("duplicate column") {
                    console_error!("registry: {alter}: {e}");
                }
            }
        }
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match objects::command::<RegistryCommand>(&mut req).await {
            Ok(cmd) => self.run(cmd),
            Err(e) => Err(e),
        };
        objects::reply(result)
    }
}

fn text(v: &Option<String>) -> SqlStorageValue {
    v.as_deref()
        .map_or(SqlStorageValue::Null, SqlStorageValue::from)
}

fn ids(
    sql: &SqlStorage,
    query: &str,
    args: Vec<SqlStorageValue>,
) -> std::result::Result<Vec<String>, ApiError> {
    let rows: Vec<IdRow> = sql
        .exec(query, args)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Another key of the account holding `alias`, if one does.
fn alias_holder(
    sql: &SqlStorage,
    account: &str,
    alias: &str,
    id: &str,
) -> std::result::Result<Option<String>, ApiError> {
    Ok(ids(
        sql,
        "SELECT id FROM keys WHERE account = ? AND alias = ? AND id <> ?",
        vec![account.into(), alias.into(), id.into()],
    )?
    .into_iter()
    .next())
}

fn removed(sql: &SqlStorage, id: &str) -> std::result::Result<bool, ApiError> {
    Ok(!ids(sql, "SELECT id FROM removed WHERE id = ?", vec![id.into()])?.is_empty())
}

impl Registry {
    fn run(&self, cmd: RegistryCommand) -> std::result::Result<Value, ApiError> {
        let sql = self.state.storage().sql();
        match cmd {
            RegistryCommand::Claim { row } => {
                if let Some(alias) = &row.alias {
                    if alias_holder(&sql, &row.account, alias, &row.id)?.is_some() {
                        return Err(ApiError::Conflict {
                            reason: format!(
                                "alias '{alias}' is already used in account '{}'",
                                row.account
                            ),
                        });
                    }
                }
                upsert(&sql, &row, "alias = excluded.alias")?;
                Ok(Value::Null)
            }
            RegistryCommand::Sync { mut row, event } => {
                if !removed(&sql, &row.id)? {
                    // Two keys can hold one alias only in a race between concurrent
                    // alias changes; the registry keeps it with one of them, and the
                    // key's next change brings its row up to date.
                    if let Some(alias) = row.alias.clone() {
                        if let Some(holder) = alias_holder(&sql, &row.account, &alias, &row.id)? {
                            console_error!(
                                "registry: alias '{alias}' of {} is held by {holder}",
                                row.id
                            );
                            row.alias = None;
                        }
                    }
                    upsert(
                        &sql,
                        &row,
                        "alias = excluded.alias, environment = excluded.environment,
                         category = excluded.category, status = excluded.status,
                         expires_at = excluded.expires_at, revision = excluded.revision,
                         name = excluded.name, prefix = excluded.prefix
                         WHERE excluded.revision >= keys.revision",
                    )?;
                }
                record(&sql, event)
            }
            RegistryCommand::Remove { id, event } => {
                sql.exec("DELETE FROM keys WHERE id = ?", vec![id.as_str().into()])
                    .map_err(ApiError::internal)?;
                sql.exec(
                    "INSERT OR IGNORE INTO removed (id) VALUES (?)",
                    vec![id.into()],
                )
                .map_err(ApiError::internal)?;
                record(&sql, event)
            }
            RegistryCommand::AccountKeys { account } => {
                let all = ids(
                    &sql,
                    "SELECT id FROM keys WHERE account = ?",
                    vec![account.into()],
                )?;
                Ok(json!({ "ids": all }))
            }
            RegistryCommand::Record { event } => record(&sql, Some(event)),
            RegistryCommand::Events { query } => events(&sql, &query),
            RegistryCommand::List { query, now } => {
                let (where_sql, mut args) = list_filter(&query, now);
                args.push(SqlStorageValue::from(i64::from(query.limit) + 1));
                let found = ids(
                    &sql,
                    &format!("SELECT id FROM keys WHERE {where_sql} ORDER BY id DESC LIMIT ?"),
                    args,
                )?;
                let (page, cursor) = paging::page(found, query.limit, Clone::clone);
                Ok(json!({ "ids": page, "cursor": cursor }))
            }
        }
    }
}

/// Inserts `row`, or on an existing id runs `on_conflict` (an `UPDATE SET` list).
fn upsert(
    sql: &SqlStorage,
    row: &RegistryRow,
    on_conflict: &str,
) -> std::result::Result<(), ApiError> {
    sql.exec(
        &format!(
            "INSERT INTO keys (id, account, alias, environment, category, status, expires_at, revision, name, prefix)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET {on_conflict}"
        ),
        vec![
            row.id.as_str().into(),
            row.account.as_str().into(),
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
    .map(|_| ())
    .map_err(ApiError::internal)
}

fn record(sql: &SqlStorage, event: Option<AuditEvent>) -> std::result::Result<Value, ApiError> {
    let Some(e) = event else {
        return Ok(Value::Null);
    };
    let details = serde_json::to_string(&e.details).map_err(ApiError::internal)?;
    let scope = match &e.scope {
        Some(s) => SqlStorageValue::from(serde_json::to_string(s).map_err(ApiError::internal)?),
        None => SqlStorageValue::Null,
    };
    sql.exec(
        "INSERT INTO events (at, actor, action, key_id, account, details, scope) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![
            e.at.into(),
            e.actor.into(),
            e.action.into(),
            text(&e.key_id),
            e.account.into(),
            details.into(),
            scope,
        ],
    )
    .map_err(ApiError::internal)?;
    Ok(Value::Null)
}

/// Rows read per step while filtering events for an admin key, and steps per page:
/// a page may come back short, with a cursor to continue from.
const EVENT_SCAN_BATCH: i64 = 200;
const EVENT_SCAN_STEPS: usize = 10;

fn events(sql: &SqlStorage, q: &EventQuery) -> std::result::Result<Value, ApiError> {
    #[derive(Deserialize)]
    struct Row {
        id: i64,
        at: i64,
        actor: String,
        action: String,
        key_id: Option<String>,
        account: String,
        details: String,
        scope: Option<String>,
    }
    let mut clauses = vec!["1 = 1".to_string()];
    let mut args: Vec<SqlStorageValue> = Vec::new();
    for (column, value) in [
        ("account", &q.account),
        ("key_id", &q.key_id),
        ("action", &q.action),
    ] {
        if let Some(v) = value {
            clauses.push(format!("{column} = ?"));
            args.push(v.as_str().into());
        }
    }
    let query = format!(
        "SELECT id, at, actor, action, key_id, account, details, scope FROM events
         WHERE {} AND id < ? ORDER BY id DESC LIMIT ?",
        clauses.join(" AND ")
    );
    let want = q.limit as usize;
    let batch = match q.viewer {
        None => i64::from(q.limit) + 1,
        Some(_) => EVENT_SCAN_BATCH,
    };
    let mut before = q.cursor.unwrap_or(i64::MAX);
    let mut page: Vec<(i64, AuditEvent)> = Vec::new();
    let mut cursor = None;
    let mut done = false;
    for _ in 0..EVENT_SCAN_STEPS {
        let mut step_args = args.clone();
        step_args.extend([before.into(), batch.into()]);
        let rows: Vec<Row> = sql
            .exec(&query, step_args)
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        let exhausted = (rows.len() as i64) < batch;
        for r in rows {
            if page.len() == want {
                // A further row exists: the next page starts after this one's last.
                cursor = page.last().map(|(id, _)| *id);
                done = true;
                break;
            }
            before = r.id;
            let event = AuditEvent {
                at: r.at,
                actor: r.actor,
                action: r.action,
                key_id: r.key_id,
                account: r.account,
                details: serde_json::from_str::<Value>(&r.details).unwrap_or(Value::Null),
                scope: r.scope.and_then(|s| serde_json::from_str(&s).ok()),
            };
            if q.viewer.as_ref().is_none_or(|v| event.visible_to(v)) {
                page.push((r.id, event));
            }
        }
        if done || exhausted {
            done = true;
            break;
        }
    }
    if !done {
        // Scan budget spent before the page filled: continue from the last row read.
        cursor = Some(before);
    }
    let items: Vec<Value> = page
        .into_iter()
        .map(|(_, e)| {
            json!({
                "at": to_rfc3339(e.at), "actor": e.actor, "action": e.action, "key_id": e.key_id,
                "account": e.account, "details": e.details,
            })
        })
        .collect();
    Ok(json!({ "items": items, "cursor": cursor.map(|c| c.to_string()) }))
}

/// The WHERE clause of a listing. Ids sort by creation time, so `id < cursor`
/// continues a newest-first listing.
fn list_filter(q: &ListQuery, now: i64) -> (String, Vec<SqlStorageValue>) {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut args: Vec<SqlStorageValue> = Vec::new();
    let mut eq = |column: &str, value: &str| {
        clauses.push(format!("{column} = ?"));
        args.push(value.into());
    };
    if let Some(a) = &q.account {
        eq("account", a);
    }
    if let Some(e) = q.environment {
        eq("environment", e.as_str());
    }
    if let Some(c) = &q.category {
        eq("category", c);
    }
    if let Some(c) = &q.cursor {
        clauses.push("id < ?".into());
        args.push(c.as_str().into());
    }
    if let Some(term) = &q.search {
        // LIKE is case-insensitive for ASCII; the term's own % and _ are literal.
        let escaped = term
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        clauses.push(
            "(name LIKE ? ESCAPE '\\' OR alias LIKE ? ESCAPE '\\' OR prefix LIKE ? ESCAPE '\\')"
                .into(),
        );
        let pattern = format!("%{escaped}%");
        args.extend([
            pattern.as_str().into(),
            pattern.as_str().into(),
            pattern.as_str().into(),
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
    (clauses.join(" AND "), args)
}
