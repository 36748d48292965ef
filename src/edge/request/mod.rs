//! The request path, as SPEC §3's table over one request context: the gate's
//! phases (`gate`), the client's address and row 2 (`guard`), locating the key
//! (row 3: `locate`, `kv_index`), deciding rows 4–15 in the key's and the
//! account's objects (`decide`) or from budget leases held here (`leased`,
//! `account_leased`, `lease_slots`), compensating after the answer (`settle`), moving a
//! key's object near its clients (`relocate`), the origin (`forward`) and rendering
//! answers (`respond`).

pub mod account_leased;
pub mod context;
pub mod decide;
pub mod forward;
pub mod gate;
pub mod guard;
pub mod kv_index;
pub mod lease_slots;
pub mod leased;
pub mod locate;
pub mod relocate;
pub mod respond;
pub mod settle;
