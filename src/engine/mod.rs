//! Work shared by the CLI and the app: backend choice, background jobs. No egui here.

pub mod backend;
pub mod bench;
pub mod doctor;
pub mod dsran;
pub mod explain;
pub mod extract;
pub mod frozen;
pub mod fusion;
pub mod global;
pub mod global_tuned;
pub mod index;
pub mod prepare;
pub mod racg;
pub mod inspect;
pub mod jobs;
pub mod rank;
pub mod recall;
pub mod recipe;
pub mod runtime;
pub mod search;
pub mod search_bench;
pub mod networks_bench;
pub mod shan;
pub mod thumbnails;
