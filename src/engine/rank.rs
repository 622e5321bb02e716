//! Ranking a folder by a caption with the pair-independent networks: the global dual encoder
//! (the committed one runs its own fine-tuned backbone tops), DSRAN and RACG (on the frozen
//! backbones) when their weights are there. Photos are embedded once in the background, every
//! model from the same backbone pass: the layers below the fine-tuned tops run once. Global and DSRAN are pair-independent (a
//! query is one text embedding and a dot product per photo); RACG keeps each photo's region graph
//! and scores a caption's graph against them (`racg_scores`, on the compute device).

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::backend::Compute;
use super::jobs::{CancelToken, Job, Waker, spawn_oneshot};
use crate::data::decode::decode_oriented;
use crate::features::efficientnet::{EfficientNetLite, regions_of};
use crate::features::text::TextEncoder;
use crate::features::visual::VisualEncoder;
use crate::features::{TEXT_WEIGHTS, VISUAL, VISUAL_WEIGHTS, VOCAB, models_dir, values};
use crate::model::dsran::Dsran;
use crate::model::racg::Racg;
use crate::model::racg::pairs::{self, HostGraphs};
use crate::nets::global_tuned::{self, AnyGlobal};
use crate::nets::{dsran, global, racg};

/// Everything needed to embed photos and captions in the joint spaces.
pub struct Ranker {
    pub visual: VisualEncoder,
    pub text: TextEncoder,
    pub global: AnyGlobal,
    /// DSRAN on the frozen backbones, when `assets/models/dsran.safetensors` exists.
    pub dsran: Option<Dsran>,
    /// Why DSRAN is not there (absent or unreadable weights).
    pub dsran_missing: Option<String>,
    /// RACG on the frozen backbones, when `assets/models/racg.safetensors` exists.
    pub racg: Option<Racg>,
    pub racg_missing: Option<String>,
    pub device: Device,
}

/// A photo's or a caption's unit embeddings, one per pair-independent model, and its RACG graph.
#[derive(Clone, Debug, Default)]
pub struct Embeddings {
    pub global: Vec<f32>,
    pub dsran: Option<Vec<f32>>,
    /// RACG's graph nodes in its alignment space as unit heads, row-major [nodes, heads, d/heads]
    /// (49 regions for a photo, the word pieces for a caption).
    pub racg: Option<Arc<[f32]>>,
}

/// The pair-independent networks (and RACG) a folder can be ranked with besides SHAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RankerModel {
    Global,
    Dsran,
    Racg,
}

impl RankerModel {
    pub const ALL: [RankerModel; 3] = [RankerModel::Global, RankerModel::Dsran, RankerModel::Racg];

    pub fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Dsran => "DSRAN",
            Self::Racg => "RACG",
        }
    }

    /// The cosine of a photo and a caption under a pair-independent model (None: the model is
    /// not loaded, or it is RACG, whose scores need `Ranker::racg_scores`).
    pub fn cosine(self, photo: &Embeddings, caption: &Embeddings) -> Option<f32> {
        match self {
            Self::Global => Some(dot(&photo.global, &caption.global)),
            Self::Dsran => Some(dot(photo.dsran.as_deref()?, caption.dsran.as_deref()?)),
            Self::Racg => None,
        }
    }
}

impl Ranker {
    /// Why `model` cannot rank (its weights absent or unreadable); None for the global model.
    pub fn missing(&self, model: RankerModel) -> Option<&str> {
        match model {
            RankerModel::Global => None,
            RankerModel::Dsran => self.dsran_missing.as_deref(),
            RankerModel::Racg => self.racg_missing.as_deref(),
        }
    }

    pub fn load(compute: &Compute) -> anyhow::Result<Self> {
        let dir = models_dir();
        let device = compute.device.clone();
        let global_path = global::default_path();
        anyhow::ensure!(
            global_path.is_file(),
            "{}: no trained ranking model (run `alignscope train --model global`)",
            global_path.display()
        );
        let (dsran, dsran_missing) = optional(&dsran::default_path(), "dsran", |p| dsran::load(p, &device));
        let (racg, racg_missing) = optional(&racg::default_path(), "racg", |p| racg::load(p, &device));
        Ok(Self {
            visual: VisualEncoder::load(&dir.join(VISUAL_WEIGHTS), &device)?,
            text: TextEncoder::load(&dir.join(TEXT_WEIGHTS), &dir.join(VOCAB), &device)?,
            global: global_tuned::load_any(&global_path, VISUAL, &device)?,
            dsran,
            dsran_missing,
            racg,
            racg_missing,
            device,
        })
    }

    /// Unit-norm embeddings of decoded photos (one backbone pass serves both models).
    pub fn embed_images(&self, images: &[image::DynamicImage]) -> Vec<Embeddings> {
        if images.is_empty() {
            return Vec::new();
        }
        let (maps, global) = match &self.global {
            AnyGlobal::Frozen(net) => {
                let maps = self.visual.feature_maps(images);
                (maps.clone(), net.embed_images(EfficientNetLite::pool(maps)))
            }
            AnyGlobal::Tuned(net) => {
                let (entering, maps) = self.visual.maps_from(images, net.visual.first_block);
                (maps, net.embed_entering(entering))
            }
        };
        let global = rows(global);
        let mut dsran = self.dsran.as_ref().map(|net| rows(net.embed_images(regions_of(maps.clone()))).into_iter());
        let mut racg = self.racg.as_ref().map(|net| {
            rows(net.encode_images(regions_of(maps.clone())).heads.flatten(1, 3)).into_iter().map(Arc::from)
        });
        global
            .into_iter()
            .map(|g| Embeddings {
                global: g,
                dsran: dsran.as_mut().and_then(Iterator::next),
                racg: racg.as_mut().and_then(Iterator::next),
            })
            .collect()
    }

    /// RACG's score of each photo graph with a caption graph (both from `Embeddings::racg`), in
    /// batches of 256 photos. Empty when RACG is not loaded.
    pub fn racg_scores(&self, photos: &[&[f32]], caption: &[f32]) -> Vec<f32> {
        let Some(net) = &self.racg else { return Vec::new() };
        let (heads, dim) = (net.heads, net.align.weight.dims()[1]);
        let unit = dim / heads;
        let graph = |rows: &[&[f32]]| {
            let n = rows.first().map_or(0, |r| r.len() / dim);
            let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
            let t = Tensor::<4>::from_data(TensorData::new(flat, [rows.len(), n, heads, unit]), &self.device);
            (t, Tensor::<2>::ones([rows.len(), n], &self.device))
        };
        if caption.len() < dim {
            return vec![0.0; photos.len()];
        }
        if pairs::serves(&self.device, net.lambda) {
            let (photos, caption) =
                (HostGraphs::borrowed(heads, unit, photos), HostGraphs::borrowed(heads, unit, &[caption]));
            return pairs::totals(&photos, &caption, net.lambda, net.graph_share);
        }
        let txt = graph(&[caption]);
        photos.chunks(256).flat_map(|chunk| values(net.score_heads(graph(chunk), txt.clone()).0)).collect()
    }

    /// A caption's score with each photo under `model` (None: the model is not loaded).
    pub fn scores(&self, model: RankerModel, photos: &[Embeddings], caption: &Embeddings) -> Option<Vec<f32>> {
        match model {
            RankerModel::Racg => {
                let query = caption.racg.as_deref()?;
                let graphs: Option<Vec<&[f32]>> = photos.iter().map(|p| p.racg.as_deref()).collect();
                Some(self.racg_scores(&graphs?, query))
            }
            m => photos.iter().map(|p| m.cosine(p, caption)).collect(),
        }
    }

    /// A photo's region features [1, k, 1280] (row-major cells), what DSRAN and RACG explain.
    pub fn regions(&self, photo: &image::DynamicImage) -> Tensor<3> {
        regions_of(self.visual.feature_maps(std::slice::from_ref(photo)))
    }

    /// RACG's cross-graph attention of each word of `caption` over a photo's `regions` (heads
    /// averaged, a word's pieces averaged; each row sums to 1), when RACG is loaded.
    pub fn racg_attention(&self, regions: Tensor<3>, caption: &str) -> Option<anyhow::Result<Vec<(String, Vec<f32>)>>> {
        let net = self.racg.as_ref()?;
        Some((|| {
            let features = self.text.encode(&[caption]).pop().ok_or_else(|| anyhow::anyhow!("no features"))??;
            let img = net.encode_images(regions);
            let (words, mask) = piece_batch(&[&features], self.text.model.hidden, &self.device);
            let (_, attention) = net.score(&img, &net.encode_texts(words, mask));
            let [_, _, n, k] = attention.dims();
            let a = values(attention); // [1, 1, n, k]
            Ok(super::words::word_pieces(&features.tokenized)
                .into_iter()
                .filter(|(_, pieces)| pieces.iter().all(|&p| p < n))
                .map(|(word, pieces)| {
                    let attention = super::words::piece_mean(&pieces, k, |p, i| a[p * k + i]);
                    (word, attention)
                })
                .collect())
        })())
    }

    /// DSRAN's graph attention of its global node over a photo's `regions` (row-major cells, sums
    /// to 1), when DSRAN is loaded.
    pub fn dsran_attention(&self, regions: Tensor<3>) -> Option<Vec<f32>> {
        Some(values(self.dsran.as_ref()?.region_attention(regions)))
    }

    /// Unit-norm embeddings of a caption, and a warning when it was truncated.
    pub fn embed_caption(&self, caption: &str) -> anyhow::Result<(Embeddings, Option<String>)> {
        self.embed_captions(&[caption]).pop().ok_or_else(|| anyhow::anyhow!("no features"))?
    }

    /// Unit-norm embeddings of captions encoded as one batch (each with its truncation warning,
    /// or why it could not be encoded).
    pub fn embed_captions(&self, captions: &[&str]) -> Vec<anyhow::Result<(Embeddings, Option<String>)>> {
        let features = self.text.encode_with_top(captions, self.global.text_top());
        let ok: Vec<&crate::features::text::TextFeatures> = features.iter().flatten().collect();
        let h = self.text.model.hidden;
        // The global model's sentence vectors: under its own fine-tuned last layer when it has one.
        let sentences: Vec<f32> =
            ok.iter().flat_map(|f| f.top_sentence.as_ref().unwrap_or(&f.sentence).iter().copied()).collect();
        let mut global = if ok.is_empty() {
            Vec::new()
        } else {
            rows(
                self.global
                    .head()
                    .embed_texts(Tensor::<2>::from_data(TensorData::new(sentences, [ok.len(), h]), &self.device)),
            )
        }
        .into_iter();
        let batch = (!ok.is_empty()).then(|| piece_batch(&ok, h, &self.device));
        let mut dsran = match (&self.dsran, &batch) {
            (Some(net), Some((pieces, mask))) => Some(rows(net.embed_texts(pieces.clone(), mask.clone())).into_iter()),
            _ => None,
        };
        // Each caption's graph without its padding nodes.
        let mut racg = match (&self.racg, batch) {
            (Some(net), Some((pieces, mask))) => {
                let counts: Vec<usize> =
                    values(mask.clone().sum_dim(1)).into_iter().map(|c| c.round() as usize).collect();
                let graphs = rows(net.encode_texts(pieces, mask).heads.flatten(1, 3));
                let per_node = graphs.first().map_or(0, Vec::len) / counts.iter().copied().max().unwrap_or(1).max(1);
                Some(graphs.into_iter().zip(counts).map(move |(g, c)| Arc::from(&g[..c * per_node])))
            }
            _ => None,
        };
        features
            .into_iter()
            .map(|f| match f {
                Ok(f) => {
                    let embedding = Embeddings {
                        global: global.next().unwrap_or_default(),
                        dsran: dsran.as_mut().and_then(Iterator::next),
                        racg: racg.as_mut().and_then(Iterator::next),
                    };
                    Ok((embedding, f.warning()))
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            })
            .collect()
    }
}

/// The word-piece features of captions as the frozen-backbone networks were trained on them
/// ([CLS] and [SEP] left out), padded to the longest caption: [B, n, h] and the mask [B, n].
fn piece_batch(features: &[&crate::features::text::TextFeatures], h: usize, device: &Device) -> (Tensor<3>, Tensor<2>) {
    let pieces: Vec<usize> = features.iter().map(|f| (f.tokens.len() / h).saturating_sub(2)).collect();
    let n = pieces.iter().copied().max().unwrap_or(1).max(1);
    let (mut x, mut mask) = (vec![0.0f32; features.len() * n * h], vec![0.0f32; features.len() * n]);
    for (i, (f, &p)) in features.iter().zip(&pieces).enumerate() {
        x[i * n * h..(i * n + p) * h].copy_from_slice(&f.tokens[h..(p + 1) * h]);
        mask[i * n..i * n + p].fill(1.0);
    }
    (
        Tensor::from_data(TensorData::new(x, [features.len(), n, h]), device),
        Tensor::from_data(TensorData::new(mask, [features.len(), n]), device),
    )
}

/// A network whose weights may be absent: loaded, or why not.
fn optional<T>(
    path: &std::path::Path,
    name: &str,
    load: impl FnOnce(&std::path::Path) -> anyhow::Result<T>,
) -> (Option<T>, Option<String>) {
    if !path.is_file() {
        return (None, Some(format!("{}: not trained yet (alignscope train --model {name})", path.display())));
    }
    match load(path) {
        Ok(net) => (Some(net), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    }
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, d] = t.dims();
    values(t).chunks(d.max(1)).map(<[f32]>::to_vec).collect()
}

pub use super::fused::dot;

pub enum EmbedMsg {
    Embedded { index: usize, embedding: Embeddings },
    Failed { index: usize, error: String },
}

/// Embed the photos at `paths`, `batch` at a time, each decoded and brought down to the model's
/// input at once (full photos are not held); a photo that cannot be decoded is reported as
/// failed. Stops when `cancel` trips or `report` returns false.
pub fn embed_paths(
    ranker: &Ranker,
    paths: &[PathBuf],
    batch: usize,
    cancel: &CancelToken,
    report: &mut dyn FnMut(EmbedMsg) -> bool,
) {
    let size = ranker.visual.image_size();
    let indices: Vec<usize> = (0..paths.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        if cancel.is_cancelled() {
            return;
        }
        let decoded: Vec<_> = chunk
            .par_iter()
            .map(|&i| {
                decode_oriented(&paths[i]).map(|photo| {
                    image::DynamicImage::ImageRgb8(crate::features::preprocess::resize_square(&photo, size))
                })
            })
            .collect();
        let mut ok = Vec::new();
        let mut ok_index = Vec::new();
        for (&i, d) in chunk.iter().zip(decoded) {
            match d {
                Ok(img) => {
                    ok.push(img);
                    ok_index.push(i);
                }
                Err(e) => {
                    if !report(EmbedMsg::Failed { index: i, error: e.to_string() }) {
                        return;
                    }
                }
            }
        }
        for (index, embedding) in ok_index.into_iter().zip(ranker.embed_images(&ok)) {
            if !report(EmbedMsg::Embedded { index, embedding }) {
                return;
            }
        }
    }
}

/// Embed `paths` in batches of `batch` on a background thread.
pub fn spawn_embedding(ranker: Arc<Ranker>, paths: Vec<PathBuf>, batch: usize, waker: Waker) -> Job<EmbedMsg> {
    let (job, reporter, cancel) = Job::new("embed photos", waker);
    std::thread::spawn(move || embed_paths(&ranker, &paths, batch, &cancel, &mut |m| reporter.send(m)));
    job
}

/// Embed a caption in the background.
pub fn spawn_query(
    ranker: Arc<Ranker>,
    caption: String,
    waker: Waker,
) -> Job<Result<(String, Embeddings, Option<String>), String>> {
    spawn_oneshot("embed caption", waker, move |_| {
        ranker.embed_caption(&caption).map(|(e, w)| (caption, e, w)).map_err(|e| format!("{e:#}"))
    })
}
