//! What the core takes from the runtime: configuration, the clock, randomness.

use crate::config::Config;
use crate::error::ApiError;
use crate::key::record::HashEntry;
use crate::limits::plan_lease;
use crate::limits::plans::PlanCopy;
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
    // Hash → key location (or `None`: no such key), with an expiry. Only locates the
    // key's object, which decides everything, so a stale entry is harmless; and a
    // hash unknown now cannot become a key later (secrets are 160 random bits).
    static HASHES: RefCell<HashMap<String, (Option<HashEntry>, i64)>> = RefCell::new(HashMap::new());
    // Account → its plan and version, as its object last answered, with the end of
    // its lease (0: none): sent with each key check so a key whose copy is older
    // takes it before deciding; while leased, the account is not asked.
    static PLANS: RefCell<HashMap<String, (PlanCopy, i64)>> = RefCell::new(HashMap::new());
    // Account → the lease end a background renewal was asked for (`renew_plan_now`).
    static RENEWING: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
    // Key id → the name of its object, once it has moved (`objects::key::placement`).
    // A stale name is harmless: the old object answers with the next one.
    static KEY_HOMES: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// Bound on each isolate cache; past it the cache starts afresh.
const MAX_CACHED: usize = 20_000;

fn bounded_insert<V>(map: &mut HashMap<String, V>, key: &str, value: V) {
    if map.len() >= MAX_CACHED {
        map.clear();
    }
    map.insert(key.to_string(), value);
}

/// The name of key `id`'s object as this isolate last learned it (`None`: its id).
pub fn key_home(id: &str) -> Option<String> {
    KEY_HOMES.with(|h| h.try_borrow().ok()?.get(id).cloned())
}

/// Key `id` lives in the object `name`; an older name than the one known is ignored.
pub fn learn_key_home(id: &str, name: &str) {
    use crate::objects::key::placement::generation;
    KEY_HOMES.with(|h| {
        if let Ok(mut map) = h.try_borrow_mut() {
            if map
                .get(id)
                .is_none_or(|known| generation(known) < generation(name))
            {
                bounded_insert(&mut map, id, name.to_string());
            }
        }
    });
}

/// `Some(lookup)` when this isolate knows where `hash` leads (or that it leads nowhere).
pub fn cached_hash(hash: &str, now: i64) -> Option<Option<HashEntry>> {
    HASHES.with(|h| {
        let map = h.try_borrow().ok()?;
        let (entry, expires) = map.get(hash)?;
        (*expires > now).then(|| entry.clone())
    })
}

pub fn cache_hash(hash: &str, entry: Option<HashEntry>, expires: i64) {
    HASHES.with(|h| {
        if let Ok(mut map) = h.try_borrow_mut() {
            bounded_insert(&mut map, hash, (entry, expires));
        }
    });
}

pub fn known_plan(account: &str) -> Option<PlanCopy> {
    PLANS.with(|p| p.try_borrow().ok()?.get(account).map(|(c, _)| c.clone()))
}

/// The account's plan while this isolate holds a lease on it (`limits::plan_lease`).
pub fn leased_plan(account: &str, now: i64) -> Option<PlanCopy> {
    PLANS.with(|p| {
        let map = p.try_borrow().ok()?;
        let (copy, until) = map.get(account)?;
        plan_lease::holds(*until, now).then(|| copy.clone())
    })
}

/// Whether this request should renew the account's plan lease in the background:
/// once less than half of it is left, once per lease (so a key admitted from a
/// budget lease never waits for the account when its plan lease would lapse).
pub fn renew_plan_now(account: &str, now: i64, lease_ms: i64) -> bool {
    let Some(until) = PLANS.with(|p| p.try_borrow().ok()?.get(account).map(|(_, u)| *u)) else {
        return false;
    };
    if until - now >= lease_ms / 2 {
        return false;
    }
    RENEWING.with(|r| {
        let Ok(mut map) = r.try_borrow_mut() else {
            return false;
        };
        if map.get(account) == Some(&until) {
            return false;
        }
        bounded_insert(&mut map, account, until);
        true
    })
}

/// Keeps the newest version seen (answers can arrive out of order) and, for that
/// version, the latest lease.
pub fn remember_plan(account: &str, copy: &PlanCopy, lease_until: Option<i64>) {
    let until = lease_until.unwrap_or(0);
    PLANS.with(|p| {
        if let Ok(mut map) = p.try_borrow_mut() {
            let keep = match map.get(account) {
                None => Some((copy.clone(), until)),
                Some((known, _)) if known.version < copy.version => Some((copy.clone(), until)),
                Some((known, held)) if known.version == copy.version && *held < until => {
                    Some((copy.clone(), until))
                }
                Some(_) => None,
            };
            if let Some(v) = keep {
                bounded_insert(&mut map, account, v);
            }
        }
    });
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
    // Vars and secrets alike (`WEBHOOK_SECRET` is a secret).
    let lookup = |name: &str| {
        env.var(name)
            .or_else(|_| env.secret(name))
            .ok()
            .map(|v| v.to_string())
    };
    let cfg =
        Rc::new(Config::from_lookup(lookup).map_err(|reason| ApiError::Misconfigured { reason })?);
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
