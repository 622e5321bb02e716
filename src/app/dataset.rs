//! The dataset browser: a Flickr8k split (or a Karpathy-split JSON's: Flickr30k, COCO) shown in the gallery, the selected image's five
//! ground-truth captions with the rank each pair gets both ways, any of them one click away as
//! the query, and the split's Recall@K under the default ranker (what `eval --model default`
//! reports), computed in the background from the index the gallery ranks with.

use std::path::PathBuf;
use std::sync::Arc;

use crate::data::flickr8k::{Split, SplitData};
use crate::data::karpathy::load_any;
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot, spawn_oneshot};
use crate::engine::split_scores::{CaptionEmbedding, DefaultSplit, spawn_caption_embeddings};

use super::models::Models;
use super::notifications::{Level, Notifications};
use super::ranking::Ranking;

pub struct Dataset {
    /// What was opened: a dataset folder, or a Karpathy-split JSON file.
    pub root: PathBuf,
    /// The folder the split's photos are indexed under (`root`, or the JSON file's folder).
    pub folder: PathBuf,
    pub split: Split,
    pub data: SplitData,
    /// The gallery generation showing this split's images (item i = image i).
    pub generation: u64,
    captions_job: Option<Job<(usize, Result<CaptionEmbedding, String>)>>,
    /// The captions were sent to be embedded (once: a split whose captions all fail, or that has
    /// none, is not sent again every frame).
    captions_sent: bool,
    /// One per caption, image i's captions at 5i..5i+5.
    pub caption_embeddings: Vec<Option<CaptionEmbedding>>,
    scores_job: Option<Job<Result<DefaultSplit, String>>>,
    /// The split under the default ranker (Recall@K, each pair's ranks), or why there is none.
    pub scores: Option<Result<Arc<DefaultSplit>, String>>,
    /// Another split picked in the panel: the app opens it.
    pub requested_split: Option<Split>,
}

/// A split read from disk, not yet shown.
pub struct Opened {
    pub root: PathBuf,
    pub folder: PathBuf,
    pub split: Split,
    pub data: SplitData,
}

/// Read a split (run as a background task of the window).
pub fn open(root: PathBuf, split: Split) -> Result<Opened, String> {
    let data = load_any(&root, split).map_err(|e| e.to_string())?;
    let folder = match root.parent() {
        Some(parent) if root.is_file() => parent.to_path_buf(),
        _ => root.clone(),
    };
    Ok(Opened { root, folder, split, data })
}

impl Dataset {
    pub fn new(Opened { root, folder, split, data }: Opened, generation: u64) -> Self {
        let n = data.captions.len() * 5;
        Self {
            root,
            folder,
            split,
            data,
            generation,
            captions_job: None,
            captions_sent: false,
            caption_embeddings: vec![None; n],
            scores_job: None,
            scores: None,
            requested_split: None,
        }
    }

    pub fn captions_embedded(&self) -> usize {
        self.caption_embeddings.iter().filter(|e| e.is_some()).count()
    }

    /// Recall@K under the default ranker, once computed.
    pub fn recalls(&self) -> Option<crate::engine::recall::Recalls> {
        Some(self.scores.as_ref()?.as_ref().ok()?.recalls)
    }

    /// Whether its own jobs run (the split's indexing is the ranking's: `Ranking::is_busy`).
    pub fn is_busy(&self) -> bool {
        self.captions_job.is_some() || self.scores_job.is_some()
    }

    pub fn cancel(&self) {
        if let Some(job) = &self.captions_job {
            job.cancel();
        }
    }

    /// The image (index) a caption belongs to, if it is one of the split's.
    pub fn owner_of(&self, caption: &str) -> Option<usize> {
        let caption = caption.trim();
        self.data.captions.iter().position(|five| five.iter().any(|c| c == caption))
    }

    /// Embed the captions once SHAN's runtime is loaded; score the split once they are embedded
    /// and the split's photos indexed (the gallery ranks from the same index).
    pub fn poll(&mut self, ranking: &Ranking, models: &Models, waker: &Waker, notes: &mut Notifications) {
        if let Some(runtime) = models.runtime()
            && !self.captions_sent
            && !self.data.captions.is_empty()
        {
            self.captions_sent = true;
            let captions = self.data.captions.iter().flat_map(|five| five.iter().cloned()).collect();
            let cache = (self.folder.clone(), format!("captions-{}.bin", self.split.name()));
            self.captions_job = Some(spawn_caption_embeddings(runtime, captions, Some(cache), waker.clone()));
        }
        if let Some(job) = &self.captions_job {
            match job.drain() {
                Some(messages) => {
                    for (index, result) in messages {
                        match result {
                            Ok(e) => {
                                if let Some(slot) = self.caption_embeddings.get_mut(index) {
                                    *slot = Some(e);
                                }
                            }
                            Err(e) => notes.push(Level::Warning, format!("caption {index}: {e}")),
                        }
                    }
                }
                None => self.captions_job = None,
            }
        }
        if self.scores.is_none()
            && self.scores_job.is_none()
            && self.captions_job.is_none()
            && self.captions_embedded() > 0
            && let (Some(index), Some(runtime)) = (ranking.loaded_index(self.generation), models.runtime())
        {
            let images = self.data.images.clone();
            let captions = self.caption_embeddings.clone();
            self.scores_job = Some(spawn_oneshot("score the split", waker.clone(), move |_| {
                let bank = runtime.bank.as_ref().map_err(|e| format!("the default ranker is unavailable: {e}"))?;
                DefaultSplit::new(&index, &images, &captions, bank)
            }));
        }
        match poll_slot(&mut self.scores_job) {
            Oneshot::Done(r) => self.scores = Some(r.map(Arc::new)),
            Oneshot::Gone => notes.push(Level::Error, "scoring the split stopped unexpectedly"),
            Oneshot::Pending => {}
        }
    }

    /// The side panel; returns a caption the user picked as the query.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        selected: Option<usize>,
        query: &str,
        gt_rank: Option<usize>,
        ranking: &Ranking,
    ) -> Option<String> {
        let name = self.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ui.heading("Dataset");
        ui.horizontal(|ui| {
            ui.label(format!("{name} · {} images ·", self.data.images.len()));
            egui::ComboBox::from_label("split").selected_text(self.split.name()).show_ui(ui, |ui| {
                for split in [Split::Train, Split::Dev, Split::Test] {
                    if ui.selectable_label(self.split == split, split.name()).clicked() && self.split != split {
                        self.requested_split = Some(split);
                    }
                }
            });
        });
        ui.separator();
        ui.strong("Recall@K (the default ranker)");
        match &self.scores {
            None if self.data.images.is_empty() => {
                ui.weak("this split lists no images");
            }
            Some(Ok(scored)) => {
                let r = scored.recalls;
                egui::Grid::new("recalls").num_columns(4).show(ui, |ui| {
                    ui.label("");
                    for k in ["R@1", "R@5", "R@10"] {
                        ui.label(k);
                    }
                    ui.end_row();
                    for (dir, v) in [("image to text", r.i2t), ("text to image", r.t2i)] {
                        ui.label(dir);
                        for x in v {
                            ui.label(format!("{x:.1}"));
                        }
                        ui.end_row();
                    }
                });
                ui.label(format!("rSum {:.1}", r.rsum));
                if scored.images_scored() < self.data.images.len() {
                    ui.weak(format!(
                        "over {} of the {} images (the others are not indexed or a caption is not embedded)",
                        scored.images_scored(),
                        self.data.images.len()
                    ));
                }
            }
            Some(Err(why)) => {
                ui.weak(why);
            }
            None if ranking.uses_index().is_none() => {
                ui.weak("shown when ranking with the default, global or SHAN (Settings)");
            }
            None => {
                let (done, total) = ranking.index.progress.unwrap_or((0, 0));
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.weak(format!(
                        "indexing: {done}/{total} new photos; captions: {}/{}",
                        self.captions_embedded(),
                        self.caption_embeddings.len()
                    ));
                });
            }
        }
        ui.separator();
        if let (Some(owner), Some(rank)) = (self.owner_of(query), gt_rank) {
            let file =
                self.data.images[owner].file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            ui.label(format!("The query is a caption of {file}: ranked #{rank}"));
        }
        let Some(image) = selected.filter(|&i| i < self.data.images.len()) else {
            ui.weak("Select an image to see its captions.");
            return None;
        };
        let file = self.data.images[image].file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ui.strong(format!("{file}: its five captions"));
        ui.weak("click one to rank the split by it");
        let ranks = self.scores.as_ref().and_then(|s| s.as_ref().ok()?.pair_ranks(image));
        let mut picked = None;
        for (k, caption) in self.data.captions[image].iter().enumerate() {
            let rank_text =
                ranks.as_ref().map(|r| format!("   image #{} · caption #{}", r[k].0, r[k].1)).unwrap_or_default();
            let response = ui.selectable_label(query.trim() == caption, format!("{caption}{rank_text}"));
            if response.on_hover_text("image #: the image's rank for this caption (text to image); caption #: this caption's rank among all the split's captions for the image (image to text)").clicked() {
                picked = Some(caption.clone());
            }
        }
        picked
    }
}
