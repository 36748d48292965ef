//! keyward: an API-key authenticator for Cloudflare Workers.
//!
//! The pure core (no `worker` types, time passed in), by floor, each folder using
//! only those below it: `error`, `time_fmt`, `paging` (shared vocabulary);
//! `request` (what a request is); `limits` (counting and admission arithmetic);
//! `key` (a key, its secret, its checks and powers); `notify` (alerts, webhooks,
//! logs, the audit trail); `config` (the deployment's variables); `admin` (the
//! management API's input, listings and document); `objects` (what each Durable
//! Object does with a command, as effects). `edge` adapts them to the Workers
//! runtime and exists only in the wasm build.

pub mod error;
pub mod paging;
pub mod time_fmt;

pub mod request;

pub mod limits;

pub mod key;

pub mod notify;

pub mod config;

pub mod admin;

pub mod objects;

#[cfg(target_arch = "wasm32")]
mod edge;
