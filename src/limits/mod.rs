pub mod admission;
pub mod ip_guard;
pub mod ledger;
pub mod plans;
pub mod reservation;
pub mod usage;
