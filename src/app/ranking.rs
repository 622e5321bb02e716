//! Caption ranking in the app: models load in the background, the folder's photos are embedded in
//! the background, and a typed caption (debounced) is embedded and scored against them. The UI
//! thread only polls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::backend::Compute;
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot};
use crate::engine::rank::{EmbedMsg, Ranker, dot, spawn_embedding, spawn_load, spawn_query};

use super::gallery::Gallery;
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
        self.loading.is_some() || self.embedding.is_some() || self.query_job.is_some() || self.typed_at.is_some()
    }

    pub fn cancel(&mut self) {
        if let Some(job) = self.embedding.take() {
            job.cancel();
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
        if let Some(at) = self.typed_at {
            if at.elapsed() >= DEBOUNCE && self.query_job.is_none() {
                self.typed_at = None;
                let text = self.typed.trim().to_string();
                if text.is_empty() {
                    self.query = None;
                    gallery.unrank();
                } else if self.query.as_ref().is_none_or(|(q, _)| *q != text) {
                    self.query_job = Some(spawn_query(ranker.clone(), text, waker.clone()));
                }
            } else {
                ctx.request_repaint_after(DEBOUNCE);
            }
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
