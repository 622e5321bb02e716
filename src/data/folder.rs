//! Finding the photos in a folder: recursive, symlink loops and unreadable entries reported, not fatal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// File extensions alignscope decodes (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A path that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    pub path: PathBuf,
    pub cause: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.cause)
    }
}

/// The photos found under a folder, sorted by path, and what could not be read.
#[derive(Clone, Debug, Default)]
pub struct FolderScan {
    pub images: Vec<PathBuf>,
    pub problems: Vec<FileProblem>,
}

/// Walk `root` recursively. Hidden entries (names starting with `.`, e.g. the index cache) are
/// skipped; a directory reached twice through symlinks is walked once.
pub fn scan_folder(root: &Path) -> FolderScan {
    let mut scan = FolderScan::default();
    let mut seen_dirs = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        match dir.canonicalize() {
            Ok(canonical) => {
                if !seen_dirs.insert(canonical) {
                    continue;
                }
            }
            Err(e) => {
                scan.problems.push(FileProblem { path: dir, cause: format!("cannot resolve folder: {e}") });
                continue;
            }
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                scan.problems.push(FileProblem { path: dir, cause: format!("cannot list folder: {e}") });
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    scan.problems.push(FileProblem { path: dir.clone(), cause: format!("cannot read entry: {e}") });
                    continue;
                }
            };
            let path = entry.path();
            if entry.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            // `metadata` follows symlinks, so linked folders and photos count; dangling links are reported.
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => stack.push(path),
                Ok(meta) if meta.is_file() && is_image_path(&path) => scan.images.push(path),
                Ok(_) => {}
                Err(e) => scan.problems.push(FileProblem { path, cause: format!("cannot read: {e}") }),
            }
        }
    }
    scan.images.sort();
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_case_insensitive() {
        assert!(is_image_path(Path::new("a/B.JPG")));
        assert!(is_image_path(Path::new("x.tiff")));
        assert!(!is_image_path(Path::new("notes.txt")));
        assert!(!is_image_path(Path::new("jpg")));
    }
}
