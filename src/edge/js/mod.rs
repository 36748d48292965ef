//! The JavaScript boundary: everything that crosses between Rust and the runtime's
//! JavaScript — the Worker's module and Durable Object classes (`entry.mjs`),
//! object calls and their lanes (`lanes.js`, `rpc`), each request's task
//! (`task`), the clock, configuration and isolate caches (`runtime`), timers
//! (`deadline`), WebCrypto (`webcrypto`), the origin fetch (`origin.js`,
//! `origin`) and the simulated geography's round trips (`geography`).

pub mod deadline;
pub mod geography;
pub mod origin;
pub mod rpc;
pub mod runtime;
pub mod task;
pub mod webcrypto;
