//! The dataset browser: a Flickr8k split (or a Karpathy-split JSON's: Flickr30k, COCO) shown in the gallery, the selected image's five
//! ground-truth captions with the rank each pair gets both ways, any of them one click away as
//! the query, and the split's Recall@K under the gallery's ranking model, computed in the
//! background from the same embeddings the gallery ranks with.

use std::path::PathBuf;

use crate::data::flickr8k::{Split, SplitData};
use crate::data::karpathy::load_any;
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot, spawn_oneshot};
use crate::engine::rank::{dot, spawn_caption_embedding};
use crate::engine::recall::{Recalls, recalls};

use super::notifications::{Level, Notifications};
use super::ranking::Ranking;

pub struct Dataset {
    pub root: PathBuf,
    pub split: Split,
    pub data: SplitData,
    /// The gallery generation showing this split's images (item i = image i).
    pub generation: u64,
    captions_job: Option<Job<(usize, Result<Vec<f32>, String>)>>,
    /// One per caption, image i's captions at 5i..5i+5.
    pub caption_embeddings: Vec<Option<Vec<f32>>>,
    recall_job: Option<Job<Recalls>>,
    pub recalls: Option<Recalls>,
    /// (image, per GT caption: (t2i rank of the image, i2t rank of the caption)), 1-based.
    ranks: Option<(usize, Vec<(usize, usize)>)>,
    /// Another split picked in the panel: the app opens it.
    pub requested_split: Option<Split>,
}

/// Read a split in the background.
pub fn spawn_open(root: PathBuf, split: Split, waker: Waker) -> Job<Result<(PathBuf, Split, SplitData), String>> {
    spawn_oneshot("open dataset", waker, move |_| {
        load_any(&root, split).map(|d| (root, split, d)).map_err(|e| e.to_string())
    })
}

impl Dataset {
    pub fn new(root: PathBuf, split: Split, data: SplitData, generation: u64) -> Self {
        let n = data.captions.len() * 5;
        Self {
            root,
            split,
            data,
            generation,
            captions_job: None,
            caption_embeddings: vec![None; n],
            recall_job: None,
            recalls: None,
            ranks: None,
            requested_split: None,
        }
    }

    pub fn captions_embedded(&self) -> usize {
        self.caption_embeddings.iter().filter(|e| e.is_some()).count()
    }

    pub fn is_busy(&self) -> bool {
        self.captions_job.is_some()
            || self.recall_job.is_some()
            || (self.recalls.is_none() && !self.caption_embeddings.is_empty())
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

    pub fn poll(&mut self, ranking: &Ranking, waker: &Waker, notes: &mut Notifications) {
        if self.captions_job.is_none()
            && self.captions_embedded() == 0
            && self.recalls.is_none()
            && let Some(ranker) = ranking.ranker()
        {
            let captions = self.data.captions.iter().flat_map(|five| five.iter().cloned()).collect();
            self.captions_job = Some(spawn_caption_embedding(ranker, captions, waker.clone()));
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
        // Everything embedded: Recall@K over the split, off the UI thread.
        let images = ranking.embeddings(self.generation);
        let all_images = images.is_some_and(|e| !e.is_empty() && e.iter().all(Option::is_some));
        if self.recalls.is_none()
            && self.recall_job.is_none()
            && all_images
            && self.caption_embeddings.iter().all(Option::is_some)
        {
            let images: Vec<Vec<f32>> = images.unwrap_or_default().iter().flatten().map(|e| e.global.clone()).collect();
            let captions: Vec<Vec<f32>> = self.caption_embeddings.iter().flatten().cloned().collect();
            self.recall_job = Some(spawn_oneshot("recall", waker.clone(), move |_| {
                let scores: Vec<f32> = images.iter().flat_map(|i| captions.iter().map(move |c| dot(i, c))).collect();
                recalls(&scores, images.len(), 5)
            }));
        }
        match poll_slot(&mut self.recall_job) {
            Oneshot::Done(r) => self.recalls = Some(r),
            Oneshot::Gone => notes.push(Level::Error, "the recall job stopped unexpectedly"),
            Oneshot::Pending => {}
        }
    }

    /// Ranks of `image`'s five pairs: its rank among the images for each of its captions (t2i)
    /// and each caption's rank among all captions for the image (i2t); None until embedded.
    fn pair_ranks(&mut self, image: usize, ranking: &Ranking) -> Option<&[(usize, usize)]> {
        if self.ranks.as_ref().is_none_or(|(i, _)| *i != image) {
            let images = ranking.embeddings(self.generation)?;
            let mine = &images.get(image)?.as_ref()?.global;
            if images.iter().any(Option::is_none) || self.caption_embeddings.iter().any(Option::is_none) {
                return None;
            }
            let captions: Vec<&Vec<f32>> = self.caption_embeddings.iter().flatten().collect();
            let to_image: Vec<f32> = captions.iter().map(|c| dot(mine, c)).collect();
            let ranks = (image * 5..image * 5 + 5)
                .map(|c| {
                    let gt = to_image[c];
                    let t2i = 1 + images
                        .iter()
                        .enumerate()
                        .filter(|&(i, e)| i != image && e.as_ref().is_some_and(|e| dot(&e.global, captions[c]) >= gt))
                        .count();
                    let i2t = 1 + to_image.iter().enumerate().filter(|&(k, &s)| k != c && s >= gt).count();
                    (t2i, i2t)
                })
                .collect();
            self.ranks = Some((image, ranks));
        }
        self.ranks.as_ref().map(|(_, r)| r.as_slice())
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
        ui.strong("Recall@K (the global model)");
        match &self.recalls {
            Some(r) => {
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
            }
            None => {
                let images =
                    ranking.embeddings(self.generation).map_or(0, |e| e.iter().filter(|e| e.is_some()).count());
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.weak(format!(
                        "embedding: {images}/{} images, {}/{} captions",
                        self.data.images.len(),
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
        let ranks = self.pair_ranks(image, ranking).map(<[(usize, usize)]>::to_vec);
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
