//! Row 2 and failed attempts: the client's address, blocks this isolate knows
//! (no I/O for anyone not blocked), the address's own object asked where it must
//! be exact (the management routes), and a failed attempt counted against the
//! address's bucket — or, for a confined verifier's reports, its account's.

use super::context::RequestContext;
use crate::config::Config;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::{self, now_ms};
use crate::error::ApiError;
use crate::limits::failed_attempts::{address_bucket, FailureOutcome};
use crate::objects::ip_guard::IpGuardCommand;
use crate::request::faults::Target;
use crate::time_fmt::retry_after;
use worker::{Env, Headers};

/// The client's address as Cloudflare reports it (the client cannot set it there).
pub fn client_ip(headers: &Headers) -> Option<String> {
    headers.get("CF-Connecting-IP").ok().flatten()
}

/// The buckets a request's failures are read from and counted in: the address's
/// own, and — for a verifier confined to `account` — that account's (where its
/// reports count, so they block nobody else).
pub struct Buckets {
    pub address: Option<String>,
    pub counted: Option<String>,
}

pub fn buckets(ip: Option<&str>, account: Option<&str>) -> Buckets {
    let address = ip.map(address_bucket);
    let counted = address.as_deref().map(|b| match account {
        Some(a) => format!("{a}|{b}"),
        None => b.to_string(),
    });
    Buckets { address, counted }
}

/// Row 2, from what this isolate knows.
pub fn blocked_here(b: &Buckets, now: i64) -> Result<(), ApiError> {
    let until = [b.address.as_deref(), b.counted.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|b| runtime::blocked_until(b, now));
    match until {
        Some(until) => Err(ApiError::IpBlocked {
            retry_after: retry_after(until - now),
        }),
        None => Ok(()),
    }
}

/// Row 3 happened: count it against the bucket; the answer is row 2 if the address
/// was already blocked. A count that cannot be made is lost (logged); the request
/// is refused either way.
pub async fn failed_attempt(rc: &RequestContext<'_>, bucket: Option<&str>) -> ApiError {
    let Some(bucket) = bucket.filter(|_| rc.cfg.ip_block.threshold > 0) else {
        return ApiError::InvalidKey;
    };
    let fault = rc.fault(Target::IpGuard);
    let fail = rpc::ask_with::<FailureOutcome>(
        rc.env,
        Object::IpGuard(bucket),
        &IpGuardCommand::Fail,
        fault,
    );
    match fail.await {
        Ok(outcome) => {
            let now = now_ms();
            if let Some(until) = outcome.blocked_until {
                runtime::remember_block(bucket, until, now);
                if outcome.was_blocked {
                    return ApiError::IpBlocked {
                        retry_after: retry_after(until - now),
                    };
                }
            }
            ApiError::InvalidKey
        }
        Err(_) => ApiError::InvalidKey,
    }
}

/// Row 2, asked of the address's own object (exact across isolates): for the
/// management routes, before any credential is compared.
pub async fn check_not_blocked(env: &Env, cfg: &Config, headers: &Headers) -> Result<(), ApiError> {
    let Some(bucket) = client_ip(headers)
        .as_deref()
        .map(address_bucket)
        .filter(|_| cfg.ip_block.threshold > 0)
    else {
        return Ok(());
    };
    let status: FailureOutcome =
        rpc::ask(env, Object::IpGuard(&bucket), &IpGuardCommand::Status).await?;
    let now = now_ms();
    match status.blocked_until.filter(|u| *u > now) {
        Some(until) => {
            runtime::remember_block(&bucket, until, now);
            Err(ApiError::IpBlocked {
                retry_after: retry_after(until - now),
            })
        }
        None => Ok(()),
    }
}
