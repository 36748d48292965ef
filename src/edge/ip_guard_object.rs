//! One Durable Object per address bucket (an IPv4 address or an IPv6 /64) that sent
//! an invalid key: counts the failures and blocks the bucket (row 2). Valid requests
//! to the gate never call it; the management routes ask it first. Its storage is
//! deleted by its alarm once the window and any block are over, so a flood from many
//! addresses leaves nothing behind.

use super::object_stats;
use super::objects;
use super::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::ip_guard::{FailureOutcome, FailureWindow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{console_error, durable_object, DurableObject, Env, Request, Response, Result, State};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpGuardCommand {
    /// Counts one failed attempt.
    Fail,
    /// Whether the bucket is blocked, counting nothing.
    Status,
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

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS failures (one INTEGER PRIMARY KEY CHECK (one = 1), json TEXT NOT NULL)";

impl DurableObject for IpGuard {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let stats = runtime::config(&self.env).is_ok_and(|c| c.object_stats);
        object_stats::count(&self.state.storage().sql(), stats, now_ms());
        let result = match objects::command::<IpGuardCommand>(&mut req).await {
            Ok(IpGuardCommand::Fail) => match self.fail() {
                Ok((outcome, idle_at)) => {
                    self.clean_up_at(idle_at).await;
                    Ok(outcome)
                }
                Err(e) => Err(e),
            },
            Ok(IpGuardCommand::Status) => {
                let status = self.status();
                if matches!(&status, Ok((_, false))) && !stats {
                    // Nothing kept for this address: leave nothing behind either
                    // (the local runtime records every object it wakes; counted
                    // calls stay, for `make scale`).
                    if let Err(e) = self.state.storage().delete_all().await {
                        console_error!("ip guard: cannot delete its storage: {e}");
                    }
                }
                status.map(|(v, _)| v)
            }
            Err(e) => Err(e),
        };
        objects::reply(result)
    }

    async fn alarm(&self) -> Result<Response> {
        let cfg = runtime::config(&self.env).map_err(|e| worker::Error::RustError(e.message()))?;
        match self.load(false) {
            Ok(w) if w.idle_at(&cfg.ip_block) > now_ms() => {
                self.clean_up_at(w.idle_at(&cfg.ip_block)).await
            }
            // Over (or unreadable): nothing of this address is kept.
            _ => {
                if let Err(e) = self.state.storage().delete_all().await {
                    console_error!("ip guard: cannot delete its storage: {e}");
                }
            }
        }
        Response::empty()
    }
}

impl IpGuard {
    /// The bucket's state. Only a failure creates storage (`create`): asking about
    /// an address never seen leaves nothing behind.
    fn load(&self, create: bool) -> std::result::Result<FailureWindow, ApiError> {
        #[derive(Deserialize)]
        struct Table {
            #[allow(dead_code)]
            name: String,
        }
        let sql = self.state.storage().sql();
        if create {
            // Created on use: `delete_all` removes the table with everything else.
            sql.exec(SCHEMA, None).map_err(ApiError::internal)?;
        } else {
            let tables: Vec<Table> = sql
                .exec(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'failures'",
                    None,
                )
                .and_then(|c| c.to_array())
                .map_err(ApiError::internal)?;
            if tables.is_empty() {
                return Ok(FailureWindow::default());
            }
        }
        let rows: Vec<Row> = sql
            .exec("SELECT json FROM failures WHERE one = 1", None)
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        match rows.first() {
            Some(r) => serde_json::from_str(&r.json).map_err(ApiError::internal),
            None => Ok(FailureWindow::default()),
        }
    }

    /// Counts a failure; answers the outcome and when the state becomes idle.
    fn fail(&self) -> std::result::Result<(Value, i64), ApiError> {
        let cfg = runtime::config(&self.env)?;
        let mut window = self.load(true)?;
        let outcome = window.record_failure(&cfg.ip_block, now_ms());
        let json = serde_json::to_string(&window).map_err(ApiError::internal)?;
        self.state
            .storage()
            .sql()
            .exec(
                "INSERT OR REPLACE INTO failures (one, json) VALUES (1, ?)",
                vec![json.into()],
            )
            .map_err(ApiError::internal)?;
        let reply = serde_json::to_value(outcome).map_err(ApiError::internal)?;
        Ok((reply, window.idle_at(&cfg.ip_block)))
    }

    /// Whether the address is blocked, and whether anything is kept for it.
    fn status(&self) -> std::result::Result<(Value, bool), ApiError> {
        let window = self.load(false)?;
        let outcome = FailureOutcome {
            was_blocked: false,
            blocked_until: window.blocked_at(now_ms()),
        };
        let kept = window != FailureWindow::default();
        Ok((
            serde_json::to_value(outcome).map_err(ApiError::internal)?,
            kept,
        ))
    }

    async fn clean_up_at(&self, at: i64) {
        let offset = (at - now_ms()).max(0) + 1;
        if let Err(e) = self.state.storage().set_alarm(offset).await {
            console_error!("ip guard: cannot set its clean-up alarm: {e}");
        }
    }
}
