//! Pure logic: no I/O, no adapters. Everything that depends on the clock takes `now` as an argument.

pub mod diagnosis;
pub mod events;
pub mod health;
pub mod pod;
pub mod text;
pub mod time;
