//! The key's Durable Object: the authoritative record of one key, its ledger of
//! consumed credits, its request log and its outbox (`key_store`, `outbox`). Every
//! command is decided by the pure core (`crate::objects::key::apply`) against
//! memory and persisted synchronously (no `.await` between read and write), so
//! concurrent requests to one key never interleave: limits are exact. Its alarm
//! releases overdue reservations, ends suspensions, sends alerts and delivers the
//! outbox.

use super::key_move::{self, Handover, Tombstone};
use super::{key_store, object_stats, outbox};
use crate::edge::js::rpc;
use crate::edge::js::runtime::{self, now_ms};
use crate::edge::js::{deadline, task};
use crate::error::ApiError;
use crate::limits::budget_lease::LeaseBook;
use crate::objects::batch::{self, Answer};
use crate::objects::key::placement::{generation, predecessor};
use crate::objects::key::{apply, next_alert_at, KeyCommand, KeyState};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use worker::worker_sys::DurableObjectState;
use worker::{console_error, Env, SqlStorage, State};

/// The class `entry.mjs` wraps (Workers RPC: `batch`, and the alarm).
#[wasm_bindgen]
pub struct KeyObject {
    inner: Rc<Key>,
}

struct Key {
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
    /// made-up key names: `key::lookup`) creates none until a key is created in it,
    /// so such keys leave nothing behind.
    stored: Cell<bool>,
    /// Where the key went, once it has moved away (read on first use).
    moved: RefCell<Option<Option<Tombstone>>>,
    /// A move into this object is taking the key over from its predecessor.
    taking_over: Cell<bool>,
}

#[wasm_bindgen]
impl KeyObject {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> KeyObject {
        let state = State::from(state);
        let stored = key_store::stored(&state.storage().sql());
        if stored {
            key_store::create_tables(&state.storage().sql());
        }
        KeyObject {
            inner: Rc::new(Key {
                state,
                env,
                memory: RefCell::new(None),
                alarm_scheduled: Cell::new(false),
                alarm_at: Cell::new(None),
                stored: Cell::new(stored),
                moved: RefCell::new(None),
                taking_over: Cell::new(false),
            }),
        }
    }

    /// Answers at once: nothing a key's object does for a command waits on I/O.
    /// Several commands (the checks and settlements of one lane's call) are decided
    /// together: in order, in one synchronous step, persisted once.
    ///
    /// A change of the key while budget leases are outstanding is the exception:
    /// it is decided at once too, but answered only once every lease lent under
    /// the old record has ended (`batch_later`), so it bites on the next request
    /// everywhere when it answers.
    ///
    /// So is a move into this object (`MoveIn`) that has to take the key over
    /// from its predecessor, and any command that arrives meanwhile.
    pub fn batch_now(&self, items: Vec<String>) -> Option<Vec<String>> {
        let me = &self.inner;
        if me.taking_over.get() || (!me.stored.get() && items.iter().any(|i| moves_in(i))) {
            return None;
        }
        if me.tombstone().is_none()
            && me.leases_outstanding()
            && items.iter().any(|i| changes_key(i))
        {
            return None;
        }
        Some(me.decide(items))
    }

    pub fn batch_later(&self, items: Vec<String>) -> js_sys::Promise {
        let me = self.inner.clone();
        task::promise(async move {
            me.move_in(&items).await;
            let answers = me.decide(items);
            let wait = me.lease_wait_ms();
            deadline::sleep(wait.min(10_000)).await;
            let out = js_sys::Array::new();
            for a in answers {
                out.push(&JsValue::from_str(&a));
            }
            Ok(out.into())
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

fn moves_in(item: &str) -> bool {
    item.starts_with(r#"{"move_in""#)
}

/// Whether a command changes what a lease's copy of the record decides.
fn changes_key(item: &str) -> bool {
    matches!(
        rpc::parse::<KeyCommand>(item),
        Ok(KeyCommand::Patch { .. }
            | KeyCommand::Credits { .. }
            | KeyCommand::Rotate { .. }
            | KeyCommand::Deactivate
            | KeyCommand::Revoke
            | KeyCommand::Leak { .. })
    )
}

impl Key {
    fn leases_outstanding(&self) -> bool {
        self.memory_book(|b| !b.is_empty()).unwrap_or(true)
    }

    fn lease_wait_ms(&self) -> i64 {
        self.memory_book(|b| b.wait_ms(now_ms())).unwrap_or(0)
    }

    /// Reads the lease book, loading the key's state first if need be.
    fn memory_book<T>(&self, f: impl FnOnce(&LeaseBook) -> T) -> Option<T> {
        if self.memory.try_borrow().ok()?.is_none() && self.stored.get() {
            let loaded = key_store::load(&self.sql()).ok()?;
            *self.memory.try_borrow_mut().ok()? = Some(loaded);
        }
        let memory = self.memory.try_borrow().ok()?;
        Some(match memory.as_ref() {
            Some(state) => f(&state.book),
            None => f(&LeaseBook::default()),
        })
    }

    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Where the key went, if it has moved away.
    fn tombstone(&self) -> Option<Tombstone> {
        let mut known = self.moved.try_borrow_mut().ok()?;
        if known.is_none() {
            *known = Some(key_move::tombstone(&self.sql()).ok()?);
        }
        known.clone().flatten()
    }

    /// A moved key's old object answers every command with its new object's name;
    /// it hands the key over again to that object, and learns of later moves.
    fn answer_moved(&self, stone: &Tombstone, item: &str) -> String {
        let encode = |a: Answer| {
            serde_json::to_string(&a)
                .unwrap_or_else(|_| rpc::encode(Err(ApiError::internal("unencodable"))))
        };
        match rpc::parse::<KeyCommand>(item) {
            Ok(KeyCommand::Export { to }) if to == stone.to => {
                let handed = key_move::hand_over(&self.sql(), &to, stone.at);
                rpc::encode(
                    handed.and_then(|h| serde_json::to_value(h).map_err(ApiError::internal)),
                )
            }
            Ok(KeyCommand::Release { to }) if to == stone.to => {
                rpc::encode(key_move::release(&self.sql()).map(|()| Value::Null))
            }
            Ok(KeyCommand::Export { .. }) => rpc::encode(Err(ApiError::Conflict {
                reason: format!("the key moved to {}", stone.to),
            })),
            Ok(KeyCommand::Relocated { to }) => {
                let later = generation(&to) > generation(&stone.to);
                if later {
                    if let Err(e) = key_move::point(&self.sql(), &to, now_ms()) {
                        return rpc::encode(Err(e));
                    }
                    *self.moved.borrow_mut() = None;
                }
                rpc::encode(Ok(Value::Null))
            }
            _ => encode(Answer::Moved(stone.to.clone())),
        }
    }

    /// The first handover of the key to `to`: everything, then the tombstone.
    fn export(&self, to: &str) -> Result<Value, ApiError> {
        if !self.stored.get() {
            return Err(ApiError::NotFound { what: "key".into() });
        }
        let handed = key_move::hand_over(&self.sql(), to, now_ms())?;
        *self.moved.borrow_mut() = None;
        *self.memory.borrow_mut() = None;
        serde_json::to_value(handed).map_err(ApiError::internal)
    }

    /// A move into this object: takes the key over from its predecessor unless
    /// it holds it already. Commands that came meanwhile wait for it.
    async fn move_in(&self, items: &[String]) {
        while self.taking_over.get() {
            deadline::sleep(5).await;
        }
        let Some((name, region)) = items.iter().find_map(|i| match rpc::parse(i) {
            Ok(KeyCommand::MoveIn { name, region }) => Some((name, region)),
            _ => None,
        }) else {
            return;
        };
        if self.stored.get() {
            return;
        }
        let Some(from) = predecessor(&name) else {
            return;
        };
        self.taking_over.set(true);
        // Where this object is, when geography is simulated: the handover comes
        // from its predecessor to here, and pays that round trip.
        if runtime::config(&self.env).is_ok_and(|c| c.test_geo.is_some()) {
            task::set_region(region);
        }
        let here = name.clone();
        let export = KeyCommand::Export { to: name.clone() };
        let handover = rpc::ask::<Handover>(&self.env, rpc::Object::KeyAt(&from), &export).await;
        let taken = handover.and_then(|h| {
            key_move::take_over(&self.state, h)?;
            self.stored.set(true);
            *self.memory.borrow_mut() = None;
            self.run(KeyCommand::Arrived { name, region }).0
        });
        // The move's audit event and index entries go out with the alarm.
        let _ = self.schedule_alarm();
        self.taking_over.set(false);
        match taken {
            Ok(_) => {
                let release = KeyCommand::Release { to: here };
                let released = rpc::ask::<Value>(&self.env, rpc::Object::KeyAt(&from), &release);
                if let Err(e) = released.await {
                    console_error!("key object: {from} keeps its copy of the key: {e:?}");
                }
            }
            Err(e) => console_error!("key object: cannot take the key over from {from}: {e:?}"),
        }
    }

    fn decide(&self, items: Vec<String>) -> Vec<String> {
        if let Some(stone) = self.tombstone() {
            return items.iter().map(|i| self.answer_moved(&stone, i)).collect();
        }
        if let Ok(cfg) = runtime::config(&self.env) {
            let checks = items
                .iter()
                .filter(|i| i.starts_with(r#"{"check""#))
                .count();
            object_stats::count_batch(&self.sql(), cfg.object_stats, checks);
        }
        if items.len() < 2 {
            return rpc::each_now(&items, |cmd| self.handle(cmd));
        }
        let mut answers: Vec<Option<String>> = vec![None; items.len()];
        let mut cmds = Vec::with_capacity(items.len());
        for (slot, item) in answers.iter_mut().zip(&items) {
            match rpc::parse::<KeyCommand>(item) {
                Ok(cmd) => cmds.push(cmd),
                Err(e) => *slot = Some(rpc::encode(Err(e))),
            }
        }
        let n = cmds.len();
        let decided = batch::answers(self.handle(KeyCommand::Batch { items: cmds }), n);
        let mut decided = decided.into_iter();
        answers
            .into_iter()
            .map(|slot| {
                slot.or_else(|| decided.next().map(rpc::encode))
                    .unwrap_or_else(|| rpc::encode(Err(ApiError::internal("no answer"))))
            })
            .collect()
    }

    fn handle(&self, cmd: KeyCommand) -> Result<Value, ApiError> {
        if let Ok(cfg) = runtime::config(&self.env) {
            object_stats::count(&self.sql(), cfg.object_stats, now_ms());
        }
        match cmd {
            KeyCommand::Export { to } => return self.export(&to),
            // Here when it holds the key (`move_in`).
            KeyCommand::MoveIn { .. } if self.stored.get() => return Ok(Value::Null),
            KeyCommand::MoveIn { .. } => return Err(ApiError::Unavailable { retry_after: 1 }),
            KeyCommand::Relocated { .. } | KeyCommand::Release { .. } => {
                return Err(ApiError::internal("a key that has not moved"))
            }
            _ => {}
        }
        if let KeyCommand::Logs { query } = cmd {
            if !self.stored.get() {
                return Ok(serde_json::json!({ "items": [], "cursor": null }));
            }
            return key_store::logs(&self.sql(), &query);
        }
        // A management change may set or move the expiry its alerts follow.
        let management = !matches!(
            cmd,
            KeyCommand::Check(_)
                | KeyCommand::Batch { .. }
                | KeyCommand::Settle { .. }
                | KeyCommand::Lease { .. }
                | KeyCommand::Report(_)
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
    fn run(&self, cmd: KeyCommand) -> (Result<Value, ApiError>, bool) {
        match self.run_inner(cmd) {
            Ok((reply, wake)) => (reply, wake),
            Err(e) => (Err(e), false),
        }
    }

    fn run_inner(&self, cmd: KeyCommand) -> Result<(Result<Value, ApiError>, bool), ApiError> {
        let cfg = runtime::config(&self.env)?;
        let sql = self.sql();
        let mut memory = self.memory.try_borrow_mut().map_err(ApiError::internal)?;
        if memory.is_none() {
            *memory = Some(if self.stored.get() {
                key_store::load(&sql)?
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
            key_store::create_tables(&sql);
            self.stored.set(true);
        }
        let persisted = key_store::persist(
            &sql,
            state,
            &fx,
            now,
            cfg.logs.max_age_ms,
            cfg.logs.max_rows,
        );
        if let Err(e) = persisted {
            // Memory may now be ahead of storage: reload on next use.
            *memory = None;
            return Err(e);
        }
        Ok((reply, !fx.notices.is_empty() || fx.alarm_at.is_some()))
    }

    /// Sets the alarm for the next of: the earliest due notice, the end of a
    /// suspension, the next expiry alert, the release of an open reservation.
    /// Answers the write in flight, if one was needed.
    fn schedule_alarm(&self) -> Option<js_sys::Promise> {
        self.alarm_scheduled.set(true);
        if !self.stored.get() {
            return None;
        }
        let due = outbox::next_due(&self.sql());
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
        match rpc::set_alarm_now(&self.state, at) {
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

    async fn alarm(&self) {
        self.alarm_at.set(None);
        // A moved key is woken where it is now; here only the outbox is left.
        if self.tombstone().is_none() {
            if let (Err(e), _) = self.run(KeyCommand::Wake) {
                console_error!("key object wake failed: {e:?}");
            }
        }
        if let Ok(cfg) = runtime::config(&self.env) {
            let object = self.state.id().to_string();
            outbox::deliver_due(&self.env, &cfg, &self.sql(), &object).await;
        }
        if let Some(set) = self.schedule_alarm() {
            if let Err(e) = worker::wasm_bindgen_futures::JsFuture::from(set).await {
                console_error!("key object: cannot set alarm: {e:?}");
            }
        }
    }
}
