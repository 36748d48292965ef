//! `/leaks`: a leaked secret is disabled before the answer (per `LEAK_ACTION`),
//! recorded as `key.leaked` and announced by webhook — reported by an admin, or by
//! GitHub's secret scanning with a signature instead of credentials.

use super::caller::Caller;
use crate::config::Config;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::now_ms;
use crate::edge::js::webcrypto;
use crate::edge::objects::copies;
use crate::edge::request::{kv_index, respond};
use crate::error::ApiError;
use crate::key::format::parse_key;
use crate::key::leaks::{self, GithubToken};
use crate::key::record::{HashEntry, KeyRecord};
use crate::notify::audit::AuditEvent;
use crate::objects::key::{KeyCommand, Leaked};
use crate::request::faults::Faults;
use serde_json::{json, Value};
use worker::{Env, Request, Response};

/// The key a secret opens, if it is one of ours (and, for a confined caller, of
/// its account).
async fn locate(
    env: &Env,
    cfg: &Config,
    secret: &str,
    account: Option<&str>,
) -> Result<Option<(HashEntry, String)>, ApiError> {
    let Some(parsed) = parse_key(&cfg.key_prefix, secret) else {
        return Ok(None);
    };
    let entry = kv_index::resolve(env, cfg, &Faults::none(), &parsed).await?;
    Ok(entry
        .filter(|e| account.is_none_or(|a| a == e.account))
        .map(|e| (e, parsed.hash)))
}

/// Applies the leak in the key's object, then writes its copies with the
/// `key.leaked` event. `None` when the secret is not a live key.
async fn handle(
    env: &Env,
    cfg: &Config,
    entry: &HashEntry,
    hash: String,
    source: Option<String>,
    url: Option<String>,
    event: impl FnOnce(&KeyRecord, Value) -> AuditEvent,
) -> Result<Option<(KeyRecord, String)>, ApiError> {
    let cmd = KeyCommand::Leak {
        hash,
        action: cfg.leak_action,
        source: source.clone(),
        url: url.clone(),
    };
    let leaked: Leaked = match rpc::ask(env, Object::Key(&entry.id), &cmd).await {
        Ok(l) => l,
        // An index entry without a key (deleted): not a live key.
        Err(ApiError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let (true, Some(rec)) = (leaked.found, leaked.record) else {
        return Ok(None);
    };
    let action = leaked.action.unwrap_or_default();
    // The prefix identifies the key; the secret is never recorded.
    let details = json!({ "source": source, "url": url, "prefix": rec.prefix, "action": action });
    copies::write(
        env,
        cfg,
        &rec.id,
        vec![copies::sync(&rec, event(&rec, details))],
    )
    .await;
    Ok(Some((rec, action)))
}

pub async fn report(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    body: &Value,
) -> Result<Response, ApiError> {
    let report = leaks::parse_report(body)?;
    let account = caller.key().map(|k| k.account.as_str());
    let Some((entry, hash)) = locate(env, cfg, &report.key, account).await? else {
        return respond::json(200, &json!({ "found": false }));
    };
    let event = |rec: &KeyRecord, details| {
        caller.event(cfg, "key.leaked", Some(rec), &rec.account, details)
    };
    match handle(env, cfg, &entry, hash, report.source, None, event).await? {
        None => respond::json(200, &json!({ "found": false })),
        Some((rec, action)) => respond::json(
            200,
            &json!({
                "found": true, "key_id": rec.id, "account": rec.account, "prefix": rec.prefix,
                "action": action, "status": rec.effective_status(now_ms()),
            }),
        ),
    }
}

/// GitHub's secret scanning partner endpoint: verified against the configured
/// public keys (WebCrypto), then each live key is handled as a report, and the
/// answer is GitHub's feedback list.
pub async fn github(
    req: &Request,
    env: &Env,
    cfg: &Config,
    body: &[u8],
) -> Result<Response, ApiError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (Some(identifier), Some(signature)) = (
        header("Github-Public-Key-Identifier"),
        header("Github-Public-Key-Signature"),
    ) else {
        return Err(ApiError::BadSignature);
    };
    let key = cfg
        .github_keys
        .iter()
        .find(|k| k.identifier == identifier.trim())
        .ok_or(ApiError::BadSignature)?;
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .ok()
        .and_then(|der| leaks::der_signature_to_raw(&der))
        .ok_or(ApiError::BadSignature)?;
    if !webcrypto::verify_ecdsa_p256(&key.spki, &raw, body).await? {
        return Err(ApiError::BadSignature);
    }
    let tokens = leaks::parse_github_report(body)?;
    let mut feedback = Vec::with_capacity(tokens.len());
    for token in &tokens {
        feedback.push(leaks::github_feedback(
            token,
            github_token(env, cfg, token).await?,
        ));
    }
    respond::json(200, &feedback)
}

/// Whether a reported token was a live key (now handled).
async fn github_token(env: &Env, cfg: &Config, token: &GithubToken) -> Result<bool, ApiError> {
    let Some((entry, hash)) = locate(env, cfg, &token.token, None).await? else {
        return Ok(false);
    };
    let event = |rec: &KeyRecord, details| AuditEvent {
        at: now_ms(),
        actor: "github_secret_scanning".into(),
        action: "key.leaked".into(),
        key_id: Some(rec.id.clone()),
        account: rec.account.clone(),
        details,
        scope: Some(super::caller::powers_of(cfg, rec)),
    };
    let source = Some(token.source.clone().unwrap_or_else(|| "github".into()));
    Ok(
        handle(env, cfg, &entry, hash, source, token.url.clone(), event)
            .await?
            .is_some(),
    )
}
