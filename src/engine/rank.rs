//! Ranking a folder by a caption with the global model: photos are embedded once in the
//! background; a query is one text embedding and a dot product per photo.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::backend::Compute;
use super::global;
use super::jobs::{Job, Waker, spawn_oneshot};
use crate::data::decode::decode_oriented;
use crate::features::efficientnet::EfficientNetLite;
use crate::features::text::TextEncoder;
use crate::features::visual::VisualEncoder;
use crate::features::{TEXT_WEIGHTS, VISUAL_WEIGHTS, VOCAB, models_dir, values};
use crate::model::global::GlobalModel;

/// Everything needed to embed photos and captions in the joint space.
pub struct Ranker {
    pub visual: VisualEncoder,
    pub text: TextEncoder,
    pub global: GlobalModel,
    pub device: Device,
}

impl Ranker {
    pub fn load(compute: &Compute) -> anyhow::Result<Self> {
        let dir = models_dir();
        let device = compute.device.clone();
        let global_path = global::default_path();
        anyhow::ensure!(global_path.is_file(), "{}: no trained ranking model (run `alignscope train --model global`)", global_path.display());
        Ok(Self {
            visual: VisualEncoder::load(&dir.join(VISUAL_WEIGHTS), &device)?,
            text: TextEncoder::load(&dir.join(TEXT_WEIGHTS), &dir.join(VOCAB), &device)?,
            global: global::load(&global_path, &device)?,
            device,
        })
    }

    /// Unit-norm joint embeddings of decoded photos.
    pub fn embed_images(&self, images: &[image::DynamicImage]) -> Vec<Vec<f32>> {
        if images.is_empty() {
            return Vec::new();
        }
        let pooled = EfficientNetLite::pool(self.visual.feature_maps(images));
        rows(self.global.embed_images(pooled))
    }

    /// Unit-norm joint embedding of a caption, and a warning when it was truncated.
    pub fn embed_caption(&self, caption: &str) -> anyhow::Result<(Vec<f32>, Option<String>)> {
        self.embed_captions(&[caption]).pop().ok_or_else(|| anyhow::anyhow!("no features"))?
    }

    /// Unit-norm joint embeddings of captions encoded as one batch (each with its truncation
    /// warning, or why it could not be encoded).
    pub fn embed_captions(&self, captions: &[&str]) -> Vec<anyhow::Result<(Vec<f32>, Option<String>)>> {
        let features = self.text.encode(captions);
        let ok: Vec<f32> = features.iter().flatten().flat_map(|f| f.sentence.iter().copied()).collect();
        let n = features.iter().flatten().count();
        let mut embedded = if n == 0 { Vec::new() } else { rows(self.global.embed_texts(Tensor::<2>::from_data(TensorData::new(ok, [n, self.text.model.hidden]), &self.device))) }.into_iter();
        features
            .into_iter()
            .map(|f| match f {
                Ok(f) => Ok((embedded.next().unwrap_or_default(), f.truncation_warning())),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            })
            .collect()
    }
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, d] = t.dims();
    values(t).chunks(d.max(1)).map(<[f32]>::to_vec).collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub enum EmbedMsg {
    Embedded { index: usize, embedding: Vec<f32> },
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

/// Embed `captions` in batches of 32 on a background thread: (index, embedding or error).
pub fn spawn_caption_embedding(ranker: Arc<Ranker>, captions: Vec<String>, waker: Waker) -> Job<(usize, Result<Vec<f32>, String>)> {
    let (job, reporter, cancel) = Job::new("embed captions", waker);
    std::thread::spawn(move || {
        for (c, chunk) in captions.chunks(32).enumerate() {
            if cancel.is_cancelled() {
                return;
            }
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            for (k, result) in ranker.embed_captions(&texts).into_iter().enumerate() {
                if !reporter.send((c * 32 + k, result.map(|(e, _)| e).map_err(|e| format!("{e:#}")))) {
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
pub fn spawn_query(ranker: Arc<Ranker>, caption: String, waker: Waker) -> Job<Result<(String, Vec<f32>, Option<String>), String>> {
    spawn_oneshot("embed caption", waker, move |_| {
        ranker.embed_caption(&caption).map(|(e, w)| (caption, e, w)).map_err(|e| format!("{e:#}"))
    })
}
