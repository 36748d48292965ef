//! The management routes of SPEC §4. Each route validates the whole input first (pure
//! core), then writes: the key's object (authoritative) and its copies — the KV
//! index and the registry — undoing earlier writes when a later one fails. Every
//! change is recorded in the audit trail.

use super::account_object::AccountCommand;
use super::gate::{self, Admission};
use super::objects::{self, ACCOUNTS, KEYS, REGISTRY, REGISTRY_NAME};
use super::registry::{RegistryCommand, RegistryRow};
use super::runtime::{now_ms, random};
use super::{kv_index, respond};
use crate::audit::{AuditEvent, EventQuery};
use crate::config::Config;
use crate::error::ApiError;
use crate::input::{self, KeyPatch};
use crate::key_format::{self, base62_fixed, build_key, RANDOM_BYTES};
use crate::key_state::KeyCommand;
use crate::lifecycle::{self, Birth};
use crate::limits::LimitState;
use crate::model::{Environment, HashEntry, Identity, KeyRecord};
use crate::openapi;
use crate::paging;
use crate::request_log::parse_log_query;
use crate::request_url::{self, RequestUrl};
use crate::time_fmt::to_rfc3339;
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Context, Env, Headers, Method, Request, Response};

/// Who is calling: the bootstrap token, or an `admin` key bound to its account.
enum Caller {
    Root,
    AdminKey(Box<Admission>),
}

impl Caller {
    fn key(&self) -> Option<&Identity> {
        match self {
            Caller::Root => None,
            Caller::AdminKey(a) => Some(&a.identity),
        }
    }

    /// An admin key sees only its own account; to it, other accounts' keys do not exist.
    fn may_see(&self, account: &str) -> bool {
        self.key().is_none_or(|id| id.account == account)
    }

    /// The account an admin key is confined to, refusing any other one asked for.
    fn confine(&self, requested: Option<String>) -> Result<Option<String>, ApiError> {
        match (self.key(), requested) {
            (None, requested) => Ok(requested),
            (Some(me), Some(a)) if a != me.account => Err(ApiError::Forbidden {
                reason: format!("this admin key manages only account '{}'", me.account),
            }),
            (Some(me), _) => Ok(Some(me.account.clone())),
        }
    }

    fn event(
        &self,
        action: &str,
        key: Option<&KeyRecord>,
        account: &str,
        details: Value,
    ) -> AuditEvent {
        AuditEvent {
            at: now_ms(),
            actor: match self.key() {
                None => "admin_token".into(),
                Some(id) => format!("key:{}", id.key_id),
            },
            action: action.into(),
            key_id: key.map(|k| k.id.clone()),
            account: account.into(),
            details,
        }
    }
}

pub async fn handle(
    mut req: Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
) -> Result<Response, ApiError> {
    let full_url = req.inner().url();
    let url = request_url::split(&full_url);
    crate::check::check_transport(url.scheme, cfg.allow_http)?;
    let route = url
        .path
        .strip_prefix(cfg.admin_prefix.as_str())
        .unwrap_or_default()
        .to_string();
    let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();

    // Unknown routes are 404 before authentication; the document needs no caller;
    // the rest need one.
    if !openapi::is_known(&segments) {
        return Err(ApiError::NotFound {
            what: "route".into(),
        });
    }
    if segments == ["openapi.json"] && req.method() == Method::Get {
        let headers = Headers::new();
        headers
            .set("Content-Type", "application/json")
            .map_err(ApiError::internal)?;
        return Ok(Response::ok(openapi::DOCUMENT)
            .map_err(ApiError::internal)?
            .with_headers(headers));
    }
    let caller = authenticate(&req, env, cfg, ctx).await?;
    let outcome = route_to(&mut req, &segments, &url, &caller, env, cfg).await;
    if let Caller::AdminKey(admission) = &caller {
        let status = match &outcome {
            Ok(r) => r.status_code(),
            Err(e) => e.status(),
        };
        gate::settle(ctx, env, admission, status);
    }
    outcome
}

async fn route_to(
    req: &mut Request,
    segments: &[&str],
    url: &RequestUrl<'_>,
    caller: &Caller,
    env: &Env,
    cfg: &Config,
) -> Result<Response, ApiError> {
    let now = now_ms();
    match (segments, req.method()) {
        (["keys"], Method::Post) => create_key(caller, env, cfg, &read_json(req).await?, now).await,
        (["keys"], Method::Get) => list_keys(caller, env, url, now).await,
        (["keys", id], Method::Get) => {
            let read = load(caller, env, id).await?;
            respond::json(200, &view_with_limits(&read, now))
        }
        (["keys", id], Method::Patch) => {
            patch_key(caller, env, id, &read_json(req).await?, now).await
        }
        (["keys", id], Method::Delete) => delete_key(caller, env, id).await,
        (["keys", id, "rotate"], Method::Post) => {
            let body = read_optional_json(req).await?;
            rotate_key(caller, env, cfg, id, body.as_ref(), now).await
        }
        (["keys", id, "logs"], Method::Get) => {
            let pairs = query_pairs(url);
            let query = parse_log_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            load(caller, env, id).await?;
            let page = objects::call(env, KEYS, id, &KeyCommand::Logs { query }).await?;
            respond::json(200, &page)
        }
        (["keys", id, action], Method::Post) => {
            let (cmd, event) = match *action {
                "deactivate" => (KeyCommand::Deactivate, "key.deactivated"),
                "activate" => (KeyCommand::Activate, "key.activated"),
                _ => (KeyCommand::Revoke, "key.revoked"),
            };
            status_change(caller, env, id, cmd, event, now).await
        }
        (["events"], Method::Get) => list_events(caller, env, url).await,
        (["accounts", id], Method::Get) => {
            if !caller.may_see(id) {
                return Err(ApiError::NotFound {
                    what: "account".into(),
                });
            }
            let v = objects::call(env, ACCOUNTS, id, &AccountCommand::Get).await?;
            account_view(cfg, id, v["plan"].as_str())
        }
        (["accounts", id], Method::Put) => {
            if caller.key().is_some() {
                return Err(ApiError::Forbidden {
                    reason: "only the bootstrap admin token may change plans".into(),
                });
            }
            let id = input::identifier(&Value::String(id.to_string()), "account")?;
            let plan = input::parse_plan(&read_json(req).await?, cfg.plans.keys())?;
            set_plan(caller, env, cfg, &id, plan).await
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

async fn authenticate(
    req: &Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
) -> Result<Caller, ApiError> {
    let header = req.headers().get("Authorization").ok().flatten();
    let token = crate::check::bearer_token(header.as_deref()).ok_or(ApiError::InvalidKey)?;
    if let Ok(secret) = env.secret("ADMIN_TOKEN").map(|s| s.to_string()) {
        if !secret.is_empty() && constant_time_eq(token, &secret) {
            return Ok(Caller::Root);
        }
    }
    let need = gate::Need {
        permission: "admin",
        project: None,
        cost: 1,
    };
    gate::authenticate(req, env, cfg, ctx, &need, now_ms())
        .await
        .map(|a| Caller::AdminKey(Box::new(a)))
}

/// Compares the SHA-256 digests, so time depends on neither content nor length.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (x, y) = (key_format::sha256_hex(a), key_format::sha256_hex(b));
    x.bytes()
        .zip(y.bytes())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

fn query_pairs(url: &RequestUrl<'_>) -> Vec<(String, String)> {
    request_url::query_pairs(url.query)
}

async fn read_json(req: &mut Request) -> Result<Value, ApiError> {
    read_optional_json(req).await?.ok_or(ApiError::InvalidBody {
        reason: "expected a JSON object".into(),
    })
}

async fn read_optional_json(req: &mut Request) -> Result<Option<Value>, ApiError> {
    let text = req.text().await.map_err(|e| ApiError::InvalidBody {
        reason: e.to_string(),
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ApiError::InvalidBody {
            reason: format!("not JSON: {e}"),
        })
}

/// A fresh secret for `env`: (full key, visible prefix, hash).
fn new_secret(cfg: &Config, env: Environment) -> Result<(String, String, String), ApiError> {
    let (key, prefix) = build_key(&cfg.key_prefix, env, &random::<RANDOM_BYTES>()?);
    let hash = key_format::sha256_hex(&key);
    Ok((key, prefix, hash))
}

/// Ids that sort by creation time: 6 bytes of milliseconds, 10 random bytes.
fn new_id(now: i64) -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&now.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&random::<10>()?);
    Ok(format!("key_{}", base62_fixed(&bytes, 22)))
}

async fn registry(env: &Env, cmd: &RegistryCommand) -> Result<Value, ApiError> {
    objects::call(env, REGISTRY, REGISTRY_NAME, cmd).await
}

async fn key_call(env: &Env, id: &str, cmd: &KeyCommand) -> Result<KeyRecord, ApiError> {
    objects::call_as(env, KEYS, id, cmd).await
}

/// A key as its object reports it: the record and its live limits.
#[derive(Deserialize)]
struct KeyRead {
    record: KeyRecord,
    limits: Vec<LimitState>,
}

/// A key, if the caller may see it.
async fn load(caller: &Caller, env: &Env, id: &str) -> Result<KeyRead, ApiError> {
    if !id.starts_with("key_") || id.len() > 64 {
        return Err(ApiError::NotFound { what: "key".into() });
    }
    let read: KeyRead = objects::call_as(env, KEYS, id, &KeyCommand::Get).await?;
    if caller.may_see(&read.record.account) {
        Ok(read)
    } else {
        Err(ApiError::NotFound { what: "key".into() })
    }
}

/// A key's view with its live counters: remaining per limit and quota, resets,
/// suspension.
fn view_with_limits(read: &KeyRead, now: i64) -> Value {
    let mut view = lifecycle::view(&read.record, now);
    let limits: Vec<Value> = read
        .limits
        .iter()
        .map(|l| {
            // An empty window has no reset pending.
            let reset_at = l
                .window
                .filter(|_| l.remaining < l.limit)
                .map(|_| to_rfc3339(now + l.reset as i64 * 1000));
            json!({
                "name": l.name, "limit": l.limit, "used": l.limit - l.remaining,
                "remaining": l.remaining, "window_seconds": l.window, "reset_at": reset_at,
            })
        })
        .collect();
    view["limits"] = Value::Array(limits);
    view["suspended"] = Value::Bool(read.record.effective_status(now) == "suspended");
    view
}

async fn create_key(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    body: &Value,
    now: i64,
) -> Result<Response, ApiError> {
    let new = input::parse_create(body, now)?;
    let account = caller
        .confine(new.account)?
        .ok_or_else(|| ApiError::field("account", "is required"))?;
    if let Some(me) = caller.key() {
        lifecycle::check_grant(&me.permissions, &me.projects, &new.settings)?;
    }
    let environment = new.environment.unwrap_or(cfg.environment);
    let (secret, prefix, hash) = new_secret(cfg, environment)?;
    // The key keeps a copy of its account's plan (kept current by PUT /accounts).
    let account_state = objects::call(env, ACCOUNTS, &account, &AccountCommand::Get).await?;
    let rec = lifecycle::create(
        Birth {
            id: new_id(now)?,
            account: account.clone(),
            environment,
            hash: hash.clone(),
            prefix,
            now,
            plan: account_state["plan"].as_str().map(String::from),
        },
        &new.settings,
    );

    // Registry first: it refuses a taken alias before anything else is written.
    let details = json!({ "name": rec.name, "prefix": rec.prefix });
    let event = caller.event("key.created", Some(&rec), &account, details);
    registry(
        env,
        &RegistryCommand::Upsert {
            row: RegistryRow::of(&rec),
            event: Some(event),
        },
    )
    .await?;
    let undo = RegistryCommand::Remove {
        id: rec.id.clone(),
        event: Some(caller.event("key.create_failed", Some(&rec), &account, Value::Null)),
    };
    if let Err(e) = key_call(
        env,
        &rec.id,
        &KeyCommand::Create {
            record: Box::new(rec.clone()),
        },
    )
    .await
    {
        let _ = registry(env, &undo).await;
        return Err(e);
    }
    let entry = HashEntry {
        id: rec.id.clone(),
        account,
    };
    if let Err(e) = kv_index::put(env, &hash, &entry, None).await {
        let _ = key_call(env, &rec.id, &KeyCommand::Delete).await;
        let _ = registry(env, &undo).await;
        return Err(e);
    }
    let mut view = lifecycle::view(&rec, now);
    view["key"] = Value::String(secret);
    respond::json(201, &view)
}

async fn list_keys(
    caller: &Caller,
    env: &Env,
    url: &RequestUrl<'_>,
    now: i64,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(url);
    let mut query = input::parse_list_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    query.account = caller.confine(query.account)?;
    let page = registry(env, &RegistryCommand::List { query, now }).await?;
    let ids: Vec<String> =
        serde_json::from_value(page["ids"].clone()).map_err(ApiError::internal)?;
    let reads = join_all(
        ids.iter()
            .map(|id| objects::call_as::<_, KeyRead>(env, KEYS, id, &KeyCommand::Get)),
    )
    .await;
    let mut items = Vec::with_capacity(reads.len());
    for read in reads {
        match read {
            Ok(read) => items.push(lifecycle::view(&read.record, now)),
            // Deleted between the listing and the read: not part of the page.
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    respond::json(200, &json!({ "items": items, "cursor": page["cursor"] }))
}

async fn patch_key(
    caller: &Caller,
    env: &Env,
    id: &str,
    body: &Value,
    now: i64,
) -> Result<Response, ApiError> {
    let patch: KeyPatch = input::parse_patch(body, now)?;
    let rec = load(caller, env, id).await?.record;
    if let Some(me) = caller.key() {
        lifecycle::check_grant(&me.permissions, &me.projects, &patch)?;
    }
    // Preview the change to claim a new alias before the key itself changes.
    let mut preview = rec.clone();
    lifecycle::patch(&mut preview, &patch, now)?;
    let changes = serde_json::to_value(&patch).map_err(ApiError::internal)?;
    let event = caller.event(
        "key.updated",
        Some(&rec),
        &rec.account,
        json!({ "changes": changes }),
    );
    registry(
        env,
        &RegistryCommand::Upsert {
            row: RegistryRow::of(&preview),
            event: Some(event),
        },
    )
    .await?;
    let updated = match key_call(
        env,
        id,
        &KeyCommand::Patch {
            patch: Box::new(patch),
        },
    )
    .await
    {
        Ok(updated) => updated,
        Err(e) => {
            let undo = caller.event("key.update_failed", Some(&rec), &rec.account, Value::Null);
            let _ = registry(
                env,
                &RegistryCommand::Upsert {
                    row: RegistryRow::of(&rec),
                    event: Some(undo),
                },
            )
            .await;
            return Err(e);
        }
    };
    respond::json(200, &lifecycle::view(&updated, now))
}

async fn status_change(
    caller: &Caller,
    env: &Env,
    id: &str,
    cmd: KeyCommand,
    action: &str,
    now: i64,
) -> Result<Response, ApiError> {
    load(caller, env, id).await?;
    let updated = key_call(env, id, &cmd).await?;
    let event = caller.event(action, Some(&updated), &updated.account, Value::Null);
    registry(
        env,
        &RegistryCommand::Upsert {
            row: RegistryRow::of(&updated),
            event: Some(event),
        },
    )
    .await?;
    respond::json(200, &lifecycle::view(&updated, now))
}

async fn rotate_key(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    body: Option<&Value>,
    now: i64,
) -> Result<Response, ApiError> {
    let grace_seconds = input::parse_grace_seconds(body)?;
    let rec = load(caller, env, id).await?.record;
    let (secret, prefix, hash) = new_secret(cfg, rec.environment)?;
    let entry = HashEntry {
        id: rec.id.clone(),
        account: rec.account.clone(),
    };
    // The new hash may be indexed first: the key's object accepts it only after
    // the rotation below.
    kv_index::put(env, &hash, &entry, None).await?;
    let grace_ms = grace_seconds as i64 * 1000;
    let cmd = KeyCommand::Rotate {
        hash: hash.clone(),
        prefix,
        grace_ms,
    };
    let rotated = match objects::call(env, KEYS, id, &cmd).await {
        Ok(v) => v,
        Err(e) => {
            let _ = kv_index::remove(env, &hash).await;
            return Err(e);
        }
    };
    let old_hash = rotated["old_hash"].as_str().unwrap_or_default().to_string();
    let updated: KeyRecord =
        serde_json::from_value(rotated["record"].clone()).map_err(ApiError::internal)?;
    // The old secret is refused by the key's object from now (or from the end of
    // the grace period); the index entry only needs to go eventually. KV wants an
    // expiry at least 60 s ahead.
    if grace_seconds == 0 {
        kv_index::remove(env, &old_hash).await?;
    } else {
        let expires = (now / 1000) as u64 + grace_seconds.max(60);
        kv_index::put(env, &old_hash, &entry, Some(expires)).await?;
    }
    let details = json!({ "prefix": updated.prefix, "grace_period_seconds": grace_seconds });
    let event = caller.event("key.rotated", Some(&updated), &updated.account, details);
    registry(env, &RegistryCommand::Record { event }).await?;
    let mut view = lifecycle::view(&updated, now);
    view["key"] = Value::String(secret);
    respond::json(200, &view)
}

async fn delete_key(caller: &Caller, env: &Env, id: &str) -> Result<Response, ApiError> {
    load(caller, env, id).await?;
    // The key's object refuses (409) unless the key was never used.
    let deleted = key_call(env, id, &KeyCommand::Delete).await?;
    kv_index::remove(env, &deleted.hash).await?;
    if let Some(previous) = &deleted.previous_hash {
        kv_index::remove(env, previous).await?;
    }
    let event = caller.event(
        "key.deleted",
        Some(&deleted),
        &deleted.account,
        json!({ "prefix": deleted.prefix }),
    );
    registry(
        env,
        &RegistryCommand::Remove {
            id: id.to_string(),
            event: Some(event),
        },
    )
    .await?;
    Ok(Response::empty()
        .map_err(ApiError::internal)?
        .with_status(204))
}

fn account_view(cfg: &Config, id: &str, plan: Option<&str>) -> Result<Response, ApiError> {
    let (plan, details) = cfg.plan(plan);
    respond::json(
        200,
        &json!({ "id": id, "plan": plan, "plan_details": details }),
    )
}

/// Sets the account's plan, then its copy in every key of the account, so the
/// change bites on each key's next request.
async fn set_plan(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    plan: String,
) -> Result<Response, ApiError> {
    let before = objects::call(env, ACCOUNTS, id, &AccountCommand::Get).await?;
    objects::call(
        env,
        ACCOUNTS,
        id,
        &AccountCommand::SetPlan { plan: plan.clone() },
    )
    .await?;
    let listed = registry(
        env,
        &RegistryCommand::AccountKeys {
            account: id.to_string(),
        },
    )
    .await?;
    let ids: Vec<String> =
        serde_json::from_value(listed["ids"].clone()).map_err(ApiError::internal)?;
    let set = KeyCommand::SetPlan { plan: plan.clone() };
    for chunk in ids.chunks(50) {
        for result in join_all(chunk.iter().map(|k| objects::call(env, KEYS, k, &set))).await {
            match result {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                // The account holds the new plan already: repeating the PUT completes it.
                Err(e) => return Err(e),
            }
        }
    }
    let details = json!({ "from": before["plan"], "to": plan, "keys": ids.len() });
    let event = caller.event("account.plan_changed", None, id, details);
    registry(env, &RegistryCommand::Record { event }).await?;
    account_view(cfg, id, Some(&plan))
}

async fn list_events(
    caller: &Caller,
    env: &Env,
    url: &RequestUrl<'_>,
) -> Result<Response, ApiError> {
    let mut query = EventQuery {
        limit: paging::DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in query_pairs(url) {
        match k.as_str() {
            "account" => query.account = Some(input::identifier(&Value::String(v), "account")?),
            "key_id" => query.key_id = Some(v),
            "action" => query.action = Some(v),
            "cursor" => {
                let cursor = v.parse::<i64>().ok().filter(|c| *c > 0);
                query.cursor = Some(cursor.ok_or_else(|| {
                    ApiError::field("cursor", "is not a cursor from this listing")
                })?);
            }
            "limit" => query.limit = paging::parse_limit(&v)?,
            other => return Err(ApiError::field(other, "is not a known filter")),
        }
    }
    query.account = caller.confine(query.account)?;
    let page = registry(env, &RegistryCommand::Events { query }).await?;
    respond::json(200, &page)
}
