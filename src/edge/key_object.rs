//! The key's Durable Object: the authoritative record of one key, its ledger of
//! consumed credits, its request log and its outbox. Every command is handled
//! synchronously against memory and SQLite (no `.await` between read and write),
//! so concurrent requests to one key never interleave: limits are exact.

use super::objects;
use super::runtime::{self, now_ms};
use super::{copies, ledger_store, object_stats};
use crate::error::ApiError;
use crate::key::record::KeyRecord;
use crate::limits::ledger::KEY_LEVELS;
use crate::limits::reservation::{Reservation, Reservations};
use crate::limits::usage::{Tally, Usage};
use crate::notify::logs::{LogEntry, LogQuery, LogUpdate};
use crate::notify::webhook;
use crate::objects::batch;
use crate::objects::key::{apply, next_alert_at, Change, Effects, KeyCommand, KeyState, Notice};
use crate::paging;
use crate::time_fmt::to_rfc3339;
use serde::Deserialize;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    console_error, durable_object, DurableObject, Env, Fetch, Headers, Method, Request,
    RequestInit, Response, Result, SqlStorage, SqlStorageValue, State,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS record (one INTEGER PRIMARY KEY CHECK (one = 1), json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, method TEXT NOT NULL,
  path TEXT NOT NULL, status INTEGER NOT NULL, code TEXT, duration_ms INTEGER NOT NULL, ip TEXT, credits INTEGER NOT NULL,
  via TEXT NOT NULL DEFAULT 'gate');
CREATE INDEX IF NOT EXISTS logs_at ON logs(at, id);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, notice TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, due INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS usage (hour INTEGER PRIMARY KEY, requests INTEGER NOT NULL, credits INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS uses (one INTEGER PRIMARY KEY CHECK (one = 1), count INTEGER NOT NULL, last_used_at INTEGER);";

/// Columns added to `logs` since its first schema (adding one twice fails
/// harmlessly), then the indexes settlements and restores find their rows by. An
/// admitted request's reservation is its `pending` row (with `due`): the row and
/// the reservation are one write, and its settlement one update.
const LOG_COLUMNS: [&str; 6] = [
    "ALTER TABLE logs ADD COLUMN via TEXT NOT NULL DEFAULT 'gate'",
    "ALTER TABLE logs ADD COLUMN state TEXT NOT NULL DEFAULT 'completed'",
    "ALTER TABLE logs ADD COLUMN reservation INTEGER",
    "ALTER TABLE logs ADD COLUMN due INTEGER",
    "CREATE INDEX IF NOT EXISTS logs_reservation ON logs(reservation) WHERE reservation IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS logs_pending ON logs(reservation) WHERE state = 'pending'",
];

/// Delivery attempts of a notice before it is given up (logged as an error).
const MAX_ATTEMPTS: i64 = 6;

#[durable_object]
pub struct KeyObject {
    state: State,
    env: Env,
    /// Loaded on first use; every write goes through this object, so it stays true.
    memory: RefCell<Option<KeyState>>,
    /// Whether this instance has set the alarm since it started: a key whose expiry
    /// was set before alerts existed gets its alarm on its first request.
    alarm_scheduled: Cell<bool>,
    /// When the alarm this instance last set is due (`None`: none set, or it ran).
    alarm_at: Cell<Option<i64>>,
    /// Whether this object has its tables. An object that never held a key (one a
    /// made-up key names: `lookup`) creates none until a key is created in it, so
    /// such keys leave nothing behind.
    stored: Cell<bool>,
}

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

impl DurableObject for KeyObject {
    fn new(state: State, env: Env) -> Self {
        let object = Self {
            state,
            env,
            memory: RefCell::new(None),
            alarm_scheduled: Cell::new(false),
            alarm_at: Cell::new(None),
            stored: Cell::new(false),
        };
        #[derive(Deserialize)]
        struct Table {
            #[allow(dead_code)]
            name: String,
        }
        let tables = object
            .sql()
            .exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'record'",
                None,
            )
            .and_then(|c| c.to_array::<Table>());
        if tables.is_ok_and(|t| !t.is_empty()) {
            object.create_tables();
        }
        object
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        objects::fetched(req, |cmd| async { self.handle(cmd) }).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_at.set(None);
        if let (Err(e), _) = self.run(KeyCommand::Wake) {
            console_error!("key object wake failed: {e:?}");
        }
        self.deliver_due().await;
        if let Some(set) = self.schedule_alarm() {
            if let Err(e) = JsFuture::from(set).await {
                console_error!("key object: cannot set alarm: {e:?}");
            }
        }
        Response::empty()
    }
}

/// Workers RPC (`objects`). Several commands (the checks and settlements of one
/// lane's call) are decided together: in order, in one synchronous step,
/// persisted once.
#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl KeyObject {
    /// Answers at once: nothing a key's object does for a command waits on I/O.
    pub fn batch_now(&self, items: Vec<String>) -> Option<Vec<String>> {
        Some(self.decide(items))
    }
}

impl KeyObject {
    fn decide(&self, items: Vec<String>) -> Vec<String> {
        if let Ok(cfg) = runtime::config(&self.env) {
            let checks = items
                .iter()
                .filter(|i| i.starts_with(r#"{"check""#))
                .count();
            object_stats::count_batch(&self.sql(), cfg.object_stats, checks);
        }
        if items.len() < 2 {
            return objects::each_now(&items, |cmd| self.handle(cmd));
        }
        let mut answers: Vec<Option<String>> = vec![None; items.len()];
        let mut cmds = Vec::with_capacity(items.len());
        for (slot, item) in answers.iter_mut().zip(&items) {
            match objects::parse::<KeyCommand>(item) {
                Ok(cmd) => cmds.push(cmd),
                Err(e) => *slot = Some(objects::encode(Err(e))),
            }
        }
        let n = cmds.len();
        let decided = batch::answers(self.handle(KeyCommand::Batch { items: cmds }), n);
        let mut decided = decided.into_iter();
        answers
            .into_iter()
            .map(|slot| {
                slot.or_else(|| decided.next().map(objects::encode))
                    .unwrap_or_else(|| objects::encode(Err(ApiError::internal("no answer"))))
            })
            .collect()
    }
}

impl KeyObject {
    /// Creates the tables (and columns) this build uses that are missing.
    fn create_tables(&self) {
        let sql = self.sql();
        for schema in [SCHEMA, ledger_store::SCHEMA] {
            if let Err(e) = sql.exec(schema, None) {
                console_error!("key object: cannot create its tables: {e}");
            }
        }
        for change in LOG_COLUMNS {
            if let Err(e) = sql.exec(change, None) {
                if !e.to_string().contains("duplicate column") {
                    console_error!("key object: cannot migrate logs ({change}): {e}");
                }
            }
        }
        if let Err(e) = ledger_store::migrate(&sql) {
            console_error!("key object: cannot migrate its ledger: {e:?}");
        }
        self.stored.set(true);
    }

    fn handle(&self, cmd: KeyCommand) -> std::result::Result<Value, ApiError> {
        if let Ok(cfg) = runtime::config(&self.env) {
            object_stats::count(&self.sql(), cfg.object_stats, now_ms());
        }
        if let KeyCommand::Logs { query } = cmd {
            return self.logs(&query);
        }
        // A management change may set or move the expiry its alerts follow.
        let management = !matches!(
            cmd,
            KeyCommand::Check(_)
                | KeyCommand::Batch { .. }
                | KeyCommand::Settle { .. }
                | KeyCommand::Get
                | KeyCommand::Usage { .. }
        );
        let (result, wake) = self.run(cmd);
        // An open reservation needs the alarm by its due time.
        let release_due = self
            .reservations_due()
            .is_some_and(|due| self.alarm_at.get().is_none_or(|at| at > due));
        if wake || management || release_due || !self.alarm_scheduled.get() {
            // Not waited for: the answer is held until the write is done.
            let _ = self.schedule_alarm();
        }
        result
    }

    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// When the earliest open reservation is released if not settled.
    fn reservations_due(&self) -> Option<i64> {
        self.memory
            .try_borrow()
            .ok()?
            .as_ref()?
            .reservations
            .next_due()
    }

    /// Loads, applies, persists: synchronous from start to end. Also says whether
    /// the alarm must be (re)scheduled.
    fn run(&self, cmd: KeyCommand) -> (std::result::Result<Value, ApiError>, bool) {
        match self.run_inner(cmd) {
            Ok((reply, wake)) => (reply, wake),
            Err(e) => (Err(e), false),
        }
    }

    fn run_inner(
        &self,
        cmd: KeyCommand,
    ) -> std::result::Result<(std::result::Result<Value, ApiError>, bool), ApiError> {
        let cfg = runtime::config(&self.env)?;
        let sql = self.sql();
        let mut memory = self.memory.try_borrow_mut().map_err(ApiError::internal)?;
        if memory.is_none() {
            *memory = Some(if self.stored.get() {
                load(&sql)?
            } else {
                KeyState::empty()
            });
        }
        let Some(state) = memory.as_mut() else {
            return Err(ApiError::internal("key state missing"));
        };
        let now = now_ms();
        let (fx, reply) = apply(state, cmd, &cfg, now);
        if fx.is_empty() && fx.alarm_at.is_none() {
            return Ok((reply, false));
        }
        if !self.stored.get() {
            self.create_tables();
        }
        if let Err(e) = persist(
            &sql,
            state,
            &fx,
            now,
            cfg.logs.max_age_ms,
            cfg.logs.max_rows,
        ) {
            // Memory may now be ahead of storage: reload on next use.
            *memory = None;
            return Err(e);
        }
        Ok((reply, !fx.notices.is_empty() || fx.alarm_at.is_some()))
    }

    fn logs(&self, q: &LogQuery) -> std::result::Result<Value, ApiError> {
        if !self.stored.get() {
            return Ok(json!({ "items": [], "cursor": null }));
        }
        let mut clauses = vec!["1 = 1".to_string()];
        let mut args: Vec<SqlStorageValue> = Vec::new();
        let mut push = |clause: &str, v: i64| {
            clauses.push(clause.to_string());
            args.push(v.into());
        };
        if let Some(v) = q.status_min {
            push("status >= ?", i64::from(v));
        }
        if let Some(v) = q.status_max {
            push("status <= ?", i64::from(v));
        }
        if let Some(v) = q.from {
            push("at >= ?", v);
        }
        if let Some(v) = q.to {
            push("at < ?", v);
        }
        if let Some((at, id)) = q.cursor {
            clauses.push("(at < ? OR (at = ? AND id < ?))".into());
            args.extend([at.into(), at.into(), id.into()]);
        }
        args.push((i64::from(q.limit) + 1).into());
        #[derive(Deserialize)]
        struct Row {
            id: i64,
            at: i64,
            method: String,
            path: String,
            status: i64,
            code: Option<String>,
            duration_ms: i64,
            ip: Option<String>,
            credits: i64,
            via: String,
            state: String,
        }
        let rows: Vec<Row> = self
            .sql()
            .exec(
                &format!(
                    "SELECT id, at, method, path, status, code, duration_ms, ip, credits, via, state FROM logs WHERE {} ORDER BY at DESC, id DESC LIMIT ?",
                    clauses.join(" AND ")
                ),
                args,
            )
            .and_then(|c| c.to_array())
            .map_err(ApiError::internal)?;
        let (rows, cursor) = paging::page(rows, q.limit, |r| format!("{}.{}", r.at, r.id));
        let items: Vec<Value> = rows
            .iter()
            .map(|r| {
                // A pending or abandoned request has no answer to show.
                let status = Some(r.status).filter(|_| r.state == "completed");
                json!({
                    "at": to_rfc3339(r.at), "method": r.method, "path": r.path, "status": status,
                    "code": r.code, "duration_ms": r.duration_ms, "ip": r.ip, "credits": r.credits,
                    "via": r.via, "state": r.state,
                })
            })
            .collect();
        Ok(json!({ "items": items, "cursor": cursor }))
    }

    /// The next alarm: the earliest due notice, the end of a suspension, or the next
    /// expiry alert.
    /// Sets the alarm; the write in flight, if one was needed.
    fn schedule_alarm(&self) -> Option<js_sys::Promise> {
        self.alarm_scheduled.set(true);
        if !self.stored.get() {
            return None;
        }
        #[derive(Deserialize)]
        struct Due {
            due: Option<i64>,
        }
        let due = self
            .sql()
            .exec("SELECT MIN(due) AS due FROM outbox", None)
            .and_then(|c| c.to_array::<Due>())
            .ok()
            .and_then(|rows| rows.first().and_then(|r| r.due));
        let cfg = runtime::config(&self.env).ok();
        let (wake, alert) = self
            .memory
            .try_borrow()
            .ok()
            .and_then(|m| {
                let rec = m.as_ref()?.record.as_ref()?;
                let alert = cfg.as_ref().and_then(|c| next_alert_at(rec, c));
                Some((rec.suspended_until, alert))
            })
            .unwrap_or((None, None));
        let release = self.reservations_due();
        let at = [due, wake, alert, release].into_iter().flatten().min()?;
        // At least 1 ms ahead: re-arming an alarm handler for the time it runs at
        // would have the alarm deleted when the handler returns.
        let at = at.max(now_ms() + 1);
        match objects::set_alarm_now(&self.state, at) {
            Ok(set) => {
                self.alarm_at.set(Some(at));
                Some(set)
            }
            Err(e) => {
                console_error!("key object: cannot set alarm: {e:?}");
                None
            }
        }
    }

    /// Delivers due notices; failures are retried with exponential back-off.
    async fn deliver_due(&self) {
        #[derive(Deserialize)]
        struct Pending {
            id: i64,
            notice: String,
            attempts: i64,
        }
        let now = now_ms();
        let pending: Vec<Pending> = match self
            .sql()
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
                Ok(notice) => self.deliver(p.id, notice).await,
                Err(e) => Err(ApiError::internal(format!("unreadable notice: {e}"))),
            };
            let attempts = p.attempts + 1;
            let outcome = match delivered {
                Ok(Delivered::Yes) => self
                    .sql()
                    .exec("DELETE FROM outbox WHERE id = ?", vec![p.id.into()]),
                Ok(Delivered::Gone) => {
                    console_error!(
                        "notice {}: the webhook endpoint answered 410 Gone; not retried",
                        p.id
                    );
                    self.sql()
                        .exec("DELETE FROM outbox WHERE id = ?", vec![p.id.into()])
                }
                Err(e) if attempts >= MAX_ATTEMPTS => {
                    console_error!("notice {} given up after {attempts} attempts: {e:?}", p.id);
                    self.sql()
                        .exec("DELETE FROM outbox WHERE id = ?", vec![p.id.into()])
                }
                Err(e) => {
                    console_error!("notice {} attempt {attempts} failed: {e:?}", p.id);
                    let due = now_ms() + 1000 * (1i64 << attempts.min(10));
                    self.sql().exec(
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

    async fn deliver(
        &self,
        outbox_id: i64,
        notice: Notice,
    ) -> std::result::Result<Delivered, ApiError> {
        match notice {
            Notice::Webhook { event, at, data } => {
                self.send_webhook(outbox_id, event, at, data).await
            }
            copy => copies::deliver(&self.env, &copy)
                .await
                .map(|_| Delivered::Yes),
        }
    }

    /// Sends one Standard Webhooks notice; the same id on every attempt.
    async fn send_webhook(
        &self,
        outbox_id: i64,
        event: String,
        at: i64,
        data: Value,
    ) -> std::result::Result<Delivered, ApiError> {
        let cfg = runtime::config(&self.env)?;
        let Some(hook) = cfg.webhook.as_ref() else {
            return Ok(Delivered::Yes); // no receiver configured
        };
        // The same id on every attempt, so receivers can drop duplicates.
        let object = self.state.id().to_string();
        let id = format!("msg_{}_{outbox_id}", object.get(..16).unwrap_or(&object));
        let timestamp = now_ms() / 1000;
        let body = webhook::body(&event, at, &data);
        let headers = Headers::new();
        let set = |k: &str, v: &str| headers.set(k, v).map_err(ApiError::internal);
        set("Content-Type", "application/json")?;
        set(webhook::HEADER_ID, &id)?;
        set(webhook::HEADER_TIMESTAMP, &timestamp.to_string())?;
        set(
            webhook::HEADER_SIGNATURE,
            &webhook::signature(&hook.secrets, &id, timestamp, &body),
        )?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let req = Request::new_with_init(&hook.url, &init).map_err(ApiError::internal)?;
        let resp = Fetch::Request(req)
            .send()
            .await
            .map_err(ApiError::internal)?;
        match resp.status_code() {
            200..=299 => Ok(Delivered::Yes),
            410 => Ok(Delivered::Gone),
            other => Err(ApiError::internal(format!("webhook answered {other}"))),
        }
    }
}

/// How a delivery ended, when it did not fail.
enum Delivered {
    Yes,
    /// The receiver said 410 Gone: no more attempts for this notice.
    Gone,
}

fn load(sql: &SqlStorage) -> std::result::Result<KeyState, ApiError> {
    #[derive(Deserialize)]
    struct Hour {
        hour: i64,
        requests: i64,
        credits: i64,
    }
    let hours: Vec<Hour> = sql
        .exec("SELECT hour, requests, credits FROM usage", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let usage = Usage::restore(hours.into_iter().map(|h| {
        let tally = Tally {
            requests: h.requests.max(0) as u64,
            credits: h.credits.max(0) as u64,
        };
        (h.hour, tally)
    }));
    let rows: Vec<JsonRow> = sql
        .exec("SELECT json FROM record WHERE one = 1", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let mut record: Option<KeyRecord> = match rows.first() {
        Some(row) => Some(serde_json::from_str(&row.json).map_err(ApiError::internal)?),
        None => None,
    };
    // The use row is written with every record and alone on every use: it is newer.
    #[derive(Deserialize)]
    struct Uses {
        count: i64,
        last_used_at: Option<i64>,
    }
    let uses: Vec<Uses> = sql
        .exec("SELECT count, last_used_at FROM uses WHERE one = 1", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    if let (Some(rec), Some(u)) = (record.as_mut(), uses.first()) {
        rec.usage_count = u.count.max(0) as u64;
        rec.last_used_at = u.last_used_at;
    }
    #[derive(Deserialize)]
    struct Open {
        id: i64,
        at: i64,
        cost: i64,
        due: i64,
    }
    let open: Vec<Open> = sql
        .exec(
            "SELECT reservation AS id, at, credits AS cost, COALESCE(due, at + 30000) AS due
             FROM logs WHERE state = 'pending' AND reservation IS NOT NULL",
            None,
        )
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    #[derive(Deserialize)]
    struct Last {
        n: Option<i64>,
    }
    let last: Vec<Last> = sql
        .exec("SELECT MAX(reservation) AS n FROM logs", None)
        .and_then(|c| c.to_array())
        .map_err(ApiError::internal)?;
    let reservations = Reservations::restore(
        open.into_iter().map(|r| Reservation {
            id: r.id.max(0) as u64,
            at: r.at,
            cost: r.cost.max(0) as u64,
            due: r.due,
        }),
        last.first().and_then(|l| l.n).unwrap_or(0).max(0) as u64,
    );
    Ok(KeyState {
        record,
        ledger: ledger_store::load(sql, &KEY_LEVELS)?,
        usage,
        reservations,
    })
}

fn persist(
    sql: &SqlStorage,
    state: &KeyState,
    fx: &Effects,
    now: i64,
    max_age_ms: i64,
    max_rows: u32,
) -> std::result::Result<(), ApiError> {
    let exec = |q: &str, args: Vec<SqlStorageValue>| {
        sql.exec(q, args).map(|_| ()).map_err(ApiError::internal)
    };
    let write_uses = |rec: &KeyRecord| {
        let last = rec
            .last_used_at
            .map_or(SqlStorageValue::Null, SqlStorageValue::from);
        exec(
            "INSERT OR REPLACE INTO uses (one, count, last_used_at) VALUES (1, ?, ?)",
            vec![(rec.usage_count as i64).into(), last],
        )
    };
    match (&fx.record, &state.record) {
        (Change::Put, Some(rec)) => {
            let json = serde_json::to_string(rec).map_err(ApiError::internal)?;
            exec(
                "INSERT OR REPLACE INTO record (one, json) VALUES (1, ?)",
                vec![json.into()],
            )?;
            write_uses(rec)?;
        }
        (Change::Use, Some(rec)) => write_uses(rec)?,
        (Change::Erase, _) => {
            for table in [
                "record",
                "logs",
                "outbox",
                "buckets",
                "ledger_total",
                "usage",
                "uses",
            ] {
                exec(&format!("DELETE FROM {table}"), vec![])?;
            }
        }
        _ => {}
    }
    ledger_store::write(sql, &state.ledger, &fx.buckets, &fx.prune)?;
    for (hour, t) in &fx.usage {
        exec(
            "INSERT INTO usage (hour, requests, credits) VALUES (?, ?, ?)
             ON CONFLICT(hour) DO UPDATE SET requests = excluded.requests, credits = excluded.credits",
            vec![(*hour).into(), (t.requests as i64).into(), (t.credits as i64).into()],
        )?;
    }
    if let Some(cutoff) = fx.usage_prune {
        exec("DELETE FROM usage WHERE hour < ?", vec![cutoff.into()])?;
    }
    insert_logs(sql, &fx.logs, &fx.reserve)?;
    // Retention, by age and by row cap, on about one write in 64; a pending row
    // (an open reservation) stays until it is settled or released.
    if fx.logs.first().is_some_and(|l| l.at % 64 == 0) {
        exec(
            "DELETE FROM logs WHERE at < ? AND state != 'pending'",
            vec![(now - max_age_ms).into()],
        )?;
        exec(
            "DELETE FROM logs WHERE id <= (SELECT MAX(id) FROM logs) - ? AND state != 'pending'",
            vec![i64::from(max_rows).into()],
        )?;
    }
    for update in &fx.log_updates {
        match update {
            LogUpdate::Settle {
                reservation,
                state,
                status,
                code,
                duration_ms,
                credits,
            } => exec(
                "UPDATE logs SET state = ?, status = ?, code = ?, duration_ms = ?, credits = ? WHERE reservation = ?",
                vec![
                    state.as_str().into(),
                    i64::from(*status).into(),
                    code.as_deref()
                        .map_or(SqlStorageValue::Null, SqlStorageValue::from),
                    i64::from(*duration_ms).into(),
                    (*credits as i64).into(),
                    (*reservation as i64).into(),
                ],
            )?,
            LogUpdate::Discard { reservation } => exec(
                "DELETE FROM logs WHERE reservation = ?",
                vec![(*reservation as i64).into()],
            )?,
        }
    }
    for notice in &fx.notices {
        let text = serde_json::to_string(notice).map_err(ApiError::internal)?;
        exec(
            "INSERT INTO outbox (notice, due) VALUES (?, ?)",
            vec![text.into(), now.into()],
        )?;
    }
    Ok(())
}

/// The log rows, 8 to a statement (the platform binds at most 100 values); an
/// admitted request's row carries when its reservation is released if unsettled.
fn insert_logs(
    sql: &SqlStorage,
    logs: &[LogEntry],
    reserved: &[Reservation],
) -> std::result::Result<(), ApiError> {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map_or(SqlStorageValue::Null, SqlStorageValue::from)
    };
    for chunk in logs.chunks(8) {
        let mut args: Vec<SqlStorageValue> = Vec::with_capacity(chunk.len() * 12);
        for l in chunk {
            let due = l
                .reservation
                .and_then(|id| reserved.iter().find(|r| r.id == id))
                .map_or(SqlStorageValue::Null, |r| SqlStorageValue::from(r.due));
            args.extend([
                l.at.into(),
                l.method.as_str().into(),
                l.path.as_str().into(),
                i64::from(l.status).into(),
                text(&l.code),
                i64::from(l.duration_ms).into(),
                text(&l.ip),
                (l.credits as i64).into(),
                l.via.as_str().into(),
                l.state.as_str().into(),
                l.reservation
                    .map_or(SqlStorageValue::Null, |r| SqlStorageValue::from(r as i64)),
                due,
            ]);
        }
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        sql.exec(
            &format!("INSERT INTO logs (at, method, path, status, code, duration_ms, ip, credits, via, state, reservation, due) VALUES {rows}"),
            args,
        )
        .map_err(ApiError::internal)?;
    }
    Ok(())
}
