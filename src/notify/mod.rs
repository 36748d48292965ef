pub mod alerts;
pub mod audit;
pub mod logs;
pub mod webhook;
