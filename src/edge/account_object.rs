//! The account's Durable Object: the one unit of coordination for an account. It
//! holds the account's plan (and its version), the ledger of its plan-wide limits
//! (row 15, asked on every admission concurrently with the key's object), the index
//! of its keys and its audit trail. Its alarm carries plan changes to the keys in
//! batches and enforces the audit retention. Nothing here is global: an account's
//! load is its own.

use super::directory::{self, DirectoryCommand};
use super::index_store::{self, Import};
use super::ledger_store;
use super::object_stats;
use super::objects::{self, KEYS};
use super::runtime::{self, now_ms};
use crate::admin::input::ListQuery;
use crate::config::Config;
use crate::error::ApiError;
use crate::key::record::IndexRow;
use crate::limits::admission;
use crate::limits::ledger::{Ledger, ACCOUNT_LEVELS};
use crate::limits::plans::{PlanCopy, Propagation};
use crate::notify::audit::{AuditEvent, EventQuery};
use crate::objects::batch::{self, Answer};
use crate::objects::key::KeyCommand;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{
    console_error, durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountCommand {
    /// The plan, its version and the progress of its latest change.
    Get,
    /// Records a new plan (a new version) and starts carrying it to the keys.
    SetPlan {
        plan: String,
        event: AuditEvent,
    },
    /// Row 15: admits `cost` credits against the plan's account-wide limits; the
    /// answer carries the plan version every admission is checked against.
    Admit {
        cost: u64,
    },
    /// Group commit (`batch`): the `Admit`s and `Refund`s of one call, in order,
    /// stored in one step; a list of answers.
    Batch {
        items: Vec<AccountCommand>,
    },
    /// Gives back an admission that a key's limit refused.
    Refund {
        at: i64,
        cost: u64,
    },
    /// See `index_store::claim`; `cap` for a new key.
    Claim {
        row: IndexRow,
        #[serde(default)]
        cap: Option<u64>,
    },
    Sync {
        row: IndexRow,
        event: Option<AuditEvent>,
    },
    Remove {
        id: String,
        event: Option<AuditEvent>,
    },
    Record {
        event: AuditEvent,
    },
    /// A refused management attempt from the client address `bucket`, recorded
    /// unless the trail holds `AUDIT_REFUSALS_PER_HOUR` of that address's already;
    /// answers whether it was.
    Refused {
        event: AuditEvent,
        bucket: String,
    },
    /// Key ids newest first after `after`, up to `query.limit + 1`.
    List {
        query: ListQuery,
        after: Option<String>,
        now: i64,
    },
    Events {
        query: EventQuery,
    },
    /// The one-time copy of this account's part of the old global registry.
    Import {
        account: String,
        data: Import,
    },
}

#[durable_object]
pub struct AccountObject {
    state: State,
    env: Env,
    memory: RefCell<Option<AccountState>>,
    /// The alarm time this instance last set (none: unknown or none).
    alarm_at: Cell<Option<i64>>,
}

/// What the object keeps besides the plan and ledger.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    #[serde(default)]
    plan_version: u64,
    /// The account's name, once a command named it.
    #[serde(default)]
    account: Option<String>,
    /// Whether the directory lists this account (cross-account views).
    #[serde(default)]
    registered: bool,
    #[serde(default)]
    propagation: Option<Propagation>,
}

struct AccountState {
    plan: Option<String>,
    ledger: Ledger,
    meta: Meta,
}

#[derive(Deserialize)]
struct PlanRow {
    plan: String,
}

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS account (one INTEGER PRIMARY KEY CHECK (one = 1), plan TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (one INTEGER PRIMARY KEY CHECK (one = 1), json TEXT NOT NULL);";

/// Retry delay of an alarm step that could not finish (a key or the directory
/// did not answer).
const RETRY_MS: i64 = 1_000;

impl DurableObject for AccountObject {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for schema in [SCHEMA, ledger_store::SCHEMA, index_store::SCHEMA] {
            if let Err(e) = sql.exec(schema, None) {
                console_error!("account object: cannot create its tables: {e}");
            }
        }
        if let Err(e) = ledger_store::migrate(&sql) {
            console_error!("account object: cannot migrate its ledger: {e:?}");
        }
        Self {
            state,
            env,
            memory: RefCell::new(None),
            alarm_at: Cell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        objects::fetched(req, |cmd| self.handle(cmd)).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_at.set(None);
        self.register().await;
        self.propagate().await;
        if let Err(e) = self.prune() {
            console_error!("account object: retention failed: {e:?}");
        }
        self.schedule().await;
        Response::empty()
    }
}

fn load(sql: &SqlStorage) -> std::result::Result<AccountState, ApiError> {
    let rows: Vec<PlanRow> = sql
        .exec("SELECT plan FROM account WHERE one = 1", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let meta: Vec<JsonRow> = sql
        .exec("SELECT json FROM meta WHERE one = 1", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let meta = match meta.first() {
        Some(row) => serde_json::from_str(&row.json).map_err(ApiError::internal)?,
        None => Meta::default(),
    };
    Ok(AccountState {
        plan: rows.first().map(|r| r.plan.clone()),
        ledger: ledger_store::load(sql, &ACCOUNT_LEVELS)?,
        meta,
    })
}

fn save_meta(sql: &SqlStorage, meta: &Meta) -> std::result::Result<(), ApiError> {
    let json = serde_json::to_string(meta).map_err(ApiError::internal)?;
    sql.exec(
        "INSERT OR REPLACE INTO meta (one, json) VALUES (1, ?)",
        vec![json.into()],
    )
    .map(|_| ())
    .map_err(ApiError::internal)
}

/// Row 15 and its give-backs, in order: admissions (`Some(cost)`) and refunds,
/// stored in one step. Each admission's answer carries the plan version every
/// admission is checked against; a refusal here refuses the request whatever the
/// key's plan copy.
fn admit(
    sql: &SqlStorage,
    state: &mut AccountState,
    cfg: &Config,
    now: i64,
    items: Vec<AccountCommand>,
) -> std::result::Result<Vec<std::result::Result<Value, ApiError>>, ApiError> {
    let (name, plan) = cfg.plan(state.plan.as_deref());
    let copy = PlanCopy {
        plan: name,
        version: state.meta.plan_version,
    };
    let account_limits = plan.map(|p| p.account_limits).unwrap_or_default();
    let mut buckets = Vec::new();
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        answers.push(match item {
            AccountCommand::Admit { cost } => {
                let (mut one, touched) =
                    admission::admit_accounts(&mut state.ledger, &account_limits, now, &[cost]);
                buckets.extend(touched);
                one.pop()
                    .unwrap_or_else(|| Err(ApiError::internal("no answer")))
                    .map(|c| json!({ "at": now, "limit": c.limit, "charged": c.charged, "plan": copy }))
            }
            AccountCommand::Refund { at, cost } => {
                buckets.extend(state.ledger.remove(at, cost));
                Ok(Value::Null)
            }
            _ => Err(ApiError::internal("a batch carries admissions and refunds only")),
        });
    }
    if !buckets.is_empty() {
        let prune = state.ledger.prune(now);
        ledger_store::write(
            sql,
            &state.ledger,
            &admission::last_per_bucket(buckets),
            &prune,
        )?;
    }
    Ok(answers)
}

/// Whether the directory and the alarm must hear of the command once it is done.
fn writes(cmd: &AccountCommand) -> bool {
    !matches!(
        cmd,
        AccountCommand::Get
            | AccountCommand::Admit { .. }
            | AccountCommand::Batch { .. }
            | AccountCommand::Refund { .. }
            | AccountCommand::List { .. }
            | AccountCommand::Events { .. }
    )
}

/// The account a command is about, when it names one.
fn named_account(cmd: &AccountCommand) -> Option<&str> {
    match cmd {
        AccountCommand::SetPlan { event, .. }
        | AccountCommand::Record { event }
        | AccountCommand::Refused { event, .. } => Some(&event.account),
        AccountCommand::Claim { row, .. } | AccountCommand::Sync { row, .. } => Some(&row.account),
        AccountCommand::Remove { event, .. } => event.as_ref().map(|e| e.account.as_str()),
        AccountCommand::Import { account, .. } => Some(account),
        _ => None,
    }
}

/// Workers RPC (`objects`). Several commands (the admissions and refunds of one
/// lane's call) are decided together, in order, and stored in one step.
#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl AccountObject {
    /// The request path's commands (admissions, refunds, reads) are answered at
    /// once; `None` when one of them writes the index or the plan (`batch_later`).
    pub fn batch_now(&self, items: Vec<String>) -> Option<Vec<String>> {
        let parsed: Vec<std::result::Result<AccountCommand, ApiError>> =
            items.iter().map(|i| objects::parse(i)).collect();
        if parsed.iter().flatten().any(writes) {
            return None;
        }
        Some(self.decide(parsed))
    }

    /// Commands that write: the directory and the alarm are told afterwards.
    pub async fn batch_later(&self, items: Vec<String>) -> Vec<String> {
        objects::each(items, |cmd| self.handle(cmd)).await
    }
}

impl AccountObject {
    fn decide(&self, parsed: Vec<std::result::Result<AccountCommand, ApiError>>) -> Vec<String> {
        if let Ok(cfg) = runtime::config(&self.env) {
            let admits = parsed
                .iter()
                .filter(|p| matches!(p, Ok(AccountCommand::Admit { .. })))
                .count();
            object_stats::count_batch(&self.sql(), cfg.object_stats, admits);
        }
        if parsed.len() < 2 {
            return parsed
                .into_iter()
                .map(|p| objects::encode(p.and_then(|cmd| self.run(cmd))))
                .collect();
        }
        let cmds: Vec<AccountCommand> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        let n = cmds.len();
        let mut decided =
            batch::answers(self.run(AccountCommand::Batch { items: cmds }), n).into_iter();
        parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => decided
                    .next()
                    .unwrap_or_else(|| Err(ApiError::internal("no answer"))),
                Err(e) => Err(e),
            })
            .map(objects::encode)
            .collect()
    }
}

impl AccountObject {
    async fn handle(&self, cmd: AccountCommand) -> std::result::Result<Value, ApiError> {
        let writes = writes(&cmd);
        let result = self.run(cmd);
        if writes && result.is_ok() {
            self.register().await;
            self.schedule().await;
        }
        result
    }

    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Runs `f` on the loaded state; a failure drops memory (reloaded on next use).
    fn with_state<T>(
        &self,
        f: impl FnOnce(&SqlStorage, &mut AccountState) -> std::result::Result<T, ApiError>,
    ) -> std::result::Result<T, ApiError> {
        let sql = self.sql();
        let mut memory = self.memory.try_borrow_mut().map_err(ApiError::internal)?;
        if memory.is_none() {
            *memory = Some(load(&sql)?);
        }
        let Some(state) = memory.as_mut() else {
            return Err(ApiError::internal("account state missing"));
        };
        let result = f(&sql, state);
        if result.is_err() {
            *memory = None;
        }
        result
    }

    fn run(&self, cmd: AccountCommand) -> std::result::Result<Value, ApiError> {
        let cfg = runtime::config(&self.env)?;
        let now = now_ms();
        object_stats::count(&self.sql(), cfg.object_stats, now);
        self.with_state(|sql, state| {
            if state.meta.account.is_none() {
                if let Some(name) = named_account(&cmd) {
                    state.meta.account = Some(name.to_string());
                    save_meta(sql, &state.meta)?;
                }
            }
            match cmd {
                AccountCommand::Get => {
                    let p = state.meta.propagation.as_ref();
                    Ok(json!({
                        "plan": state.plan,
                        "plan_version": state.meta.plan_version,
                        "keys_total": p.map_or(0, |p| p.keys_total),
                        "keys_updated": p.map_or(0, |p| p.keys_updated),
                    }))
                }
                AccountCommand::SetPlan { plan, event } => {
                    let from = cfg.plan(state.plan.as_deref()).0;
                    sql.exec(
                        "INSERT OR REPLACE INTO account (one, plan) VALUES (1, ?)",
                        vec![plan.as_str().into()],
                    )
                    .map_err(ApiError::internal)?;
                    state.plan = Some(plan);
                    state.meta.plan_version += 1;
                    let (total, newest) = index_store::count_keys(sql)?;
                    state.meta.propagation =
                        Some(Propagation::start(state.meta.plan_version, newest, total));
                    save_meta(sql, &state.meta)?;
                    let mut event = event;
                    if let Some(d) = event.details.as_object_mut() {
                        d.insert("from".into(), json!(from));
                        d.insert("keys".into(), json!(total));
                        d.insert("version".into(), json!(state.meta.plan_version));
                    }
                    index_store::record(sql, &event, None)?;
                    Ok(json!({
                        "plan": state.plan,
                        "plan_version": state.meta.plan_version,
                        "keys_total": total,
                        "keys_updated": 0,
                    }))
                }
                one @ (AccountCommand::Admit { .. } | AccountCommand::Refund { .. }) => {
                    admit(sql, state, &cfg, now, vec![one])?
                        .pop()
                        .unwrap_or_else(|| Err(ApiError::internal("no answer")))
                }
                AccountCommand::Batch { items } => {
                    let answers: Vec<Answer> = admit(sql, state, &cfg, now, items)?
                        .into_iter()
                        .map(Answer::from)
                        .collect();
                    serde_json::to_value(answers).map_err(ApiError::internal)
                }
                AccountCommand::Claim { row, cap } => {
                    index_store::claim(sql, &row, cap).map(|_| Value::Null)
                }
                AccountCommand::Sync { row, event } => {
                    index_store::sync(sql, row)?;
                    if let Some(e) = event {
                        index_store::record(sql, &e, None)?;
                    }
                    Ok(Value::Null)
                }
                AccountCommand::Remove { id, event } => {
                    index_store::remove(sql, &id, now)?;
                    if let Some(e) = event {
                        index_store::record(sql, &e, None)?;
                    }
                    Ok(Value::Null)
                }
                AccountCommand::Record { event } => {
                    index_store::record(sql, &event, None).map(|_| Value::Null)
                }
                AccountCommand::Refused { event, bucket } => {
                    let per_hour = cfg.audit_refusals_per_hour;
                    index_store::record_refusal(sql, &event, &bucket, per_hour).map(Value::Bool)
                }
                AccountCommand::List { query, after, now } => {
                    let ids = index_store::list(sql, &query, after.as_deref(), now)?;
                    Ok(json!({ "ids": ids }))
                }
                AccountCommand::Events { query } => {
                    let account = query.account.clone().unwrap_or_default();
                    index_store::events(sql, &account, &query)
                }
                AccountCommand::Import { data, .. } => {
                    index_store::import(sql, &data, now)?;
                    // The directory imports only accounts it has just listed.
                    state.meta.registered = true;
                    save_meta(sql, &state.meta)?;
                    Ok(Value::Null)
                }
            }
        })
    }

    /// Lists the account in the directory, once, after its first write.
    async fn register(&self) {
        let pending = self.with_state(|_, s| {
            Ok((!s.meta.registered)
                .then(|| s.meta.account.clone())
                .flatten())
        });
        let Ok(Some(account)) = pending else { return };
        let add = DirectoryCommand::Add {
            account: account.clone(),
        };
        match directory::call(&self.env, &add).await {
            Ok(_) => {
                let saved = self.with_state(|sql, s| {
                    s.meta.registered = true;
                    save_meta(sql, &s.meta)
                });
                if let Err(e) = saved {
                    console_error!("account {account}: registration not saved: {e:?}");
                }
            }
            // The alarm tries again.
            Err(e) => console_error!("account {account}: directory unreachable: {e:?}"),
        }
    }

    /// One batch of the latest plan change: the next keys (by id) are given the
    /// plan; progress moves past those that took it.
    async fn propagate(&self) {
        let Ok(cfg) = runtime::config(&self.env) else {
            return;
        };
        if cfg.test_hold_plan_updates {
            return;
        }
        let batch = self.with_state(|sql, s| {
            let Some(p) = s.meta.propagation.as_ref().filter(|p| !p.complete()) else {
                return Ok(None);
            };
            let upto = p.upto.clone().unwrap_or_default();
            let ids = index_store::key_ids_between(
                sql,
                p.after.as_deref(),
                &upto,
                cfg.plan_update_batch,
            )?;
            let copy = PlanCopy {
                plan: cfg.plan(s.plan.as_deref()).0,
                version: p.version,
            };
            Ok(Some((ids, copy)))
        });
        let (ids, copy) = match batch {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                console_error!("account object: plan change batch unreadable: {e:?}");
                return;
            }
        };
        let set = KeyCommand::SetPlan { plan: copy.clone() };
        let results = join_all(
            ids.iter()
                .map(|id| objects::call(&self.env, KEYS, id, &set)),
        )
        .await;
        let ok: Vec<bool> = results
            .iter()
            .map(|r| matches!(r, Ok(_) | Err(ApiError::NotFound { .. })))
            .collect();
        let recorded = self.with_state(|sql, s| {
            // A newer change replaced this one meanwhile: it starts over on its own.
            if let Some(p) = s
                .meta
                .propagation
                .as_mut()
                .filter(|p| p.version == copy.version)
            {
                p.record(&ids, &ok, cfg.plan_update_batch);
                save_meta(sql, &s.meta)?;
            }
            Ok(())
        });
        if let Err(e) = recorded {
            console_error!("account object: plan change progress not saved: {e:?}");
        }
    }

    fn prune(&self) -> std::result::Result<(), ApiError> {
        let cfg = runtime::config(&self.env)?;
        let now = now_ms();
        index_store::prune(
            &self.sql(),
            now - cfg.audit_retention_ms,
            now - index_store::TOMBSTONE_MS,
            now - crate::notify::audit::REFUSAL_WINDOW_MS,
        )
    }

    /// The next alarm: now while a plan change or a registration is pending; else
    /// when the oldest event or tombstone falls out of retention.
    async fn schedule(&self) {
        let Ok(cfg) = runtime::config(&self.env) else {
            return;
        };
        let now = now_ms();
        let due = self.with_state(|sql, s| {
            let propagating = s.meta.propagation.as_ref().is_some_and(|p| !p.complete())
                && !cfg.test_hold_plan_updates;
            let unregistered = !s.meta.registered && s.meta.account.is_some();
            if propagating {
                return Ok(Some(now));
            }
            if unregistered {
                return Ok(Some(now + RETRY_MS));
            }
            let (oldest_event, oldest_tombstone) = index_store::oldest(sql)?;
            Ok([
                oldest_event.map(|at| at + cfg.audit_retention_ms),
                oldest_tombstone.map(|at| at + index_store::TOMBSTONE_MS),
            ]
            .into_iter()
            .flatten()
            .min())
        });
        let Ok(Some(at)) = due else { return };
        // An alarm already due no later runs first and schedules the next one.
        if self.alarm_at.get().is_some_and(|t| t <= at) {
            return;
        }
        // Never the current millisecond: an alarm handler that re-arms for the time
        // it was scheduled at has its alarm deleted when it returns.
        let at = at.max(now + 1);
        if let Err(e) = self.state.storage().set_alarm(at - now).await {
            console_error!("account object: cannot set alarm: {e}");
            return;
        }
        self.alarm_at.set(Some(at));
    }
}
