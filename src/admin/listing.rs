//! `GET /keys`: its filters and paging, as sent, validated naming the parameter.

use crate::admin::input::text;
use crate::error::ApiError;
use crate::key::names::identifier;
use crate::key::record::Environment;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /keys` filters and paging.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    pub account: Option<String>,
    pub status: Option<String>,
    pub environment: Option<Environment>,
    pub category: Option<String>,
    /// Part of the name, alias or prefix, in any case.
    #[serde(default)]
    pub search: Option<String>,
    pub cursor: Option<String>,
    pub limit: u32,
}

pub fn parse_list_query<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        limit: crate::paging::DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k {
            "account" => q.account = Some(identifier(&Value::String(v.into()), "account")?),
            "status" => {
                if !["active", "inactive", "revoked", "expired"].contains(&v) {
                    return Err(ApiError::field(
                        "status",
                        "must be active, inactive, revoked or expired",
                    ));
                }
                q.status = Some(v.into());
            }
            "environment" => {
                q.environment = Some(Environment::parse(v).ok_or_else(|| {
                    ApiError::field("environment", "must be production, staging or development")
                })?)
            }
            "category" => q.category = Some(v.into()),
            "search" => q.search = Some(text(&Value::String(v.into()), "search", 100)?),
            "cursor" => {
                crate::admin::fanout::parse_key_cursor(v)?;
                q.cursor = Some(v.into());
            }
            "limit" => q.limit = crate::paging::parse_limit(v)?,
            other => return Err(ApiError::field(other, "is not a known filter")),
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        match r {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn list_query() {
        let q = parse_list_query(
            [("account", "acme"), ("status", "expired"), ("limit", "5")].into_iter(),
        )
        .unwrap();
        assert_eq!(q.account.as_deref(), Some("acme"));
        assert_eq!(q.limit, 5);
        assert_eq!(
            field_of(parse_list_query([("limit", "0")].into_iter())),
            "limit"
        );
        assert_eq!(
            field_of(parse_list_query([("status", "gone")].into_iter())),
            "status"
        );
        assert_eq!(
            field_of(parse_list_query([("sort", "x")].into_iter())),
            "sort"
        );
        assert_eq!(
            parse_list_query([("search", " CI ")].into_iter())
                .unwrap()
                .search
                .as_deref(),
            Some("CI")
        );
        for bad in ["", "  ", "a\u{0}b"] {
            assert_eq!(
                field_of(parse_list_query([("search", bad)].into_iter())),
                "search"
            );
        }
    }
}
