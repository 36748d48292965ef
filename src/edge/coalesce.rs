//! Group commit in the isolate (`batch`). While a call to an object is in flight,
//! later requests for the same object wait in its lane; when the call returns, the
//! next call carries every waiting request (up to `MAX_BATCH`). No timers: a
//! request for an idle object goes out at once.
//!
//! The calls are made by a driver that runs under `waitUntil` of the request that
//! found the lane idle, so a client hanging up cannot strand the others. Answers
//! reach each waiting request through a promise it made itself, so its own work
//! (the origin fetch) stays in its own request. After `MAX_ROUNDS` calls the
//! driver wakes every waiting request and the first to run drives next: no
//! request's subrequests grow without bound, and no lane depends on one waiter
//! being alive.

use super::objects;
use super::runtime::now_ms;
use crate::batch::{self, MAX_BATCH};
use crate::error::ApiError;
use futures_util::future::{select, Either};
use js_sys::{Function, Promise};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use worker::{Context, Delay, Env};

/// Calls one driver makes before handing its lane on.
const MAX_ROUNDS: usize = 16;

/// A waiting request also keeps a timer: the runtime cancels a request that waits
/// on nothing of its own as hung, and the timer lets it check on its lane. It never
/// delays an answer.
const WATCH_MS: u64 = 1_000;

/// A driver whose call has not returned for this long is presumed gone.
const STALE_MS: i64 = 35_000;

/// Where a batch goes: an object, and its command that carries a list of items.
#[derive(Clone)]
pub struct Target {
    pub binding: &'static str,
    pub name: String,
    /// The command variant whose `items` are the batch (e.g. `checks`).
    pub variant: &'static str,
}

impl Target {
    /// Rows 3–14 in the key's object.
    pub fn keys(id: &str) -> Self {
        Target {
            binding: objects::KEYS,
            name: id.to_string(),
            variant: "checks",
        }
    }

    /// Row 15 in the account's object.
    pub fn accounts(account: &str) -> Self {
        Target {
            binding: objects::ACCOUNTS,
            name: account.to_string(),
            variant: "admits",
        }
    }
}

struct Entry {
    item: Value,
    outcome: RefCell<Option<Result<Value, ApiError>>>,
    /// Resolves the promise the request is waiting on.
    wake: RefCell<Option<Function>>,
}

#[derive(Default)]
struct Lane {
    /// When the driver last started a call (none: nobody drives).
    driving: Option<i64>,
    queue: VecDeque<Rc<Entry>>,
}

impl Lane {
    /// Takes the lane when nobody drives it, or its driver went silent.
    fn take(&mut self, now: i64) -> bool {
        let free = self.driving.is_none_or(|at| now - at > STALE_MS);
        if free {
            self.driving = Some(now);
        }
        free
    }
}

thread_local! {
    static LANES: RefCell<HashMap<String, Lane>> = RefCell::new(HashMap::new());
}

fn with_lane<T>(lane: &str, f: impl FnOnce(&mut Lane) -> T) -> Result<T, ApiError> {
    LANES.with(|l| {
        let mut lanes = l.try_borrow_mut().map_err(ApiError::internal)?;
        let lane = lanes.entry(lane.to_string()).or_default();
        Ok(f(lane))
    })
}

/// The object's answer to `item`, decided in a batch with whatever else waits.
pub async fn submit(
    ctx: &Context,
    env: &Env,
    target: &Target,
    item: Value,
) -> Result<Value, ApiError> {
    let lane = format!("{}/{}", target.binding, target.name);
    let entry = Rc::new(Entry {
        item,
        outcome: RefCell::new(None),
        wake: RefCell::new(None),
    });
    let mut lead = with_lane(&lane, |l| {
        l.queue.push_back(entry.clone());
        l.take(now_ms())
    })?;
    loop {
        if lead {
            let (env, lane, target) = (env.clone(), lane.clone(), target.clone());
            ctx.wait_until(async move { drive(&env, &lane, &target).await });
        }
        let promise = Promise::new(&mut |resolve, _reject| {
            if let Ok(mut wake) = entry.wake.try_borrow_mut() {
                *wake = Some(resolve);
            }
        });
        let watch = Delay::from(Duration::from_millis(WATCH_MS));
        if let Either::Left((Err(e), _)) = select(JsFuture::from(promise), watch).await {
            return Err(ApiError::internal(format!("{e:?}")));
        }
        if let Some(outcome) = entry
            .outcome
            .try_borrow_mut()
            .ok()
            .and_then(|mut o| o.take())
        {
            return outcome;
        }
        // No answer yet: the driver handed the lane on, or is still busy.
        lead = with_lane(&lane, |l| l.take(now_ms()))?;
    }
}

async fn drive(env: &Env, lane: &str, target: &Target) {
    for _ in 0..MAX_ROUNDS {
        let batch: Vec<Rc<Entry>> = with_lane(lane, |l| {
            l.driving = Some(now_ms());
            let n = l.queue.len().min(MAX_BATCH);
            l.queue.drain(..n).collect()
        })
        .unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        let items: Vec<&Value> = batch.iter().map(|e| &e.item).collect();
        let cmd = json!({ target.variant: { "items": items } });
        let reply = objects::call(env, target.binding, &target.name, &cmd).await;
        for (entry, answer) in batch.iter().zip(batch::answers(reply, batch.len())) {
            if let Ok(mut outcome) = entry.outcome.try_borrow_mut() {
                *outcome = Some(answer);
            }
            wake(entry);
        }
    }
    // Hand the lane on: every waiting request is woken, the first to run drives.
    let waiting: Vec<Rc<Entry>> = LANES.with(|l| {
        let Ok(mut lanes) = l.try_borrow_mut() else {
            return Vec::new();
        };
        match lanes.get_mut(lane) {
            Some(l) if !l.queue.is_empty() => {
                l.driving = None;
                l.queue.iter().cloned().collect()
            }
            _ => {
                lanes.remove(lane);
                Vec::new()
            }
        }
    });
    for entry in &waiting {
        wake(entry);
    }
}

fn wake(entry: &Entry) {
    let resolve = entry.wake.try_borrow_mut().ok().and_then(|mut w| w.take());
    if let Some(resolve) = resolve {
        let _ = resolve.call0(&JsValue::UNDEFINED);
    }
}
