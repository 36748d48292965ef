//! Row 3's first half: where a presented key leads. Garbage is refused before any
//! storage read (format and checksum); a well-formed key is found in this
//! isolate's memory, KV, or the key's own object (`kv_index`). To a confined
//! verifier, keys of other accounts are unknown.

use super::context::{Presented, RequestContext};
use super::kv_index;
use crate::error::ApiError;
use crate::key::format::parse_key;
use crate::key::record::HashEntry;

/// The key's index entry and the hash of the presented secret.
pub async fn locate(
    rc: &RequestContext<'_>,
    presented: &Presented<'_>,
) -> Result<(HashEntry, String), ApiError> {
    let token = presented.token.ok_or(ApiError::InvalidKey)?;
    let parsed = parse_key(&rc.cfg.key_prefix, token).ok_or(ApiError::InvalidKey)?;
    let entry = kv_index::resolve(rc.env, rc.cfg, &rc.faults, &parsed)
        .await?
        .filter(|e| presented.only_account.is_none_or(|a| a == e.account))
        .ok_or(ApiError::InvalidKey)?;
    Ok((entry, parsed.hash))
}
