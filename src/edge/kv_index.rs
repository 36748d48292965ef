//! The KV index: SHA-256 of a secret → the key's id and account. It only locates the
//! key's Durable Object, which decides; so a stale edge copy (a rotated or deleted
//! secret) is refused there, and caching it is safe. A miss for a key that names
//! its object is asked of that object (`lookup`): KV's copy may not have reached
//! this location yet.

use super::objects::{self, unavailable, KEYS};
use super::runtime::{self, now_ms};
use crate::config::Config;
use crate::error::ApiError;
use crate::key::format::ParsedKey;
use crate::key::lookup::{self, Lookup};
use crate::key::record::HashEntry;
use crate::objects::key::KeyCommand;
use worker::Env;

const BINDING: &str = "KEYS";

fn name(hash: &str) -> String {
    format!("h:{hash}")
}

/// Where a presented key leads: this isolate's memory, else KV (itself cached at
/// the edge), else — for a key that names its object — that object. `None`: no key.
pub async fn resolve(
    env: &Env,
    cfg: &Config,
    key: &ParsedKey,
) -> Result<Option<HashEntry>, ApiError> {
    let now = now_ms();
    if let Some(known) = runtime::cached_hash(&key.hash, now) {
        return Ok(known);
    }
    let until = now + cfg.kv_cache_ttl as i64 * 1000;
    let kv = read(env, cfg, &key.hash, now).await?;
    let (found, asked) = match lookup::decide(kv, key.key_id.as_deref()) {
        Lookup::Found(entry) => (Some(entry), false),
        Lookup::Unknown => (None, false),
        Lookup::AskKey(id) => {
            let locate = KeyCommand::Locate {
                hash: key.hash.clone(),
            };
            match objects::call_as::<_, HashEntry>(env, KEYS, &id, &locate).await {
                Ok(entry) => (Some(entry), true),
                Err(ApiError::InvalidKey) => (None, true),
                Err(e) => return Err(e),
            }
        }
    };
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
) -> Result<Option<HashEntry>, ApiError> {
    let kv = env.kv(BINDING).map_err(|e| unavailable("KV", e))?;
    let entry = kv
        .get(&name(hash))
        .cache_ttl(cfg.kv_cache_ttl)
        .json::<HashEntry>()
        .await
        .map_err(|e| unavailable("KV", e))?;
    let hide = cfg.test_kv_hide_writes_ms;
    Ok(entry.filter(|e| hide == 0 || e.written_at.is_none_or(|at| now - at >= hide)))
}

/// Writes the entry (stamped with the time); with `expires_at` (Unix seconds) KV
/// drops it by itself then.
pub async fn put(
    env: &Env,
    hash: &str,
    entry: &HashEntry,
    expires_at: Option<u64>,
) -> Result<(), ApiError> {
    let kv = env.kv(BINDING).map_err(|e| unavailable("KV", e))?;
    let stamped = HashEntry {
        written_at: Some(now_ms()),
        ..entry.clone()
    };
    let mut put = kv.put(&name(hash), stamped).map_err(ApiError::internal)?;
    if let Some(at) = expires_at {
        put = put.expiration(at);
    }
    put.execute().await.map_err(|e| unavailable("KV", e))
}

pub async fn remove(env: &Env, hash: &str) -> Result<(), ApiError> {
    let kv = env.kv(BINDING).map_err(|e| unavailable("KV", e))?;
    kv.delete(&name(hash))
        .await
        .map_err(|e| unavailable("KV", e))
}
