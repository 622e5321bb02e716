//! The loaded models that turn photos and captions into SHAN's inputs and the default ranker's
//! embeddings, shared by explain, index and search: the frozen backbone up to the fine-tuned top,
//! MiniLM up to its last layer, SHAN, the tuned global model (same backbone top) and the query
//! bank that normalises their fused score.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use image::{DynamicImage, RgbImage};

use super::backend::Compute;
use super::fused::QueryBank;
use crate::features::checksums::sha256_file;
use crate::features::minilm::TokenBatch;
use crate::features::text::TextEncoder;
use crate::features::tokenizer::Tokenized;
use crate::features::visual::VisualEncoder;
use crate::features::{TEXT_WEIGHTS, VOCAB, models_dir, preprocess};
use crate::model::shan::{ImageSide, TextSide};
use crate::nets::TEXT_TOP_LAYER;
use crate::nets::global_tuned::TunedGlobal;
use crate::nets::shan::{CaptionBatch, ShanNet};

/// Model inputs per backbone pass when many are scored at once (bounded activations).
const OCCLUSION_BATCH: usize = 10;

pub struct Runtime {
    pub visual: VisualEncoder,
    pub text: TextEncoder,
    pub net: ShanNet,
    /// The tuned global model, fine-tuned from the same backbone block as SHAN.
    pub global: TunedGlobal,
    /// The default ranker's fusion and bank, or why there is none (SHAN's weights are not the
    /// ones the bank was built for: then the default cannot rank; SHAN and global still can).
    pub bank: Result<QueryBank, String>,
    pub device: Device,
    /// SHA-256 of the visual backbone and of the networks' weights: what an index of photo
    /// features depends on.
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
        let global_path = crate::nets::global::default_path();
        let hash = |p: &Path| sha256_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
        let (shan_hash, global_hash) = (hash(weights)?, hash(&global_path)?);
        let bank_path = super::fused::default_bank_path();
        let bank = QueryBank::load(&bank_path, &shan_hash, &global_hash).map_err(|e| format!("{e:#}"));
        let bank_hash = match &bank {
            Ok(_) => hash(&bank_path)?,
            Err(_) => "none".into(),
        };
        let (net, global) = crate::nets::shan_and_global(weights, &global_path, visual, &device)?;
        Ok(Self {
            model_key: format!(
                "{visual}:{} shan:{shan_hash} global:{global_hash} bank:{bank_hash}",
                hash(&visual_path)?
            ),
            visual: VisualEncoder::load(&visual_path, &device)?,
            text: TextEncoder::load(&dir.join(TEXT_WEIGHTS), &dir.join(VOCAB), &device)?,
            net,
            global,
            bank,
            device,
            visual_path,
            weights_path: weights.to_path_buf(),
            visual_name: visual.to_string(),
            gradient: std::sync::OnceLock::new(),
        })
    }

    /// Whether these are the committed models (the folder's default index), not `--weights`.
    pub fn is_committed(&self) -> bool {
        self.weights_path == crate::nets::shan::default_path() && self.visual_name == crate::features::VISUAL
    }

    /// Gradient × activation maps of one photo for each word piece of one caption
    /// ([`super::gradient::Gradient::piece_maps`]; the models on an autodiff device are loaded
    /// once, on first use).
    pub fn gradient_maps(&self, photo: &DynamicImage, batch: &CaptionBatch) -> anyhow::Result<(Vec<Vec<f32>>, usize)> {
        let loaded = self.gradient.get_or_init(|| {
            super::gradient::Gradient::load(&self.device, &self.visual_path, &self.weights_path, &self.visual_name)
                .map_err(|e| format!("{e:#}"))
        });
        let gradient = loaded.as_ref().map_err(|e| anyhow::anyhow!("gradient maps: {e}"))?;
        let x = preprocess::batch(&[self.input(photo)], &self.device);
        gradient.piece_maps(self.visual.net.features_until(x, super::gradient::BLOCK), batch)
    }

    /// The activation entering the fine-tuned block, of one photo (one photo per pass, so a
    /// photo's features do not depend on what it was batched with).
    fn entering(&self, photo: &DynamicImage) -> Tensor<4> {
        let size = self.visual.image_size();
        self.visual.entering(&[preprocess::resize_square(photo, size)], self.net.visual.first_block)
    }

    /// A photo's joint-space fragments [1, k, d] (unit rows).
    pub fn project_photo(&self, photo: &DynamicImage) -> Tensor<3> {
        self.net.shan.project_regions(self.net.regions(self.entering(photo)))
    }

    /// SHAN's image side and the global model's embedding [1, d] of a photo, from one backbone pass.
    pub fn photo_sides(&self, photo: &DynamicImage) -> (ImageSide, Tensor<2>) {
        let entering = self.entering(photo);
        let global = self.global.embed_entering(entering.clone());
        (self.side_of(entering), global)
    }

    fn side_of(&self, entering: Tensor<4>) -> ImageSide {
        self.net.shan.encode_projected(self.net.shan.project_regions(self.net.regions(entering)))
    }

    pub fn image_side(&self, photo: &DynamicImage) -> ImageSide {
        self.side_of(self.entering(photo))
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

    /// A caption's SHAN side and global embedding [1, d] (MiniLM's frozen layers run once).
    pub fn caption_sides(&self, caption: &str) -> anyhow::Result<(TextSide, Tensor<2>, Tokenized)> {
        let tokenized = self.text.tokenizer.tokenize(caption)?;
        let batch = self.caption_batch(std::slice::from_ref(&tokenized));
        let global = self.global.embed_hidden(batch.clone());
        Ok((self.text_side_of(batch), global, tokenized))
    }

    /// Many captions' embeddings for the default ranker: (SHAN's pair-independent one, the
    /// global model's), in one padded batch; a caption that cannot be tokenized gets its error.
    pub fn caption_embeddings(&self, captions: &[&str]) -> Vec<anyhow::Result<(Vec<f32>, Vec<f32>)>> {
        let tokenized: Vec<anyhow::Result<Tokenized>> =
            captions.iter().map(|c| self.text.tokenizer.tokenize(c).map_err(|e| anyhow::anyhow!("{e}"))).collect();
        let ok: Vec<Tokenized> = tokenized.iter().filter_map(|t| t.as_ref().ok().cloned()).collect();
        let mut rows = Vec::new();
        if !ok.is_empty() {
            let batch = self.caption_batch(&ok);
            let global = crate::features::values(self.global.embed_hidden(batch.clone()));
            let shan = crate::features::values(self.text_side_of(batch).embedding);
            let (ds, dg) = (shan.len() / ok.len(), global.len() / ok.len());
            rows = shan.chunks_exact(ds).zip(global.chunks_exact(dg)).map(|(s, g)| (s.to_vec(), g.to_vec())).collect();
        }
        let mut rows = rows.into_iter();
        tokenized
            .into_iter()
            .map(|t| t.and_then(|_| rows.next().ok_or_else(|| anyhow::anyhow!("not embedded"))))
            .collect()
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
