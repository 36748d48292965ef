//! Route policy over the canonical path: which paths are public, which permissions a
//! request needs, which projects it names, what it costs, and what a set of held
//! permissions covers.
//!
//! Matching that adds requirements (route rules, costs, the project segment) ignores
//! case and a trailing slash, so an origin that routes case-insensitively cannot be
//! reached around a rule; matching that removes them (public paths) is exact.

use crate::request::canonical_path::segments;
use serde::Deserialize;

/// The built-in permissions, weakest first; each includes those before it.
const BUILT_IN: [&str; 3] = ["read:all", "write:all", "admin"];

fn rank(p: &str) -> Option<usize> {
    BUILT_IN.iter().position(|b| *b == p)
}

/// The built-in permission of a service that checks keys with `POST /verify`;
/// `admin` includes it, `write:all` does not.
pub const VERIFY: &str = "verify";

/// Whether `held` covers `needed`: exactly, or through the built-in hierarchy.
pub fn holds(held: &[String], needed: &str) -> bool {
    held.iter().any(|h| {
        h == needed
            || matches!((rank(h), rank(needed)), (Some(have), Some(need)) if have >= need)
            || (h == "admin" && needed == VERIFY)
    })
}

/// A configured mapping from requests to the permission they need.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// An HTTP method, or `*` for any. A rule for `GET` also holds for `HEAD`.
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
#[serde(deny_unknown_fields)]
pub struct CostRule {
    #[serde(default = "any_method")]
    pub method: String,
    pub path: String,
    pub cost: u64,
}

/// `HEAD` runs the origin's `GET` handler on most frameworks: it needs what `GET` needs.
fn method_matches(pattern: &str, method: &str) -> bool {
    pattern == "*"
        || pattern.eq_ignore_ascii_case(method)
        || (pattern.eq_ignore_ascii_case("GET") && method.eq_ignore_ascii_case("HEAD"))
}

/// How a pattern is compared with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Segments equal byte for byte, trailing slash included (public paths).
    Exact,
    /// Segments equal ignoring ASCII case; a trailing slash is ignored (rules).
    Folded,
}

/// A path pattern: literal segments, `*` for exactly one segment, and a final `**`
/// for any number of remaining segments (zero included). Both sides are canonical.
pub fn path_matches(pattern: &str, path: &str, how: Match) -> bool {
    let mut pat = segments(pattern);
    let mut segs = segments(path);
    loop {
        match (pat.next(), segs.next()) {
            (Some("**"), _) => return true,
            (None, None) => {
                return how == Match::Folded || pattern.ends_with('/') == path.ends_with('/')
            }
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            (Some(p), Some(s)) if how == Match::Folded && p.eq_ignore_ascii_case(s) => {}
            _ => return false,
        }
    }
}

/// The permission one method on `path` needs: the first matching rule, else the
/// default — reads (GET, HEAD, OPTIONS) need `read:all`, every other method
/// (PURGE and PROPFIND included) `write:all`.
pub fn required_permission<'a>(rules: &'a [RouteRule], method: &str, path: &str) -> &'a str {
    rules
        .iter()
        .find(|r| method_matches(&r.method, method) && path_matches(&r.path, path, Match::Folded))
        .map(|r| r.permission.as_str())
        .unwrap_or(match method {
            "GET" | "HEAD" | "OPTIONS" => "read:all",
            _ => "write:all",
        })
}

/// Credits one method on `path` costs: the first matching rule, else 1.
pub fn route_cost(rules: &[CostRule], method: &str, path: &str) -> u64 {
    rules
        .iter()
        .find(|r| method_matches(&r.method, method) && path_matches(&r.path, path, Match::Folded))
        .map_or(1, |r| r.cost)
}

/// What a path names when it ends at the project collection itself (`/projects`,
/// `/projects/`), which lists every project: no project id can be it.
pub const ALL_PROJECTS: &str = "*";

/// The projects a path names: the segment after every `/<segment>/`, the segment
/// name matched ignoring case (`/PROJECTS/p2` names `p2`), and `ALL_PROJECTS` when
/// the path ends at the collection. Project ids themselves compare exactly, so a
/// differently cased id is another project and is refused.
pub fn projects_of<'a>(segment: &str, path: &'a str) -> Vec<&'a str> {
    let parts: Vec<&str> = segments(path).collect();
    let mut named: Vec<&str> = parts
        .windows(2)
        .filter_map(|w| match w {
            [name, id] if name.eq_ignore_ascii_case(segment) => Some(*id),
            _ => None,
        })
        .collect();
    if parts
        .last()
        .is_some_and(|p| p.eq_ignore_ascii_case(segment))
    {
        named.push(ALL_PROJECTS);
    }
    named
}

/// The first of `requested` that a key scoped to `projects` may not touch (an empty
/// scope reaches all).
pub fn forbidden_project<'a>(projects: &[String], requested: &'a [String]) -> Option<&'a str> {
    if projects.is_empty() {
        return None;
    }
    requested
        .iter()
        .find(|r| !projects.iter().any(|p| p == *r))
        .map(String::as_str)
}

/// Whether `path` is public (forwarded without a key): exact match only.
pub fn is_public(public_paths: &[String], path: &str) -> bool {
    public_paths
        .iter()
        .any(|p| path_matches(p, path, Match::Exact))
}

/// What a request needs: every permission and project, and its cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    pub permissions: Vec<String>,
    pub projects: Vec<String>,
    pub cost: u64,
    /// Whether the request spends credits (row 16): an admin key's management
    /// call counts against its limits but is not the API its credits buy.
    pub spends: bool,
}

/// The needs of `path` under each of `methods` (the request's own and any method
/// override it carries): the union of permissions, the dearest cost.
pub fn needs(
    rules: &[RouteRule],
    costs: &[CostRule],
    project_segment: &str,
    methods: &[&str],
    path: &str,
) -> Needs {
    let mut permissions: Vec<String> = Vec::with_capacity(methods.len());
    let mut cost = 1;
    for (i, m) in methods.iter().enumerate() {
        let p = required_permission(rules, m, path);
        if !permissions.iter().any(|q| q == p) {
            permissions.push(p.to_string());
        }
        let c = route_cost(costs, m, path);
        cost = if i == 0 { c } else { cost.max(c) };
    }
    Needs {
        permissions,
        projects: projects_of(project_segment, path)
            .into_iter()
            .map(String::from)
            .collect(),
        cost,
        spends: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn license_rule() -> Vec<RouteRule> {
        vec![RouteRule {
            method: "POST".into(),
            path: "/licenses/**".into(),
            permission: "license:manage".into(),
        }]
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
    fn admin_includes_verify_and_nothing_else_does() {
        assert!(holds(&perms(&["admin"]), VERIFY));
        assert!(holds(&perms(&["verify"]), VERIFY));
        assert!(!holds(&perms(&["write:all"]), VERIFY));
        assert!(!holds(&perms(&["verify"]), "read:all"));
        assert!(!holds(&perms(&["verify"]), "admin"));
    }

    #[test]
    fn free_form_permissions_are_held_only_explicitly() {
        assert!(holds(&perms(&["license:manage"]), "license:manage"));
        assert!(!holds(&perms(&["admin"]), "license:manage"));
        assert!(!holds(&perms(&["license:manage"]), "read:all"));
    }

    #[test]
    fn exact_patterns_for_public_paths() {
        let m = |p, q| path_matches(p, q, Match::Exact);
        assert!(m("/health", "/health"));
        assert!(!m("/health", "/health/"));
        assert!(!m("/health", "/Health"));
        assert!(!m("/health", "/healthz"));
        assert!(!m("/health", "/health/deep"));
        assert!(m("/public/**", "/public"));
        assert!(m("/public/**", "/public/"));
        assert!(m("/public/**", "/public/a/b"));
        assert!(!m("/public/**", "/PUBLIC/a"));
        assert!(m("/licenses/*", "/licenses/42"));
        assert!(!m("/licenses/*", "/licenses/42/x"));
        assert!(!m("/licenses/*", "/licenses"));
    }

    #[test]
    fn folded_patterns_for_rules() {
        let m = |p, q| path_matches(p, q, Match::Folded);
        assert!(m("/licenses/**", "/Licenses/1"));
        assert!(m("/licenses/*", "/LICENSES/1/"));
        assert!(m("/health", "/health/"));
        assert!(!m("/licenses/*", "/licenses"));
    }

    #[test]
    fn default_route_mapping_makes_read_only_keys_get_only() {
        assert_eq!(required_permission(&[], "GET", "/x"), "read:all");
        assert_eq!(required_permission(&[], "HEAD", "/x"), "read:all");
        assert_eq!(required_permission(&[], "OPTIONS", "/x"), "read:all");
        assert_eq!(required_permission(&[], "POST", "/x"), "write:all");
        assert_eq!(required_permission(&[], "DELETE", "/x"), "write:all");
        assert_eq!(required_permission(&[], "PURGE", "/x"), "write:all");
        assert_eq!(required_permission(&[], "PROPFIND", "/x"), "write:all");
        assert_eq!(required_permission(&[], "get", "/x"), "write:all");
    }

    #[test]
    fn configured_rules_win_in_order_whatever_the_case() {
        let mut rules = license_rule();
        rules.push(RouteRule {
            method: "*".into(),
            path: "/customers/*".into(),
            permission: "customer:read".into(),
        });
        rules.push(RouteRule {
            method: "GET".into(),
            path: "/reports/**".into(),
            permission: "reports:read".into(),
        });
        let need = |m, p| required_permission(&rules, m, p);
        assert_eq!(need("POST", "/licenses/a"), "license:manage");
        assert_eq!(need("POST", "/Licenses/1"), "license:manage");
        assert_eq!(need("post", "/licenses"), "license:manage");
        assert_eq!(need("GET", "/licenses/a"), "read:all");
        assert_eq!(need("PUT", "/customers/c1"), "customer:read");
        assert_eq!(need("HEAD", "/reports/x"), "reports:read");
    }

    #[test]
    fn route_costs_default_to_one() {
        let rules = vec![CostRule {
            method: "POST".into(),
            path: "/reports/**".into(),
            cost: 5,
        }];
        assert_eq!(route_cost(&rules, "POST", "/reports/x"), 5);
        assert_eq!(route_cost(&rules, "POST", "/REPORTS/x"), 5);
        assert_eq!(route_cost(&rules, "GET", "/reports/x"), 1);
        assert_eq!(route_cost(&[], "GET", "/"), 1);
    }

    #[test]
    fn projects_from_paths() {
        assert_eq!(projects_of("projects", "/projects/p1/tasks"), ["p1"]);
        assert_eq!(projects_of("projects", "/v1/projects/p2"), ["p2"]);
        assert_eq!(projects_of("projects", "/PROJECTS/p2/tasks"), ["p2"]);
        assert_eq!(
            projects_of("projects", "/projects/p1/projects/p2"),
            ["p1", "p2"]
        );
        assert_eq!(
            projects_of("projects", "/projects/projects/x"),
            ["projects", "x"]
        );
        assert_eq!(projects_of("projects", "/projects"), [ALL_PROJECTS]);
        assert_eq!(projects_of("projects", "/projects/"), [ALL_PROJECTS]);
        assert_eq!(projects_of("projects", "/v1/Projects"), [ALL_PROJECTS]);
        assert_eq!(
            projects_of("projects", "/projects/p1/projects"),
            ["p1", ALL_PROJECTS]
        );
        assert!(projects_of("projects", "/tasks").is_empty());
        assert!(projects_of("projects", "/projectsx").is_empty());
        assert_eq!(projects_of("customers", "/customers/c7/x"), ["c7"]);
    }

    #[test]
    fn project_scope() {
        let asked = |l: &[&str]| perms(l);
        assert_eq!(forbidden_project(&[], &asked(&["p1"])), None);
        assert_eq!(forbidden_project(&perms(&["p1"]), &asked(&["p1"])), None);
        assert_eq!(
            forbidden_project(&perms(&["p1"]), &asked(&["p2"])),
            Some("p2")
        );
        assert_eq!(
            forbidden_project(&perms(&["p1"]), &asked(&["P1"])),
            Some("P1")
        );
        assert_eq!(
            forbidden_project(&perms(&["p1"]), &asked(&["p1", "p2"])),
            Some("p2")
        );
        assert_eq!(forbidden_project(&perms(&["p1"]), &[]), None);
        let all = asked(&[ALL_PROJECTS]);
        assert_eq!(forbidden_project(&perms(&["p1"]), &all), Some(ALL_PROJECTS));
        assert_eq!(forbidden_project(&[], &all), None);
    }

    #[test]
    fn public_paths_are_exact() {
        let public = perms(&["/health", "/docs/**"]);
        assert!(is_public(&public, "/health"));
        assert!(is_public(&public, "/docs/a"));
        assert!(!is_public(&public, "/Docs/a"));
        assert!(!is_public(&public, "/HEALTH"));
        assert!(!is_public(&public, "/api"));
    }

    #[test]
    fn needs_join_every_method_the_origin_may_run() {
        let costs = vec![CostRule {
            method: "DELETE".into(),
            path: "/licenses/*".into(),
            cost: 3,
        }];
        let n = needs(
            &license_rule(),
            &costs,
            "projects",
            &["POST", "DELETE"],
            "/licenses/1",
        );
        assert_eq!(n.permissions, ["license:manage", "write:all"]);
        assert_eq!(n.cost, 3);
        let n = needs(&[], &[], "projects", &["GET"], "/projects/p1/x");
        assert_eq!(
            (n.permissions, n.projects, n.cost),
            (perms(&["read:all"]), perms(&["p1"]), 1)
        );
    }
}
