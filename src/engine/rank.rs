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
        let features = self.text.encode(&[caption]).pop().ok_or_else(|| anyhow::anyhow!("no features"))?.map_err(|e| anyhow::anyhow!("{e}"))?;
        let dim = features.sentence.len();
        let sentence = Tensor::<2>::from_data(TensorData::new(features.sentence.clone(), [1, dim]), &self.device);
        let embedding = rows(self.global.embed_texts(sentence)).pop().unwrap_or_default();
        Ok((embedding, features.truncation_warning()))
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
