//! The Durable Objects, each loading its state, calling its pure core
//! (`crate::objects`) and performing the effects: a key's (`key_object`, with its
//! SQLite in `key_store` and its `outbox`), an account's (`account_object`, its
//! index and trail in `index_store`), an address's guard (`ip_guard_object`), the
//! directory of accounts (`directory_object`). Shared: ledgers in SQLite
//! (`ledger_store`), one-row JSON tables (`sql_row`), call counters
//! (`object_stats`), the copies of a key outside its object (`copies`), and a
//! key's move to an object nearer its clients (`key_move`).

pub mod account_object;
pub mod copies;
pub mod directory_object;
pub mod index_store;
pub mod ip_guard_object;
pub mod key_move;
pub mod key_object;
pub mod key_store;
pub mod ledger_store;
pub mod object_stats;
pub mod outbox;
pub mod sql_row;
