//! Files in: photo folders and decoding.

pub mod decode;
pub mod feature_cache;
pub mod flickr8k;
pub mod folder;
pub mod index_file;
pub mod karpathy;
pub mod path_text;
pub mod thumb_cache;
