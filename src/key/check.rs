//! The check table of SPEC §3 as one decision. Rows that need only the request run in
//! the worker; rows about the key run inside the key's Durable Object against its
//! authoritative record; the plan row runs against the account's. When both lookups
//! fail, the lower row answers, so the result is the same as checking in table order.

use crate::limits::plans::Plan;

use crate::error::ApiError;
use crate::key::identity::Identity;
use crate::key::record::{AdminStatus, Environment, KeyRecord};
use crate::request::cidr;
use crate::request::policy;
use serde::{Deserialize, Serialize};

/// What the key's object needs to know about a request to decide rows 3–11.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub hash: String,
    pub deployment_env: Environment,
    pub client_ip: Option<String>,
    /// Every permission the request needs (one per method the origin may run).
    pub permissions: Vec<String>,
    /// Every project the path names.
    pub projects: Vec<String>,
    /// Whether a secret in its rotation grace period opens the key: on the request
    /// path and for verify, never for the management routes (SPEC §3).
    #[serde(default = "grace_accepted")]
    pub grace: bool,
}

fn grace_accepted() -> bool {
    true
}

/// Rows 3–11, in table order, against the key's record and its account's plan.
pub fn check_key(
    rec: &KeyRecord,
    req: &AccessRequest,
    plan: Option<&Plan>,
    now: i64,
) -> Result<Identity, ApiError> {
    // Row 3: a stale index entry (rotated or deleted secret) is an unknown key; so
    // is a retired secret where it may not manage.
    if !(rec.hash == req.hash || (req.grace && rec.in_grace(&req.hash, now))) {
        return Err(ApiError::InvalidKey);
    }
    match rec.status {
        AdminStatus::Revoked => return Err(ApiError::KeyRevoked),
        AdminStatus::Inactive => return Err(ApiError::KeyInactive),
        AdminStatus::Active => {}
    }
    if rec.is_expired(now) {
        return Err(ApiError::KeyExpired);
    }
    if rec.environment != req.deployment_env {
        return Err(ApiError::WrongEnvironment);
    }
    check_plan(plan)?;
    let ip = req.client_ip.as_deref().and_then(|s| s.parse().ok());
    if !cidr::allowed(&rec.ip_allowlist, ip) {
        return Err(ApiError::IpNotAllowed);
    }
    if let Some(missing) = req
        .permissions
        .iter()
        .find(|p| !policy::holds(&rec.permissions, p))
    {
        return Err(ApiError::MissingPermission {
            permission: missing.clone(),
        });
    }
    if let Some(project) = policy::forbidden_project(&rec.projects, &req.projects) {
        return Err(ApiError::ProjectForbidden {
            project: project.to_string(),
        });
    }
    Ok(Identity::of(rec, plan))
}

/// Row 8: the account's plan must include API access. An unknown plan has none.
pub fn check_plan(plan: Option<&Plan>) -> Result<(), ApiError> {
    match plan {
        Some(p) if p.api_access => Ok(()),
        _ => Err(ApiError::UpgradeRequired),
    }
}

/// Joins the key's verdict (rows 3–14) and the account's (row 15): the failure of
/// the lowest row wins.
pub fn combine<K, A>(
    key: Result<K, ApiError>,
    account: Result<A, ApiError>,
) -> Result<(K, A), ApiError> {
    match (key, account) {
        (Err(k), Err(a)) => Err(if a.row() < k.row() { a } else { k }),
        (Err(k), Ok(_)) => Err(k),
        (Ok(_), Err(a)) => Err(a),
        (Ok(k), Ok(a)) => Ok((k, a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::plans::{Quotas, RateLimits};
    use serde_json::Map;

    const NOW: i64 = 1_800_000_000_000;

    fn record() -> KeyRecord {
        KeyRecord {
            id: "key_1".into(),
            account: "acme".into(),
            name: "ci".into(),
            alias: None,
            category: None,
            environment: Environment::Production,
            permissions: vec!["read:all".into()],
            projects: vec![],
            created_at: NOW - 1000,
            expires_at: None,
            status: AdminStatus::Active,
            rate_limits: RateLimits::default(),
            quotas: Quotas::default(),
            ip_allowlist: vec![],
            metadata: Map::new(),
            prefix: "kw_live_abcdef".into(),
            usage_count: 0,
            last_used_at: None,
            hash: "h1".into(),
            previous_hash: None,
            previous_hash_until: None,
            updated_at: NOW - 1000,
            plan: None,
            plan_version: 0,
            suspended_until: None,
            revision: 1,
            alerts: Default::default(),
            credits: None,
            parents: Vec::new(),
        }
    }

    fn request() -> AccessRequest {
        AccessRequest {
            hash: "h1".into(),
            deployment_env: Environment::Production,
            client_ip: Some("10.0.0.1".into()),
            permissions: vec!["read:all".into()],
            projects: vec![],
            grace: true,
        }
    }

    fn pro() -> Plan {
        crate::limits::plans::default_plans().remove("pro").unwrap()
    }

    fn code(r: Result<Identity, ApiError>) -> &'static str {
        r.err().map(|e| e.code()).unwrap_or("ok")
    }

    #[test]
    fn a_valid_key_passes_with_its_identity() {
        let id = check_key(&record(), &request(), Some(&pro()), NOW).unwrap();
        assert_eq!(id.key_id, "key_1");
        assert_eq!(id.account, "acme");
    }

    #[test]
    fn each_row_fails_alone() {
        let r = request();
        let with = |f: &dyn Fn(&mut KeyRecord)| {
            let mut rec = record();
            f(&mut rec);
            code(check_key(&rec, &r, Some(&pro()), NOW))
        };
        assert_eq!(with(&|k| k.hash = "other".into()), "invalid_key");
        assert_eq!(with(&|k| k.status = AdminStatus::Revoked), "key_revoked");
        assert_eq!(with(&|k| k.status = AdminStatus::Inactive), "key_inactive");
        assert_eq!(with(&|k| k.expires_at = Some(NOW)), "key_expired");
        assert_eq!(with(&|k| k.expires_at = Some(NOW + 1)), "ok");
        assert_eq!(
            with(&|k| k.environment = Environment::Staging),
            "wrong_environment"
        );
        assert_eq!(
            with(&|k| k.ip_allowlist = vec!["192.168.0.0/16".into()]),
            "ip_not_allowed"
        );
        assert_eq!(with(&|k| k.ip_allowlist = vec!["10.0.0.0/8".into()]), "ok");
        assert_eq!(
            with(&|k| k.permissions = vec!["customer:read".into()]),
            "insufficient_permissions"
        );
        let mut scoped = request();
        scoped.projects = vec!["p2".into()];
        let mut rec = record();
        rec.projects = vec!["p1".into()];
        assert_eq!(
            check_key(&rec, &scoped, Some(&pro()), NOW),
            Err(ApiError::ProjectForbidden {
                project: "p2".into()
            })
        );
    }

    #[test]
    fn every_needed_permission_and_project_must_be_held() {
        let mut req = request();
        req.permissions = vec!["read:all".into(), "write:all".into()];
        assert_eq!(
            check_key(&record(), &req, Some(&pro()), NOW),
            Err(ApiError::MissingPermission {
                permission: "write:all".into()
            })
        );
        let mut rec = record();
        rec.projects = vec!["p1".into()];
        let mut req = request();
        req.projects = vec!["p1".into(), "p2".into()];
        assert_eq!(
            check_key(&rec, &req, Some(&pro()), NOW),
            Err(ApiError::ProjectForbidden {
                project: "p2".into()
            })
        );
    }

    #[test]
    fn rows_are_checked_in_table_order() {
        // A key failing every row answers with the first one, then the next...
        let mut rec = record();
        rec.hash = "other".into();
        rec.status = AdminStatus::Revoked;
        rec.expires_at = Some(NOW - 1);
        rec.environment = Environment::Staging;
        rec.ip_allowlist = vec!["192.168.0.0/16".into()];
        rec.permissions = vec![];
        rec.projects = vec!["p1".into()];
        let mut req = request();
        req.projects = vec!["p2".into()];
        let expected = [
            "invalid_key",
            "key_revoked",
            "key_expired",
            "wrong_environment",
            "ip_not_allowed",
            "insufficient_permissions",
            "project_forbidden",
            "ok",
        ];
        for want in expected {
            assert_eq!(code(check_key(&rec, &req, Some(&pro()), NOW)), want);
            match want {
                "invalid_key" => rec.hash = "h1".into(),
                "key_revoked" => rec.status = AdminStatus::Active,
                "key_expired" => rec.expires_at = None,
                "wrong_environment" => rec.environment = Environment::Production,
                "ip_not_allowed" => rec.ip_allowlist.clear(),
                "insufficient_permissions" => rec.permissions = vec!["admin".into()],
                "project_forbidden" => rec.projects.push("p2".into()),
                _ => {}
            }
        }
        // Inactive comes after revoked and before expired.
        rec.status = AdminStatus::Inactive;
        rec.expires_at = Some(NOW - 1);
        assert_eq!(
            code(check_key(&rec, &req, Some(&pro()), NOW)),
            "key_inactive"
        );
    }

    #[test]
    fn grace_period_keeps_the_old_secret_until_it_ends() {
        let mut rec = record();
        rec.hash = "new".into();
        rec.previous_hash = Some("h1".into());
        rec.previous_hash_until = Some(NOW + 5_000);
        assert_eq!(code(check_key(&rec, &request(), Some(&pro()), NOW)), "ok");
        assert_eq!(
            code(check_key(&rec, &request(), Some(&pro()), NOW + 5_000)),
            "invalid_key"
        );
    }

    #[test]
    fn a_retired_secret_never_manages() {
        let mut rec = record();
        rec.hash = "new".into();
        rec.previous_hash = Some("h1".into());
        rec.previous_hash_until = Some(NOW + 5_000);
        let managing = AccessRequest {
            grace: false,
            ..request()
        };
        assert_eq!(
            code(check_key(&rec, &managing, Some(&pro()), NOW)),
            "invalid_key"
        );
        let current = AccessRequest {
            hash: "new".into(),
            ..managing
        };
        assert_eq!(code(check_key(&rec, &current, Some(&pro()), NOW)), "ok");
    }

    #[test]
    fn plan_row_sits_between_environment_and_ip() {
        let free = crate::limits::plans::default_plans()
            .remove("free")
            .unwrap();
        let mut rec = record();
        assert_eq!(
            code(check_key(&rec, &request(), Some(&free), NOW)),
            "upgrade_required"
        );
        assert_eq!(
            code(check_key(&rec, &request(), None, NOW)),
            "upgrade_required"
        );
        rec.environment = Environment::Staging;
        assert_eq!(
            code(check_key(&rec, &request(), Some(&free), NOW)),
            "wrong_environment"
        );
        rec.environment = Environment::Production;
        rec.ip_allowlist = vec!["192.168.0.0/16".into()];
        assert_eq!(
            code(check_key(&rec, &request(), Some(&free), NOW)),
            "upgrade_required"
        );
        assert_eq!(
            code(check_key(&rec, &request(), Some(&pro()), NOW)),
            "ip_not_allowed"
        );
    }

    #[test]
    fn the_account_row_comes_last() {
        let limited = || {
            Err::<(), _>(ApiError::PlanRateLimited {
                window: "per-minute".into(),
                retry_after: 1,
            })
        };
        assert_eq!(
            combine(Err::<(), _>(ApiError::KeyRevoked), limited()),
            Err(ApiError::KeyRevoked)
        );
        assert_eq!(
            combine(
                Err::<(), ApiError>(ApiError::RateLimited { retry_after: 2 }),
                limited()
            ),
            Err(ApiError::RateLimited { retry_after: 2 })
        );
        assert_eq!(
            combine(Ok(1), limited()).map(|(k, _)| k),
            limited().map(|_| 1)
        );
        assert_eq!(
            combine(Ok::<_, ApiError>(1), Ok::<_, ApiError>(2)),
            Ok((1, 2))
        );
    }
}
