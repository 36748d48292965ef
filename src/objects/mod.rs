//! The pure cores of the Durable Objects: what each does with a command, as
//! effects its edge object performs (`edge::objects`).

pub mod account;
pub mod batch;
pub mod directory;
pub mod held_budget;
pub mod held_lease;
pub mod ip_guard;
pub mod key;
