//! The checks of configured rules and lists: path patterns (canonical, ASCII, `**`
//! only at the end), methods, route permissions and costs, comma lists.

use crate::limits::plans::Plan;
use crate::request::policy::{CostRule, RouteRule};
use std::collections::BTreeMap;

/// A path pattern as configured, in canonical form: `*` and a final `**` are the
/// only wildcards.
pub fn check_pattern(pattern: &str) -> Result<String, String> {
    let canonical = crate::request::canonical_path::canonicalize(pattern)
        .map_err(|e| format!("pattern '{pattern}' is not a valid path: {e}"))?;
    // Non-ASCII segments are matched only exactly, whatever the rule: a pattern
    // holding one could not match the spellings an origin folds into it.
    if !crate::request::canonical_path::is_ascii(&canonical) {
        return Err(format!(
            "pattern '{pattern}' must be ASCII: keyward cannot match other spellings of non-ASCII segments"
        ));
    }
    let segs: Vec<&str> = crate::request::canonical_path::segments(&canonical).collect();
    if let Some(pos) = segs.iter().position(|s| *s == "**") {
        if pos + 1 != segs.len() {
            return Err(format!("pattern '{pattern}': '**' may only end a pattern"));
        }
    }
    Ok(canonical)
}

pub fn check_method_pattern(method: &str) -> Result<(), String> {
    if method == "*" || crate::request::inbound::is_token(method) {
        Ok(())
    } else {
        Err(format!("'{method}' is not an HTTP method or '*'"))
    }
}

pub fn check_route_rule(rule: RouteRule) -> Result<RouteRule, String> {
    check_method_pattern(&rule.method)?;
    if !crate::key::names::is_permission(&rule.permission) {
        return Err(format!(
            "permission '{}' must be lowercase letters, digits, '.', '_', ':' or '-'",
            rule.permission
        ));
    }
    Ok(RouteRule {
        path: check_pattern(&rule.path)?,
        ..rule
    })
}

/// A cost must be at least 1 and must fit some plan with API access: a route that
/// no plan could ever admit is a configuration mistake.
pub fn check_cost_rule(rule: CostRule, plans: &BTreeMap<String, Plan>) -> Result<CostRule, String> {
    check_method_pattern(&rule.method)?;
    let path = check_pattern(&rule.path)?;
    if rule.cost == 0 {
        return Err(format!("cost of '{}' must be at least 1", rule.path));
    }
    let fits = |p: &Plan| p.tightest_limit().is_none_or(|l| rule.cost <= l);
    if !plans.values().any(|p| p.api_access && fits(p)) {
        return Err(format!(
            "cost {} of '{}' exceeds every plan's limits: no request could ever be admitted",
            rule.cost, rule.path
        ));
    }
    Ok(CostRule { path, ..rule })
}

/// A comma-separated list (empty: none), each item checked by `item`.
pub fn list_of<T>(
    name: &str,
    text: &str,
    item: impl Fn(&str) -> Option<T>,
    rule: &str,
) -> Result<Vec<T>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| item(s).ok_or_else(|| format!("{name}: '{s}' is not {rule}")))
        .collect()
}
