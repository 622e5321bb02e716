//! Files in: photo folders and decoding.

pub mod caption_cache;
pub mod decode;
pub mod feature_cache;
pub mod flickr8k;
pub mod folder;
pub mod index_file;
pub mod karpathy;
pub mod path_text;
pub mod thumb_cache;

/// What identifies one version of a file: its absolute path, length and modification time
/// (seconds, nanoseconds); None when it cannot be stat'ed. Keys the thumbnail cache, the
/// remembered weight checksums and the backbones loaded once.
pub type FileVersion = (std::path::PathBuf, u64, i64, i64);

pub fn file_version(path: &std::path::Path) -> Option<FileVersion> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some((std::path::absolute(path).ok()?, meta.len(), meta.mtime(), meta.mtime_nsec()))
}
