pub mod admission;
pub mod budget_lease;
pub mod failed_attempts;
pub mod ledger;
pub mod plan_lease;
pub mod plans;
pub mod reservation;
pub mod usage;
