pub mod fanout;
pub mod input;
pub mod openapi;
pub mod verify;
