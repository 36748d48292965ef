//! The audit trail: who did what to which key, and when; suspensions and resumes.

use crate::key::powers::{self, Powers};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The trail of refused management attempts that no key's account owns (an
/// unknown credential, a blocked address): kept like an account's, under this
/// name, which no account may take.
pub const DEPLOYMENT_TRAIL: &str = "_keyward";

/// The action of a refused management attempt (a 401 or 403 on `/admin/v1`).
pub const REFUSED: &str = "admin.refused";

/// The window over which a trail counts the refused attempts it recorded per client
/// address (`AUDIT_REFUSALS_PER_HOUR`).
pub const REFUSAL_WINDOW_MS: i64 = 3_600_000;

/// Whether a trail that recorded `recent` refusals from an address in the last
/// `REFUSAL_WINDOW_MS` records one more: at most `per_hour` (0: none).
pub fn may_record_refusal(recent: u64, per_hour: u32) -> bool {
    recent < u64::from(per_hour)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at: i64,
    /// `admin_token`, `key:<id>` for an admin key, `circuit_breaker` or
    /// `github_secret_scanning`.
    pub actor: String,
    /// `key.created`, `key.updated`, `key.rotated`, `key.deactivated`,
    /// `key.activated`, `key.revoked`, `key.deleted`, `key.leaked`,
    /// `key.suspended`, `key.resumed`, `account.plan_changed`.
    pub action: String,
    pub key_id: Option<String>,
    pub account: String,
    pub details: Value,
    /// The powers of the key the event is about (for a change, the wider of before
    /// and after): an admin key sees only events of keys within its own powers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Powers>,
}

impl AuditEvent {
    /// Whether an admin key of `viewer`'s powers may see this event (its account
    /// is checked by the query). Events about no key (plan changes) are the
    /// account's; events about a key whose powers were not recorded are not shown.
    pub fn visible_to(&self, viewer: &Powers) -> bool {
        match (&self.key_id, &self.scope) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(s)) => powers::excess(viewer, s).is_none(),
        }
    }
}

/// `GET /events` filters and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    pub account: Option<String>,
    pub key_id: Option<String>,
    pub action: Option<String>,
    pub cursor: Option<crate::notify::audit::EventPos>,
    pub limit: u32,
    /// An admin key's powers: only events it may see are listed.
    #[serde(default)]
    pub viewer: Option<Powers>,
}

/// An event's place in the newest-first order of every account's events: time,
/// then account, then the account's own sequence number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventPos {
    pub at: i64,
    pub account: String,
    pub id: i64,
}

/// An event with its place in the merged order of every account's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listed {
    pub pos: EventPos,
    pub item: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(perms: &[&str], projects: &[&str]) -> Powers {
        Powers {
            permissions: perms.iter().map(|s| s.to_string()).collect(),
            projects: projects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn event(scope: Option<Powers>, key: bool) -> AuditEvent {
        AuditEvent {
            at: 0,
            actor: "admin_token".into(),
            action: "key.created".into(),
            key_id: key.then(|| "key_1".into()),
            account: "acme".into(),
            details: Value::Null,
            scope,
        }
    }

    #[test]
    fn events_are_seen_only_within_the_viewer_s_powers() {
        let viewer = scope(&["admin"], &["p1"]);
        assert!(event(Some(scope(&["read:all"], &["p1"])), true).visible_to(&viewer));
        assert!(!event(Some(scope(&["read:all"], &[])), true).visible_to(&viewer));
        assert!(!event(Some(scope(&["license:manage"], &["p1"])), true).visible_to(&viewer));
        assert!(!event(None, true).visible_to(&viewer));
        assert!(event(None, false).visible_to(&viewer));
    }

    #[test]
    fn refusals_are_recorded_up_to_the_hourly_bound() {
        assert!(may_record_refusal(0, 10));
        assert!(may_record_refusal(9, 10));
        assert!(!may_record_refusal(10, 10));
        assert!(!may_record_refusal(0, 0), "0: none recorded");
    }

    #[test]
    fn scopes_stored_before_a_power_existed_still_read() {
        let old =
            r#"{"permissions":["read:all"],"projects":["p1"],"expires_at":null,"ip_allowlist":[]}"#;
        let p: Powers = serde_json::from_str(old).unwrap();
        assert_eq!(p.permissions, ["read:all"]);
        assert_eq!((p.account, p.environment), (None, None));
    }
}
