//! Refused management attempts — every 401 and 403 on the management routes — in
//! the audit trail (`admin.refused`): who (the key whose credential it was, when the
//! credential opened one; else `anonymous`), the route, and why. The key's account
//! keeps them; what no account owns (an unknown credential, a blocked address) goes
//! to the deployment's own trail (`audit::DEPLOYMENT_TRAIL`). At most
//! `AUDIT_REFUSALS_PER_HOUR` are recorded per client address, counted in the
//! address's own guard object, so a flood cannot fill a trail. Written after the
//! answer; never delays it.

use crate::config::Config;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::now_ms;
use crate::edge::js::task;
use crate::edge::request::guard::client_ip;
use crate::error::ApiError;
use crate::key::powers::Powers;
use crate::limits::failed_attempts::address_bucket;
use crate::notify::audit::{AuditEvent, DEPLOYMENT_TRAIL, REFUSED};
use crate::objects::account::AccountCommand;
use crate::request::inbound::RequestLine;
use serde_json::json;
use worker::{console_error, Context, Env, Headers};

/// Whose attempt it was, as far as keyward knows.
pub enum Who {
    /// A key's credential, and its powers when it was authenticated.
    Key {
        id: String,
        account: String,
        powers: Option<Box<Powers>>,
    },
    /// No credential keyward knows (none, garbage, a wrong token, a blocked address).
    Anonymous,
}

/// Records `error` when it is a refusal (401 or 403); does nothing otherwise.
pub fn record(
    ctx: &Context,
    env: &Env,
    cfg: &Config,
    headers: &Headers,
    line: &RequestLine,
    who: Who,
    error: &ApiError,
) {
    let status = error.status();
    if !matches!(status, 401 | 403) || cfg.audit_refusals_per_hour == 0 {
        return;
    }
    let ip = client_ip(headers);
    let bucket = address_bucket(ip.as_deref().unwrap_or(""));
    let details = json!({
        "route": format!("{} {}", line.method, line.path),
        "status": status,
        "code": error.code(),
        "reason": error.message(),
        "ip": ip,
    });
    let event = match who {
        Who::Key {
            id,
            account,
            powers,
        } => AuditEvent {
            at: now_ms(),
            actor: format!("key:{id}"),
            action: REFUSED.into(),
            key_id: Some(id),
            account,
            details,
            scope: powers.map(|p| *p),
        },
        Who::Anonymous => AuditEvent {
            at: now_ms(),
            actor: "anonymous".into(),
            action: REFUSED.into(),
            key_id: None,
            account: DEPLOYMENT_TRAIL.into(),
            details,
            scope: None,
        },
    };
    let env = env.clone();
    task::wait_until(ctx, async move {
        let account = event.account.clone();
        let cmd = AccountCommand::Refused { event, bucket };
        if let Err(e) = rpc::ask::<serde_json::Value>(&env, Object::Account(&account), &cmd).await {
            console_error!("refused attempt not recorded: {e:?}");
        }
    });
}
