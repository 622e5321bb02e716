//! From feature caches to the pooled vectors the global model trains on: the cached activations
//! run through the remaining (frozen) backbone layers once.

use std::collections::HashMap;

use anyhow::Context as _;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::feature_cache::FeatureCache;
use crate::features::efficientnet::EfficientNetLite;
use crate::features::minilm::{MiniLm, TokenBatch};
use crate::features::values;

/// One split as matrices: a pooled vector per image, five sentence vectors per image.
pub struct PooledSplit {
    pub names: Vec<String>,
    /// [n, image_dim]
    pub images: Vec<f32>,
    pub image_dim: usize,
    /// [n * 5, text_dim]; captions of image i are rows 5i..5i+5.
    pub captions: Vec<f32>,
    pub text_dim: usize,
}

impl PooledSplit {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn image_rows(&self, rows: &[usize], device: &Device) -> Tensor<2> {
        gather(&self.images, self.image_dim, rows, device)
    }

    pub fn caption_rows(&self, rows: &[usize], device: &Device) -> Tensor<2> {
        gather(&self.captions, self.text_dim, rows, device)
    }
}

fn gather(data: &[f32], dim: usize, rows: &[usize], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = rows.iter().flat_map(|&r| data[r * dim..(r + 1) * dim].iter().copied()).collect();
    Tensor::from_data(TensorData::new(v, [rows.len(), dim]), device)
}

/// Pooled image vectors from a cache of the input of `block`.
pub fn pooled_images(net: &EfficientNetLite, cache: &FeatureCache, block: usize, device: &Device) -> Vec<f32> {
    let mut out = Vec::with_capacity(cache.len() * crate::features::efficientnet::FEATURE_DIM);
    let indices: Vec<usize> = (0..cache.len()).collect();
    for chunk in indices.chunks(64) {
        let shape = &cache.entries[chunk[0]].shape;
        let v: Vec<f32> = chunk.iter().flat_map(|&i| cache.values(i)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v, [chunk.len(), shape[0], shape[1], shape[2]]), device);
        out.extend(values(EfficientNetLite::pool(net.features_from(x, block))));
    }
    out
}

/// Mean-pooled sentence vectors from a cache of the hidden states entering `layer`.
pub fn pooled_captions(model: &MiniLm, cache: &FeatureCache, layer: usize, device: &Device) -> Vec<f32> {
    let mut order: Vec<usize> = (0..cache.len()).collect();
    order.sort_by_key(|&i| cache.entries[i].shape[0]);
    let h = model.hidden;
    let mut out = vec![0.0f32; cache.len() * h];
    for chunk in order.chunks(64) {
        let lengths: Vec<usize> = chunk.iter().map(|&i| cache.entries[i].shape[0]).collect();
        let n = lengths.iter().copied().max().unwrap_or(1);
        let mut x = vec![0.0f32; chunk.len() * n * h];
        let mut mask = vec![0.0f32; chunk.len() * n];
        for (k, &i) in chunk.iter().enumerate() {
            let v = cache.values(i);
            x[k * n * h..k * n * h + v.len()].copy_from_slice(&v);
            mask[k * n..k * n + lengths[k]].fill(1.0);
        }
        let batch = TokenBatch {
            ids: Tensor::<2, Int>::zeros([chunk.len(), n], device),
            mask: Tensor::from_data(TensorData::new(mask, [chunk.len(), n]), device),
            lengths,
        };
        let hidden = model.hidden_from(Tensor::from_data(TensorData::new(x, [chunk.len() * n, h]), device), &batch, layer);
        let pooled = values(MiniLm::mean_pool(hidden.reshape([chunk.len(), n, h]), batch.mask));
        for (k, &i) in chunk.iter().enumerate() {
            out[i * h..(i + 1) * h].copy_from_slice(&pooled[k * h..(k + 1) * h]);
        }
    }
    out
}

/// Align the two caches by image name: images whose five captions are all cached.
pub fn join(image_names: &[String], images: Vec<f32>, image_dim: usize, captions: &FeatureCache, caption_vectors: Vec<f32>, text_dim: usize) -> anyhow::Result<PooledSplit> {
    let by_name: HashMap<&str, usize> = captions.entries.iter().enumerate().map(|(i, e)| (e.name.as_str(), i)).collect();
    let mut split = PooledSplit { names: Vec::new(), images: Vec::new(), image_dim, captions: Vec::new(), text_dim };
    for (i, name) in image_names.iter().enumerate() {
        let rows: Option<Vec<usize>> = (0..5).map(|k| by_name.get(format!("{name}#{k}").as_str()).copied()).collect();
        let Some(rows) = rows else { continue };
        split.names.push(name.clone());
        split.images.extend_from_slice(&images[i * image_dim..(i + 1) * image_dim]);
        for r in rows {
            split.captions.extend_from_slice(&caption_vectors[r * text_dim..(r + 1) * text_dim]);
        }
    }
    (!split.is_empty()).then_some(split).context("no image has all five captions cached")
}

/// The caches of a Flickr8k split (built if missing or stale), run to pooled vectors.
pub fn prepare_split(
    compute: &super::backend::Compute,
    flickr8k: &std::path::Path,
    cache_dir: &std::path::Path,
    split: crate::data::flickr8k::Split,
    visual: &str,
    cancel: &super::jobs::CancelToken,
    report: &dyn Fn(super::extract::ExtractMsg),
) -> anyhow::Result<PooledSplit> {
    use super::extract::{ExtractOptions, extract};
    use crate::features::{TEXT_WEIGHTS, models_dir};
    let device = &compute.device;
    let weights = models_dir().join(format!("{visual}.safetensors"));
    let net = EfficientNetLite::load(&weights, device)?;
    // The input of the last MBConv block: the frozen part ends there (fine-tuning starts there).
    let block = net.blocks.len() - 1;
    let options = ExtractOptions {
        flickr8k: flickr8k.to_path_buf(),
        visual: visual.to_string(),
        split,
        out_dir: cache_dir.to_path_buf(),
        image_block: block,
        text_layer: 5,
        batch: 16,
    };
    let super::extract::Extracted { images, captions } = extract(compute, &options, cancel, report)?;
    let model = MiniLm::load(&models_dir().join(TEXT_WEIGHTS), device)?;
    let pooled = pooled_images(&net, &images, block, device);
    let sentences = pooled_captions(&model, &captions, 5, device);
    let names: Vec<String> = images.entries.iter().map(|e| e.name.clone()).collect();
    join(&names, pooled, crate::features::efficientnet::FEATURE_DIM, &captions, sentences, model.hidden)
}
