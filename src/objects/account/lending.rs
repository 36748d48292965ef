//! Budget leases, the account's side (`limits::budget_lease`): lending a hot
//! isolate a slice of what the plan's account-wide limits have left, so that
//! row 15 is decided there without a call, and taking back its report — what
//! the slice charged — when the isolate retires it. While a slice is out the
//! plan is promised too: a plan change answers once every slice has ended.

use super::*;
use crate::limits::admission::LimitState;
use crate::limits::budget_lease;
use crate::limits::plans::AccountLimits;

/// What a budget lease gives an isolate: credits of the account-wide limits
/// until a time (the object's clock), under the plan of the answer it rides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetGrant {
    pub id: u64,
    pub credits: u64,
    pub granted_at: i64,
    pub until: i64,
    /// The tightest account-wide limit with the slice taken.
    pub limit: Option<LimitState>,
}

/// The shortest account-wide window, in ms.
fn shortest_window(limits: &AccountLimits) -> Option<i64> {
    match (limits.per_second, limits.per_minute) {
        (Some(_), _) => Some(1_000),
        (None, Some(_)) => Some(60_000),
        (None, None) => None,
    }
}

/// Lends up to `want` credits of the account-wide limits: at most half of what
/// every window has left, the whole slice admitted as one request of that cost
/// would be.
pub(super) fn lend(
    state: &mut AccountState,
    limits: &AccountLimits,
    cfg: &Config,
    want: u64,
    now: i64,
    buckets: &mut Vec<StoredBucket>,
) -> Option<BudgetGrant> {
    let shortest = shortest_window(limits)?;
    if cfg.key_lease_ms == 0 || want == 0 {
        return None;
    }
    let until = now + budget_lease::duration(cfg.key_lease_ms, Some(shortest));
    if until - now < 100 {
        return None;
    }
    let headroom = admission::decide_account(&state.ledger, limits, now, 0)
        .ok()
        .flatten()
        .map_or(0, |l| l.remaining);
    let mut credits = budget_lease::size(want, headroom);
    while credits > 0 && admission::decide_account(&state.ledger, limits, now, credits).is_err() {
        credits /= 2;
    }
    if credits == 0 {
        return None;
    }
    state.meta.last_lease += 1;
    let id = state.meta.last_lease;
    buckets.extend(
        state
            .meta
            .book
            .grant(&mut state.ledger, id, credits, now, until),
    );
    let limit = admission::decide_account(&state.ledger, limits, now, 0)
        .ok()
        .flatten();
    Some(BudgetGrant {
        id,
        credits,
        granted_at: now,
        until,
        limit,
    })
}
