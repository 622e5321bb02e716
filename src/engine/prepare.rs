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

/// The images whose five captions are all cached: (image index, caption cache rows).
pub fn with_five_captions(image_names: &[String], captions: &FeatureCache) -> Vec<(usize, [usize; 5])> {
    let by_name: HashMap<&str, usize> = captions.entries.iter().enumerate().map(|(i, e)| (e.name.as_str(), i)).collect();
    let row = |name: &str, k: usize| by_name.get(format!("{name}#{k}").as_str()).copied();
    image_names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| Some((i, [row(name, 0)?, row(name, 1)?, row(name, 2)?, row(name, 3)?, row(name, 4)?])))
        .collect()
}

/// Align the two caches by image name: images whose five captions are all cached.
pub fn join(image_names: &[String], images: Vec<f32>, image_dim: usize, captions: &FeatureCache, caption_vectors: Vec<f32>, text_dim: usize) -> anyhow::Result<PooledSplit> {
    let mut split = PooledSplit { names: Vec::new(), images: Vec::new(), image_dim, captions: Vec::new(), text_dim };
    for (i, rows) in with_five_captions(image_names, captions) {
        let name = &image_names[i];
        split.names.push(name.clone());
        split.images.extend_from_slice(&images[i * image_dim..(i + 1) * image_dim]);
        for r in rows {
            split.captions.extend_from_slice(&caption_vectors[r * text_dim..(r + 1) * text_dim]);
        }
    }
    (!split.is_empty()).then_some(split).context("no image has all five captions cached")
}

/// Where a Flickr8k split's features come from: the dataset, the cache folder, the visual
/// backbone, and the compute, cancel and progress of the job preparing them.
pub struct Source<'a> {
    pub compute: &'a super::backend::Compute,
    pub flickr8k: &'a std::path::Path,
    pub cache_dir: &'a std::path::Path,
    pub visual: &'a str,
    pub cancel: &'a super::jobs::CancelToken,
    pub report: &'a dyn Fn(super::extract::ExtractMsg),
}

impl Source<'_> {
    /// The split's caches for fine-tuning (built if missing or stale): the input of the visual
    /// backbone's MBConv block `image_block` (None: its last block) and of MiniLM's last layer.
    /// Returns the backbone too.
    pub fn extract(&self, split: crate::data::flickr8k::Split, image_block: Option<usize>) -> anyhow::Result<(EfficientNetLite, super::extract::Extracted)> {
        let (net, options) = self.options(split, image_block)?;
        let extracted = super::extract::extract(self.compute, &options, self.cancel, self.report)?;
        Ok((net, extracted))
    }

    fn options(&self, split: crate::data::flickr8k::Split, image_block: Option<usize>) -> anyhow::Result<(EfficientNetLite, super::extract::ExtractOptions)> {
        let weights = crate::features::models_dir().join(format!("{}.safetensors", self.visual));
        let net = EfficientNetLite::load(&weights, &self.compute.device)?;
        let options = super::extract::ExtractOptions {
            flickr8k: self.flickr8k.to_path_buf(),
            visual: self.visual.to_string(),
            split,
            out_dir: self.cache_dir.to_path_buf(),
            image_block: image_block.unwrap_or(net.blocks.len() - 1),
            text_layer: super::shan::TEXT_TOP_LAYER,
            batch: 16,
            view: 0,
        };
        Ok((net, options))
    }

    /// The split as pooled vectors (the global model's input): the cached activations run
    /// through the remaining frozen layers.
    pub fn pooled(&self, split: crate::data::flickr8k::Split) -> anyhow::Result<PooledSplit> {
        use crate::features::{TEXT_WEIGHTS, models_dir};
        let device = &self.compute.device;
        let (net, super::extract::Extracted { images, captions }) = self.extract(split, None)?;
        let model = MiniLm::load(&models_dir().join(TEXT_WEIGHTS), device)?;
        let block = net.blocks.len() - 1;
        let pooled = pooled_images(&net, &images, block, device);
        let sentences = pooled_captions(&model, &captions, super::shan::TEXT_TOP_LAYER, device);
        let names: Vec<String> = images.entries.iter().map(|e| e.name.clone()).collect();
        join(&names, pooled, crate::features::efficientnet::FEATURE_DIM, &captions, sentences, model.hidden)
    }

    /// The split as SHAN's inputs: the activations entering the visual top's `first_block`.
    pub fn fragments(&self, split: crate::data::flickr8k::Split, first_block: usize) -> anyhow::Result<super::shan::FragmentSplit> {
        let (_, extracted) = self.extract(split, Some(first_block))?;
        super::shan::FragmentSplit::from_caches(&extracted.images, &extracted.captions)
    }

    /// [`Self::fragments`] with `views` augmented views of every photo beside it (each cached
    /// once, built if missing): the training split of the augmentation lift.
    pub fn fragments_with_views(&self, split: crate::data::flickr8k::Split, first_block: usize, views: usize) -> anyhow::Result<super::shan::FragmentSplit> {
        let split_data = self.fragments(split, first_block)?;
        if views == 0 {
            return Ok(split_data);
        }
        let photos = crate::data::flickr8k::load_split(self.flickr8k, split)?.images;
        let (_, options) = self.options(split, Some(first_block))?;
        let caches = (1..=views)
            .map(|view| super::extract::image_cache(self.compute, &super::extract::ExtractOptions { view, ..options.clone() }, &photos, self.cancel, self.report))
            .collect::<anyhow::Result<Vec<_>>>()?;
        split_data.with_views(&caches)
    }

    /// The first `images` photos of the split (with their captions) as the inputs of the networks
    /// on the frozen backbones (DSRAN, RACG).
    pub fn frozen(&self, split: crate::data::flickr8k::Split, images: usize) -> anyhow::Result<super::frozen::FrozenSplit> {
        let fragments = self.fragments(split, super::shan::DEFAULT_FIRST_BLOCK)?.truncated(images);
        super::frozen::FrozenSplit::from_fragments(&fragments, self.visual, &self.compute.device)
    }
}
