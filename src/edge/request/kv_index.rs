//! The KV index: SHA-256 of a secret → the key's id and account. It only locates the
//! key's Durable Object, which decides; so a stale edge copy (a rotated or deleted
//! secret) is refused there, and caching it is safe. A miss for a key that names
//! its object is asked of that object (`key::lookup`): KV's copy may not have
//! reached this location yet. Every KV call waits at most `STORAGE_TIMEOUT_SECONDS`
//! (503 past it, fail closed).

use crate::config::Config;
use crate::edge::js::deadline;
use crate::edge::js::rpc::{self, unavailable, Object};
use crate::edge::js::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::key::format::ParsedKey;
use crate::key::lookup::{self, Lookup};
use crate::key::record::HashEntry;
use crate::objects::key::KeyCommand;
use crate::request::faults::{Faults, Mode, Target};
use std::future::Future;
use worker::Env;

const BINDING: &str = "KEYS";

fn name(hash: &str) -> String {
    format!("h:{hash}")
}

/// A KV call within the deadline (and the request's KV fault, if any).
async fn kv<T, F>(cfg: &Config, fault: Option<Mode>, call: F) -> Result<T, ApiError>
where
    F: Future<Output = worker::Result<T>>,
{
    let call = async {
        match fault {
            Some(Mode::Fail) => Err(worker::Error::RustError("TEST_FAULTS".into())),
            Some(Mode::Stall) => deadline::never().await,
            None => call.await,
        }
    };
    match deadline::within(cfg.storage_timeout_ms, call).await {
        Ok(r) => r.map_err(|e| unavailable("KV", e)),
        Err(deadline::Elapsed) => Err(unavailable("KV", "no answer within the deadline")),
    }
}

/// Where a presented key leads: this isolate's memory, else KV (itself cached at
/// the edge), else — for a key that names its object — that object. `None`: no key.
pub async fn resolve(
    env: &Env,
    cfg: &Config,
    faults: &Faults,
    key: &ParsedKey,
) -> Result<Option<HashEntry>, ApiError> {
    let now = now_ms();
    if let Some(known) = runtime::cached_hash(&key.hash, now) {
        return Ok(known);
    }
    let until = now + cfg.kv_cache_ttl as i64 * 1000;
    let found = read(env, cfg, &key.hash, now, faults.of(Target::Kv)).await?;
    let (found, asked) = match lookup::decide(found, key.key_id.as_deref()) {
        Lookup::Found(entry) => (Some(entry), false),
        Lookup::Unknown => (None, false),
        Lookup::AskKey(id) => {
            let locate = KeyCommand::Locate {
                hash: key.hash.clone(),
            };
            let fault = faults.of(Target::KeyObject);
            match rpc::ask_with::<HashEntry>(env, Object::Key(&id), &locate, fault).await {
                Ok(entry) => (Some(entry), true),
                Err(ApiError::InvalidKey) => (None, true),
                Err(e) => return Err(e),
            }
        }
    };
    // An entry written after a move leads to the key's object now.
    if let Some(HashEntry {
        id,
        object: Some(at),
        ..
    }) = &found
    {
        runtime::learn_key_home(id, at);
    }
    if found.is_some() || lookup::remember_unknown(asked, key.key_id.as_deref()) {
        runtime::cache_hash(&key.hash, found.clone(), until);
    }
    Ok(found)
}

/// KV's entry for `hash`; with `TEST_KV_HIDE_WRITES_SECONDS`, entries younger than
/// that are not found, as in a location KV has not reached yet.
async fn read(
    env: &Env,
    cfg: &Config,
    hash: &str,
    now: i64,
    fault: Option<Mode>,
) -> Result<Option<HashEntry>, ApiError> {
    let store = env.kv(BINDING).map_err(|e| unavailable("KV", e))?;
    let get = store.get(&name(hash)).cache_ttl(cfg.kv_cache_ttl);
    let entry = kv(cfg, fault, async {
        get.json::<HashEntry>().await.map_err(worker::Error::from)
    })
    .await?;
    let hide = cfg.test_kv_hide_writes_ms;
    Ok(entry.filter(|e| hide == 0 || e.written_at.is_none_or(|at| now - at >= hide)))
}

/// Writes the entry (stamped with the time); with `expires_at` (Unix seconds) KV
/// drops it by itself then.
pub async fn put(
    env: &Env,
    cfg: &Config,
    hash: &str,
    entry: &HashEntry,
    expires_at: Option<u64>,
) -> Result<(), ApiError> {
    let store = env.kv(BINDING).map_err(|e| unavailable("KV", e))?;
    let stamped = HashEntry {
        written_at: Some(now_ms()),
        ..entry.clone()
    };
    let mut put = store
        .put(&name(hash), stamped)
        .map_err(ApiError::internal)?;
    if let Some(at) = expires_at {
        put = put.expiration(at);
    }
    kv(cfg, None, async {
        put.execute().await.map_err(worker::Error::from)
    })
    .await
}

pub async fn remove(env: &Env, cfg: &Config, hash: &str) -> Result<(), ApiError> {
    let store = env.kv(BINDING).map_err(|e| unavailable("KV", e))?;
    kv(cfg, None, async {
        store.delete(&name(hash)).await.map_err(worker::Error::from)
    })
    .await
}
