//! The management routes of SPEC §4. Each route validates the whole input first (pure
//! core), then writes: the key's object (authoritative) and its copies — the KV
//! index and the registry — undoing earlier writes when a later one fails.

use super::account_object::AccountCommand;
use super::objects::{self, ACCOUNTS, KEYS, REGISTRY, REGISTRY_NAME};
use super::registry::{RegistryCommand, RegistryRow};
use super::runtime::{now_ms, random};
use super::{gate, kv_index, respond};
use crate::config::Config;
use crate::error::ApiError;
use crate::input::{self, KeyPatch};
use crate::key_format::{self, base62_fixed, build_key, RANDOM_BYTES};
use crate::key_state::KeyCommand;
use crate::lifecycle::{self, Birth};
use crate::model::{Environment, HashEntry, Identity, KeyRecord};
use futures_util::future::join_all;
use serde_json::{json, Value};
use worker::{Context, Env, Method, Request, Response};

/// Who is calling: the bootstrap token, or an `admin` key bound to its account.
enum Caller {
    Root,
    AdminKey(Identity),
}

impl Caller {
    /// An admin key sees only its own account; to it, other accounts' keys do not exist.
    fn may_see(&self, account: &str) -> bool {
        match self {
            Caller::Root => true,
            Caller::AdminKey(id) => id.account == account,
        }
    }
}

pub async fn handle(
    mut req: Request,
    env: &Env,
    cfg: &Config,
    ctx: &Context,
) -> Result<Response, ApiError> {
    let url = req.url().map_err(ApiError::internal)?;
    crate::check::check_transport(url.scheme(), cfg.allow_http)?;
    let route = url
        .path()
        .strip_prefix(cfg.admin_prefix.as_str())
        .unwrap_or_default()
        .to_string();
    let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method();

    // Unknown routes are 404 before authentication; known ones need a caller.
    let known = matches!(
        segments.as_slice(),
        ["keys"]
            | ["keys", _]
            | ["keys", _, "rotate" | "deactivate" | "activate" | "revoke"]
            | ["accounts", _]
    );
    if !known {
        return Err(ApiError::NotFound {
            what: "route".into(),
        });
    }
    let caller = authenticate(&req, env, cfg, ctx).await?;
    let now = now_ms();

    match (segments.as_slice(), method) {
        (["keys"], Method::Post) => {
            create_key(&caller, env, cfg, &read_json(&mut req).await?, now).await
        }
        (["keys"], Method::Get) => list_keys(&caller, env, &url, now).await,
        (["keys", id], Method::Get) => {
            let rec = load(&caller, env, id).await?;
            respond::json(200, &lifecycle::view(&rec, now))
        }
        (["keys", id], Method::Patch) => {
            patch_key(&caller, env, id, &read_json(&mut req).await?, now).await
        }
        (["keys", id], Method::Delete) => delete_key(&caller, env, id).await,
        (["keys", id, "rotate"], Method::Post) => {
            let body = read_optional_json(&mut req).await?;
            rotate_key(&caller, env, cfg, id, body.as_ref(), now).await
        }
        (["keys", id, action], Method::Post) => {
            let cmd = match *action {
                "deactivate" => KeyCommand::Deactivate,
                "activate" => KeyCommand::Activate,
                _ => KeyCommand::Revoke,
            };
            status_change(&caller, env, id, cmd, now).await
        }
        (["accounts", id], Method::Get) => {
            if !caller.may_see(id) {
                return Err(ApiError::NotFound {
                    what: "account".into(),
                });
            }
            account_view(env, cfg, id, AccountCommand::Get).await
        }
        (["accounts", id], Method::Put) => {
            if !matches!(caller, Caller::Root) {
                return Err(ApiError::Forbidden {
                    reason: "only the bootstrap admin token may change plans".into(),
                });
            }
            let id = input::identifier(&Value::String(id.to_string()), "account")?;
            let plan = input::parse_plan(&read_json(&mut req).await?, cfg.plans.keys())?;
            account_view(env, cfg, &id, AccountCommand::SetPlan { plan }).await
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
    gate::authenticate(req, env, cfg, ctx, "admin", None)
        .await
        .map(Caller::AdminKey)
}

/// Compares the SHA-256 digests, so time depends on neither content nor length.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (x, y) = (key_format::sha256_hex(a), key_format::sha256_hex(b));
    x.bytes()
        .zip(y.bytes())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
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

/// The key's record, if the caller may see it.
async fn load(caller: &Caller, env: &Env, id: &str) -> Result<KeyRecord, ApiError> {
    if !id.starts_with("key_") || id.len() > 64 {
        return Err(ApiError::NotFound { what: "key".into() });
    }
    let rec = key_call(env, id, &KeyCommand::Get).await?;
    if caller.may_see(&rec.account) {
        Ok(rec)
    } else {
        Err(ApiError::NotFound { what: "key".into() })
    }
}

async fn create_key(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    body: &Value,
    now: i64,
) -> Result<Response, ApiError> {
    let new = input::parse_create(body, now)?;
    let account = match (caller, new.account) {
        (Caller::Root, Some(a)) => a,
        (Caller::Root, None) => return Err(ApiError::field("account", "is required")),
        (Caller::AdminKey(me), requested) => {
            if requested.as_ref().is_some_and(|a| *a != me.account) {
                return Err(ApiError::Forbidden {
                    reason: format!("this admin key manages only account '{}'", me.account),
                });
            }
            lifecycle::check_grant(&me.permissions, &me.projects, &new.settings)?;
            me.account.clone()
        }
    };
    let environment = new.environment.unwrap_or(cfg.environment);
    let (secret, prefix, hash) = new_secret(cfg, environment)?;
    let rec = lifecycle::create(
        Birth {
            id: new_id(now)?,
            account: account.clone(),
            environment,
            hash: hash.clone(),
            prefix,
            now,
        },
        &new.settings,
    );

    // Registry first: it refuses a taken alias before anything else is written.
    registry(
        env,
        &RegistryCommand::Upsert {
            row: RegistryRow::of(&rec),
        },
    )
    .await?;
    let undo = RegistryCommand::Remove { id: rec.id.clone() };
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
    url: &worker::Url,
    now: i64,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut query = input::parse_list_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    if let Caller::AdminKey(me) = caller {
        match &query.account {
            Some(a) if *a != me.account => {
                return Err(ApiError::Forbidden {
                    reason: format!("this admin key manages only account '{}'", me.account),
                })
            }
            _ => query.account = Some(me.account.clone()),
        }
    }
    let page = registry(env, &RegistryCommand::List { query, now }).await?;
    let ids: Vec<String> =
        serde_json::from_value(page["ids"].clone()).map_err(ApiError::internal)?;
    let records = join_all(ids.iter().map(|id| key_call(env, id, &KeyCommand::Get))).await;
    let mut items = Vec::with_capacity(records.len());
    for rec in records {
        match rec {
            Ok(rec) => items.push(lifecycle::view(&rec, now)),
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
    let rec = load(caller, env, id).await?;
    if let Caller::AdminKey(me) = caller {
        lifecycle::check_grant(&me.permissions, &me.projects, &patch)?;
    }
    // Preview the change to claim a new alias before the key itself changes.
    let mut preview = rec.clone();
    lifecycle::patch(&mut preview, &patch, now)?;
    registry(
        env,
        &RegistryCommand::Upsert {
            row: RegistryRow::of(&preview),
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
            let _ = registry(
                env,
                &RegistryCommand::Upsert {
                    row: RegistryRow::of(&rec),
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
    now: i64,
) -> Result<Response, ApiError> {
    load(caller, env, id).await?;
    let updated = key_call(env, id, &cmd).await?;
    registry(
        env,
        &RegistryCommand::Upsert {
            row: RegistryRow::of(&updated),
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
    let rec = load(caller, env, id).await?;
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
    registry(env, &RegistryCommand::Remove { id: id.to_string() }).await?;
    Ok(Response::empty()
        .map_err(ApiError::internal)?
        .with_status(204))
}

async fn account_view(
    env: &Env,
    cfg: &Config,
    id: &str,
    cmd: AccountCommand,
) -> Result<Response, ApiError> {
    let v = objects::call(env, ACCOUNTS, id, &cmd).await?;
    let (plan, limits) = cfg.plan(v["plan"].as_str());
    respond::json(
        200,
        &json!({ "id": id, "plan": plan, "plan_details": limits }),
    )
}
