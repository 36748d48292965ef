//! The audit trail: who did what to which key, and when; suspensions and resumes.

use crate::confinement::{self, Powers};
use crate::model::KeyRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub scope: Option<Scope>,
}

/// A key's powers as confinement compares them, kept with each event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub permissions: Vec<String>,
    pub projects: Vec<String>,
    pub expires_at: Option<i64>,
    pub ip_allowlist: Vec<String>,
}

impl Scope {
    pub fn of(rec: &KeyRecord) -> Self {
        Scope {
            permissions: rec.permissions.clone(),
            projects: rec.projects.clone(),
            expires_at: rec.expires_at,
            ip_allowlist: rec.ip_allowlist.clone(),
        }
    }

    pub fn powers(&self) -> Powers<'_> {
        Powers {
            permissions: &self.permissions,
            projects: &self.projects,
            expires_at: self.expires_at,
            ip_allowlist: &self.ip_allowlist,
        }
    }

    /// The wider of two scopes: what either one reaches.
    pub fn widest(a: &Scope, b: &Scope) -> Scope {
        fn union(x: &[String], y: &[String]) -> Vec<String> {
            // An empty list means "unrestricted": it absorbs the other.
            if x.is_empty() || y.is_empty() {
                return Vec::new();
            }
            let mut out = x.to_vec();
            out.extend(y.iter().filter(|v| !x.contains(v)).cloned());
            out
        }
        let mut permissions = a.permissions.clone();
        permissions.extend(
            b.permissions
                .iter()
                .filter(|p| !a.permissions.contains(p))
                .cloned(),
        );
        Scope {
            permissions,
            projects: union(&a.projects, &b.projects),
            expires_at: a.expires_at.zip(b.expires_at).map(|(x, y)| x.max(y)),
            ip_allowlist: union(&a.ip_allowlist, &b.ip_allowlist),
        }
    }
}

impl AuditEvent {
    /// Whether an admin key of `viewer`'s powers may see this event (its account
    /// is checked by the query). Events about no key (plan changes) are the
    /// account's; events about a key whose powers were not recorded are not shown.
    pub fn visible_to(&self, viewer: &Scope) -> bool {
        match (&self.key_id, &self.scope) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(s)) => confinement::excess(&viewer.powers(), &s.powers()).is_none(),
        }
    }
}

/// `GET /events` filters and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    pub account: Option<String>,
    pub key_id: Option<String>,
    pub action: Option<String>,
    pub cursor: Option<crate::fanout::EventPos>,
    pub limit: u32,
    /// An admin key's powers: only events it may see are listed.
    #[serde(default)]
    pub viewer: Option<Scope>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(perms: &[&str], projects: &[&str]) -> Scope {
        Scope {
            permissions: perms.iter().map(|s| s.to_string()).collect(),
            projects: projects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn event(scope: Option<Scope>, key: bool) -> AuditEvent {
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
    fn the_widest_scope_reaches_what_either_reaches() {
        let mut a = scope(&["read:all"], &["p1"]);
        a.expires_at = Some(10);
        a.ip_allowlist = vec!["10.0.0.0/8".into()];
        let mut b = scope(&["license:manage"], &["p2"]);
        b.expires_at = Some(20);
        let w = Scope::widest(&a, &b);
        assert_eq!(w.permissions, ["read:all", "license:manage"]);
        assert_eq!(w.projects, ["p1", "p2"]);
        assert_eq!(w.expires_at, Some(20));
        assert!(
            w.ip_allowlist.is_empty(),
            "b has no allowlist: unrestricted"
        );
        assert!(Scope::widest(&a, &scope(&[], &[])).projects.is_empty());
        assert_eq!(
            Scope::widest(
                &a,
                &Scope {
                    expires_at: None,
                    ..a.clone()
                }
            )
            .expires_at,
            None
        );
    }
}
