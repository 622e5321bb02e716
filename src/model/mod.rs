//! The matching networks and their losses: burn modules only, no I/O, no UI.

pub mod dsran;
pub mod global;
pub mod loss;
pub mod racg;
pub mod shan;
