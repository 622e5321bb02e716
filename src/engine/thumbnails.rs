//! Thumbnail decoding on a small worker pool, the photos on screen first.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image::RgbaImage;

use super::jobs::{Job, Waker};
use crate::data::decode;
use crate::data::thumb_cache::ThumbCache;

pub enum ThumbMsg {
    Ready { index: usize, image: RgbaImage },
    Failed { index: usize, error: String },
}

/// Which photos still need a thumbnail; the UI moves the visible ones to the front.
#[derive(Default)]
struct Queue {
    pending: BTreeSet<usize>,
    wanted: Vec<usize>,
    /// Workers still taking from the queue (they leave when it is empty).
    workers: usize,
}

impl Queue {
    fn next(&mut self) -> Option<usize> {
        while let Some(i) = self.wanted.pop() {
            if self.pending.remove(&i) {
                return Some(i);
            }
        }
        let next = self.pending.pop_first();
        if next.is_none() {
            // Decided under the lock, so `add` never queues work nobody will take.
            self.workers = self.workers.saturating_sub(1);
        }
        next
    }
}

pub struct ThumbnailJob {
    pub job: Job<ThumbMsg>,
    queue: Arc<Mutex<Queue>>,
}

impl ThumbnailJob {
    /// Start decoding `paths` into thumbnails of at most `max_side` pixels on `workers` threads.
    pub fn spawn(paths: Vec<PathBuf>, max_side: u32, workers: usize, waker: Waker) -> Self {
        let pending = (0..paths.len()).collect();
        Self::spawn_some(Arc::new(paths), pending, max_side, workers, None, waker)
    }

    /// Decode only the photos at `pending` (indices into `paths`), through `cache` where given.
    pub fn spawn_some(
        paths: Arc<Vec<PathBuf>>,
        pending: BTreeSet<usize>,
        max_side: u32,
        workers: usize,
        cache: Option<ThumbCache>,
        waker: Waker,
    ) -> Self {
        let (job, reporter, cancel) = Job::new("thumbnails", waker);
        let workers = workers.max(1);
        let queue = Arc::new(Mutex::new(Queue { pending, wanted: Vec::new(), workers }));
        for _ in 0..workers {
            let (queue, paths, reporter, cancel) = (queue.clone(), paths.clone(), reporter.clone(), cancel.clone());
            let cache = cache.clone();
            std::thread::spawn(move || {
                while !cancel.is_cancelled() {
                    let Some(index) = queue.lock().ok().and_then(|mut q| q.next()) else { break };
                    let message = match thumbnail(cache.as_ref(), &paths[index], max_side) {
                        Ok(image) => ThumbMsg::Ready { index, image },
                        Err(e) => ThumbMsg::Failed { index, error: e.to_string() },
                    };
                    if !reporter.send(message) {
                        break;
                    }
                }
            });
        }
        Self { job, queue }
    }

    /// Queue more photos; false when the workers have already left (start another job).
    pub fn add(&self, indices: impl IntoIterator<Item = usize>) -> bool {
        let Ok(mut q) = self.queue.lock() else { return false };
        if q.workers == 0 {
            return false;
        }
        q.pending.extend(indices);
        true
    }

    /// Decode these indices next (e.g. the rows on screen), most urgent last.
    pub fn prioritize(&self, indices: impl IntoIterator<Item = usize>) {
        if let Ok(mut q) = self.queue.lock() {
            q.wanted = indices.into_iter().collect();
        }
    }
}

/// The cached thumbnail, or the photo decoded (and then cached).
fn thumbnail(
    cache: Option<&ThumbCache>,
    path: &std::path::Path,
    max_side: u32,
) -> Result<RgbaImage, decode::DecodeError> {
    if let Some(image) = cache.and_then(|c| c.get(path, max_side)) {
        return Ok(image);
    }
    let image = decode::thumbnail(path, max_side)?;
    if let Some(c) = cache {
        c.put(path, max_side, &image);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_serves_wanted_first_then_in_order_without_repeats() {
        let mut q = Queue { pending: (0..5).collect(), wanted: vec![4, 3], workers: 1 };
        assert_eq!(q.next(), Some(3));
        assert_eq!(q.next(), Some(4));
        q.wanted = vec![3, 1];
        assert_eq!(q.next(), Some(1));
        assert_eq!(q.next(), Some(0));
        assert_eq!(q.next(), Some(2));
        assert_eq!(q.next(), None);
        assert_eq!(q.workers, 0, "the worker that found the queue empty has left");
    }

    #[test]
    fn photos_added_to_a_finished_job_are_refused_so_a_new_job_takes_them() {
        let dir = std::env::temp_dir().join(format!("alignscope-thumbs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grey.png");
        image::RgbImage::from_pixel(40, 20, image::Rgb([90, 90, 90])).save(&path).unwrap();
        let job = ThumbnailJob::spawn(vec![path.clone(), path], 16, 2, super::super::jobs::no_waker());
        let mut ready = 0;
        while let Some(messages) = job.job.drain() {
            ready += messages.iter().filter(|m| matches!(m, ThumbMsg::Ready { .. })).count();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(ready, 2);
        assert!(!job.add([0]), "no worker is left to take it");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// With a cache, a decoded thumbnail is kept, and the next run takes it from there: a cached
    /// entry that differs from the photo (planted here) is what comes back.
    #[test]
    fn thumbnails_go_through_the_disk_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("red.png");
        image::RgbImage::from_pixel(40, 20, image::Rgb([200, 0, 0])).save(&path).unwrap();
        let cache = ThumbCache::new(tmp.path().join("cache"));
        let run = || {
            let job = ThumbnailJob::spawn_some(
                Arc::new(vec![path.clone()]),
                [0].into(),
                16,
                1,
                Some(cache.clone()),
                super::super::jobs::no_waker(),
            );
            let mut images = Vec::new();
            while let Some(messages) = job.job.drain() {
                images.extend(messages.into_iter().filter_map(|m| match m {
                    ThumbMsg::Ready { image, .. } => Some(image),
                    ThumbMsg::Failed { .. } => None,
                }));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            images
        };
        let first = run();
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].width(), first[0].get_pixel(0, 0).0), (16, [200, 0, 0, 255]));
        assert_eq!(cache.get(&path, 16).as_ref(), Some(&first[0]), "kept");
        let planted = RgbaImage::from_pixel(16, 8, image::Rgba([0, 0, 255, 255]));
        cache.put(&path, 16, &planted);
        assert_eq!(run(), vec![planted], "the second run reads the cache, not the photo");
    }
}
