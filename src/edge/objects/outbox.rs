//! A key object's outbox: notices written with the change that caused them
//! (webhooks, audit events, index rows and KV entries its management call could
//! not write), delivered by the object's alarm and retried after 2, 4, 8, 16, 32 s
//! (6 attempts) before being given up with an error log. A webhook receiver
//! answering 410 Gone is not retried. Every delivery waits at most
//! `STORAGE_TIMEOUT_SECONDS` (a webhook, `ORIGIN_TIMEOUT_SECONDS`).

use super::copies;
use crate::config::Config;
use crate::edge::js::deadline;
use crate::edge::js::runtime::now_ms;
use crate::error::ApiError;
use crate::notify::webhook;
use crate::objects::key::Notice;
use serde::Deserialize;
use serde_json::Value;
use worker::{console_error, Env, Fetch, Headers, Method, Request, RequestInit, SqlStorage};

/// The outbox table (a key's object and an account's).
pub const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, notice TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, due INTEGER NOT NULL)";

/// Queues `notice`, due at `now`.
pub fn enqueue(sql: &SqlStorage, notice: &Notice, now: i64) -> Result<(), ApiError> {
    let text = serde_json::to_string(notice).map_err(ApiError::internal)?;
    sql.exec(
        "INSERT INTO outbox (notice, due) VALUES (?, ?)",
        vec![text.into(), now.into()],
    )
    .map(|_| ())
    .map_err(ApiError::internal)
}

/// Delivery attempts of a notice before it is given up (logged as an error).
const MAX_ATTEMPTS: i64 = 6;

/// When the earliest notice is due.
pub fn next_due(sql: &SqlStorage) -> Option<i64> {
    #[derive(Deserialize)]
    struct Due {
        due: Option<i64>,
    }
    sql.exec("SELECT MIN(due) AS due FROM outbox", None)
        .and_then(|c| c.to_array::<Due>())
        .ok()
        .and_then(|rows| rows.first().and_then(|r| r.due))
}

/// Delivers the notices due; `object` names the key's object (in webhook ids).
pub async fn deliver_due(env: &Env, cfg: &Config, sql: &SqlStorage, object: &str) {
    #[derive(Deserialize)]
    struct Pending {
        id: i64,
        notice: String,
        attempts: i64,
    }
    let now = now_ms();
    let pending: Vec<Pending> = match sql
        .exec(
            "SELECT id, notice, attempts FROM outbox WHERE due <= ? ORDER BY id",
            vec![now.into()],
        )
        .and_then(|c| c.to_array())
    {
        Ok(p) => p,
        Err(e) => {
            console_error!("key object: cannot read outbox: {e}");
            return;
        }
    };
    for p in pending {
        let delivered = match serde_json::from_str::<Notice>(&p.notice) {
            Ok(Notice::Webhook { event, at, data }) => {
                let id = format!("msg_{}_{}", object.get(..16).unwrap_or(object), p.id);
                send_webhook(cfg, &id, &event, at, &data).await
            }
            Ok(copy) => copies::deliver(env, cfg, &copy)
                .await
                .map(|_| Delivered::Yes),
            Err(e) => Err(ApiError::internal(format!("unreadable notice: {e}"))),
        };
        let attempts = p.attempts + 1;
        let outcome = match delivered {
            Ok(Delivered::Yes) => sql.exec("DELETE FROM outbox WHERE id = ?", vec![p.id.into()]),
            Ok(Delivered::Gone) => {
                console_error!(
                    "notice {}: the webhook endpoint answered 410 Gone; not retried",
                    p.id
                );
                sql.exec("DELETE FROM outbox WHERE id = ?", vec![p.id.into()])
            }
            Err(e) if attempts >= MAX_ATTEMPTS => {
                console_error!("notice {} given up after {attempts} attempts: {e:?}", p.id);
                sql.exec("DELETE FROM outbox WHERE id = ?", vec![p.id.into()])
            }
            Err(e) => {
                console_error!("notice {} attempt {attempts} failed: {e:?}", p.id);
                let due = now_ms() + 1000 * (1i64 << attempts.min(10));
                sql.exec(
                    "UPDATE outbox SET attempts = ?, due = ? WHERE id = ?",
                    vec![attempts.into(), due.into(), p.id.into()],
                )
            }
        };
        if let Err(e) = outcome {
            console_error!("key object: outbox update failed: {e}");
        }
    }
}

/// How a delivery ended, when it did not fail.
enum Delivered {
    Yes,
    /// The receiver said 410 Gone: no more attempts for this notice.
    Gone,
}

/// Sends one Standard Webhooks notice; `id` is the same on every attempt.
async fn send_webhook(
    cfg: &Config,
    id: &str,
    event: &str,
    at: i64,
    data: &Value,
) -> Result<Delivered, ApiError> {
    let Some(hook) = cfg.webhook.as_ref() else {
        return Ok(Delivered::Yes); // no receiver configured
    };
    let timestamp = now_ms() / 1000;
    let body = webhook::body(event, at, data);
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(ApiError::internal);
    set("Content-Type", "application/json")?;
    set(webhook::HEADER_ID, id)?;
    set(webhook::HEADER_TIMESTAMP, &timestamp.to_string())?;
    set(
        webhook::HEADER_SIGNATURE,
        &webhook::signature(&hook.secrets, id, timestamp, &body),
    )?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(&hook.url, &init).map_err(ApiError::internal)?;
    let sent = deadline::within(cfg.origin_timeout_ms, Fetch::Request(req).send()).await;
    let resp = match sent {
        Ok(r) => r.map_err(ApiError::internal)?,
        Err(deadline::Elapsed) => return Err(ApiError::internal("webhook: no answer in time")),
    };
    match resp.status_code() {
        200..=299 => Ok(Delivered::Yes),
        410 => Ok(Delivered::Gone),
        other => Err(ApiError::internal(format!("webhook answered {other}"))),
    }
}
