//! Thumbnail decoding on a small worker pool, the photos on screen first.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image::RgbaImage;

use super::jobs::{Job, Waker};
use crate::data::decode;

pub enum ThumbMsg {
    Ready { index: usize, image: RgbaImage },
    Failed { index: usize, error: String },
}

/// Which photos still need a thumbnail; the UI moves the visible ones to the front.
#[derive(Default)]
struct Queue {
    pending: BTreeSet<usize>,
    wanted: Vec<usize>,
}

impl Queue {
    fn next(&mut self) -> Option<usize> {
        while let Some(i) = self.wanted.pop() {
            if self.pending.remove(&i) {
                return Some(i);
            }
        }
        self.pending.pop_first()
    }
}

pub struct ThumbnailJob {
    pub job: Job<ThumbMsg>,
    queue: Arc<Mutex<Queue>>,
}

impl ThumbnailJob {
    /// Start decoding `paths` into thumbnails of at most `max_side` pixels on `workers` threads.
    pub fn spawn(paths: Vec<PathBuf>, max_side: u32, workers: usize, waker: Waker) -> Self {
        let (job, reporter, cancel) = Job::new("thumbnails", waker);
        let queue = Arc::new(Mutex::new(Queue { pending: (0..paths.len()).collect(), wanted: Vec::new() }));
        let paths = Arc::new(paths);
        for _ in 0..workers.max(1) {
            let (queue, paths, reporter, cancel) = (queue.clone(), paths.clone(), reporter.clone(), cancel.clone());
            std::thread::spawn(move || {
                while !cancel.is_cancelled() {
                    let Some(index) = queue.lock().ok().and_then(|mut q| q.next()) else { break };
                    let message = match decode::thumbnail(&paths[index], max_side) {
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

    /// Decode these indices next (e.g. the rows on screen), most urgent last.
    pub fn prioritize(&self, indices: impl IntoIterator<Item = usize>) {
        if let Ok(mut q) = self.queue.lock() {
            q.wanted = indices.into_iter().collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_serves_wanted_first_then_in_order_without_repeats() {
        let mut q = Queue { pending: (0..5).collect(), wanted: vec![4, 3] };
        assert_eq!(q.next(), Some(3));
        assert_eq!(q.next(), Some(4));
        q.wanted = vec![3, 1];
        assert_eq!(q.next(), Some(1));
        assert_eq!(q.next(), Some(0));
        assert_eq!(q.next(), Some(2));
        assert_eq!(q.next(), None);
    }
}
