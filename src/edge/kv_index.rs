//! The KV index: SHA-256 of a secret → the key's id and account. It only locates the
//! key's Durable Object, which decides; so a stale edge copy (a rotated or deleted
//! secret) is refused there, and caching it is safe.

use super::objects::unavailable;
use super::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::model::HashEntry;
use worker::Env;

const BINDING: &str = "KEYS";

fn name(hash: &str) -> String {
    format!("h:{hash}")
}

/// Where `hash` leads: from this isolate's memory when it looked the hash up less
/// than `cache_ttl` seconds ago, else from KV (itself cached at the edge).
pub async fn lookup(env: &Env, hash: &str, cache_ttl: u64) -> Result<Option<HashEntry>, ApiError> {
    let now = now_ms();
    if let Some(known) = runtime::cached_hash(hash, now) {
        return Ok(known);
    }
    let kv = env.kv(BINDING).map_err(|e| unavailable("KV", e))?;
    let entry = kv
        .get(&name(hash))
        .cache_ttl(cache_ttl)
        .json::<HashEntry>()
        .await
        .map_err(|e| unavailable("KV", e))?;
    runtime::cache_hash(hash, entry.clone(), now + cache_ttl as i64 * 1000);
    Ok(entry)
}

/// Writes the entry; with `expires_at` (Unix seconds) KV drops it by itself then.
pub async fn put(
    env: &Env,
    hash: &str,
    entry: &HashEntry,
    expires_at: Option<u64>,
) -> Result<(), ApiError> {
    let kv = env.kv(BINDING).map_err(|e| unavailable("KV", e))?;
    let mut put = kv.put(&name(hash), entry).map_err(ApiError::internal)?;
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
