//! Route policy: which paths are public, which permission a route needs, which
//! project a path names, and what a set of held permissions covers.

use serde::Deserialize;

/// The built-in permissions, weakest first; each includes those before it.
const BUILT_IN: [&str; 3] = ["read:all", "write:all", "admin"];

fn rank(p: &str) -> Option<usize> {
    BUILT_IN.iter().position(|b| *b == p)
}

/// Whether `held` covers `needed`: exactly, or through the built-in hierarchy.
pub fn holds(held: &[String], needed: &str) -> bool {
    held.iter().any(|h| {
        h == needed || matches!((rank(h), rank(needed)), (Some(have), Some(need)) if have >= need)
    })
}

/// A configured mapping from requests to the permission they need.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RouteRule {
    /// An HTTP method, or `*` for any.
    #[serde(default = "any_method")]
    pub method: String,
    /// A path pattern: `*` matches one segment, a trailing `/**` any rest.
    pub path: String,
    pub permission: String,
}

fn any_method() -> String {
    "*".into()
}

/// A configured cost, in credits, of matching requests.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CostRule {
    #[serde(default = "any_method")]
    pub method: String,
    pub path: String,
    pub cost: u64,
}

fn method_matches(pattern: &str, method: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(method)
}

/// Credits a request costs: the first matching rule, else 1.
pub fn route_cost(rules: &[CostRule], method: &str, path: &str) -> u64 {
    rules
        .iter()
        .find(|r| method_matches(&r.method, method) && path_matches(&r.path, path))
        .map_or(1, |r| r.cost)
}

/// A path pattern: literal segments, `*` for exactly one segment, and a final `**`
/// for any number of remaining segments (zero included).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty());
    let mut segs = path.trim_matches('/').split('/').filter(|s| !s.is_empty());
    loop {
        match (pat.next(), segs.next()) {
            (Some("**"), _) => return true,
            (None, None) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// The permission a request needs: the first matching rule, else the default —
/// reads (GET, HEAD, OPTIONS) need `read:all`, everything else `write:all`.
pub fn required_permission<'a>(rules: &'a [RouteRule], method: &str, path: &str) -> &'a str {
    rules
        .iter()
        .find(|r| {
            (r.method == "*" || r.method.eq_ignore_ascii_case(method))
                && path_matches(&r.path, path)
        })
        .map(|r| r.permission.as_str())
        .unwrap_or(match method {
            "GET" | "HEAD" | "OPTIONS" => "read:all",
            _ => "write:all",
        })
}

/// The project a path names: the segment after `/<segment>/`
/// (`/projects/p1/tasks` → `p1` with segment `projects`).
pub fn project_of<'a>(segment: &str, path: &'a str) -> Option<&'a str> {
    let mut parts = path.split('/').filter(|s| !s.is_empty());
    while let Some(part) = parts.next() {
        if part == segment {
            return parts.next();
        }
    }
    None
}

/// Whether a key scoped to `projects` may touch `project` (empty scope = all).
pub fn project_allowed(projects: &[String], project: Option<&str>) -> bool {
    match project {
        None => true,
        Some(p) => projects.is_empty() || projects.iter().any(|q| q == p),
    }
}

/// Whether `path` is public (forwarded without a key).
pub fn is_public(public_paths: &[String], path: &str) -> bool {
    public_paths.iter().any(|p| path_matches(p, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn built_in_hierarchy() {
        assert!(holds(&perms(&["admin"]), "read:all"));
        assert!(holds(&perms(&["admin"]), "write:all"));
        assert!(holds(&perms(&["write:all"]), "read:all"));
        assert!(!holds(&perms(&["read:all"]), "write:all"));
        assert!(!holds(&perms(&["write:all"]), "admin"));
        assert!(!holds(&[], "read:all"));
    }

    #[test]
    fn free_form_permissions_are_held_only_explicitly() {
        assert!(holds(&perms(&["license:manage"]), "license:manage"));
        assert!(!holds(&perms(&["admin"]), "license:manage"));
        assert!(!holds(&perms(&["license:manage"]), "read:all"));
    }

    #[test]
    fn path_patterns() {
        assert!(path_matches("/health", "/health"));
        assert!(path_matches("/health", "/health/"));
        assert!(!path_matches("/health", "/healthz"));
        assert!(!path_matches("/health", "/health/deep"));
        assert!(path_matches("/public/**", "/public"));
        assert!(path_matches("/public/**", "/public/a/b"));
        assert!(path_matches("/licenses/*", "/licenses/42"));
        assert!(!path_matches("/licenses/*", "/licenses/42/x"));
        assert!(!path_matches("/licenses/*", "/licenses"));
    }

    #[test]
    fn default_route_mapping_makes_read_only_keys_get_only() {
        assert_eq!(required_permission(&[], "GET", "/x"), "read:all");
        assert_eq!(required_permission(&[], "HEAD", "/x"), "read:all");
        assert_eq!(required_permission(&[], "OPTIONS", "/x"), "read:all");
        assert_eq!(required_permission(&[], "POST", "/x"), "write:all");
        assert_eq!(required_permission(&[], "DELETE", "/x"), "write:all");
    }

    #[test]
    fn configured_rules_win_in_order() {
        let rules = vec![
            RouteRule {
                method: "POST".into(),
                path: "/licenses/**".into(),
                permission: "license:manage".into(),
            },
            RouteRule {
                method: "*".into(),
                path: "/customers/*".into(),
                permission: "customer:read".into(),
            },
        ];
        assert_eq!(
            required_permission(&rules, "POST", "/licenses/a"),
            "license:manage"
        );
        assert_eq!(
            required_permission(&rules, "post", "/licenses"),
            "license:manage"
        );
        assert_eq!(
            required_permission(&rules, "GET", "/licenses/a"),
            "read:all"
        );
        assert_eq!(
            required_permission(&rules, "PUT", "/customers/c1"),
            "customer:read"
        );
    }

    #[test]
    fn route_costs_default_to_one() {
        let rules = vec![CostRule {
            method: "POST".into(),
            path: "/reports/**".into(),
            cost: 5,
        }];
        assert_eq!(route_cost(&rules, "POST", "/reports/x"), 5);
        assert_eq!(route_cost(&rules, "GET", "/reports/x"), 1);
        assert_eq!(route_cost(&[], "GET", "/"), 1);
    }

    #[test]
    fn projects_from_paths() {
        assert_eq!(project_of("projects", "/projects/p1/tasks"), Some("p1"));
        assert_eq!(project_of("projects", "/v1/projects/p2"), Some("p2"));
        assert_eq!(project_of("projects", "/projects"), None);
        assert_eq!(project_of("projects", "/tasks"), None);
        assert_eq!(project_of("customers", "/customers/c7/x"), Some("c7"));
        assert!(project_allowed(&[], Some("p1")));
        assert!(project_allowed(&perms(&["p1"]), Some("p1")));
        assert!(!project_allowed(&perms(&["p1"]), Some("p2")));
        assert!(project_allowed(&perms(&["p1"]), None));
    }

    #[test]
    fn public_paths() {
        let public = perms(&["/health", "/docs/**"]);
        assert!(is_public(&public, "/health"));
        assert!(is_public(&public, "/docs/a"));
        assert!(!is_public(&public, "/api"));
    }
}
