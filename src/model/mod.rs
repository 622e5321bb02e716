//! The matching networks and their losses: burn modules only, no I/O, no UI. `matcher` is the
//! face they share.

pub mod dsran;
pub mod global;
pub mod loss;
pub mod matcher;
pub mod racg;
pub mod shan;
