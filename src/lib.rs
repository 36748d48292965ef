//! keyward: an API-key authenticator for Cloudflare Workers.
//!
//! The modules at the top are the pure core (no `worker` types, time passed in);
//! `edge` adapts them to the Workers runtime and exists only in the wasm build.

pub mod alerts;
pub mod audit;
pub mod batch;
pub mod canonical_path;
pub mod check;
pub mod cidr;
pub mod config;
pub mod confinement;
pub mod error;
pub mod fanout;
pub mod inbound;
pub mod input;
pub mod ip_guard;
pub mod key_format;
pub mod key_state;
pub mod leaks;
pub mod ledger;
pub mod lifecycle;
pub mod limits;
pub mod lookup;
pub mod model;
pub mod openapi;
pub mod paging;
pub mod plan_change;
pub mod policy;
pub mod request_log;
pub mod request_url;
pub mod reservation;
pub mod time_fmt;
pub mod unicode_tables;
pub mod usage;
pub mod verify;
pub mod webhook;

#[cfg(target_arch = "wasm32")]
mod edge;
