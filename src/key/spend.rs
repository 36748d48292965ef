//! A key's credits as a power (`powers`): unlimited, or a balance with its
//! refill; how one is freer than another, and the wider of two.

use crate::limits::credits::{Credits, Interval, Refill};
use serde::{Deserialize, Serialize};

/// A key's credits as a power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spend {
    Unlimited,
    Balance {
        remaining: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refill: Option<Refill>,
    },
}

impl Spend {
    /// What either may spend: the larger balance, the larger and more frequent refill.
    pub fn wider(self, other: Spend) -> Spend {
        let (
            Spend::Balance {
                remaining: a,
                refill: ra,
            },
            Spend::Balance {
                remaining: b,
                refill: rb,
            },
        ) = (self, other)
        else {
            return Spend::Unlimited;
        };
        let refill = match (ra, rb) {
            (Some(p), Some(q)) => Some(Refill {
                amount: p.amount.max(q.amount),
                interval: if p.interval == Interval::Day || q.interval == Interval::Day {
                    Interval::Day
                } else {
                    Interval::Month
                },
                day: None,
            }),
            (p, q) => p.or(q),
        };
        Spend::Balance {
            remaining: a.max(b),
            refill,
        }
    }

    pub fn of(credits: Option<&Credits>) -> Self {
        credits.map_or(Spend::Unlimited, |c| Spend::Balance {
            remaining: c.remaining,
            refill: c.refill,
        })
    }
}

/// How the credits `target` may spend exceed `granter`'s: a larger balance, a
/// refill where it has none, a larger refill or one more often.
pub fn credits_excess(granter: &Spend, target: &Spend) -> Option<String> {
    let Spend::Balance {
        remaining: mine,
        refill: my_refill,
    } = granter
    else {
        return None;
    };
    let Spend::Balance { remaining, refill } = target else {
        return Some(format!(
            "unlimited credits, while this admin key has {mine} left"
        ));
    };
    if remaining > mine {
        return Some(format!(
            "credits.remaining of {remaining}, above this admin key's {mine}"
        ));
    }
    match (my_refill, refill) {
        (None, Some(_)) => Some("a credits refill, while this admin key has none".into()),
        (Some(m), Some(t)) if t.amount > m.amount => Some(format!(
            "credits.refill.amount of {}, above this admin key's {}",
            t.amount, m.amount
        )),
        (Some(m), Some(t)) if t.interval == Interval::Day && m.interval == Interval::Month => {
            Some("a daily credits refill, while this admin key's is monthly".into())
        }
        _ => None,
    }
}
