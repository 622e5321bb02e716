//! Ranking the open folder with SHAN from the folder's persistent index (the engine behind
//! `alignscope index` and `search`): the index is brought up to date in the background, with
//! progress and cancel, then each caption is scored by SHAN over every photo (up to
//! EXHAUSTIVE_UP_TO photos) or two-stage over the best first-stage candidates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::index::{IndexMsg, update_index};
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot, spawn_oneshot};
use crate::engine::runtime::Runtime;
use crate::engine::search::{Hit, LoadedIndex, SearchOptions, search_caption};

use super::gallery::Item;
use super::notifications::{Level, Notifications};

/// Folders up to this size are scored exhaustively (about 120 ms per 1,000 photos on 2 cores).
const EXHAUSTIVE_UP_TO: usize = 1000;

enum IndexJobMsg {
    Progress(IndexMsg),
    Done(Result<LoadedIndex, String>),
}

type QueryResult = Result<(String, Vec<Hit>, Option<String>), String>;

#[derive(Default)]
pub struct IndexRanking {
    job: Option<Job<IndexJobMsg>>,
    /// Photos embedded so far and to embed in this update.
    pub progress: Option<(usize, usize)>,
    index: Option<Arc<LoadedIndex>>,
    /// The folder the index is for.
    root: Option<PathBuf>,
    query_job: Option<Job<QueryResult>>,
    /// A caption waiting for the index or for the running query.
    pending: Option<String>,
}

impl IndexRanking {
    pub fn is_indexing(&self) -> bool {
        self.job.is_some()
    }

    pub fn is_busy(&self) -> bool {
        self.job.is_some() || self.query_job.is_some() || self.pending.is_some()
    }

    /// Stop indexing after the batch in flight (what is done is saved).
    pub fn cancel(&self) {
        if let Some(job) = &self.job {
            job.cancel();
        }
    }

    /// Index `root` (incremental: unchanged photos are kept) unless its index is loaded or loading.
    pub fn open(&mut self, root: &Path, runtime: Arc<Runtime>, waker: &Waker) {
        if self.root.as_deref() == Some(root) {
            return;
        }
        self.cancel();
        *self = Self { root: Some(root.to_path_buf()), ..Self::default() };
        let (job, reporter, cancel) = Job::new("index", waker.clone());
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            let result = update_index(&runtime, &root, &cancel, &|m| {
                reporter.send(IndexJobMsg::Progress(m));
            })
            .map(|(_, file)| LoadedIndex::new(&root, file))
            .map_err(|e| format!("{}: {e:#}", root.display()));
            reporter.send(IndexJobMsg::Done(result));
        });
        self.job = Some(job);
    }

    /// Rank by `caption` once the index is ready (the latest caption wins).
    pub fn rank(&mut self, caption: String) {
        self.pending = Some(caption);
    }

    /// Take in progress and results; returns scores (per gallery item) when a ranking arrived.
    pub fn poll(
        &mut self,
        items: &[Item],
        runtime: Option<&Arc<Runtime>>,
        waker: &Waker,
        notes: &mut Notifications,
    ) -> Option<Vec<Option<f32>>> {
        if let Some(job) = &self.job {
            match job.drain() {
                Some(messages) => {
                    for m in messages {
                        match m {
                            IndexJobMsg::Progress(IndexMsg::Planned { to_embed, .. }) => {
                                self.progress = Some((0, to_embed))
                            }
                            IndexJobMsg::Progress(IndexMsg::Embedded { done, total }) => {
                                self.progress = Some((done, total))
                            }
                            IndexJobMsg::Progress(IndexMsg::Warning(w)) => notes.push(Level::Warning, w),
                            IndexJobMsg::Done(Ok(index)) => {
                                notes.push(Level::Info, format!("index ready: {} photos", index.len()));
                                self.index = Some(Arc::new(index));
                            }
                            IndexJobMsg::Done(Err(e)) => notes.push(Level::Error, format!("indexing stopped: {e}")),
                        }
                    }
                }
                None => {
                    self.job = None;
                    self.progress = None;
                }
            }
        }
        if let (Some(index), Some(runtime), None) = (&self.index, runtime, &self.query_job)
            && let Some(caption) = self.pending.take()
        {
            let (index, runtime) = (index.clone(), runtime.clone());
            let options = SearchOptions {
                top: index.len(),
                candidates: crate::engine::search::DEFAULT_CANDIDATES,
                exhaustive: index.len() <= EXHAUSTIVE_UP_TO,
            };
            self.query_job = Some(spawn_oneshot("SHAN search", waker.clone(), move |_| {
                search_caption(&runtime, &index, &caption, options)
                    .map(|(hits, warning)| (caption, hits, warning))
                    .map_err(|e| format!("{e:#}"))
            }));
        }
        match poll_slot(&mut self.query_job) {
            Oneshot::Done(Ok((_, hits, warning))) => {
                if let Some(w) = warning {
                    notes.push(Level::Warning, w);
                }
                Some(scores_by_item(items, &hits))
            }
            Oneshot::Done(Err(e)) => {
                notes.push(Level::Error, format!("query: {e}"));
                None
            }
            Oneshot::Gone => {
                notes.push(Level::Error, "the search stopped unexpectedly");
                None
            }
            Oneshot::Pending => None,
        }
    }
}

/// Each gallery item's score among `hits` (None: not scored, e.g. outside the candidates).
fn scores_by_item(items: &[Item], hits: &[Hit]) -> Vec<Option<f32>> {
    let by_path: HashMap<&Path, f32> = hits.iter().map(|h| (h.path.as_path(), h.score)).collect();
    items.iter().map(|i| by_path.get(i.path.as_path()).copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_map_back_to_gallery_items_by_path() {
        let items: Vec<Item> = ["d/a.jpg", "d/b.jpg", "d/c.jpg"]
            .iter()
            .map(|p| Item { path: p.into(), thumb: super::super::Thumb::Unloaded, score: None, last_seen: 0 })
            .collect();
        let hits = vec![Hit { score: 0.9, path: "d/c.jpg".into() }, Hit { score: 0.1, path: "d/a.jpg".into() }];
        assert_eq!(scores_by_item(&items, &hits), vec![Some(0.1), None, Some(0.9)]);
    }
}
