//! Ranking the open folder from the folder's persistent index (the engine behind `alignscope
//! index` and `search`, with the same networks): the index is brought up to date in the
//! background, with progress and cancel, then each caption is ranked by the chosen network (SHAN
//! scores every photo up to EXHAUSTIVE_UP_TO photos, else two-stage).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::index::{IndexMsg, update_index, update_listed};
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot, spawn_oneshot};
use crate::engine::runtime::Runtime;
use crate::engine::search::{Hit, LoadedIndex, SearchModel, SearchOptions, encode_caption, rank_query};

use super::gallery::Item;
use super::notifications::{Level, Notifications};

/// Folders up to this size are scored exhaustively (about 120 ms per 1,000 photos on 2 cores).
const EXHAUSTIVE_UP_TO: usize = 1000;

enum IndexJobMsg {
    Progress(IndexMsg),
    Done(Result<LoadedIndex, String>),
}

/// A ranked caption: the caption, the chosen network's hits, every index network's hits that
/// could be computed (for the inspector's comparison), and a warning (a cut caption).
struct Ranked {
    caption: String,
    hits: Vec<Hit>,
    all: Vec<(SearchModel, Vec<Hit>)>,
    warning: Option<String>,
}

type QueryResult = Result<Ranked, String>;

/// Each index network's score per gallery item for the caption last ranked (None: not scored).
#[derive(Clone, Debug, Default)]
pub struct IndexScores {
    pub caption: String,
    pub by_model: Vec<(SearchModel, Vec<Option<f32>>)>,
}

#[derive(Default)]
pub struct IndexRanking {
    job: Option<Job<IndexJobMsg>>,
    /// Photos embedded so far and to embed in this update.
    pub progress: Option<(usize, usize)>,
    index: Option<Arc<LoadedIndex>>,
    /// The folder the index is for.
    root: Option<PathBuf>,
    /// The photos it is for, when a list (a dataset split) rather than the whole folder.
    listed: Option<Vec<PathBuf>>,
    query_job: Option<Job<QueryResult>>,
    /// A caption (and the network to rank with) waiting for the index or the running query.
    pending: Option<(String, SearchModel)>,
    /// Every index network's scores for the last ranked caption.
    pub scores: IndexScores,
    /// Groups of near-duplicates among the indexed photos (by absolute path), computed in the
    /// background once the index is loaded.
    groups_job: Option<Job<HashMap<PathBuf, usize>>>,
    /// The groups, and which computation they came from (unique in the process).
    groups: Option<(usize, HashMap<PathBuf, usize>)>,
}

/// Numbers each computation of near-duplicate groups, so the gallery knows a new one from the
/// one it holds (across folders and re-indexing).
static GROUPS_COMPUTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl IndexRanking {
    /// The loaded index, once up to date.
    pub fn loaded(&self) -> Option<Arc<LoadedIndex>> {
        self.index.clone().filter(|_| self.job.is_none())
    }

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

    /// Index `root` — all its photos, or only those `listed` (a dataset split) — unless that
    /// index is loaded or loading (incremental: unchanged photos are kept).
    pub fn open(&mut self, root: &Path, listed: Option<Vec<PathBuf>>, runtime: Arc<Runtime>, waker: &Waker) {
        if self.root.as_deref() == Some(root) && self.listed == listed {
            return;
        }
        self.cancel();
        *self = Self { root: Some(root.to_path_buf()), listed: listed.clone(), ..Self::default() };
        let (job, reporter, cancel) = Job::new("index", waker.clone());
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            let report = |m| {
                reporter.send(IndexJobMsg::Progress(m));
            };
            let updated = match &listed {
                Some(files) => update_listed(&runtime, &root, files, &cancel, &report),
                None => update_index(&runtime, &root, &cancel, &report),
            };
            let result = updated
                .map(|(_, file)| LoadedIndex::new(&root, file))
                .map_err(|e| format!("{}: {e:#}", root.display()));
            reporter.send(IndexJobMsg::Done(result));
        });
        self.job = Some(job);
    }

    /// Every indexed photo's similarity to the indexed photo at `path` (the cosine of SHAN's
    /// embeddings, as `alignscope search --image`), per gallery item; None while the folder's
    /// index is not loaded or does not hold the photo. A dot product per photo (~5 ms for 10,000
    /// photos): no model runs.
    pub fn similar(&self, items: &[Item], path: &Path) -> Option<Vec<Option<f32>>> {
        let index = self.index.as_ref()?;
        let relative = path.strip_prefix(&index.root).ok()?;
        let photo = index.paths.iter().position(|p| p == relative)?;
        let query = index.embeddings.get(photo * index.dim..(photo + 1) * index.dim)?;
        let scores = index.embedding_scores(query);
        let hits: Vec<Hit> =
            index.paths.iter().zip(scores).map(|(p, score)| Hit { score, path: index.root.join(p) }).collect();
        Some(scores_by_item(items, &hits))
    }

    /// Whether the loaded index holds the photo at `path`: None while the index is being
    /// updated or belongs to another folder (a photo that failed to decode is never held).
    pub fn holds(&self, path: &Path) -> Option<bool> {
        let index = self.index.as_ref().filter(|_| self.job.is_none())?;
        let root = self.root.as_deref()?;
        let relative = path.strip_prefix(root).ok()?;
        Some(index.paths.iter().any(|p| p == relative))
    }

    /// Which computation of the near-duplicate groups is current (changes when they are
    /// computed again); None before the first.
    pub fn groups_version(&self) -> Option<usize> {
        self.groups.as_ref().map(|(version, _)| *version)
    }

    /// Each gallery item's group of near-duplicates, once computed for the gallery's `folder`;
    /// photos the index does not hold form groups of their own.
    pub fn duplicate_groups(&self, folder: Option<&Path>, items: &[Item]) -> Option<Vec<usize>> {
        let (_, groups) = self.groups.as_ref().filter(|_| folder.is_some() && self.root.as_deref() == folder)?;
        let first_free = groups.len();
        Some(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| groups.get(&item.path).copied().unwrap_or(first_free + i))
                .collect(),
        )
    }

    /// Rank by `caption` with `model` once the index is ready (the latest caption wins).
    pub fn rank(&mut self, caption: String, model: SearchModel) {
        self.pending = Some((caption, model));
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
                            // Logged, not a toast: the status bar already says the index is busy.
                            IndexJobMsg::Progress(IndexMsg::Waiting(w)) => notes.push(Level::Info, w),
                            IndexJobMsg::Done(Ok(index)) => {
                                notes.push(Level::Info, format!("index ready: {} photos", index.len()));
                                let index = Arc::new(index);
                                self.groups_job = Some(spawn_duplicate_groups(index.clone(), waker));
                                self.index = Some(index);
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
            && let Some((caption, model)) = self.pending.take()
        {
            let (index, runtime) = (index.clone(), runtime.clone());
            let options = SearchOptions {
                model,
                top: index.len(),
                candidates: crate::engine::search::DEFAULT_CANDIDATES,
                exhaustive: index.len() <= EXHAUSTIVE_UP_TO,
            };
            self.query_job = Some(spawn_oneshot("search", waker.clone(), move |_| {
                let query = encode_caption(&runtime, &caption).map_err(|e| format!("{e:#}"))?;
                let hits = rank_query(&runtime, &index, &query, options).map_err(|e| format!("{e:#}"))?;
                // The other networks' scores are a dot product per photo: cheap to add. SHAN's
                // two-stage scores cover only its candidates, so it joins only when chosen.
                let mut all = vec![(model, hits.clone())];
                for other in [SearchModel::Default, SearchModel::Global].into_iter().filter(|m| *m != model) {
                    if let Ok(h) = rank_query(&runtime, &index, &query, SearchOptions { model: other, ..options }) {
                        all.push((other, h));
                    }
                }
                Ok(Ranked { caption, hits, all, warning: query.warning })
            }));
        }
        match poll_slot(&mut self.groups_job) {
            Oneshot::Done(groups) => {
                let version = GROUPS_COMPUTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.groups = Some((version, groups));
            }
            Oneshot::Gone => notes.push(Level::Error, "finding near-duplicates stopped unexpectedly"),
            Oneshot::Pending => {}
        }
        match poll_slot(&mut self.query_job) {
            Oneshot::Done(Ok(Ranked { caption, hits, all, warning })) => {
                if let Some(w) = warning {
                    notes.push(Level::Warning, w);
                }
                let by_model = all.iter().map(|(m, h)| (*m, scores_by_item(items, h))).collect();
                self.scores = IndexScores { caption, by_model };
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

/// Near-duplicate groups of the index's photos (the global embeddings' cosine ≥
/// [`crate::engine::duplicates::THRESHOLD`]), keyed by absolute path; a group's id is the index
/// row of its first photo.
fn spawn_duplicate_groups(index: Arc<LoadedIndex>, waker: &Waker) -> Job<HashMap<PathBuf, usize>> {
    spawn_oneshot("find near-duplicates", waker.clone(), move |_| {
        use crate::engine::duplicates::{THRESHOLD, groups};
        let group = groups(&index.globals, index.global_dim, THRESHOLD);
        index.paths.iter().zip(group).map(|(p, g)| (index.root.join(p), g)).collect()
    })
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
