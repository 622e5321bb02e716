//! Caption ranking in the app: models load in the background, the folder's photos are embedded in
//! the background, and a typed caption (debounced) is embedded and scored against them. The UI
//! thread only polls. The pair-independent networks (global, DSRAN, RACG: photos embedded
//! per session; RACG's folder scores computed in the background per caption), or SHAN from the
//! folder's persistent index (`index_ranking`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot, spawn_oneshot};
use crate::engine::rank::{EmbedMsg, Embeddings, Ranker, RankerModel, spawn_embedding, spawn_query};

use super::gallery::Gallery;
use super::index_ranking::IndexRanking;
use super::models::Models;
use super::notifications::{Level, Notifications};
use crate::engine::search::SearchModel;

const DEBOUNCE: Duration = Duration::from_millis(300);

type QueryResult = Result<(String, Embeddings, Option<String>), String>;

/// RACG's scores of the folder's photos for one caption (by item index; None: not embedded when
/// they were computed), and how many photos were embedded then.
#[derive(Clone)]
struct RacgScores {
    caption: String,
    generation: u64,
    embedded: usize,
    scores: Vec<Option<f32>>,
}

/// One network's score of a pair, and the photo's rank in the folder under it (1 = best).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelScore {
    pub name: &'static str,
    pub score: f32,
    pub rank: usize,
}

impl ModelScore {
    /// Item `index`'s score and rank among `scores` (None where it has no score).
    fn of(name: &'static str, scores: &[Option<f32>], index: usize) -> Option<Self> {
        let score = (*scores.get(index)?)?;
        let above = scores.iter().enumerate().filter(|&(i, s)| i != index && s.is_some_and(|s| s > score)).count();
        Some(Self { name, score, rank: above + 1 })
    }
}

#[derive(Default)]
pub struct Ranking {
    embedding: Option<Job<EmbedMsg>>,
    embeddings: Vec<Option<Embeddings>>,
    generation: u64,
    query_job: Option<Job<QueryResult>>,
    /// The caption whose embedding is current, and the embedding.
    query: Option<(String, Embeddings)>,
    /// The network the gallery is ranked with (when not ranking from the index).
    model: Option<RankerModel>,
    racg_job: Option<Job<RacgScores>>,
    racg: Option<RacgScores>,
    /// Bumped whenever scores arrive that `compare` would answer differently for.
    pub version: u64,
    typed: String,
    typed_at: Option<Instant>,
    /// Rank from the folder's index with this network (else with the per-session embeddings).
    use_index: Option<SearchModel>,
    pub index: IndexRanking,
}

impl Ranking {
    /// The gallery's photo embeddings (by item index), for the gallery generation they belong to.
    pub fn embeddings(&self, generation: u64) -> Option<&[Option<Embeddings>]> {
        (self.generation == generation).then_some(self.embeddings.as_slice())
    }

    pub fn embedded(&self) -> usize {
        self.embeddings.iter().filter(|e| e.is_some()).count()
    }

    pub fn is_embedding(&self) -> bool {
        self.embedding.is_some()
    }

    pub fn is_busy(&self) -> bool {
        if self.use_index.is_some() {
            return self.index.is_busy() || self.typed_at.is_some();
        }
        self.embedding.is_some() || self.query_job.is_some() || self.racg_job.is_some() || self.typed_at.is_some()
    }

    pub fn cancel(&mut self) {
        if let Some(job) = self.embedding.take() {
            job.cancel();
        }
        if let Some(job) = self.racg_job.take() {
            job.cancel();
        }
        self.index.cancel();
    }

    /// Rank with this network (the folder is ranked again if it changed).
    pub fn set_model(&mut self, model: RankerModel) {
        if self.model != Some(model) {
            self.model = Some(model);
            // Re-score the current caption with the new model.
            self.query = None;
            self.typed_at = Some(Instant::now());
        }
    }

    /// Every photo's score for the current caption under `model` (by item index; None: not
    /// embedded, or the model is not loaded); None when there is no caption or RACG's scores
    /// for it are not computed yet.
    fn scores(&self, model: RankerModel) -> Option<Vec<Option<f32>>> {
        let (caption, q) = self.query.as_ref()?;
        match model {
            RankerModel::Racg => self
                .racg
                .as_ref()
                .filter(|r| r.caption == *caption && r.generation == self.generation)
                .map(|r| r.scores.clone()),
            m => Some(self.embeddings.iter().map(|e| e.as_ref().and_then(|e| m.cosine(e, q))).collect()),
        }
    }

    /// Under each network with scores for the current caption (from the index: default and
    /// global; per session: global, DSRAN, RACG): item `index`'s score and its rank among the
    /// scored photos (1 = best), e.g. to compare models on one pair. SHAN's is the inspector's own.
    pub fn compare(&self, index: usize) -> Vec<ModelScore> {
        if self.use_index.is_some() {
            return self
                .index
                .scores
                .by_model
                .iter()
                .filter(|(m, _)| *m != SearchModel::Shan)
                .filter_map(|(m, scores)| ModelScore::of(m.name(), scores, index))
                .collect();
        }
        RankerModel::ALL.into_iter().filter_map(|m| ModelScore::of(m.name(), &self.scores(m)?, index)).collect()
    }

    /// The caption the current scores are for.
    pub fn caption(&self) -> Option<&str> {
        match self.use_index {
            Some(_) => Some(self.index.scores.caption.as_str()).filter(|c| !c.is_empty()),
            None => self.query.as_ref().map(|(q, _)| q.as_str()),
        }
    }

    /// The index of the gallery generation `generation` (a folder or a dataset split), once up to
    /// date; None when the gallery is not ranked from an index.
    pub fn loaded_index(&self, generation: u64) -> Option<Arc<crate::engine::search::LoadedIndex>> {
        self.index.loaded().filter(|_| self.use_index.is_some() && self.generation == generation)
    }

    /// The index's network the gallery is ranked with, if it is ranked from the index.
    pub fn uses_index(&self) -> Option<SearchModel> {
        self.use_index
    }

    /// Rank from the folder's index with `model`, or (None) with the per-session embeddings; the
    /// folder is ranked again. The index stays loaded when only its network changes.
    pub fn set_use_index(&mut self, model: Option<SearchModel>) {
        if model == self.use_index {
            return;
        }
        if model.is_none() || self.use_index.is_none() {
            self.cancel();
            self.generation = 0;
            self.query = None;
            self.index = IndexRanking::default();
        }
        self.use_index = model;
        self.typed_at = Some(Instant::now());
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

    fn poll_index(
        &mut self,
        ctx: &egui::Context,
        gallery: &mut Gallery,
        models: &Models,
        waker: &Waker,
        notes: &mut Notifications,
    ) {
        let Some(runtime) = models.runtime() else { return };
        if self.generation != gallery.generation
            && !gallery.is_scanning()
            && let Some(folder) = gallery.folder.clone()
        {
            self.generation = gallery.generation;
            let listed = gallery.listed.then(|| gallery.items.iter().map(|i| i.path.clone()).collect());
            self.index.open(&folder, listed, runtime.clone(), waker);
            // Rank the current caption once the index is ready.
            self.typed_at = Some(Instant::now());
        }
        match self.settled_text(ctx) {
            Some(text) if text.is_empty() => gallery.unrank(),
            Some(text) => self.index.rank(text, self.use_index.unwrap_or_default()),
            None => {}
        }
        if let Some(scores) = self.index.poll(&gallery.items, Some(&runtime), waker, notes) {
            gallery.rank_by(scores);
            self.version += 1;
        }
    }

    /// The query box changed (or not): remember when, to embed it once typing pauses.
    pub fn set_query(&mut self, text: &str) {
        if text != self.typed {
            self.typed = text.to_string();
            self.typed_at = Some(Instant::now());
        }
    }

    pub fn poll(
        &mut self,
        ctx: &egui::Context,
        gallery: &mut Gallery,
        models: &Models,
        waker: &Waker,
        notes: &mut Notifications,
    ) {
        if self.use_index.is_some() {
            self.poll_index(ctx, gallery, models, waker, notes);
            return;
        }
        let Some(ranker) = models.ranker() else { return };

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
            Some(text) if self.query.as_ref().is_none_or(|(q, _)| *q != text) => {
                self.query_job = Some(spawn_query(ranker.clone(), text, waker.clone()))
            }
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
        if self.poll_racg(&ranker, waker) {
            changed = true;
        }
        if changed {
            self.version += 1;
            if let Some(scores) = self.scores(self.model.unwrap_or(RankerModel::Global)) {
                gallery.rank_by(scores);
            }
        }
    }

    /// RACG scores the whole folder per caption, on a background thread: again when the caption
    /// changes, and as photos are embedded (when embedding ends, or the embedded count doubled).
    /// Returns whether new scores arrived.
    fn poll_racg(&mut self, ranker: &Arc<Ranker>, waker: &Waker) -> bool {
        let mut arrived = false;
        match poll_slot(&mut self.racg_job) {
            Oneshot::Done(scores) => {
                self.racg = Some(scores);
                arrived = true;
            }
            Oneshot::Pending if self.racg_job.is_some() => return false,
            Oneshot::Pending | Oneshot::Gone => {}
        }
        let (Some((caption, q)), true) = (&self.query, ranker.racg.is_some()) else { return arrived };
        let Some(query) = q.racg.clone() else { return arrived };
        let embedded = self.embedded();
        let stale = match &self.racg {
            Some(r) if r.caption == *caption && r.generation == self.generation => {
                r.embedded != embedded && (self.embedding.is_none() || embedded >= 2 * r.embedded)
            }
            _ => true,
        };
        if stale && embedded > 0 {
            let photos: Vec<(usize, Arc<[f32]>)> =
                self.embeddings.iter().enumerate().filter_map(|(i, e)| Some((i, e.as_ref()?.racg.clone()?))).collect();
            let (ranker, caption, generation, n) =
                (ranker.clone(), caption.clone(), self.generation, self.embeddings.len());
            self.racg_job = Some(spawn_oneshot("RACG scores", waker.clone(), move |_| {
                let graphs: Vec<&[f32]> = photos.iter().map(|(_, g)| &g[..]).collect();
                let mut scores = vec![None; n];
                for ((i, _), s) in photos.iter().zip(ranker.racg_scores(&graphs, &query)) {
                    scores[*i] = Some(s);
                }
                RacgScores { caption, generation, embedded, scores }
            }));
        }
        arrived
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(global: [f32; 2], dsran: Option<[f32; 2]>) -> Embeddings {
        Embeddings { global: global.to_vec(), dsran: dsran.map(|d| d.to_vec()), racg: None }
    }

    #[test]
    fn compare_gives_each_models_score_and_rank_for_one_photo() {
        let mut r = Ranking {
            embeddings: vec![Some(e([1.0, 0.0], Some([0.0, 1.0]))), Some(e([0.0, 1.0], Some([1.0, 0.0]))), None],
            ..Ranking::default()
        };
        r.query = Some(("q".into(), e([0.8, 0.6], Some([0.6, 0.8]))));
        // Photo 0: global 0.8 (best of two), DSRAN 0.8 (best: photo 1 has 0.6).
        let c = r.compare(0);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].name, c[0].rank), ("global", 1));
        assert!((c[0].score - 0.8).abs() < 1e-6);
        assert_eq!((c[1].name, c[1].rank), ("DSRAN", 1));
        // Photo 1: second under both.
        assert!(r.compare(1).iter().all(|m| m.rank == 2));
        assert!(r.compare(2).is_empty(), "not embedded");
        // RACG's folder scores count once they are for this caption and folder.
        r.racg = Some(RacgScores {
            caption: "q".into(),
            generation: r.generation,
            embedded: 2,
            scores: vec![Some(0.1), Some(0.3), None],
        });
        let c = r.compare(0);
        assert_eq!(c.len(), 3);
        assert_eq!((c[2].name, c[2].rank), ("RACG", 2));
        assert_eq!(r.compare(1)[2].rank, 1);
        r.racg.as_mut().unwrap().caption = "another caption".into();
        assert_eq!(r.compare(0).len(), 2, "stale RACG scores are not shown");
        // Without DSRAN weights only the global model answers.
        r.embeddings[0] = Some(e([1.0, 0.0], None));
        assert_eq!(r.compare(0).len(), 1);
    }
}
