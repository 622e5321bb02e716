//! alignscope: explore how images and captions align.
//!
//! Data flows one way: `data` (files) → `features` (backbones) → `model` (the networks) → `nets`
//! (the shipped networks' files) → `engine` (run-time jobs on a compute backend, used by the CLI
//! and the app) → `render` (pixels: heatmaps, exported PNGs) → `app` (egui). `train` (training
//! and evaluation) sits beside `engine` and serves the CLI only.

// Nested job and result types (`Job<Result<(…), String>>`) read better spelled out than aliased.
#![allow(clippy::type_complexity)]
// burn's `slice` takes an array with one range per axis: `[0..n]` is a 1-D slice, not a mistake.
#![allow(clippy::single_range_in_vec_init)]
// No unwrap/expect outside tests: a path, a caption or a file's bytes must never reach a panic
// (an invariant that cannot fail is allowed where it is written, with its reason).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod data;
pub mod engine;
pub mod features;
pub mod model;
pub mod nets;
pub mod render;
pub mod train;
