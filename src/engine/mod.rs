//! Work shared by the CLI and the app: backend choice, background jobs. No egui here.

pub mod backend;
pub mod bench;
pub mod doctor;
pub mod extract;
pub mod global;
pub mod prepare;
pub mod inspect;
pub mod jobs;
pub mod rank;
pub mod recall;
pub mod thumbnails;
