//! What the core takes from the runtime: configuration, the clock, randomness.

use crate::config::Config;
use crate::error::ApiError;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use worker::Env;

thread_local! {
    // Vars are fixed for the life of an isolate: parse them once.
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
    // Addresses this isolate has seen blocked (row 2), with the block's end: valid
    // requests are checked against this without any I/O.
    static BLOCKED: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
}

/// Bound on remembered blocks; past it, expired entries are dropped first.
const MAX_BLOCKED: usize = 10_000;

pub fn blocked_until(ip: &str, now: i64) -> Option<i64> {
    BLOCKED.with(|b| b.try_borrow().ok()?.get(ip).copied().filter(|u| *u > now))
}

pub fn remember_block(ip: &str, until: i64, now: i64) {
    BLOCKED.with(|b| {
        if let Ok(mut map) = b.try_borrow_mut() {
            if map.len() >= MAX_BLOCKED {
                map.retain(|_, u| *u > now);
                if map.len() >= MAX_BLOCKED {
                    map.clear();
                }
            }
            map.insert(ip.to_string(), until);
        }
    });
}

pub fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    if let Some(cfg) = CONFIG.with(|c| c.get().cloned()) {
        return Ok(cfg);
    }
    let cfg = Rc::new(
        Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
            .map_err(|e| ApiError::internal(format!("configuration: {e}")))?,
    );
    CONFIG.with(|c| {
        let _ = c.set(cfg.clone());
    });
    Ok(cfg)
}

/// Unix milliseconds.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

pub fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(ApiError::internal)?;
    Ok(buf)
}
