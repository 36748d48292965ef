//! What an admitted request carries from its key: the identity the origin learns,
//! and every power of the key, which an admin key's confinement compares.

use crate::key::powers::Powers;
use crate::key::record::{Environment, KeyRecord};
use crate::limits::plans::Plan;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The identity the origin learns about an admitted request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub key_id: String,
    pub account: String,
    pub permissions: Vec<String>,
    pub environment: Environment,
    pub projects: Vec<String>,
    /// Not forwarded: every power of the key, which an admin key's confinement
    /// compares.
    #[serde(default)]
    pub powers: Powers,
    /// The key's metadata, carried only to a verify call (never to the origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl Identity {
    /// The identity of `rec` under its account's `plan`.
    pub fn of(rec: &KeyRecord, plan: Option<&Plan>) -> Self {
        Identity {
            key_id: rec.id.clone(),
            account: rec.account.clone(),
            permissions: rec.permissions.clone(),
            environment: rec.environment,
            projects: rec.projects.clone(),
            powers: Powers::of(rec, plan),
            metadata: None,
        }
    }
}
