//! alignscope: explore how images and captions align.
//!
//! Data flows one way: `data` (files) → `engine` (jobs on a compute backend) → `app` (egui).

pub mod app;
pub mod data;
pub mod engine;
pub mod features;
