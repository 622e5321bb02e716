//! Files in: photo folders and decoding.

pub mod decode;
pub mod folder;
