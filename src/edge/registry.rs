//! The registry: one Durable Object indexing every key for the management routes —
//! listing with filters and paging, and alias uniqueness per account. It is never on
//! the request path. The key's own object stays the source of truth; the registry
//! holds a copy of the fields it filters on, re-written after every change.

use super::objects;
use crate::audit::{AuditEvent, EventQuery};
use crate::error::ApiError;
use crate::input::ListQuery;
use crate::model::KeyRecord;
use crate::paging;
use crate::time_fmt::to_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{
    console_error, durable_object, DurableObject, Env, Request, Response, Result, SqlStorage,
    SqlStorageValue, State,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryRow {
    pub id: String,
    pub account: String,
    pub alias: Option<String>,
    pub environment: String,
    pub category: Option<String>,
    pub status: String,
    pub expires_at: Option<i64>,
}

impl RegistryRow {
    pub fn of(rec: &KeyRecord) -> Self {
        RegistryRow {
            id: rec.id.clone(),
            account: rec.account.clone(),
            alias: rec.alias.clone(),
            environment: rec.environment.as_str().into(),
            category: rec.category.clone(),
            status: rec.status.as_str().into(),
            expires_at: rec.expires_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryCommand {
    /// Insert or replace, recording `event` with it; refused when the alias is
    /// taken in the account.
    Upsert {
        row: RegistryRow,
        event: Option<AuditEvent>,
    },
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
CREATE UNIQUE INDEX IF NOT EXISTS keys_alias ON keys(account, alias) WHERE alias IS NOT NULL;
CREATE INDEX IF NOT EXISTS keys_account ON keys(account, id);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, key_id TEXT, account TEXT NOT NULL, details TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_account ON events(account, id);
CREATE INDEX IF NOT EXISTS events_key ON events(key_id, id);";

impl DurableObject for Registry {
    fn new(state: State, _env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            console_error!("registry: cannot create its tables: {e}");
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

impl Registry {
    fn run(&self, cmd: RegistryCommand) -> std::result::Result<Value, ApiError> {
        let sql = self.state.storage().sql();
        match cmd {
            RegistryCommand::Upsert { row, event } => {
                if let Some(alias) = &row.alias {
                    let taken = ids(
                        &sql,
                        "SELECT id FROM keys WHERE account = ? AND alias = ? AND id <> ?",
                        vec![
                            row.account.as_str().into(),
                            alias.as_str().into(),
                            row.id.as_str().into(),
                        ],
                    )?;
                    if !taken.is_empty() {
                        return Err(ApiError::Conflict {
                            reason: format!(
                                "alias '{alias}' is already used in account '{}'",
                                row.account
                            ),
                        });
                    }
                }
                sql.exec(
                    "INSERT OR REPLACE INTO keys (id, account, alias, environment, category, status, expires_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        row.id.as_str().into(),
                        row.account.as_str().into(),
                        text(&row.alias),
                        row.environment.as_str().into(),
                        text(&row.category),
                        row.status.as_str().into(),
                        row.expires_at.map_or(SqlStorageValue::Null, SqlStorageValue::from),
                    ],
                )
                .map_err(ApiError::internal)?;
                record(&sql, event)
            }
            RegistryCommand::Remove { id, event } => {
                sql.exec("DELETE FROM keys WHERE id = ?", vec![id.into()])
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

fn record(sql: &SqlStorage, event: Option<AuditEvent>) -> std::result::Result<Value, ApiError> {
    let Some(e) = event else {
        return Ok(Value::Null);
    };
    let details = serde_json::to_string(&e.details).map_err(ApiError::internal)?;
    sql.exec(
        "INSERT INTO events (at, actor, action, key_id, account, details) VALUES (?, ?, ?, ?, ?, ?)",
        vec![
            e.at.into(),
            e.actor.into(),
            e.action.into(),
            text(&e.key_id),
            e.account.into(),
            details.into(),
        ],
    )
    .map_err(ApiError::internal)?;
    Ok(Value::Null)
}

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
    if let Some(c) = q.cursor {
        clauses.push("id < ?".into());
        args.push(c.into());
    }
    args.push((i64::from(q.limit) + 1).into());
    let rows: Vec<Row> = sql
        .exec(
            &format!(
                "SELECT id, at, actor, action, key_id, account, details FROM events WHERE {} ORDER BY id DESC LIMIT ?",
                clauses.join(" AND ")
            ),
            args,
        )
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let (rows, cursor) = paging::page(rows, q.limit, |r| r.id.to_string());
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "at": to_rfc3339(r.at), "actor": r.actor, "action": r.action, "key_id": r.key_id,
                "account": r.account,
                "details": serde_json::from_str::<Value>(&r.details).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(json!({ "items": items, "cursor": cursor }))
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
