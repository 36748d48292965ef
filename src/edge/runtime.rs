//! What the core takes from the runtime: configuration, the clock, randomness.

use crate::config::Config;
use crate::error::ApiError;
use std::cell::OnceCell;
use std::rc::Rc;
use worker::Env;

thread_local! {
    // Vars are fixed for the life of an isolate: parse them once.
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
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
