//! One request's context, read by every phase of the path: the runtime's handles,
//! the configuration, when the request started, and (tests only) the faults it
//! asked for. And the credential a request presents for rows 2–15.

use crate::config::Config;
use crate::edge::js::runtime::now_ms;
use crate::error::ApiError;
use crate::notify::logs::RequestFacts;
use crate::request::faults::{self, Faults, Target};
use worker::{Context, Env, Headers};

pub struct RequestContext<'a> {
    pub env: &'a Env,
    pub cfg: &'a Config,
    pub ctx: &'a Context,
    /// Unix ms.
    pub started: i64,
    pub faults: Faults,
}

impl<'a> RequestContext<'a> {
    /// The context of a request with these headers (its faults read only when
    /// `TEST_FAULTS=true`; a malformed fault header is 400).
    pub fn new(
        env: &'a Env,
        cfg: &'a Config,
        ctx: &'a Context,
        headers: &Headers,
    ) -> Result<Self, ApiError> {
        // Read only when asked for: every header read is a call into JavaScript.
        let sent = || headers.get(faults::HEADER).ok().flatten();
        let faults = match cfg.test_faults.then(sent).flatten() {
            Some(v) => faults::parse(&v)?,
            None => Faults::none(),
        };
        Ok(RequestContext {
            env,
            cfg,
            ctx,
            started: now_ms(),
            faults,
        })
    }

    /// A context with no faults: for work that is not a client's request.
    pub fn plain(env: &'a Env, cfg: &'a Config, ctx: &'a Context) -> Self {
        RequestContext {
            env,
            cfg,
            ctx,
            started: now_ms(),
            faults: Faults::none(),
        }
    }

    pub fn fault(&self, target: Target) -> Option<faults::Mode> {
        self.faults.of(target)
    }

    /// Milliseconds since the request started.
    pub fn elapsed(&self) -> u32 {
        (now_ms() - self.started).clamp(0, i64::from(u32::MAX)) as u32
    }
}

/// A credential presented for rows 2–15: from a request's `Authorization` header
/// (the gate, the management routes) or from a verify call's body.
pub struct Presented<'a> {
    pub token: Option<&'a str>,
    pub facts: RequestFacts,
    /// For an account-confined verifier: keys of other accounts are unknown to it,
    /// and the failed attempts it reports count within its account only.
    pub only_account: Option<&'a str>,
    /// Whether a secret in its rotation grace period opens the key: on the request
    /// path and for the key a verify call checks, never for a management caller.
    pub grace: bool,
}
