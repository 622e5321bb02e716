//! What the window and `index` / `search` / `explain` need at run time: backend choice,
//! background jobs, the folder index, ranking, search and explanations. No egui here, and no
//! training: that is [`crate::train`].

pub mod backend;
pub mod doctor;
pub mod duplicates;
pub mod explain;
pub mod fused;
pub mod gradient;
pub mod index;
pub mod inspect;
pub mod jobs;
pub mod objects;
pub mod occlusion;
pub mod rank;
pub mod recall;
pub mod runtime;
pub mod scale;
pub mod search;
pub mod split_scores;
pub mod thumbnails;
pub mod words;
