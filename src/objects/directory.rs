//! The directory of accounts: one small object listing every account's name, for
//! the bootstrap token's cross-account views (`admin::fanout`). An account's object
//! adds itself once, after its first write; nothing else writes here, and nothing
//! on the gate's path reads it.

use crate::admin::fanout::GROUP;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryCommand {
    Add {
        account: String,
    },
    /// Up to `limit` account names from `from` on (inclusive), in name order.
    Accounts {
        from: Option<String>,
        limit: u32,
    },
}

/// `Accounts`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountNames {
    pub accounts: Vec<String>,
}

/// What a cross-account page asks the directory for: the group starting at
/// `group`, one more than a group (to know the next group's first account).
pub fn group_query(group: Option<String>) -> DirectoryCommand {
    DirectoryCommand::Accounts {
        from: group,
        limit: GROUP as u32 + 1,
    }
}

/// The accounts of one page and the first account of the next group.
pub fn group_of(mut names: Vec<String>) -> (Vec<String>, Option<String>) {
    let next = (names.len() > GROUP).then(|| names.pop()).flatten();
    (names, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_one_group_and_names_the_next() {
        let names: Vec<String> = (0..=GROUP).map(|i| format!("a{i:03}")).collect();
        let (page, next) = group_of(names.clone());
        assert_eq!(
            (page.len(), next.as_deref()),
            (GROUP, Some(names[GROUP].as_str()))
        );
        let (page, next) = group_of(names[..3].to_vec());
        assert_eq!((page.len(), next), (3, None));
    }
}
