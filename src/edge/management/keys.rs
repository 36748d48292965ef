//! `/keys`: the key lifecycle. Each operation validates its whole input first (pure
//! core), checks the caller's reach and grant, then changes the key's object — the
//! authoritative copy — and only then its copies (`copies`), which never turn a
//! done change into an error.

use super::caller::Caller;
use crate::admin::fanout::{self, Cursor};
use crate::admin::input;
use crate::admin::listing::{self, ListQuery};
use crate::config::Config;
use crate::edge::js::rpc::{self, Object};
use crate::edge::js::runtime::{now_ms, random};
use crate::edge::js::task;
use crate::edge::objects::copies;
use crate::edge::objects::directory_object as directory;
use crate::edge::request::kv_index;
use crate::edge::request::respond;
use crate::error::ApiError;
use crate::key::format::{self, base62_fixed, build_key, RANDOM_BYTES};
use crate::key::lifecycle::{self, Birth};
use crate::key::powers::Powers;
use crate::key::record::{Environment, HashEntry, IndexRow, KeyRecord};
use crate::limits::usage::Resolution;
use crate::notify::logs::parse_log_query;
use crate::objects::account::{AccountCommand, AccountView, KeyIds};
use crate::objects::key::{KeyCommand, KeyRead, Notice, Rotated, UsageSeries};
use crate::time_fmt::to_rfc3339;
use futures_util::future::join_all;
use serde_json::{json, Value};
use worker::{console_error, Env, Response};

/// A management command to a key's object, answered with the key's record.
async fn key_call(env: &Env, id: &str, cmd: &KeyCommand) -> Result<KeyRecord, ApiError> {
    rpc::ask(env, Object::Key(id), cmd).await
}

/// A key, if the caller reaches it; to the caller, keys beyond its reach do not exist.
pub(super) async fn load(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
) -> Result<KeyRead, ApiError> {
    let not_found = || ApiError::NotFound { what: "key".into() };
    if !crate::key::names::is_key_id(id) {
        return Err(not_found());
    }
    let read: KeyRead = rpc::ask(env, Object::Key(id), &KeyCommand::Get).await?;
    if caller.reaches(cfg, &read.record) {
        Ok(read)
    } else {
        Err(not_found())
    }
}

/// A fresh secret for the key `id` in `env`, carrying its locator (so it works
/// before KV's copy arrives): (full key, visible prefix, hash).
fn new_secret(
    cfg: &Config,
    env: Environment,
    id: &str,
) -> Result<(String, String, String), ApiError> {
    let random = random::<RANDOM_BYTES>()?;
    let (key, prefix) = build_key(&cfg.key_prefix, env, &random, format::locator_of(id));
    let hash = format::sha256_hex(&key);
    Ok((key, prefix, hash))
}

/// Ids that sort by creation time: 6 bytes of milliseconds, 10 random bytes.
fn new_id(now: i64) -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    let millis = now.to_be_bytes();
    for (slot, b) in bytes.iter_mut().zip(millis.iter().skip(2)) {
        *slot = *b;
    }
    for (slot, b) in bytes.iter_mut().skip(6).zip(random::<10>()?) {
        *slot = b;
    }
    Ok(format!("key_{}", base62_fixed(&bytes, 22)))
}

/// The key a new key is carved from: the one named by `parent`, else, for an
/// admin key that holds credits, the admin key itself (what it makes spends from
/// its balance). It must be a live key the caller reaches, of the same account,
/// with room below it for another level.
async fn parent_of(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    new: &input::NewKey,
    account: &str,
) -> Result<Option<KeyRecord>, ApiError> {
    let named = new.parent.clone().or_else(|| {
        caller
            .key()
            .filter(|me| {
                matches!(
                    me.powers.credits,
                    Some(crate::key::powers::Spend::Balance { .. })
                )
            })
            .map(|me| me.key_id.clone())
    });
    let Some(id) = named else { return Ok(None) };
    // A parent beyond the caller's reach does not exist for it (404); one whose
    // state refuses another child is a conflict (409).
    let bad = |why: &str| ApiError::Conflict {
        reason: format!("parent {id} {why}"),
    };
    let parent = match load(caller, env, cfg, &id).await {
        Ok(read) => read.record,
        Err(ApiError::NotFound { .. }) => {
            return Err(ApiError::NotFound {
                what: "parent key".into(),
            })
        }
        Err(e) => return Err(e),
    };
    if parent.account != account {
        return Err(bad(&format!("must be a key of account '{account}'")));
    }
    if parent.status == crate::key::record::AdminStatus::Revoked {
        return Err(bad("is revoked"));
    }
    if parent.parents.len() >= crate::key::record::MAX_ANCESTORS {
        return Err(bad(
            "is already two levels below its root: keys form trees at most three deep",
        ));
    }
    if new.environment.is_some_and(|e| e != parent.environment) {
        return Err(bad("is of another environment"));
    }
    Ok(Some(parent))
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
    view["sharing"] = sharing_view(read.sharing.as_ref(), now);
    view
}

/// This hour's client networks and countries, and the last suspicion of sharing.
fn sharing_view(s: Option<&crate::key::sharing::Sharing>, now: i64) -> Value {
    let Some(s) = s else { return Value::Null };
    let current = s.hour == now.div_euclid(3_600_000) * 3_600_000;
    let suspected = s.last.as_ref().map(|l| {
        json!({
            "at": to_rfc3339(l.at), "window_start": to_rfc3339(l.window_start),
            "networks": l.networks, "countries": l.countries, "new_country": l.new_country,
            "threshold": l.threshold,
        })
    });
    json!({
        "window_start": current.then(|| to_rfc3339(s.hour)),
        "networks": if current { s.networks.len() as u32 + s.more_networks } else { 0 },
        "countries": if current { s.countries.clone() } else { Vec::new() },
        "last_suspected": suspected,
    })
}

pub async fn create(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    body: &Value,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let new = input::parse_create(body, now)?;
    let account = caller
        .confine(new.account.clone())?
        .ok_or_else(|| ApiError::field("account", "is required"))?;
    let parent = parent_of(caller, env, cfg, &new, &account).await?;
    let environment = new
        .environment
        .or(parent.as_ref().map(|p| p.environment))
        .unwrap_or(cfg.environment);
    let id = new_id(now)?;
    let (secret, prefix, hash) = new_secret(cfg, environment, &id)?;
    // The key keeps a copy of its account's plan and its version (`plan_change`).
    let account_state: AccountView =
        rpc::ask(env, Object::Account(&account), &AccountCommand::Get).await?;
    let mut rec = lifecycle::create(
        Birth {
            id,
            account: account.clone(),
            environment,
            hash: hash.clone(),
            prefix,
            now,
            plan: account_state.plan,
            plan_version: account_state.plan_version,
        },
        &new.settings,
    );
    if let Some(p) = &parent {
        rec.parents = std::iter::once(p.id.clone())
            .chain(p.parents.iter().cloned())
            .collect();
        // Never freer than its parent in what the parent does not decide itself
        // on each request (its limits, quotas and credits it does: `Carve`).
        let within = Powers::of(p, cfg.plan(p.plan.as_deref()).1);
        let theirs = Powers::of(&rec, cfg.plan(rec.plan.as_deref()).1).carved();
        if let Some(why) = crate::key::powers::excess(&within, &theirs) {
            return Err(ApiError::Forbidden {
                reason: format!("a child key cannot have {why} (beyond its parent's)"),
            });
        }
    }
    caller.may_grant(cfg, &rec)?;

    // The key's place in its account's index (its alias, and one of at most
    // MAX_KEYS_PER_ACCOUNT) is claimed before anything else is written; nothing is
    // half-written: each later failure undoes what came before it.
    claim(env, &rec, Some(cfg.max_keys_per_account)).await?;
    let undo_claim = || async {
        let remove = AccountCommand::Remove {
            id: rec.id.clone(),
            event: None,
        };
        let _ = rpc::ask::<Value>(env, Object::Account(&rec.account), &remove).await;
    };
    // The key's object is made here: where its account's clients are, if declared,
    // else where the admin is (it moves to its clients on their first request).
    let create = KeyCommand::Create {
        record: Box::new(rec.clone()),
        home: account_state.region.or_else(task::client),
    };
    let placed =
        rpc::ask_placed::<KeyRecord>(env, Object::Key(&rec.id), &create, account_state.region);
    if let Err(e) = placed.await {
        undo_claim().await;
        return Err(e);
    }
    let entry = HashEntry {
        id: rec.id.clone(),
        parents: rec.parents.clone(),
        account: account.clone(),
        written_at: None,
        object: None,
    };
    if let Err(e) = kv_index::put(env, cfg, &hash, &entry, None).await {
        let _ = key_call(env, &rec.id, &KeyCommand::Delete).await;
        undo_claim().await;
        return Err(e);
    }
    let details = json!({ "name": rec.name, "prefix": rec.prefix });
    let event = caller.event(cfg, "key.created", Some(&rec), &account, details);
    copies::write(env, cfg, &rec.id, vec![copies::sync(&rec, event)]).await;
    with_secret(201, &rec, secret, now)
}

/// A key's view with its new secret: the only answer that ever carries one.
fn with_secret(
    status: u16,
    rec: &KeyRecord,
    secret: String,
    now: i64,
) -> Result<Response, ApiError> {
    let mut view = lifecycle::view(rec, now);
    view["key"] = Value::String(secret);
    respond::json(status, &view)
}

/// One account's key ids for a listing, newest first, up to `limit + 1`.
async fn account_ids(
    env: &Env,
    account: &str,
    query: &ListQuery,
    after: Option<String>,
    now: i64,
) -> Result<Vec<String>, ApiError> {
    let cmd = AccountCommand::List {
        query: query.clone(),
        after,
        now,
    };
    let listed: KeyIds = rpc::ask(env, Object::Account(account), &cmd).await?;
    Ok(listed.ids)
}

/// One account's index, or across accounts a group of them (`fanout`); then each
/// listed key read from its own object.
pub async fn list(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    pairs: &[(String, String)],
) -> Result<Response, ApiError> {
    let now = now_ms();
    let mut query = listing::parse_list_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    query.account = caller.confine(query.account)?;
    let cursor = match query.cursor.as_deref() {
        Some(text) => fanout::parse_key_cursor(text)?,
        None => Cursor {
            group: None,
            position: None,
        },
    };
    let limit = query.limit as usize;
    let (ids, next) = match &query.account {
        Some(account) => {
            // One account's listing has no groups: a group in the cursor is moot.
            let ids = account_ids(env, account, &query, cursor.position, now).await?;
            let (page, more) = fanout::merge_newest(vec![ids], Clone::clone, limit);
            let next = page.last().filter(|_| more).cloned();
            (page, next)
        }
        None => {
            let (accounts, next_group) = directory::group(env, cursor.group.clone()).await?;
            let lists = join_all(
                accounts
                    .iter()
                    .map(|a| account_ids(env, a, &query, cursor.position.clone(), now)),
            )
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
            let (page, more) = fanout::merge_newest(lists, Clone::clone, limit);
            let next = fanout::next_cursor(&cursor.group, page.last().cloned(), more, next_group)
                .map(|c| fanout::key_cursor(&c));
            (page, next)
        }
    };
    let reads = join_all(
        ids.iter()
            .map(|id| rpc::ask::<KeyRead>(env, Object::Key(id), &KeyCommand::Get)),
    )
    .await;
    let mut items = Vec::with_capacity(reads.len());
    for read in reads {
        match read {
            // Keys beyond an admin key's reach are left out (a page may be short).
            Ok(read) if caller.reaches(cfg, &read.record) => {
                items.push(lifecycle::view(&read.record, now))
            }
            Ok(_) => {}
            // Deleted between the listing and the read: not part of the page.
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    respond::json(200, &json!({ "items": items, "cursor": next }))
}

pub async fn get(caller: &Caller, env: &Env, cfg: &Config, id: &str) -> Result<Response, ApiError> {
    let read = load(caller, env, cfg, id).await?;
    respond::json(200, &view_with_limits(&read, now_ms()))
}

pub async fn patch(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let patch = input::parse_patch(body, now)?;
    let rec = load(caller, env, cfg, id).await?.record;
    // What the key would become must lie within the caller's powers.
    let mut preview = rec.clone();
    lifecycle::patch(&mut preview, &patch, now)?;
    caller.may_grant(cfg, &preview)?;
    let claims_alias = matches!(&patch.alias, Some(Some(_))) && preview.alias != rec.alias;
    if claims_alias {
        claim(env, &preview, None).await?;
    }
    let cmd = KeyCommand::Patch {
        patch: Box::new(patch.clone()),
    };
    let updated = match key_call(env, id, &cmd).await {
        Ok(updated) => updated,
        Err(e) => {
            if claims_alias {
                resync(env, cfg, id).await;
            }
            return Err(e);
        }
    };
    let changes = serde_json::to_value(&patch).map_err(ApiError::internal)?;
    let mut event = caller.event(
        cfg,
        "key.updated",
        Some(&updated),
        &updated.account,
        json!({ "changes": changes }),
    );
    event.scope = Some(Powers::widest(
        &super::caller::powers_of(cfg, &rec),
        &super::caller::powers_of(cfg, &updated),
    ));
    copies::write(env, cfg, id, vec![copies::sync(&updated, event)]).await;
    respond::json(200, &lifecycle::view(&updated, now))
}

/// Claims `rec`'s alias in its account's index (409 when another key holds it),
/// and for a new key its place among at most `cap` (409 past it).
async fn claim(env: &Env, rec: &KeyRecord, cap: Option<u64>) -> Result<(), ApiError> {
    let claim = AccountCommand::Claim {
        row: IndexRow::of(rec),
        cap,
    };
    rpc::ask::<Value>(env, Object::Account(&rec.account), &claim)
        .await
        .map(|_| ())
}

/// Brings the index row back to the key's object after a change failed.
async fn resync(env: &Env, cfg: &Config, id: &str) {
    match rpc::ask::<KeyRead>(env, Object::Key(id), &KeyCommand::Get).await {
        Ok(read) => {
            let sync = Notice::IndexSync {
                row: IndexRow::of(&read.record),
                event: None,
            };
            copies::write(env, cfg, id, vec![sync]).await;
        }
        Err(e) => console_error!("{id}: index row not restored: {e:?}"),
    }
}

pub async fn deactivate(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
) -> Result<Response, ApiError> {
    status_change(
        caller,
        env,
        cfg,
        id,
        KeyCommand::Deactivate,
        "key.deactivated",
    )
    .await
}

pub async fn activate(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
) -> Result<Response, ApiError> {
    status_change(caller, env, cfg, id, KeyCommand::Activate, "key.activated").await
}

pub async fn revoke(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
) -> Result<Response, ApiError> {
    status_change(caller, env, cfg, id, KeyCommand::Revoke, "key.revoked").await
}

async fn status_change(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    cmd: KeyCommand,
    action: &str,
) -> Result<Response, ApiError> {
    load(caller, env, cfg, id).await?;
    let updated = key_call(env, id, &cmd).await?;
    let event = caller.event(cfg, action, Some(&updated), &updated.account, Value::Null);
    copies::write(env, cfg, id, vec![copies::sync(&updated, event)]).await;
    respond::json(200, &lifecycle::view(&updated, now_ms()))
}

pub async fn rotate(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    body: Option<&Value>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let grace_seconds = input::parse_grace_seconds(body)?;
    let rec = load(caller, env, cfg, id).await?.record;
    // What the rotation makes of the key must lie within the caller's powers: a
    // grace period never outlives the caller.
    let mut preview = rec.clone();
    let grace_ms = grace_seconds as i64 * 1000;
    lifecycle::rotate(
        &mut preview,
        String::new(),
        rec.prefix.clone(),
        grace_ms,
        now,
    )?;
    caller.may_grant(cfg, &preview)?;
    let (secret, prefix, hash) = new_secret(cfg, rec.environment, &rec.id)?;
    // The new hash is indexed first: the key's object accepts it only after the
    // rotation below, and a failure here has changed nothing.
    kv_index::put(
        env,
        cfg,
        &hash,
        &HashEntry {
            id: rec.id.clone(),
            parents: rec.parents.clone(),
            account: rec.account.clone(),
            written_at: None,
            object: None,
        },
        None,
    )
    .await?;
    let cmd = KeyCommand::Rotate {
        hash: hash.clone(),
        prefix: prefix.clone(),
        grace_ms,
    };
    let Rotated {
        old_hash,
        record: updated,
    } = match rpc::ask::<Rotated>(env, Object::Key(id), &cmd).await {
        Ok(r) => r,
        Err(e) => {
            let _ = kv_index::remove(env, cfg, &hash).await;
            return Err(e);
        }
    };
    // From here the new secret is the key's: nothing below may lose it.
    let mut copies = Vec::new();
    {
        let old = old_hash.as_str();
        // The old secret is refused by the key's object from now (or from the end
        // of the grace period); its index entry only needs to go. KV wants an
        // expiry at least 60 s ahead.
        copies.push(if grace_seconds == 0 {
            Notice::KvRemove {
                hash: old.to_string(),
            }
        } else {
            let expires = (now / 1000) as u64 + grace_seconds.max(60);
            copies::index(&updated, old, Some(expires))
        });
    }
    let details = json!({ "prefix": updated.prefix, "grace_period_seconds": grace_seconds });
    let event = caller.event(
        cfg,
        "key.rotated",
        Some(&updated),
        &updated.account,
        details,
    );
    copies.push(copies::sync(&updated, event));
    copies::write(env, cfg, id, copies).await;
    with_secret(200, &updated, secret, now)
}

pub async fn delete(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
) -> Result<Response, ApiError> {
    load(caller, env, cfg, id).await?;
    // The key's object refuses (409) unless the key was never used.
    let deleted = key_call(env, id, &KeyCommand::Delete).await?;
    let mut copies = vec![Notice::KvRemove {
        hash: deleted.hash.clone(),
    }];
    if let Some(previous) = &deleted.previous_hash {
        copies.push(Notice::KvRemove {
            hash: previous.clone(),
        });
    }
    let details = json!({ "prefix": deleted.prefix });
    copies.push(Notice::IndexRemove {
        id: id.to_string(),
        account: deleted.account.clone(),
        event: Some(caller.event(
            cfg,
            "key.deleted",
            Some(&deleted),
            &deleted.account,
            details,
        )),
    });
    copies::write(env, cfg, id, copies).await;
    respond::empty(204, worker::Headers::new())
}

pub async fn logs(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    pairs: &[(String, String)],
) -> Result<Response, ApiError> {
    let query = parse_log_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    load(caller, env, cfg, id).await?;
    // The log page passes through as the object wrote it.
    let page: Value = rpc::ask(env, Object::Key(id), &KeyCommand::Logs { query }).await?;
    respond::json(200, &page)
}

pub async fn usage(
    caller: &Caller,
    env: &Env,
    cfg: &Config,
    id: &str,
    pairs: &[(String, String)],
) -> Result<Response, ApiError> {
    let mut resolution = None;
    for (k, v) in pairs {
        match k.as_str() {
            "resolution" => resolution = Some(v.as_str()),
            other => return Err(ApiError::field(other, "is not a known parameter")),
        }
    }
    let resolution = Resolution::parse(resolution)?;
    load(caller, env, cfg, id).await?;
    let series: UsageSeries =
        rpc::ask(env, Object::Key(id), &KeyCommand::Usage { resolution }).await?;
    respond::json(200, &series)
}
