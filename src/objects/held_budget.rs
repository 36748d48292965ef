//! Budget leases on an account, the isolate's side (`objects::account::lending`):
//! a slice of the account-wide limits' credits, from which row 15 is decided
//! without a call, under the plan the slice was lent with. A request takes its
//! cost from the slice; one the key refuses or that is not charged gives it
//! back. Once the lease is retired and every request it admitted is settled,
//! its report tells the account's object what it charged.

use crate::limits::admission::LimitState;
use crate::limits::budget_lease::{Holder, Holding};
#[cfg(test)]
use crate::limits::plan_lease;
use crate::limits::plans::PlanCopy;
use crate::objects::account::BudgetGrant;

/// One account budget lease as an isolate holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldBudget {
    pub grant: BudgetGrant,
    pub plan: PlanCopy,
    pub holding: Holding,
    /// Requests admitted from it and not settled yet.
    pending: u64,
}

/// What a lease's report says: credits its requests were charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetReport {
    pub lease: u64,
    pub charged: u64,
}

impl HeldBudget {
    pub fn new(grant: BudgetGrant, plan: PlanCopy) -> Self {
        HeldBudget {
            holding: Holding::new(grant.credits, grant.granted_at, grant.until),
            grant,
            plan,
            pending: 0,
        }
    }

    /// Takes `cost` credits when live and they are left; the limit to show.
    pub fn take(&mut self, cost: u64, now: i64) -> Option<Option<LimitState>> {
        let left = self.holding.take(cost, now)?;
        self.pending += 1;
        Some(self.grant.limit.clone().map(|mut l| {
            l.remaining = l.remaining.saturating_add(left);
            l
        }))
    }

    /// A request taken from it is done: `charged` or its credits come back.
    pub fn settle(&mut self, cost: u64, charged: bool) {
        self.pending = self.pending.saturating_sub(1);
        if !charged {
            self.holding.give_back(cost);
        }
    }

    /// The report, once retired and every request is settled (once).
    pub fn report(&mut self) -> Option<BudgetReport> {
        if !self.holding.retired || self.pending > 0 || self.holding.reported {
            return None;
        }
        self.holding.reported = true;
        Some(BudgetReport {
            lease: self.grant.id,
            charged: self.holding.used,
        })
    }
}

impl Holder for HeldBudget {
    fn id(&self) -> u64 {
        self.grant.id
    }
    fn holding(&self) -> &Holding {
        &self.holding
    }
    fn holding_mut(&mut self) -> &mut Holding {
        &mut self.holding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(credits: u64) -> HeldBudget {
        let grant = BudgetGrant {
            id: 7,
            credits,
            granted_at: 1_000,
            until: 3_000,
            limit: Some(LimitState {
                name: "plan_per_minute".into(),
                limit: 100,
                remaining: 50,
                reset: 60,
                window: Some(60),
            }),
        };
        let plan = PlanCopy {
            plan: "team".into(),
            version: 2,
        };
        HeldBudget::new(grant, plan)
    }

    #[test]
    fn takes_what_the_slice_has_until_its_margin() {
        let mut h = held(3);
        let limit = h.take(2, 1_100).expect("taken").expect("a limit");
        assert_eq!(limit.remaining, 51, "what is left outside and in the slice");
        assert_eq!(h.take(2, 1_100), None, "one credit left");
        assert!(h.take(1, 1_100).is_some());
        let mut late = held(3);
        assert_eq!(late.take(1, 3_000 - plan_lease::MARGIN_MS), None);
        assert_eq!(late.take(0, 1_100), None, "nothing to take");
    }

    #[test]
    fn reports_what_was_charged_once_every_request_settled() {
        let mut h = held(10);
        h.take(2, 1_100).unwrap();
        h.take(3, 1_100).unwrap();
        h.holding.retired = true;
        assert!(h.take(1, 1_100).is_none(), "retired");
        h.settle(2, false);
        assert_eq!(h.report(), None, "a request still open");
        h.settle(3, true);
        assert_eq!(
            h.report(),
            Some(BudgetReport {
                lease: 7,
                charged: 3
            })
        );
        assert_eq!(h.report(), None, "once");
        assert!(h.holding.reported);
    }

    #[test]
    fn renews_past_half_its_credits() {
        let mut h = held(4);
        h.take(1, 1_100).unwrap();
        assert!(!h.holding.wants_renewal(1_100));
        h.take(1, 1_100).unwrap();
        assert!(h.holding.wants_renewal(1_100));
    }
}
