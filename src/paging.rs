//! Cursor paging, shared by every listing (keys, logs, events).

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;

/// The largest integer storage takes (JavaScript's safe integers): a cursor past it
/// continues from the newest row, which is where it points anyway.
pub const MAX_CURSOR: i64 = (1 << 53) - 1;

/// `limit`: 1 to 100 rows a page.
pub fn parse_limit(v: &str) -> Result<u32, ApiError> {
    v.parse()
        .ok()
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| ApiError::field("limit", "must be a whole number from 1 to 100"))
}

/// Rows read with `LIMIT limit + 1`: the page, and the cursor of the next one
/// (`None` on the last page).
pub fn page<T>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    (rows, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_pages() {
        assert_eq!(parse_limit("100"), Ok(100));
        assert!(
            parse_limit("0").is_err() && parse_limit("101").is_err() && parse_limit("x").is_err()
        );
        assert_eq!(
            page(vec![5, 4, 3], 2, |r| r.to_string()),
            (vec![5, 4], Some("4".into()))
        );
        assert_eq!(page(vec![5, 4], 2, |r| r.to_string()), (vec![5, 4], None));
    }
}
