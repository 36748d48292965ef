//! One Durable Object per client address that sent an invalid key: counts the
//! failures and blocks the address (row 2). Valid requests never call it.

use super::objects;
use super::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::ip_guard::FailureWindow;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{console_error, durable_object, DurableObject, Env, Request, Response, Result, State};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpGuardCommand {
    Fail,
}

#[durable_object]
pub struct IpGuard {
    state: State,
    env: Env,
}

#[derive(Deserialize)]
struct Row {
    json: String,
}

impl DurableObject for IpGuard {
    fn new(state: State, env: Env) -> Self {
        let created = state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS failures (one INTEGER PRIMARY KEY CHECK (one = 1), json TEXT NOT NULL)",
            None,
        );
        if let Err(e) = created {
            console_error!("ip guard: cannot create its table: {e}");
        }
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match objects::command::<IpGuardCommand>(&mut req).await {
            Ok(IpGuardCommand::Fail) => self.fail(),
            Err(e) => Err(e),
        };
        objects::reply(result)
    }
}

impl IpGuard {
    fn fail(&self) -> std::result::Result<Value, ApiError> {
        let cfg = runtime::config(&self.env)?;
        let sql = self.state.storage().sql();
        let rows: Vec<Row> = sql
            .exec("SELECT json FROM failures WHERE one = 1", None)
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        let mut window: FailureWindow = match rows.first() {
            Some(r) => serde_json::from_str(&r.json).map_err(ApiError::internal)?,
            None => FailureWindow::default(),
        };
        let outcome = window.record_failure(&cfg.ip_block, now_ms());
        let json = serde_json::to_string(&window).map_err(ApiError::internal)?;
        sql.exec(
            "INSERT OR REPLACE INTO failures (one, json) VALUES (1, ?)",
            vec![json.into()],
        )
        .map_err(ApiError::internal)?;
        serde_json::to_value(outcome).map_err(ApiError::internal)
    }
}
