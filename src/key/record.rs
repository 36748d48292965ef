//! The key record and the vocabulary shared by the core and the edge.

use crate::limits::plans::{Quotas, RateLimits};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Staging,
    Development,
}

impl Environment {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "production" => Some(Self::Production),
            "staging" => Some(Self::Staging),
            "development" => Some(Self::Development),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Staging => "staging",
            Self::Development => "development",
        }
    }
}

/// The status an admin sets. `expired` and `suspended` are derived at read time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminStatus {
    Active,
    Inactive,
    Revoked,
}

impl AdminStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Revoked => "revoked",
        }
    }
}

/// Everything keyward knows about one key. Lives in the key's Durable Object; the
/// secret itself is never part of it, only hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub account: String,
    pub name: String,
    pub alias: Option<String>,
    pub category: Option<String>,
    pub environment: Environment,
    pub permissions: Vec<String>,
    pub projects: Vec<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub status: AdminStatus,
    pub rate_limits: RateLimits,
    pub quotas: Quotas,
    pub ip_allowlist: Vec<String>,
    pub metadata: Map<String, Value>,
    pub prefix: String,
    pub usage_count: u64,
    pub last_used_at: Option<i64>,
    /// SHA-256 (hex) of the current secret.
    pub hash: String,
    /// After a rotation with a grace period: the old secret's hash and until when it
    /// is still accepted.
    pub previous_hash: Option<String>,
    pub previous_hash_until: Option<i64>,
    pub updated_at: i64,
    /// A copy of the account's plan and its version, brought current after
    /// `PUT /accounts/{id}` (see `plan_change`), so the key's object decides rows 8
    /// and 13 itself.
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub plan_version: u64,
    /// Set by the circuit breaker.
    #[serde(default)]
    pub suspended_until: Option<i64>,
    /// Bumped by every management change: copies (the account index's row) keep the
    /// newest revision they have seen, so concurrent changes converge.
    #[serde(default)]
    pub revision: u64,
    /// What the key's alerts already announced (`alerts`).
    #[serde(default)]
    pub alerts: crate::key::record::AlertState,
    /// A prepaid balance each admitted request spends (row 16); none: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<crate::limits::credits::Credits>,
    /// A child key's ancestors, its parent first (at most `MAX_ANCESTORS`): each
    /// admits every one of its requests too, all or nothing (`Carve`). Fixed at
    /// creation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
}

/// A child key's ancestors at most: keys form trees at most three deep.
pub const MAX_ANCESTORS: usize = 2;

impl KeyRecord {
    /// The status a reader sees: an active key past its expiry reads `expired`.
    pub fn effective_status(&self, now: i64) -> &'static str {
        match self.status {
            AdminStatus::Active if self.is_expired(now) => "expired",
            AdminStatus::Active if self.suspended_until.is_some_and(|u| u > now) => "suspended",
            s => s.as_str(),
        }
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// Whether `hash` opens this key at `now` (current secret, or the previous one
    /// inside its grace period).
    pub fn accepts_hash(&self, hash: &str, now: i64) -> bool {
        self.hash == hash || self.in_grace(hash, now)
    }

    /// Whether `hash` is the secret this key was rotated away from, inside its
    /// grace period: accepted on the request path and by verify only.
    pub fn in_grace(&self, hash: &str, now: i64) -> bool {
        self.previous_hash.as_deref() == Some(hash)
            && self.previous_hash_until.is_some_and(|until| now < until)
    }
}

/// What the KV index stores under a key hash: just enough to find the key's
/// Durable Object and its account's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashEntry {
    pub id: String,
    pub account: String,
    /// The key's object when it has moved from the one named by its id
    /// (`objects::key::placement`); that one finds it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// A child key's ancestors (`KeyRecord::parents`): asked on every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// When this copy was written (Unix ms), for `TEST_KV_HIDE_WRITES_SECONDS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<i64>,
}

/// The account index's copy of a key: the fields management listings filter on. Written
/// after every change with the key's revision; an older revision never replaces a
/// newer one, so copies converge whatever order concurrent changes arrive in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRow {
    pub id: String,
    pub account: String,
    pub alias: Option<String>,
    pub environment: String,
    pub category: Option<String>,
    pub status: String,
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub revision: u64,
    /// Searched by `GET /keys?search=`, with the alias.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

impl IndexRow {
    pub fn of(rec: &KeyRecord) -> Self {
        IndexRow {
            id: rec.id.clone(),
            account: rec.account.clone(),
            alias: rec.alias.clone(),
            environment: rec.environment.as_str().into(),
            category: rec.category.clone(),
            status: rec.status.as_str().into(),
            expires_at: rec.expires_at,
            revision: rec.revision,
            name: rec.name.clone(),
            prefix: rec.prefix.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// The expiry the expiry notices were sent for: a new expiry re-arms them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<i64>,
    /// Thresholds (ms before expiry) already announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expiring_sent: Vec<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired_sent: bool,
    /// (quota, percent) crossings announced, until use falls back below.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quota_crossed: Vec<(String, u32)>,
    /// The end of the window a rate-limit refusal was announced for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited_until: Option<i64>,
}
