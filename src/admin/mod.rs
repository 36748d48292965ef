pub mod billing;
pub mod fanout;
pub mod input;
pub mod listing;
pub mod openapi;
pub mod replays;
pub mod verify;
