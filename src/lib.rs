//! alignscope: explore how images and captions align.
//!
//! Data flows one way: `data` (files) → `features` (backbones) → `engine` (jobs on a compute
//! backend, used by the CLI and the app) → `render` (pixels: heatmaps, exported PNGs) → `app`
//! (egui).

pub mod app;
pub mod data;
pub mod engine;
pub mod features;
pub mod model;
pub mod render;
