//! Training and evaluation on Flickr8k: feature extraction into caches, the splits as the
//! networks' inputs, recipe B's loops per network, Recall@K evaluation and score fusion. Used by
//! the CLI only.

pub mod default_ranker;
pub mod dsran;
pub mod extract;
pub mod fit;
pub mod frozen;
pub mod fusion;
pub mod global;
pub mod grounding;
pub mod objects;
pub mod racg;
pub mod recipe;
pub mod shan;
pub mod source;
pub mod splits;
