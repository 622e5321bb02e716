//! Thumbnails kept on disk between runs, so reopening a folder does not decode every photo
//! again: one lossless PNG per (photo path, size, modification time, thumbnail size), in the
//! user's cache (`$XDG_CACHE_HOME/alignscope/thumbnails`, by default `~/.cache/…`). A changed
//! photo gets a new key; a missing, unreadable or damaged entry is decoded again and rewritten.
//! Lossless, so a cached thumbnail is pixel for pixel the one decoding would give.

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use image::RgbaImage;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug)]
pub struct ThumbCache {
    dir: PathBuf,
}

impl ThumbCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The user's thumbnail cache (None: neither `$XDG_CACHE_HOME` nor `$HOME` is set).
    pub fn user() -> Option<Self> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(Self::new(base.join("alignscope/thumbnails")))
    }

    /// Where `path`'s thumbnail of `max_side` would be kept, from what identifies this version
    /// of the photo (None: the photo cannot be stat'ed).
    fn entry(&self, path: &Path, max_side: u32) -> Option<PathBuf> {
        let (absolute, size, mtime, mtime_nsec) = super::file_version(path)?;
        let mut hasher = Sha256::new();
        hasher.update(absolute.as_os_str().as_bytes());
        for n in [size as i64, mtime, mtime_nsec, i64::from(max_side)] {
            hasher.update(n.to_le_bytes());
        }
        let key = format!("{:x}", hasher.finalize());
        // Two levels, so no folder holds more than a few thousand entries.
        Some(self.dir.join(&key[..2]).join(format!("{}.png", &key[2..32])))
    }

    /// Delete the entries used least recently (by modification time: a hit does not touch it,
    /// so this is the order they were made) until the cache holds at most `max_bytes`; returns
    /// the bytes freed.
    pub fn prune(&self, max_bytes: u64) -> u64 {
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|shard| std::fs::read_dir(shard.path()).ok())
            .flatten()
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        let mut freed = 0;
        for (_, len, path) in entries {
            if total <= max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
                freed += len;
            }
        }
        freed
    }

    pub fn get(&self, path: &Path, max_side: u32) -> Option<RgbaImage> {
        let entry = self.entry(path, max_side)?;
        let image = image::open(entry).ok()?.to_rgba8();
        (image.width().max(image.height()) <= max_side).then_some(image)
    }

    /// Keep `thumbnail` for `path`; a failure only costs a decode next time.
    pub fn put(&self, path: &Path, max_side: u32, thumbnail: &RgbaImage) {
        let Some(entry) = self.entry(path, max_side) else { return };
        let Some(dir) = entry.parent() else { return };
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(dir)
            .ok()
            .and_then(|()| thumbnail.save_with_format(&tmp, image::ImageFormat::Png).ok())
            .and_then(|()| std::fs::rename(&tmp, &entry).ok());
        if written.is_none() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thumbnail_comes_back_until_the_photo_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ThumbCache::new(tmp.path().join("cache"));
        let photo = tmp.path().join("p.png");
        RgbaImage::from_pixel(8, 8, image::Rgba([1, 2, 3, 255])).save(&photo).unwrap();
        assert!(cache.get(&photo, 4).is_none());
        let thumb = RgbaImage::from_fn(4, 3, |x, y| image::Rgba([x as u8, y as u8, 7, 200]));
        cache.put(&photo, 4, &thumb);
        assert_eq!(cache.get(&photo, 4), Some(thumb.clone()), "lossless, alpha kept");
        assert!(cache.get(&photo, 8).is_none(), "another thumbnail size is another entry");
        // The photo changes (size and mtime): the entry no longer applies.
        std::thread::sleep(std::time::Duration::from_millis(20));
        RgbaImage::from_pixel(9, 9, image::Rgba([1, 2, 3, 255])).save(&photo).unwrap();
        assert!(cache.get(&photo, 4).is_none());
        assert!(cache.get(&tmp.path().join("missing.png"), 4).is_none());
    }

    #[test]
    fn pruning_drops_the_oldest_entries_down_to_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ThumbCache::new(tmp.path().join("cache"));
        let thumb = RgbaImage::from_fn(16, 16, |x, y| image::Rgba([x as u8 * 9, y as u8 * 7, 3, 255]));
        let photos: Vec<PathBuf> = (0..4).map(|i| tmp.path().join(format!("p{i}.png"))).collect();
        for p in &photos {
            thumb.save(p).unwrap();
            cache.put(p, 16, &thumb);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let size = std::fs::metadata(cache.entry(&photos[0], 16).unwrap()).unwrap().len();
        assert_eq!(cache.prune(4 * size), 0, "under the cap: nothing goes");
        assert_eq!(cache.prune(2 * size), 2 * size);
        let kept: Vec<bool> = photos.iter().map(|p| cache.get(p, 16).is_some()).collect();
        assert_eq!(kept, [false, false, true, true], "the oldest went first");
    }
}
