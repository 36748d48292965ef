//! The account's Durable Object: its plan, read on every authenticated request
//! (concurrently with the key's object) so a plan change bites at once.

use super::objects;
use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{console_error, durable_object, DurableObject, Env, Request, Response, Result, State};

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AccountCommand {
    Get,
    SetPlan { plan: String },
}

#[durable_object]
pub struct AccountObject {
    state: State,
}

#[derive(Deserialize)]
struct Row {
    plan: String,
}

impl DurableObject for AccountObject {
    fn new(state: State, _env: Env) -> Self {
        let created = state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS account (one INTEGER PRIMARY KEY CHECK (one = 1), plan TEXT NOT NULL)",
            None,
        );
        if let Err(e) = created {
            console_error!("account object: cannot create its table: {e}");
        }
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match objects::command::<AccountCommand>(&mut req).await {
            Ok(cmd) => self.run(cmd),
            Err(e) => Err(e),
        };
        objects::reply(result)
    }
}

impl AccountObject {
    fn run(&self, cmd: AccountCommand) -> std::result::Result<Value, ApiError> {
        let sql = self.state.storage().sql();
        if let AccountCommand::SetPlan { plan } = &cmd {
            sql.exec(
                "INSERT OR REPLACE INTO account (one, plan) VALUES (1, ?)",
                vec![plan.as_str().into()],
            )
            .map_err(ApiError::internal)?;
        }
        let rows: Vec<Row> = sql
            .exec("SELECT plan FROM account WHERE one = 1", None)
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        // No row: the account never had a plan set, and gets the default one.
        Ok(json!({ "plan": rows.first().map(|r| r.plan.clone()) }))
    }
}
