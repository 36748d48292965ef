//! The key lifecycle as pure transitions on a `KeyRecord`: create, patch, rotate,
//! deactivate, activate, revoke, delete; and the public view of a key.

use crate::error::ApiError;
use crate::key::record::{AdminStatus, Environment, KeyRecord};
use crate::limits::credits::Credits;
use crate::limits::plans::Quotas;
use crate::limits::plans::RateLimits;

use crate::time_fmt::to_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// What is fixed at creation: identity, owner, environment and the first secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Birth {
    pub id: String,
    pub account: String,
    pub environment: Environment,
    pub hash: String,
    pub prefix: String,
    pub now: i64,
    /// The account's plan when the key is made, and its version.
    pub plan: Option<String>,
    #[serde(default)]
    pub plan_version: u64,
}

pub fn create(birth: Birth, settings: &KeyPatch) -> KeyRecord {
    let mut rec = KeyRecord {
        id: birth.id,
        account: birth.account,
        name: String::new(),
        alias: None,
        category: None,
        environment: birth.environment,
        permissions: vec!["read:all".into()],
        projects: Vec::new(),
        created_at: birth.now,
        expires_at: None,
        status: AdminStatus::Active,
        rate_limits: RateLimits::default(),
        quotas: Quotas::default(),
        ip_allowlist: Vec::new(),
        metadata: Map::new(),
        prefix: birth.prefix,
        usage_count: 0,
        last_used_at: None,
        hash: birth.hash,
        previous_hash: None,
        previous_hash_until: None,
        updated_at: birth.now,
        plan: birth.plan,
        plan_version: birth.plan_version,
        suspended_until: None,
        revision: 1,
        alerts: Default::default(),
        credits: None,
        parents: Vec::new(),
    };
    apply_patch(&mut rec, settings, birth.now);
    rec
}

pub fn apply_patch(rec: &mut KeyRecord, p: &KeyPatch, now: i64) {
    if let Some(v) = &p.name {
        rec.name = v.clone();
    }
    if let Some(v) = &p.alias {
        rec.alias = v.clone();
    }
    if let Some(v) = &p.category {
        rec.category = v.clone();
    }
    if let Some(v) = &p.permissions {
        rec.permissions = v.clone();
    }
    if let Some(v) = &p.projects {
        rec.projects = v.clone();
    }
    if let Some(v) = p.expires_at {
        rec.expires_at = v;
    }
    if let Some(v) = p.rate_limits {
        rec.rate_limits = v;
    }
    if let Some(v) = p.quotas {
        rec.quotas = v;
    }
    if let Some(v) = &p.ip_allowlist {
        rec.ip_allowlist = v.clone();
    }
    if let Some(v) = &p.metadata {
        rec.metadata = v.clone();
    }
    if let Some(v) = &p.credits {
        rec.credits = v.clone();
    }
    rec.updated_at = now;
}

fn refuse_if_revoked(rec: &KeyRecord, action: &str) -> Result<(), ApiError> {
    if rec.status == AdminStatus::Revoked {
        Err(ApiError::Conflict {
            reason: format!("key is revoked: it cannot be {action}"),
        })
    } else {
        Ok(())
    }
}

pub fn patch(rec: &mut KeyRecord, p: &KeyPatch, now: i64) -> Result<(), ApiError> {
    refuse_if_revoked(rec, "changed")?;
    apply_patch(rec, p, now);
    Ok(())
}

pub fn deactivate(rec: &mut KeyRecord, now: i64) -> Result<(), ApiError> {
    refuse_if_revoked(rec, "deactivated")?;
    rec.status = AdminStatus::Inactive;
    rec.updated_at = now;
    Ok(())
}

pub fn activate(rec: &mut KeyRecord, now: i64) -> Result<(), ApiError> {
    refuse_if_revoked(rec, "activated")?;
    rec.status = AdminStatus::Active;
    rec.updated_at = now;
    Ok(())
}

/// Permanent. Revoking twice is harmless.
pub fn revoke(rec: &mut KeyRecord, now: i64) {
    if rec.status != AdminStatus::Revoked {
        rec.status = AdminStatus::Revoked;
        rec.updated_at = now;
    }
}

/// New secret, same configuration. With `grace_ms` > 0 the old secret keeps working
/// that long; otherwise it stops at once. Returns the hash that stops being current.
pub fn rotate(
    rec: &mut KeyRecord,
    hash: String,
    prefix: String,
    grace_ms: i64,
    now: i64,
) -> Result<String, ApiError> {
    refuse_if_revoked(rec, "rotated")?;
    let old = std::mem::replace(&mut rec.hash, hash);
    if grace_ms > 0 {
        rec.previous_hash = Some(old.clone());
        rec.previous_hash_until = Some(now + grace_ms);
    } else {
        rec.previous_hash = None;
        rec.previous_hash_until = None;
    }
    rec.prefix = prefix;
    rec.updated_at = now;
    Ok(old)
}

/// Only a key that was never used may be deleted; history is kept otherwise.
/// Only a key never used may be deleted; `in_flight` admitted requests whose
/// answer is not settled yet count as uses.
pub fn check_deletable(rec: &KeyRecord, in_flight: usize) -> Result<(), ApiError> {
    let uses = rec.usage_count + in_flight as u64;
    if uses > 0 {
        Err(ApiError::Conflict {
            reason: format!("key has been used {uses} times: deactivate or revoke it instead"),
        })
    } else {
        Ok(())
    }
}

/// Counts one admitted request.
pub fn record_use(rec: &mut KeyRecord, now: i64) {
    rec.usage_count += 1;
    rec.last_used_at = Some(now);
}

/// The public JSON of a key: never a hash or a secret.
pub fn view(rec: &KeyRecord, now: i64) -> Value {
    json!({
        "id": rec.id,
        "account": rec.account,
        "name": rec.name,
        "alias": rec.alias,
        "category": rec.category,
        "environment": rec.environment,
        "permissions": rec.permissions,
        "projects": rec.projects,
        "prefix": rec.prefix,
        "status": rec.effective_status(now),
        "created_at": to_rfc3339(rec.created_at),
        "updated_at": to_rfc3339(rec.updated_at),
        "expires_at": rec.expires_at.map(to_rfc3339),
        "last_used_at": rec.last_used_at.map(to_rfc3339),
        "usage_count": rec.usage_count,
        "rate_limits": rec.rate_limits,
        "quotas": rec.quotas,
        "ip_allowlist": rec.ip_allowlist,
        "metadata": rec.metadata,
        "suspended_until": rec.suspended_until.filter(|u| *u > now).map(to_rfc3339),
        "previous_secret_valid_until": rec
            .previous_hash_until
            .filter(|until| *until > now)
            .map(to_rfc3339),
        "credits": credits_view(rec.credits.as_ref(), now),
        "parent": rec.parents.first(),
        "parents": rec.parents,
    })
}

/// A balance as it reads at `now` (a refill due is shown done); null: unlimited.
pub fn credits_view(credits: Option<&Credits>, now: i64) -> Value {
    credits.map_or(Value::Null, |c| {
        let mut c = c.clone();
        c.refill(now);
        c.view()
    })
}

/// A plain production key `key_1` of account `acme` with secret hash `h1`, made at
/// `now`: the fixture of the core's tests.
/// Changes to a key's settings. Outer `None` = leave as is; for the nullable fields
/// `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "clearable")]
    pub alias: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "clearable")]
    pub category: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "clearable")]
    pub expires_at: Option<Option<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_allowlist: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// A new balance (`null`: none, unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "clearable")]
    pub credits: Option<Option<Credits>>,
}

/// Keeps "clear" (`Some(None)`, sent as `null`) apart from "leave as is" (absent)
/// when a patch travels to the key's object.
mod clearable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
pub(crate) fn test_key(now: i64) -> KeyRecord {
    create(
        Birth {
            id: "key_1".into(),
            account: "acme".into(),
            environment: Environment::Production,
            hash: "h1".into(),
            prefix: "kw_live_aaaaaa".into(),
            now,
            plan: None,
            plan_version: 0,
        },
        &KeyPatch {
            name: Some("ci".into()),
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn key() -> KeyRecord {
        test_key(NOW)
    }

    #[test]
    fn created_keys_default_to_read_only_and_active() {
        let k = key();
        assert_eq!(k.permissions, vec!["read:all"]);
        assert_eq!(k.status, AdminStatus::Active);
        assert_eq!(k.name, "ci");
    }

    #[test]
    fn revocation_is_permanent() {
        let mut k = key();
        deactivate(&mut k, NOW).unwrap();
        assert_eq!(k.status, AdminStatus::Inactive);
        activate(&mut k, NOW).unwrap();
        revoke(&mut k, NOW + 1);
        assert!(matches!(
            activate(&mut k, NOW + 2),
            Err(ApiError::Conflict { .. })
        ));
        assert!(matches!(
            deactivate(&mut k, NOW + 2),
            Err(ApiError::Conflict { .. })
        ));
        assert!(rotate(&mut k, "h2".into(), "p".into(), 0, NOW).is_err());
        assert!(patch(&mut k, &KeyPatch::default(), NOW).is_err());
        assert_eq!(k.status, AdminStatus::Revoked);
    }

    #[test]
    fn rotation_with_and_without_grace() {
        let mut k = key();
        assert_eq!(
            rotate(&mut k, "h2".into(), "p2".into(), 0, NOW).unwrap(),
            "h1"
        );
        assert!(!k.accepts_hash("h1", NOW));
        assert!(k.accepts_hash("h2", NOW));
        rotate(&mut k, "h3".into(), "p3".into(), 60_000, NOW).unwrap();
        assert!(k.accepts_hash("h2", NOW + 59_999));
        assert!(!k.accepts_hash("h2", NOW + 60_000));
        assert_eq!(k.prefix, "p3");
    }

    #[test]
    fn only_unused_keys_delete() {
        let mut k = key();
        assert!(check_deletable(&k, 0).is_ok());
        // Admitted, its answer not settled yet: in use.
        assert!(matches!(
            check_deletable(&k, 1),
            Err(ApiError::Conflict { reason }) if reason.contains("used 1 times")
        ));
        record_use(&mut k, NOW);
        assert_eq!(k.last_used_at, Some(NOW));
        assert!(matches!(
            check_deletable(&k, 0),
            Err(ApiError::Conflict { .. })
        ));
    }

    #[test]
    fn view_hides_secrets_and_derives_expiry() {
        let mut k = key();
        k.expires_at = Some(NOW + 10);
        let v = view(&k, NOW + 10);
        assert_eq!(v["status"], "expired");
        let text = v.to_string();
        assert!(!text.contains("\"h1\""));
        assert!(v.get("hash").is_none() && v.get("key").is_none());
    }
}
