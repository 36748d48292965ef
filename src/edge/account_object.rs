//! The account's Durable Object: its plan and the ledger of its plan-wide limits
//! (row 15). Called concurrently with the key's object on every request.

use super::ledger_store;
use super::objects;
use super::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::ledger::{Ledger, ACCOUNT_LEVELS};
use crate::limits;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::RefCell;
use worker::{
    console_error, durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountCommand {
    Get,
    SetPlan {
        plan: String,
    },
    /// Row 15: admits `cost` credits against the plan's account-wide limits.
    Admit {
        cost: u64,
    },
    /// Gives back an admission that a key's limit refused.
    Refund {
        at: i64,
        cost: u64,
    },
}

#[durable_object]
pub struct AccountObject {
    state: State,
    env: Env,
    memory: RefCell<Option<AccountState>>,
}

struct AccountState {
    plan: Option<String>,
    ledger: Ledger,
}

#[derive(Deserialize)]
struct Row {
    plan: String,
}

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS account (one INTEGER PRIMARY KEY CHECK (one = 1), plan TEXT NOT NULL)";

impl DurableObject for AccountObject {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for schema in [SCHEMA, ledger_store::SCHEMA] {
            if let Err(e) = sql.exec(schema, None) {
                console_error!("account object: cannot create its tables: {e}");
            }
        }
        Self {
            state,
            env,
            memory: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match objects::command::<AccountCommand>(&mut req).await {
            Ok(cmd) => self.run(cmd),
            Err(e) => Err(e),
        };
        objects::reply(result)
    }
}

fn load(sql: &SqlStorage) -> std::result::Result<AccountState, ApiError> {
    let rows: Vec<Row> = sql
        .exec("SELECT plan FROM account WHERE one = 1", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    Ok(AccountState {
        plan: rows.first().map(|r| r.plan.clone()),
        ledger: ledger_store::load(sql, &ACCOUNT_LEVELS)?,
    })
}

impl AccountObject {
    fn run(&self, cmd: AccountCommand) -> std::result::Result<Value, ApiError> {
        let cfg = runtime::config(&self.env)?;
        let sql = self.state.storage().sql();
        let mut memory = self.memory.try_borrow_mut().map_err(ApiError::internal)?;
        if memory.is_none() {
            *memory = Some(load(&sql)?);
        }
        let Some(state) = memory.as_mut() else {
            return Err(ApiError::internal("account state missing"));
        };
        let now = now_ms();
        match cmd {
            AccountCommand::Get => Ok(json!({ "plan": state.plan })),
            AccountCommand::SetPlan { plan } => {
                sql.exec(
                    "INSERT OR REPLACE INTO account (one, plan) VALUES (1, ?)",
                    vec![plan.as_str().into()],
                )
                .map_err(ApiError::internal)?;
                state.plan = Some(plan);
                Ok(json!({ "plan": state.plan }))
            }
            AccountCommand::Admit { cost } => {
                let account_limits = cfg
                    .plan(state.plan.as_deref())
                    .1
                    .map(|p| p.account_limits)
                    .unwrap_or_default();
                if account_limits.per_second.is_none() && account_limits.per_minute.is_none() {
                    return Ok(json!({ "at": now, "limit": null, "charged": 0 }));
                }
                let limit = limits::decide_account(&state.ledger, &account_limits, now, cost)?;
                let buckets = state.ledger.add(now, cost);
                let prune = state.ledger.prune(now);
                if let Err(e) = ledger_store::write(&sql, &state.ledger, &buckets, &prune) {
                    *memory = None;
                    return Err(e);
                }
                Ok(json!({ "at": now, "limit": limit, "charged": cost }))
            }
            AccountCommand::Refund { at, cost } => {
                let buckets = state.ledger.remove(at, cost);
                if let Err(e) = ledger_store::write(&sql, &state.ledger, &buckets, &[]) {
                    *memory = None;
                    return Err(e);
                }
                Ok(Value::Null)
            }
        }
    }
}
