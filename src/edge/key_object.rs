//! The key's Durable Object: the authoritative record of one key. Every command is a
//! synchronous SQLite read-modify-write with no `.await` inside, so concurrent
//! requests to one key never interleave.

use super::objects;
use super::runtime::now_ms;
use crate::error::ApiError;
use crate::key_state::{apply, Change, KeyCommand};
use crate::model::KeyRecord;
use serde::Deserialize;
use serde_json::Value;
use worker::{console_error, durable_object, DurableObject, Env, Request, Response, Result, State};

#[durable_object]
pub struct KeyObject {
    state: State,
}

#[derive(Deserialize)]
struct Row {
    json: String,
}

impl DurableObject for KeyObject {
    fn new(state: State, _env: Env) -> Self {
        let created = state.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS record (one INTEGER PRIMARY KEY CHECK (one = 1), json TEXT NOT NULL)",
            None,
        );
        if let Err(e) = created {
            console_error!("key object: cannot create its table: {e}");
        }
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match objects::command::<KeyCommand>(&mut req).await {
            Ok(cmd) => self.run(cmd),
            Err(e) => Err(e),
        };
        objects::reply(result)
    }
}

impl KeyObject {
    fn run(&self, cmd: KeyCommand) -> std::result::Result<Value, ApiError> {
        let sql = self.state.storage().sql();
        let rows: Vec<Row> = sql
            .exec("SELECT json FROM record WHERE one = 1", None)
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        let stored: Option<KeyRecord> = match rows.first() {
            Some(row) => Some(serde_json::from_str(&row.json).map_err(ApiError::internal)?),
            None => None,
        };
        let (change, reply) = apply(stored, cmd, now_ms());
        match change {
            Change::None => {}
            Change::Put(rec) => {
                let json = serde_json::to_string(&rec).map_err(ApiError::internal)?;
                sql.exec(
                    "INSERT OR REPLACE INTO record (one, json) VALUES (1, ?)",
                    vec![json.into()],
                )
                .map_err(ApiError::internal)?;
            }
            Change::Erase => {
                sql.exec("DELETE FROM record", None)
                    .map_err(ApiError::internal)?;
            }
        }
        reply
    }
}
