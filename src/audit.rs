//! The audit trail: who did what to which key, and when; suspensions and resumes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at: i64,
    /// `admin_token`, `key:<id>` for an admin key, or `circuit_breaker`.
    pub actor: String,
    /// `key.created`, `key.updated`, `key.rotated`, `key.deactivated`,
    /// `key.activated`, `key.revoked`, `key.deleted`, `key.suspended`,
    /// `key.resumed`, `account.plan_changed`.
    pub action: String,
    pub key_id: Option<String>,
    pub account: String,
    pub details: Value,
}

/// `GET /events` filters and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    pub account: Option<String>,
    pub key_id: Option<String>,
    pub action: Option<String>,
    pub cursor: Option<i64>,
    pub limit: u32,
}
