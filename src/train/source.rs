//! Where a Flickr8k split's features come from: the dataset, the cache folder (built by
//! [`super::extract`] when missing or stale) and the visual backbone.

use crate::features::efficientnet::EfficientNetLite;
use crate::features::minilm::MiniLm;

use super::splits::{PooledSplit, join, pooled_captions, pooled_images};

/// Where a Flickr8k split's features come from: the dataset, the cache folder, the visual
/// backbone, and the compute, cancel and progress of the job preparing them.
pub struct Source<'a> {
    pub compute: &'a crate::engine::backend::Compute,
    pub flickr8k: &'a std::path::Path,
    pub cache_dir: &'a std::path::Path,
    pub visual: &'a str,
    pub cancel: &'a crate::engine::jobs::CancelToken,
    pub report: &'a dyn Fn(super::extract::ExtractMsg),
}

impl Source<'_> {
    /// The split's caches for fine-tuning (built if missing or stale): the input of the visual
    /// backbone's MBConv block `image_block` (None: its last block) and of MiniLM's last layer.
    /// Returns the backbone too.
    pub fn extract(
        &self,
        split: crate::data::flickr8k::Split,
        image_block: Option<usize>,
    ) -> anyhow::Result<(EfficientNetLite, super::extract::Extracted)> {
        let (net, options) = self.options(split, image_block)?;
        let extracted = super::extract::extract(self.compute, &options, self.cancel, self.report)?;
        Ok((net, extracted))
    }

    fn options(
        &self,
        split: crate::data::flickr8k::Split,
        image_block: Option<usize>,
    ) -> anyhow::Result<(EfficientNetLite, super::extract::ExtractOptions)> {
        let weights = crate::features::models_dir().join(format!("{}.safetensors", self.visual));
        let net = EfficientNetLite::load(&weights, &self.compute.device)?;
        let options = super::extract::ExtractOptions {
            flickr8k: self.flickr8k.to_path_buf(),
            visual: self.visual.to_string(),
            split,
            out_dir: self.cache_dir.to_path_buf(),
            image_block: image_block.unwrap_or(net.blocks.len() - 1),
            text_layer: crate::nets::TEXT_TOP_LAYER,
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
        let sentences = pooled_captions(&model, &captions, crate::nets::TEXT_TOP_LAYER, device);
        let names: Vec<String> = images.entries.iter().map(|e| e.name.clone()).collect();
        join(&names, pooled, crate::features::efficientnet::FEATURE_DIM, &captions, sentences, model.hidden)
    }

    /// The split as SHAN's inputs: the activations entering the visual top's `first_block`.
    pub fn fragments(
        &self,
        split: crate::data::flickr8k::Split,
        first_block: usize,
    ) -> anyhow::Result<super::splits::FragmentSplit> {
        let (_, extracted) = self.extract(split, Some(first_block))?;
        super::splits::FragmentSplit::from_caches(&extracted.images, &extracted.captions)
    }

    /// [`Self::fragments`] with `views` augmented views of every photo beside it (each cached
    /// once, built if missing): the training split of the augmentation lift.
    pub fn fragments_with_views(
        &self,
        split: crate::data::flickr8k::Split,
        first_block: usize,
        views: usize,
    ) -> anyhow::Result<super::splits::FragmentSplit> {
        let split_data = self.fragments(split, first_block)?;
        if views == 0 {
            return Ok(split_data);
        }
        let photos = crate::data::flickr8k::load_split(self.flickr8k, split)?.images;
        let (_, options) = self.options(split, Some(first_block))?;
        let caches = (1..=views)
            .map(|view| {
                super::extract::image_cache(
                    self.compute,
                    &super::extract::ExtractOptions { view, ..options.clone() },
                    &photos,
                    self.cancel,
                    self.report,
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        split_data.with_views(&caches)
    }

    /// The first `images` photos of the split (with their captions) as the inputs of the networks
    /// on the frozen backbones (DSRAN, RACG), the 7×7 grid as their regions (with detected
    /// objects too: [`super::objects::frozen_split`]).
    pub fn frozen(
        &self,
        split: crate::data::flickr8k::Split,
        images: usize,
    ) -> anyhow::Result<(super::splits::FrozenSplit, Vec<String>)> {
        let fragments = self.fragments(split, crate::nets::DEFAULT_FIRST_BLOCK)?.truncated(images);
        let frozen = super::splits::FrozenSplit::from_fragments(&fragments, self.visual, &self.compute.device)?;
        Ok((frozen, fragments.names))
    }
}
