pub mod batch;
pub mod key;
