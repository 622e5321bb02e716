//! Caption ranking in the app: models load in the background, the folder's photos are embedded in
//! the background, and a typed caption (debounced) is embedded and scored against them. The UI
//! thread only polls. Two models: the global dual encoder (photos embedded per session), or SHAN
//! from the folder's persistent index (`index_ranking`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::backend::Compute;
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot};
use crate::engine::rank::{EmbedMsg, Ranker, dot, spawn_embedding, spawn_load, spawn_query};

use super::gallery::Gallery;
use super::index_ranking::IndexRanking;
use crate::engine::runtime::Runtime;
use super::notifications::{Level, Notifications};

const DEBOUNCE: Duration = Duration::from_millis(300);

type QueryResult = Result<(String, Vec<f32>, Option<String>), String>;

#[derive(Default)]
pub struct Ranking {
    loading: Option<Job<Result<Arc<Ranker>, String>>>,
    ranker: Option<Arc<Ranker>>,
    /// Why ranking is off (no weights, load error).
    pub unavailable: Option<String>,
    embedding: Option<Job<EmbedMsg>>,
    embeddings: Vec<Option<Vec<f32>>>,
    generation: u64,
    query_job: Option<Job<QueryResult>>,
    /// The caption whose embedding is current, and the embedding.
    query: Option<(String, Vec<f32>)>,
    typed: String,
    typed_at: Option<Instant>,
    /// Rank with SHAN from the folder's index instead of the global model.
    use_index: bool,
    /// SHAN, once loaded (shared with the inspector).
    pub runtime: Option<Arc<Runtime>>,
    pub index: IndexRanking,
}

impl Ranking {
    pub fn start(compute: &Compute, waker: Waker) -> Self {
        Self { loading: Some(spawn_load(compute.clone(), waker)), ..Self::default() }
    }

    /// The loaded model, once loaded.
    pub fn ranker(&self) -> Option<Arc<Ranker>> {
        self.ranker.clone()
    }

    /// The gallery's photo embeddings (by item index), for the gallery generation they belong to.
    pub fn embeddings(&self, generation: u64) -> Option<&[Option<Vec<f32>>]> {
        (self.generation == generation).then_some(self.embeddings.as_slice())
    }

    pub fn embedded(&self) -> usize {
        self.embeddings.iter().filter(|e| e.is_some()).count()
    }

    pub fn is_embedding(&self) -> bool {
        self.embedding.is_some()
    }

    pub fn is_busy(&self) -> bool {
        if self.use_index {
            return self.runtime.is_none() || self.index.is_busy() || self.typed_at.is_some();
        }
        self.loading.is_some() || self.embedding.is_some() || self.query_job.is_some() || self.typed_at.is_some()
    }

    pub fn cancel(&mut self) {
        if let Some(job) = self.embedding.take() {
            job.cancel();
        }
        self.index.cancel();
    }

    pub fn uses_index(&self) -> bool {
        self.use_index
    }

    /// Switch between the global model and SHAN from the index; the folder is ranked again.
    pub fn set_use_index(&mut self, on: bool) {
        if on != self.use_index {
            self.cancel();
            self.use_index = on;
            self.generation = 0;
            self.query = None;
            self.index = IndexRanking::default();
            self.typed_at = Some(Instant::now());
        }
    }

    /// The query text once typing has paused (and no query is running), else None.
    fn settled_text(&mut self, ctx: &egui::Context) -> Option<String> {
        let at = self.typed_at?;
        if at.elapsed() >= DEBOUNCE && self.query_job.is_none() {
            self.typed_at = None;
            Some(self.typed.trim().to_string())
        } else {
            ctx.request_repaint_after(DEBOUNCE);
            None
        }
    }

    fn poll_index(&mut self, ctx: &egui::Context, gallery: &mut Gallery, waker: &Waker, notes: &mut Notifications) {
        let Some(runtime) = self.runtime.clone() else { return };
        if self.generation != gallery.generation && !gallery.is_scanning()
            && let Some(folder) = gallery.folder.clone()
        {
            self.generation = gallery.generation;
            self.index.open(&folder, runtime.clone(), waker);
            // Rank the current caption once the index is ready.
            self.typed_at = Some(Instant::now());
        }
        match self.settled_text(ctx) {
            Some(text) if text.is_empty() => gallery.unrank(),
            Some(text) => self.index.rank(text),
            None => {}
        }
        if let Some(scores) = self.index.poll(&gallery.items, Some(&runtime), waker, notes) {
            gallery.rank_by(scores);
        }
    }

    /// The query box changed (or not): remember when, to embed it once typing pauses.
    pub fn set_query(&mut self, text: &str) {
        if text != self.typed {
            self.typed = text.to_string();
            self.typed_at = Some(Instant::now());
        }
    }

    pub fn poll(&mut self, ctx: &egui::Context, gallery: &mut Gallery, waker: &Waker, notes: &mut Notifications) {
        match poll_slot(&mut self.loading) {
            Oneshot::Done(Ok(ranker)) => self.ranker = Some(ranker),
            Oneshot::Done(Err(e)) => {
                notes.push(Level::Warning, format!("caption ranking unavailable: {e}"));
                self.unavailable = Some(e);
            }
            Oneshot::Pending | Oneshot::Gone => {}
        }
        if self.use_index {
            self.poll_index(ctx, gallery, waker, notes);
            return;
        }
        let Some(ranker) = self.ranker.clone() else { return };

        // A new folder: embed its photos.
        if self.generation != gallery.generation && !gallery.is_scanning() {
            self.cancel();
            self.generation = gallery.generation;
            self.embeddings = vec![None; gallery.items.len()];
            let paths = gallery.items.iter().map(|i| i.path.clone()).collect();
            self.embedding = Some(spawn_embedding(ranker.clone(), paths, 8, waker.clone()));
        }
        let mut changed = false;
        if let Some(job) = &self.embedding {
            match job.drain() {
                Some(messages) => {
                    for m in messages {
                        match m {
                            EmbedMsg::Embedded { index, embedding } => {
                                if let Some(slot) = self.embeddings.get_mut(index) {
                                    *slot = Some(embedding);
                                    changed = true;
                                }
                            }
                            // The thumbnail decoder reports the same file; one message is enough.
                            EmbedMsg::Failed { .. } => {}
                        }
                    }
                }
                None => self.embedding = None,
            }
        }

        // Typing paused: embed the caption.
        match self.settled_text(ctx) {
            Some(text) if text.is_empty() => {
                self.query = None;
                gallery.unrank();
            }
            Some(text) if self.query.as_ref().is_none_or(|(q, _)| *q != text) => self.query_job = Some(spawn_query(ranker.clone(), text, waker.clone())),
            _ => {}
        }
        match poll_slot(&mut self.query_job) {
            Oneshot::Done(Ok((caption, embedding, warning))) => {
                if let Some(w) = warning {
                    notes.push(Level::Warning, w);
                }
                self.query = Some((caption, embedding));
                changed = true;
            }
            Oneshot::Done(Err(e)) => notes.push(Level::Error, format!("query: {e}")),
            Oneshot::Pending | Oneshot::Gone => {}
        }
        if changed {
            if let Some((_, q)) = &self.query {
                let scores = self.embeddings.iter().map(|e| e.as_ref().map(|e| dot(e, q))).collect();
                gallery.rank_by(scores);
            }
        }
    }
}
