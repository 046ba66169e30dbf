//! Pure logic: no I/O, no adapters. Everything that depends on the clock takes `now` as an argument.

pub mod db;
pub mod diagnosis;
pub mod env;
pub mod events;
pub mod flux;
pub mod guided;
pub mod health;
pub mod image;
pub mod multi;
pub mod pod;
pub mod redact;
pub mod release;
pub mod report;
pub mod text;
pub mod time;
pub mod verify;
pub mod version;
