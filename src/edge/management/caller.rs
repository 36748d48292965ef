//! Who calls the management routes, and the one confinement check every operation
//! goes through: the bootstrap token reaches everything; an admin key reaches only
//! keys of its own account that are no freer than itself (others read as 404) and
//! creates, changes or rotates keys only within its own powers (403).

use crate::config::Config;
use crate::edge::js::runtime::now_ms;
use crate::edge::request::context::RequestContext;
use crate::edge::request::gate;
use crate::edge::request::guard;
use crate::edge::request::settle::{self, Admission};
use crate::error::ApiError;
use crate::key::identity::Identity;
use crate::key::powers::{self, Powers};
use crate::key::record::{HashEntry, KeyRecord};
use crate::notify::audit::AuditEvent;
use crate::request::inbound::RequestLine;
use crate::request::policy::Needs;
use serde_json::Value;
use worker::{Context, Env, Request, Response};

pub enum Caller {
    Root,
    /// A key holding what the operation needs: `admin`, or `verify` for `/verify`.
    Key(Box<Admission>),
}

/// A refused caller: why, and the key its credential opened, if it opened one.
pub struct Refused {
    pub error: ApiError,
    pub key: Option<HashEntry>,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused { error, key: None }
    }
}

/// Row 2 first (exact, from the address's object), so a blocked address is refused
/// before any credential is compared; then the bootstrap token (compared in constant
/// time); then a key holding `permission`, through the gate's own rows 3–15, by its
/// current secret only (a secret in its rotation grace period never manages). A
/// wrong credential of either kind counts as a failed attempt.
pub async fn authenticate(
    req: &Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
    line: &RequestLine,
    permission: &str,
) -> Result<Caller, Refused> {
    guard::check_not_blocked(env, cfg, req.headers()).await?;
    // Two different credentials are refused before either is compared; the
    // bootstrap token is read from `Authorization: Bearer` only.
    gate::credential(cfg, req.headers()).map_err(|error| Refused { error, key: None })?;
    let header = req.headers().get("Authorization").ok().flatten();
    if let Some(token) = crate::request::inbound::bearer_token(header.as_deref()) {
        if let Ok(secret) = env.secret("ADMIN_TOKEN").map(|s| s.to_string()) {
            if !secret.is_empty() && crate::key::format::digest_eq(token, &secret) {
                return Ok(Caller::Root);
            }
        }
    }
    let needs = Needs {
        permissions: vec![permission.into()],
        projects: Vec::new(),
        cost: 1,
        spends: false,
    };
    let rc = RequestContext::plain(env, cfg, ctx);
    gate::authenticate(&rc, req.headers(), line, &needs, false)
        .await
        .map(|a| Caller::Key(Box::new(a)))
        .map_err(|(error, key)| Refused { error, key })
}

impl Caller {
    pub fn key(&self) -> Option<&Identity> {
        match self {
            Caller::Root => None,
            Caller::Key(a) => Some(&a.identity),
        }
    }

    /// An admin key's powers (the bootstrap token has every power).
    pub fn powers(&self) -> Option<&Powers> {
        self.key().map(|id| &id.powers)
    }

    /// Whether the caller may see account `account` at all.
    pub fn may_see_account(&self, account: &str) -> bool {
        self.key().is_none_or(|id| id.account == account)
    }

    /// The one visibility check: a key outside the caller's reach does not exist
    /// for it.
    pub fn reaches(&self, cfg: &Config, rec: &KeyRecord) -> bool {
        self.excess(cfg, rec).is_none()
    }

    /// The one grant check: what a create, a change or a rotation would make of a
    /// key must lie within the caller's powers.
    pub fn may_grant(&self, cfg: &Config, rec: &KeyRecord) -> Result<(), ApiError> {
        match self.excess(cfg, rec) {
            None => Ok(()),
            Some(why) => Err(ApiError::Forbidden {
                reason: format!("this admin key cannot make a key with {why}"),
            }),
        }
    }

    fn excess(&self, cfg: &Config, rec: &KeyRecord) -> Option<String> {
        let mine = self.powers()?;
        let theirs = powers_of(cfg, rec);
        // A key carved from this admin key spends from it on every request: its
        // limits, quotas and credits are this key's too (`Powers::carved`).
        let carved = self
            .key()
            .is_some_and(|me| rec.parents.contains(&me.key_id));
        powers::excess(mine, &if carved { theirs.carved() } else { theirs })
    }

    /// The account an admin key is confined to, refusing any other one asked for.
    pub fn confine(&self, requested: Option<String>) -> Result<Option<String>, ApiError> {
        match (self.key(), requested) {
            (None, requested) => Ok(requested),
            (Some(me), Some(a)) if a != me.account => Err(ApiError::Forbidden {
                reason: format!("this admin key manages only account '{}'", me.account),
            }),
            (Some(me), _) => Ok(Some(me.account.clone())),
        }
    }

    /// Who the caller is, for `GET /me` (the dashboard's session).
    pub fn view(&self) -> Value {
        match self.key() {
            None => serde_json::json!({
                "actor": "admin_token", "key_id": null, "account": null, "environment": null,
                "permissions": ["admin"], "projects": [], "expires_at": null, "ip_allowlist": [],
                "rate_limits": {}, "quotas": {},
            }),
            Some(id) => serde_json::json!({
                "actor": format!("key:{}", id.key_id), "key_id": id.key_id, "account": id.account,
                "environment": id.environment,
                "permissions": id.permissions, "projects": id.projects,
                "expires_at": id.powers.expires_at.map(crate::time_fmt::to_rfc3339),
                "ip_allowlist": id.powers.ip_allowlist,
                "rate_limits": id.powers.rate_limits.unwrap_or_default(),
                "quotas": id.powers.quotas.unwrap_or_default(),
            }),
        }
    }

    /// An admin key's powers, for filtering what it is shown.
    pub fn viewer(&self) -> Option<Powers> {
        self.powers().cloned()
    }

    pub fn actor(&self) -> String {
        match self.key() {
            None => "admin_token".into(),
            Some(id) => format!("key:{}", id.key_id),
        }
    }

    /// An audit event by this caller about `key` (whose powers it records).
    pub fn event(
        &self,
        cfg: &Config,
        action: &str,
        key: Option<&KeyRecord>,
        account: &str,
        details: Value,
    ) -> AuditEvent {
        AuditEvent {
            at: now_ms(),
            actor: self.actor(),
            action: action.into(),
            key_id: key.map(|k| k.id.clone()),
            account: account.into(),
            details,
            scope: key.map(|k| powers_of(cfg, k)),
        }
    }

    /// An admin key's own request is settled like any other: the management API
    /// is the origin that answered it.
    pub fn settle(
        &self,
        ctx: &Context,
        env: &Env,
        cfg: &Config,
        outcome: &Result<Response, ApiError>,
    ) {
        if let Caller::Key(admission) = self {
            let status = match outcome {
                Ok(r) => r.status_code(),
                Err(e) => e.status(),
            };
            let elapsed = (now_ms() - admission.started).clamp(0, i64::from(u32::MAX)) as u32;
            settle::settle(ctx, env, cfg, admission, Some(status), status, elapsed);
        }
    }
}

/// A key's powers under its account's plan.
pub fn powers_of(cfg: &Config, rec: &KeyRecord) -> Powers {
    Powers::of(rec, cfg.plan(rec.plan.as_deref()).1)
}
