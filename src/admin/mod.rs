pub mod fanout;
pub mod input;
pub mod listing;
pub mod openapi;
pub mod verify;
