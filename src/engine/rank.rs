//! Ranking a folder by a caption with the pair-independent models (the global dual encoder, and
//! DSRAN when its weights are there): photos are embedded once in the background, both models
//! from the same backbone pass; a query is one text embedding and a dot product per photo.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::backend::Compute;
use super::{dsran, global};
use super::jobs::{Job, Waker, spawn_oneshot};
use crate::data::decode::decode_oriented;
use crate::features::efficientnet::{EfficientNetLite, regions_of};
use crate::features::text::TextEncoder;
use crate::features::visual::VisualEncoder;
use crate::features::{TEXT_WEIGHTS, VISUAL_WEIGHTS, VOCAB, models_dir, values};
use crate::model::dsran::Dsran;
use crate::model::global::GlobalModel;

/// Everything needed to embed photos and captions in the joint spaces.
pub struct Ranker {
    pub visual: VisualEncoder,
    pub text: TextEncoder,
    pub global: GlobalModel,
    /// DSRAN on the frozen backbones, when `assets/models/dsran.safetensors` exists.
    pub dsran: Option<Dsran>,
    /// Why DSRAN is not there (absent or unreadable weights).
    pub dsran_missing: Option<String>,
    pub device: Device,
}

/// A photo's or a caption's unit embeddings, one per pair-independent model.
#[derive(Clone, Debug, Default)]
pub struct Embeddings {
    pub global: Vec<f32>,
    pub dsran: Option<Vec<f32>>,
}

/// The pair-independent models a folder can be ranked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairModel {
    Global,
    Dsran,
}

impl PairModel {
    pub const ALL: [PairModel; 2] = [PairModel::Global, PairModel::Dsran];

    pub fn name(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Dsran => "DSRAN",
        }
    }

    /// The cosine of a photo and a caption under this model (None: the model is not loaded).
    pub fn score(self, photo: &Embeddings, caption: &Embeddings) -> Option<f32> {
        match self {
            Self::Global => Some(dot(&photo.global, &caption.global)),
            Self::Dsran => Some(dot(photo.dsran.as_deref()?, caption.dsran.as_deref()?)),
        }
    }
}

impl Ranker {
    pub fn load(compute: &Compute) -> anyhow::Result<Self> {
        let dir = models_dir();
        let device = compute.device.clone();
        let global_path = global::default_path();
        anyhow::ensure!(global_path.is_file(), "{}: no trained ranking model (run `alignscope train --model global`)", global_path.display());
        let dsran_path = dsran::default_path();
        let (dsran, dsran_missing) = if dsran_path.is_file() {
            match dsran::load(&dsran_path, &device) {
                Ok(net) => (Some(net), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            }
        } else {
            (None, Some(format!("{}: not trained yet (alignscope train --model dsran)", dsran_path.display())))
        };
        Ok(Self {
            visual: VisualEncoder::load(&dir.join(VISUAL_WEIGHTS), &device)?,
            text: TextEncoder::load(&dir.join(TEXT_WEIGHTS), &dir.join(VOCAB), &device)?,
            global: global::load(&global_path, &device)?,
            dsran,
            dsran_missing,
            device,
        })
    }

    /// Unit-norm embeddings of decoded photos (one backbone pass serves both models).
    pub fn embed_images(&self, images: &[image::DynamicImage]) -> Vec<Embeddings> {
        if images.is_empty() {
            return Vec::new();
        }
        let maps = self.visual.feature_maps(images);
        let global = rows(self.global.embed_images(EfficientNetLite::pool(maps.clone())));
        let mut dsran = self.dsran.as_ref().map(|net| {
            rows(net.embed_images(regions_of(maps.clone()))).into_iter()
        });
        global.into_iter().map(|g| Embeddings { global: g, dsran: dsran.as_mut().and_then(Iterator::next) }).collect()
    }

    /// DSRAN's graph attention of its global node over a photo's regions (row-major cells, sums to
    /// 1), when DSRAN is loaded.
    pub fn dsran_attention(&self, photo: &image::DynamicImage) -> Option<Vec<f32>> {
        let net = self.dsran.as_ref()?;
        Some(values(net.region_attention(regions_of(self.visual.feature_maps(std::slice::from_ref(photo))))))
    }

    /// Unit-norm embeddings of a caption, and a warning when it was truncated.
    pub fn embed_caption(&self, caption: &str) -> anyhow::Result<(Embeddings, Option<String>)> {
        self.embed_captions(&[caption]).pop().ok_or_else(|| anyhow::anyhow!("no features"))?
    }

    /// Unit-norm embeddings of captions encoded as one batch (each with its truncation warning,
    /// or why it could not be encoded).
    pub fn embed_captions(&self, captions: &[&str]) -> Vec<anyhow::Result<(Embeddings, Option<String>)>> {
        let features = self.text.encode(captions);
        let ok: Vec<&crate::features::text::TextFeatures> = features.iter().flatten().collect();
        let h = self.text.model.hidden;
        let sentences: Vec<f32> = ok.iter().flat_map(|f| f.sentence.iter().copied()).collect();
        let mut global = if ok.is_empty() { Vec::new() } else { rows(self.global.embed_texts(Tensor::<2>::from_data(TensorData::new(sentences, [ok.len(), h]), &self.device))) }.into_iter();
        let mut dsran = match (&self.dsran, ok.is_empty()) {
            (Some(net), false) => Some(rows(dsran_texts(net, &ok, h, &self.device)).into_iter()),
            _ => None,
        };
        features
            .into_iter()
            .map(|f| match f {
                Ok(f) => Ok((Embeddings { global: global.next().unwrap_or_default(), dsran: dsran.as_mut().and_then(Iterator::next) }, f.truncation_warning())),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            })
            .collect()
    }
}

/// DSRAN's caption embeddings from MiniLM's token features, [CLS] and [SEP] left out as in
/// training, padded to the longest caption.
fn dsran_texts(net: &Dsran, features: &[&crate::features::text::TextFeatures], h: usize, device: &Device) -> Tensor<2> {
    let pieces: Vec<usize> = features.iter().map(|f| (f.tokens.len() / h).saturating_sub(2)).collect();
    let n = pieces.iter().copied().max().unwrap_or(1).max(1);
    let (mut x, mut mask) = (vec![0.0f32; features.len() * n * h], vec![0.0f32; features.len() * n]);
    for (i, (f, &p)) in features.iter().zip(&pieces).enumerate() {
        x[i * n * h..(i * n + p) * h].copy_from_slice(&f.tokens[h..(p + 1) * h]);
        mask[i * n..i * n + p].fill(1.0);
    }
    net.embed_texts(Tensor::from_data(TensorData::new(x, [features.len(), n, h]), device), Tensor::from_data(TensorData::new(mask, [features.len(), n]), device))
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, d] = t.dims();
    values(t).chunks(d.max(1)).map(<[f32]>::to_vec).collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub enum EmbedMsg {
    Embedded { index: usize, embedding: Embeddings },
    Failed { index: usize, error: String },
}

/// Embed `paths` in batches of `batch` on a background thread.
pub fn spawn_embedding(ranker: Arc<Ranker>, paths: Vec<PathBuf>, batch: usize, waker: Waker) -> Job<EmbedMsg> {
    let (job, reporter, cancel) = Job::new("embed photos", waker);
    std::thread::spawn(move || {
        let indices: Vec<usize> = (0..paths.len()).collect();
        for chunk in indices.chunks(batch.max(1)) {
            if cancel.is_cancelled() {
                return;
            }
            let decoded: Vec<_> = chunk.par_iter().map(|&i| decode_oriented(&paths[i])).collect();
            let mut ok = Vec::new();
            let mut ok_index = Vec::new();
            for (&i, d) in chunk.iter().zip(decoded) {
                match d {
                    Ok(img) => {
                        ok.push(img);
                        ok_index.push(i);
                    }
                    Err(e) => {
                        reporter.send(EmbedMsg::Failed { index: i, error: e.to_string() });
                    }
                }
            }
            for (index, embedding) in ok_index.into_iter().zip(ranker.embed_images(&ok)) {
                if !reporter.send(EmbedMsg::Embedded { index, embedding }) {
                    return;
                }
            }
        }
    });
    job
}

/// Embed `captions` with the global model in batches of 32 on a background thread: (index,
/// embedding or error).
pub fn spawn_caption_embedding(ranker: Arc<Ranker>, captions: Vec<String>, waker: Waker) -> Job<(usize, Result<Vec<f32>, String>)> {
    let (job, reporter, cancel) = Job::new("embed captions", waker);
    std::thread::spawn(move || {
        for (c, chunk) in captions.chunks(32).enumerate() {
            if cancel.is_cancelled() {
                return;
            }
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            for (k, result) in ranker.embed_captions(&texts).into_iter().enumerate() {
                if !reporter.send((c * 32 + k, result.map(|(e, _)| e.global).map_err(|e| format!("{e:#}")))) {
                    return;
                }
            }
        }
    });
    job
}

/// Load the ranker in the background (weights are read from disk).
pub fn spawn_load(compute: Compute, waker: Waker) -> Job<Result<Arc<Ranker>, String>> {
    spawn_oneshot("load models", waker, move |_| Ranker::load(&compute).map(Arc::new).map_err(|e| format!("{e:#}")))
}

/// Embed a caption in the background.
pub fn spawn_query(ranker: Arc<Ranker>, caption: String, waker: Waker) -> Job<Result<(String, Embeddings, Option<String>), String>> {
    spawn_oneshot("embed caption", waker, move |_| {
        ranker.embed_caption(&caption).map(|(e, w)| (caption, e, w)).map_err(|e| format!("{e:#}"))
    })
}
