//! The account's Durable Object: the one unit of coordination for an account. It
//! holds the account's plan (and its version), the ledger of its plan-wide limits
//! (row 15, asked on every admission concurrently with the key's object), the index
//! of its keys and its audit trail (`index_store`). Each command is decided by the
//! pure core (`crate::objects::account`) and its effects performed here. Its alarm
//! lists the account in the directory once, carries plan changes to the keys in
//! batches and enforces the audit retention. Nothing here is global: an account's
//! load is its own.

use super::{index_store, ledger_store, object_stats, outbox, sql_row};
use crate::admin::billing::KeyTotal;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::{self, now_ms};
use crate::edge::js::task;
use crate::error::ApiError;
use crate::limits::ledger::ACCOUNT_LEVELS;
use crate::objects::account::reporting;
use crate::objects::account::{
    self as core, AccountCommand, AccountState, Effects, KeyCount, Meta, Reply,
};
use crate::objects::batch;
use crate::objects::directory::DirectoryCommand;
use crate::objects::key::{KeyCommand, Notice, UsageSeries};
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use worker::worker_sys::DurableObjectState;
use worker::{console_error, Env, SqlStorage, State};

/// The class `entry.mjs` wraps (Workers RPC: `batch`, and the alarm).
#[wasm_bindgen]
pub struct AccountObject {
    inner: Rc<Account>,
}

struct Account {
    state: State,
    env: Env,
    memory: RefCell<Option<AccountState>>,
    /// The alarm time this instance last set (none: unknown or none).
    alarm_at: Cell<Option<i64>>,
}

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS account (one INTEGER PRIMARY KEY CHECK (one = 1), plan TEXT NOT NULL);";

#[wasm_bindgen]
impl AccountObject {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> AccountObject {
        let state = State::from(state);
        let sql = state.storage().sql();
        let meta = sql_row::schema("meta");
        let replays = sql_row::schema("replays");
        for schema in [
            SCHEMA,
            outbox::SCHEMA,
            meta.as_str(),
            replays.as_str(),
            ledger_store::SCHEMA,
            index_store::SCHEMA,
        ] {
            if let Err(e) = sql.exec(schema, None) {
                console_error!("account object: cannot create its tables: {e}");
            }
        }
        if let Err(e) = ledger_store::migrate(&sql) {
            console_error!("account object: cannot migrate its ledger: {e:?}");
        }
        AccountObject {
            inner: Rc::new(Account {
                state,
                env,
                memory: RefCell::new(None),
                alarm_at: Cell::new(None),
            }),
        }
    }

    /// The request path's commands (admissions, refunds, reads) are answered at
    /// once; `None` when one of them writes the index or the plan (`batch_later`).
    /// Several admissions and refunds (one lane's call) are decided together, in
    /// order, and stored in one step.
    pub fn batch_now(&self, items: Vec<String>) -> Option<Vec<String>> {
        let parsed: Vec<Result<AccountCommand, ApiError>> =
            items.iter().map(|i| rpc::parse(i)).collect();
        if parsed.iter().flatten().any(core::writes) {
            return None;
        }
        Some(self.inner.decide(parsed))
    }

    /// Commands that write: the directory and the alarm are told afterwards.
    pub fn batch_later(&self, items: Vec<String>) -> js_sys::Promise {
        let me = self.inner.clone();
        task::promise(async move {
            let answers = rpc::each(items, |cmd| me.handle(cmd)).await;
            let list = js_sys::Array::new();
            for a in answers {
                list.push(&JsValue::from(a));
            }
            Ok(list.into())
        })
    }

    pub fn alarm(&self) -> js_sys::Promise {
        let me = self.inner.clone();
        task::promise(async move {
            me.alarm().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

#[derive(Deserialize)]
struct PlanRow {
    plan: String,
}

fn load(sql: &SqlStorage) -> Result<AccountState, ApiError> {
    let rows: Vec<PlanRow> = sql
        .exec("SELECT plan FROM account WHERE one = 1", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    Ok(AccountState {
        plan: rows.first().map(|r| r.plan.clone()),
        ledger: ledger_store::load(sql, &ACCOUNT_LEVELS)?,
        meta: sql_row::read::<Meta>(sql, "meta")?.unwrap_or_default(),
        replays: sql_row::read(sql, "replays")?.unwrap_or_default(),
    })
}

impl Account {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn decide(&self, parsed: Vec<Result<AccountCommand, ApiError>>) -> Vec<String> {
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
                .map(|p| rpc::encode(p.and_then(|cmd| self.run(cmd))))
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
            .map(rpc::encode)
            .collect()
    }

    async fn handle(&self, cmd: AccountCommand) -> Result<Value, ApiError> {
        let writes = core::writes(&cmd);
        let result = self.run(cmd);
        if writes && result.is_ok() {
            self.register().await;
            self.schedule().await;
        }
        result
    }

    /// Runs `f` on the loaded state; a failure drops memory (reloaded on next use).
    fn with_state<T>(
        &self,
        f: impl FnOnce(&SqlStorage, &mut AccountState) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
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

    /// Loads, applies, performs: synchronous from start to end.
    fn run(&self, cmd: AccountCommand) -> Result<Value, ApiError> {
        let cfg = runtime::config(&self.env)?;
        let now = now_ms();
        object_stats::count(&self.sql(), cfg.object_stats, now);
        self.with_state(|sql, state| {
            let keys = if core::needs_key_count(&cmd) {
                index_store::count_keys(sql)?
            } else {
                KeyCount::default()
            };
            let (fx, reply) = core::apply(state, cmd, &cfg, now, &keys);
            let stored = perform(sql, state, &fx)?;
            match reply {
                Reply::Now(answer) => answer,
                Reply::FromStore => Ok(stored.unwrap_or(Value::Null)),
                Reply::List { query, after, now } => {
                    let ids = index_store::list(sql, &query, after.as_deref(), now)?;
                    serde_json::to_value(core::KeyIds { ids }).map_err(ApiError::internal)
                }
                Reply::Events { query } => {
                    let account = query.account.clone().unwrap_or_default();
                    let page = index_store::events(sql, &account, &query)?;
                    serde_json::to_value(page).map_err(ApiError::internal)
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
        match rpc::ask::<Value>(&self.env, Object::Directory, &add).await {
            Ok(_) => {
                let saved = self.with_state(|sql, s| {
                    s.meta.registered = true;
                    sql_row::write(sql, "meta", &s.meta)
                });
                if let Err(e) = saved {
                    console_error!("account {account}: registration not saved: {e:?}");
                }
            }
            // The alarm tries again.
            Err(e) => console_error!("account {account}: directory unreachable: {e:?}"),
        }
    }

    async fn alarm(&self) {
        self.alarm_at.set(None);
        self.register().await;
        self.propagate().await;
        self.report_usage().await;
        if let Ok(cfg) = runtime::config(&self.env) {
            let object = self.state.id().to_string();
            outbox::deliver_due(&self.env, &cfg, &self.sql(), &object).await;
        }
        if let Err(e) = self.prune() {
            console_error!("account object: retention failed: {e:?}");
        }
        self.schedule().await;
    }

    /// One batch of the latest plan change: the next keys (by id) are given the
    /// plan; progress moves past those that took it.
    async fn propagate(&self) {
        let Ok(cfg) = runtime::config(&self.env) else {
            return;
        };
        let size = cfg.plan_update_batch;
        let batch = self.with_state(|sql, s| match core::next_plan_batch(s, &cfg) {
            None => Ok(None),
            Some((p, copy)) => {
                let upto = p.upto.clone().unwrap_or_default();
                let ids = index_store::key_ids_between(sql, p.after.as_deref(), &upto, size)?;
                Ok(Some((ids, copy)))
            }
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
                .map(|id| rpc::ask::<Value>(&self.env, Object::Key(id), &set)),
        )
        .await;
        let ok: Vec<bool> = results
            .iter()
            .map(|r| matches!(r, Ok(_) | Err(ApiError::NotFound { .. })))
            .collect();
        let recorded = self.with_state(|sql, s| {
            if core::record_plan_batch(s, copy.version, &ids, &ok, size) {
                sql_row::write(sql, "meta", &s.meta)?;
            }
            Ok(())
        });
        if let Err(e) = recorded {
            console_error!("account object: plan change progress not saved: {e:?}");
        }
    }

    /// One batch of the due usage report (`reporting`): the next keys' charges
    /// in the period; the webhook is queued when the last batch is in.
    async fn report_usage(&self) {
        let Ok(cfg) = runtime::config(&self.env) else {
            return;
        };
        let size = cfg.plan_update_batch;
        let batch = self.with_state(|sql, s| {
            let (due, started) = reporting::due(s, &cfg, now_ms());
            if started {
                sql_row::write(sql, "meta", &s.meta)?;
            }
            let Some(due) = due else { return Ok(None) };
            // Key ids are `key_` and letters and digits: all sort before `key_{`.
            let ids = index_store::key_ids_between(sql, due.after.as_deref(), "key_{", size)?;
            Ok(Some((due, ids)))
        });
        let (due, ids) = match batch {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                console_error!("account object: usage report unreadable: {e:?}");
                return;
            }
        };
        let Some(resolution) = cfg.usage_report else {
            return;
        };
        let ask = KeyCommand::UsageBetween {
            from: due.period.0,
            to: due.period.1,
            resolution,
        };
        let answers = join_all(
            ids.iter()
                .map(|id| rpc::ask::<UsageSeries>(&self.env, Object::Key(id), &ask)),
        )
        .await;
        let mut totals = Vec::with_capacity(ids.len());
        for (id, answer) in ids.iter().zip(answers) {
            match answer {
                Ok(series) => totals.push(KeyTotal {
                    key_id: id.clone(),
                    requests: series.items.iter().map(|p| p.requests).sum(),
                    credits: series.items.iter().map(|p| p.credits).sum(),
                }),
                Err(ApiError::NotFound { .. }) => {}
                // Not this run: the next alarm asks the batch again.
                Err(e) => {
                    console_error!("account object: usage of {id} unread: {e:?}");
                    return;
                }
            }
        }
        let more = ids.len() == size;
        let saved = self.with_state(|sql, s| {
            if let Some(data) = reporting::record(s, &cfg, &ids, totals, more) {
                let notice = Notice::Webhook {
                    event: "usage.reported".into(),
                    at: due.period.1,
                    data,
                };
                outbox::enqueue(sql, &notice, now_ms())?;
            }
            sql_row::write(sql, "meta", &s.meta)
        });
        if let Err(e) = saved {
            console_error!("account object: usage report not saved: {e:?}");
        }
    }

    fn prune(&self) -> Result<(), ApiError> {
        let cfg = runtime::config(&self.env)?;
        let (events, tombstones, refusals) = core::retention(&cfg, now_ms());
        index_store::prune(&self.sql(), events, tombstones, refusals)
    }

    async fn schedule(&self) {
        let Ok(cfg) = runtime::config(&self.env) else {
            return;
        };
        let now = now_ms();
        let due = self.with_state(|sql, s| {
            let oldest = index_store::oldest(sql)?;
            Ok(core::next_alarm(s, &cfg, now, &oldest))
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

/// Performs a command's effects; answers what its last index write answered.
fn perform(
    sql: &SqlStorage,
    state: &AccountState,
    fx: &Effects,
) -> Result<Option<Value>, ApiError> {
    if let Some(plan) = &fx.plan {
        sql.exec(
            "INSERT OR REPLACE INTO account (one, plan) VALUES (1, ?)",
            vec![plan.as_str().into()],
        )
        .map_err(ApiError::internal)?;
    }
    if fx.meta {
        sql_row::write(sql, "meta", &state.meta)?;
    }
    if fx.replays {
        sql_row::write(sql, "replays", &state.replays)?;
    }
    ledger_store::write(sql, &state.ledger, &fx.buckets, &fx.prune)?;
    let mut last = None;
    for write in &fx.index {
        last = Some(index_store::perform(sql, write)?);
    }
    Ok(last)
}
