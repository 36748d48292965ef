//! One Durable Object per address bucket (an IPv4 address or an IPv6 /64) that sent
//! an invalid key: counts the failures and blocks the bucket (row 2). Valid requests
//! to the gate never call it; the management routes ask it first. Its storage is
//! deleted by its alarm once the window and any block are over, so a flood from many
//! addresses leaves nothing behind.

use super::object_stats;
use super::objects;
use super::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::limits::ip_guard::{FailureOutcome, FailureWindow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen_futures::JsFuture;
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

    async fn fetch(&self, req: Request) -> Result<Response> {
        objects::fetched(req, |cmd| async { self.handle(cmd) }).await
    }

    async fn alarm(&self) -> Result<Response> {
        let cfg = runtime::config(&self.env).map_err(|e| worker::Error::RustError(e.message()))?;
        match self.load(false) {
            Ok(w) if w.idle_at(&cfg.ip_block) > now_ms() => {
                // Waited for: see `objects::set_alarm_now`.
                if let Some(set) = self.clean_up_at(w.idle_at(&cfg.ip_block)) {
                    let _ = JsFuture::from(set).await;
                }
            }
            // Over (or unreadable): nothing of this address is kept.
            _ => self.delete_all(),
        }
        Response::empty()
    }
}

/// Workers RPC (`objects`): the commands one after the other.
#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl IpGuard {
    /// Answers at once: the clean-up alarm and deletions are not waited for.
    pub fn batch_now(&self, items: Vec<String>) -> Option<Vec<String>> {
        Some(objects::each_now(&items, |cmd| self.handle(cmd)))
    }
}

impl IpGuard {
    fn handle(&self, cmd: IpGuardCommand) -> std::result::Result<Value, ApiError> {
        let stats = runtime::config(&self.env).is_ok_and(|c| c.object_stats);
        object_stats::count(&self.state.storage().sql(), stats, now_ms());
        match cmd {
            IpGuardCommand::Fail => {
                let (outcome, idle_at) = self.fail()?;
                let _ = self.clean_up_at(idle_at);
                Ok(outcome)
            }
            IpGuardCommand::Status => {
                let status = self.status();
                if matches!(&status, Ok((_, false))) && !stats {
                    // Nothing kept for this address: leave nothing behind either
                    // (the local runtime records every object it wakes; counted
                    // calls stay, for `make scale`).
                    self.delete_all();
                }
                status.map(|(v, _)| v)
            }
        }
    }

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

    fn clean_up_at(&self, at: i64) -> Option<js_sys::Promise> {
        objects::set_alarm_now(&self.state, at.max(now_ms()) + 1)
            .map_err(|e| console_error!("ip guard: cannot set its clean-up alarm: {e:?}"))
            .ok()
    }

    /// Everything this address's object holds, alarm included (not waited for:
    /// the object's answer waits for its storage writes).
    fn delete_all(&self) {
        let deleted = self.state.as_raw().storage().and_then(|s| s.delete_all());
        if let Err(e) = deleted {
            console_error!("ip guard: cannot delete its storage: {e:?}");
        }
    }
}
