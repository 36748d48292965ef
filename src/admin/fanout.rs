//! Listings across accounts without a global index. Every account's object holds
//! its own keys and events; the bootstrap token's unfiltered `GET /keys` and
//! `GET /events` read a small directory of account names and ask one *group* of
//! them (at most `GROUP` accounts, in name order) per page, merging their answers
//! newest first. The cursor names the group and the position in it; when a group
//! runs dry the next page starts the next group. A page therefore costs one
//! directory read and at most `GROUP` account calls, whatever the number of
//! accounts. With `GROUP` accounts or fewer the order is exactly newest first.

use crate::error::ApiError;
use crate::key::names;
use crate::notify::audit::EventPos;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Accounts asked per page: well inside a Worker's subrequest limit together with
/// the key reads of a page of 100.
pub const GROUP: usize = 40;

/// Where a cross-account listing stands: the first account of its group (none:
/// the first group) and the position inside the merged group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor<P> {
    pub group: Option<String>,
    pub position: Option<P>,
}

const GROUP_MARK: char = '~';

fn split(text: &str) -> Result<(&str, Option<String>), ApiError> {
    let bad = || ApiError::field("cursor", "is not a cursor from this listing");
    match text.split_once(GROUP_MARK) {
        None => Ok((text, None)),
        Some((position, group)) => {
            let group =
                names::identifier(&Value::String(group.into()), "cursor").map_err(|_| bad())?;
            Ok((position, Some(group)))
        }
    }
}

fn join(position: String, group: &Option<String>) -> String {
    match group {
        Some(g) => format!("{position}{GROUP_MARK}{g}"),
        None => position,
    }
}

/// A key listing's cursor: `[key id][~group]`. Key ids sort by creation time.
pub fn parse_key_cursor(text: &str) -> Result<Cursor<String>, ApiError> {
    let (position, group) = split(text)?;
    let well_formed = position.is_empty()
        || (position.len() <= 64
            && position.strip_prefix("key_").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            }));
    if !well_formed {
        return Err(ApiError::field(
            "cursor",
            "is not a cursor from this listing",
        ));
    }
    Ok(Cursor {
        group,
        position: (!position.is_empty()).then(|| position.to_string()),
    })
}

pub fn key_cursor(c: &Cursor<String>) -> String {
    join(c.position.clone().unwrap_or_default(), &c.group)
}

/// An event listing's cursor: `[<at>.<id>.<account>][~group]`.
pub fn parse_event_cursor(text: &str) -> Result<Cursor<EventPos>, ApiError> {
    let bad = || ApiError::field("cursor", "is not a cursor from this listing");
    let (position, group) = split(text)?;
    if position.is_empty() {
        return Ok(Cursor {
            group,
            position: None,
        });
    }
    let mut parts = position.splitn(3, '.');
    let number = |s: Option<&str>, max_len: usize| {
        s.filter(|s| (1..=max_len).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<i64>().ok())
    };
    // Numbers cross the JavaScript boundary between objects: past 2^53 - 1 they
    // would arrive inexact, and no real time or sequence number is that large.
    let at = number(parts.next(), 15).ok_or_else(bad)?;
    let id = number(parts.next(), 18)
        .ok_or_else(bad)?
        .min(crate::paging::MAX_CURSOR);
    let account = parts
        .next()
        .and_then(|a| names::identifier(&Value::String(a.into()), "cursor").ok())
        .ok_or_else(bad)?;
    Ok(Cursor {
        group,
        position: Some(EventPos { at, account, id }),
    })
}

pub fn event_cursor(c: &Cursor<EventPos>) -> String {
    let position = c
        .position
        .as_ref()
        .map(|p| format!("{}.{}.{}", p.at, p.id, p.account))
        .unwrap_or_default();
    join(position, &c.group)
}

/// The rows of one account's events that come after `cursor` in the merged
/// order, as a condition on (at, id) — the account is fixed within its object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventBound {
    /// `at <= t`
    AtMost(i64),
    /// `at < t`
    Below(i64),
    /// `at < t OR (at = t AND id < i)`
    Before { at: i64, id: i64 },
}

pub fn event_bound(account: &str, cursor: &EventPos) -> EventBound {
    match account.cmp(cursor.account.as_str()) {
        std::cmp::Ordering::Less => EventBound::AtMost(cursor.at),
        std::cmp::Ordering::Greater => EventBound::Below(cursor.at),
        std::cmp::Ordering::Equal => EventBound::Before {
            at: cursor.at,
            id: cursor.id,
        },
    }
}

/// Merges per-account pages, each already newest first, into one of at most
/// `limit` items; says whether more remain in the group (an account gave more
/// than fits).
pub fn merge_newest<T, K: Ord>(
    lists: Vec<Vec<T>>,
    order: impl Fn(&T) -> K,
    limit: usize,
) -> (Vec<T>, bool) {
    let mut all: Vec<T> = lists.into_iter().flatten().collect();
    all.sort_by_key(|item| std::cmp::Reverse(order(item)));
    let more = all.len() > limit;
    all.truncate(limit);
    (all, more)
}

/// The cursor after a merged page: the same group at the last item when the
/// group has more; else the next group from its start; none at the very end.
pub fn next_cursor<P: Clone>(
    group: &Option<String>,
    last: Option<P>,
    more_in_group: bool,
    next_group: Option<String>,
) -> Option<Cursor<P>> {
    match (more_in_group, last) {
        (true, Some(p)) => Some(Cursor {
            group: group.clone(),
            position: Some(p),
        }),
        _ => next_group.map(|g| Cursor {
            group: Some(g),
            position: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_cursors_round_trip_and_refuse_strangers() {
        let c = parse_key_cursor("key_abc~acme.eu").unwrap();
        assert_eq!(c.group.as_deref(), Some("acme.eu"));
        assert_eq!(c.position.as_deref(), Some("key_abc"));
        assert_eq!(key_cursor(&c), "key_abc~acme.eu");
        let start = parse_key_cursor("~acme").unwrap();
        assert_eq!(start.position, None);
        assert_eq!(key_cursor(&start), "~acme");
        assert_eq!(parse_key_cursor("key_x").unwrap().group, None);
        for bad in [
            "x",
            "key_",
            "key_a-b",
            "key_a~",
            "key_a~a b",
            "key_a~~b",
            "'; --",
        ] {
            assert!(parse_key_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_cursors_round_trip_with_dotted_accounts() {
        let c = parse_event_cursor("1700000000000.42.acme.eu~a").unwrap();
        let p = c.position.clone().unwrap();
        assert_eq!(
            (p.at, p.id, p.account.as_str()),
            (1_700_000_000_000, 42, "acme.eu")
        );
        assert_eq!(c.group.as_deref(), Some("a"));
        assert_eq!(event_cursor(&c), "1700000000000.42.acme.eu~a");
        let start = parse_event_cursor("~b").unwrap();
        assert_eq!(
            (start.group.as_deref(), &start.position),
            (Some("b"), &None)
        );
        assert_eq!(event_cursor(&start), "~b");
        let huge = parse_event_cursor("999999999999999.999999999999999999.a").unwrap();
        assert_eq!(huge.position.unwrap().id, crate::paging::MAX_CURSOR);
        for bad in [
            "1", "~", "1.2", "1.2.", "a.2.x", "1.b.x", "1.2.x~", "-1.2.x", "1.2.x y",
        ] {
            assert!(parse_event_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_bounds_continue_the_merged_order_in_every_account() {
        let c = EventPos {
            at: 100,
            account: "m".into(),
            id: 7,
        };
        // Same time, an account sorting before the cursor's: still to come.
        assert_eq!(event_bound("a", &c), EventBound::AtMost(100));
        assert_eq!(event_bound("z", &c), EventBound::Below(100));
        assert_eq!(event_bound("m", &c), EventBound::Before { at: 100, id: 7 });
    }

    #[test]
    fn merging_takes_the_newest_and_knows_whether_more_remain() {
        let (page, more) = merge_newest(vec![vec![9, 5, 1], vec![8, 7], vec![]], |x| *x, 3);
        assert_eq!((page, more), (vec![9, 8, 7], true));
        let (page, more) = merge_newest(vec![vec![2], vec![1]], |x| *x, 3);
        assert_eq!((page, more), (vec![2, 1], false));
    }

    #[test]
    fn the_next_cursor_stays_in_a_group_until_it_runs_dry() {
        let g = Some("a".to_string());
        let stay = next_cursor(&g, Some(5), true, Some("k".into())).unwrap();
        assert_eq!((stay.group, stay.position), (g.clone(), Some(5)));
        let next = next_cursor(&g, Some(5), false, Some("k".into())).unwrap();
        assert_eq!((next.group.as_deref(), next.position), (Some("k"), None));
        assert!(next_cursor::<i64>(&g, Some(5), false, None).is_none());
    }
}
