//! The loaded models that turn photos and captions into SHAN's inputs, shared by explain, index
//! and search: the frozen backbone up to the fine-tuned top, MiniLM up to its last layer, and the
//! trained network.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use image::{DynamicImage, RgbImage};

use super::backend::Compute;
use crate::data::feature_cache::sha256_file;
use crate::features::minilm::TokenBatch;
use crate::features::text::TextEncoder;
use crate::features::tokenizer::Tokenized;
use crate::features::visual::VisualEncoder;
use crate::features::{TEXT_WEIGHTS, VOCAB, models_dir, preprocess};
use crate::model::shan::{ImageSide, TextSide};
use crate::nets::TEXT_TOP_LAYER;
use crate::nets::shan::{CaptionBatch, ShanNet};

/// Model inputs per backbone pass when many are scored at once (bounded activations).
const OCCLUSION_BATCH: usize = 10;

pub struct Runtime {
    pub visual: VisualEncoder,
    pub text: TextEncoder,
    pub net: ShanNet,
    pub device: Device,
    /// SHA-256 of the visual backbone and of the matching network's weights: what an index of
    /// photo features depends on.
    pub model_key: String,
    /// Where the visual backbone's and the network's weights were loaded from (a gradient copy
    /// loads them again).
    pub visual_path: std::path::PathBuf,
    pub weights_path: std::path::PathBuf,
    pub visual_name: String,
    /// The gradient copy of the models, loaded the first time a gradient map is asked for.
    gradient: std::sync::OnceLock<Result<super::gradient::Gradient, String>>,
}

impl Runtime {
    pub fn load(compute: &Compute, weights: &Path, visual: &str) -> anyhow::Result<Self> {
        let device = compute.device.clone();
        let dir = models_dir();
        let visual_path = dir.join(format!("{visual}.safetensors"));
        let hash = |p: &Path| sha256_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
        Ok(Self {
            model_key: format!("{visual}:{} shan:{}", hash(&visual_path)?, hash(weights)?),
            visual: VisualEncoder::load(&visual_path, &device)?,
            text: TextEncoder::load(&dir.join(TEXT_WEIGHTS), &dir.join(VOCAB), &device)?,
            net: crate::nets::shan::load(weights, visual, &device)?,
            device,
            visual_path,
            weights_path: weights.to_path_buf(),
            visual_name: visual.to_string(),
            gradient: std::sync::OnceLock::new(),
        })
    }

    /// The models on an autodiff device, for gradient maps (loaded once, on first use).
    pub fn gradient(&self) -> anyhow::Result<&super::gradient::Gradient> {
        let loaded = self.gradient.get_or_init(|| super::gradient::Gradient::load(self).map_err(|e| format!("{e:#}")));
        loaded.as_ref().map_err(|e| anyhow::anyhow!("gradient maps: {e}"))
    }

    /// A photo's joint-space fragments [1, k, d] (unit rows), one photo per pass so a photo's
    /// features do not depend on what it was batched with.
    pub fn project_photo(&self, photo: &DynamicImage) -> Tensor<3> {
        let size = self.visual.image_size();
        let x = preprocess::batch(&[preprocess::resize_square(photo, size)], &self.device);
        let entering = self.visual.net.features_until(x, self.net.visual.first_block);
        self.net.shan.project_regions(self.net.regions(entering))
    }

    pub fn image_side(&self, photo: &DynamicImage) -> ImageSide {
        self.net.shan.encode_projected(self.project_photo(photo))
    }

    /// The square model input of a photo (what [`Self::project_photo`] sees).
    pub fn input(&self, photo: &DynamicImage) -> RgbImage {
        preprocess::resize_square(photo, self.visual.image_size())
    }

    /// The image side of many model inputs at once (occluded copies of one photo), in batches
    /// small enough to keep the backbone's activations bounded.
    pub fn image_sides_of(&self, inputs: &[RgbImage]) -> ImageSide {
        let projected = inputs
            .chunks(OCCLUSION_BATCH)
            .map(|chunk| {
                let x = preprocess::batch(chunk, &self.device);
                let entering = self.visual.net.features_until(x, self.net.visual.first_block);
                self.net.shan.project_regions(self.net.regions(entering))
            })
            .collect();
        self.net.shan.encode_projected(Tensor::cat(projected, 0))
    }

    /// A caption's side, with the tokenization that maps its pieces back to words.
    pub fn text_side(&self, caption: &str) -> anyhow::Result<(TextSide, Tokenized)> {
        let tokenized = self.text.tokenizer.tokenize(caption)?;
        Ok((self.text_sides(std::slice::from_ref(&tokenized)), tokenized))
    }

    /// The side of a batch of tokenized captions (padded to the longest).
    pub fn text_sides(&self, captions: &[Tokenized]) -> TextSide {
        self.text_side_of(self.caption_batch(captions))
    }

    /// The side of captions already run through MiniLM's frozen layers.
    pub fn text_side_of(&self, batch: CaptionBatch) -> TextSide {
        let (words, mask) = self.net.words(batch);
        self.net.shan.encode_texts(words, mask)
    }

    /// Tokenized captions as the hidden states entering MiniLM's last layer (the frozen part).
    pub fn caption_batch(&self, captions: &[Tokenized]) -> CaptionBatch {
        let ids: Vec<Vec<u32>> = captions.iter().map(|t| t.ids.clone()).collect();
        let tokens = TokenBatch::new(&ids, self.text.tokenizer.pad_id(), &self.device);
        let hidden = self.text.model.hidden_until(&tokens, TEXT_TOP_LAYER);
        let n = tokens.ids.dims()[1];
        CaptionBatch { hidden, lengths: tokens.lengths, tokens: n }
    }
}
