//! The KV index: SHA-256 of a secret → the key's id and account. It only locates the
//! key's Durable Object, which decides; so a stale edge copy (a rotated or deleted
//! secret) is refused there, and caching it is safe.

use crate::error::ApiError;
use crate::model::HashEntry;
use worker::Env;

const BINDING: &str = "KEYS";

fn name(hash: &str) -> String {
    format!("h:{hash}")
}

pub async fn lookup(env: &Env, hash: &str, cache_ttl: u64) -> Result<Option<HashEntry>, ApiError> {
    let kv = env.kv(BINDING).map_err(ApiError::internal)?;
    kv.get(&name(hash))
        .cache_ttl(cache_ttl)
        .json::<HashEntry>()
        .await
        .map_err(ApiError::internal)
}

/// Writes the entry; with `expires_at` (Unix seconds) KV drops it by itself then.
pub async fn put(
    env: &Env,
    hash: &str,
    entry: &HashEntry,
    expires_at: Option<u64>,
) -> Result<(), ApiError> {
    let kv = env.kv(BINDING).map_err(ApiError::internal)?;
    let mut put = kv.put(&name(hash), entry).map_err(ApiError::internal)?;
    if let Some(at) = expires_at {
        put = put.expiration(at);
    }
    put.execute().await.map_err(ApiError::internal)
}

pub async fn remove(env: &Env, hash: &str) -> Result<(), ApiError> {
    let kv = env.kv(BINDING).map_err(ApiError::internal)?;
    kv.delete(&name(hash)).await.map_err(ApiError::internal)
}
