//! The loaded models that turn photos and captions into SHAN's inputs and the default ranker's
//! embeddings, shared by explain, index and search: the frozen backbone up to the fine-tuned top,
//! MiniLM up to its last layer, SHAN, the tuned global model (same backbone top) and the query
//! bank that normalises their fused score.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, RgbImage};

use super::backend::Compute;
use super::fused::QueryBank;
use crate::features::checksums::sha256_file;
use crate::features::detections::Detection;
use crate::features::detector::{DETECTOR_WEIGHTS, Detector};
use crate::features::minilm::TokenBatch;
use crate::features::object_crops::{self, Stage};
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
    /// The detector's objects as more regions of every photo, when asked for ([`Self::with_objects`]).
    pub objects: Option<ObjectRegions>,
    /// The gradient copy of the models, loaded the first time a gradient map is asked for.
    gradient: std::sync::OnceLock<Result<super::gradient::Gradient, String>>,
}

/// Each photo's best `k` detected objects as `k` more regions after its grid cells, as `eval
/// --model shan --objects k` measures them: each object's crop of the model input through the
/// backbone and SHAN's fine-tuned top, mean-pooled (slots beyond what the detector found hold the
/// whole photo).
pub struct ObjectRegions {
    pub detector: Detector,
    pub k: usize,
}

/// A photo's region features [1, cells + objects, 1280] and the objects among them, in order.
pub struct PhotoRegions {
    pub regions: Tensor<3>,
    /// The activation entering SHAN's top (the global model embeds the photo from it).
    pub entering: Tensor<4>,
    /// The object regions alone [1, k, 1280] (None without objects).
    pub object_regions: Option<Tensor<3>>,
    /// The detected objects, one per object region (a whole-photo slot: label "photo", score 0).
    pub objects: Vec<Detection>,
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
            objects: None,
            gradient: std::sync::OnceLock::new(),
        })
    }

    /// The runtime with each photo's best `k` detected objects as more regions (0: the grid
    /// alone). The index key names them, so such an index is kept apart from the grid's.
    pub fn with_objects(mut self, k: usize) -> anyhow::Result<Self> {
        if k == 0 {
            return Ok(self);
        }
        let path = models_dir().join(DETECTOR_WEIGHTS);
        let detector = Detector::load(&path, &self.device)?;
        let sha = sha256_file(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Before the bank's part: the photos' features depend on the objects (see `features_key`).
        let (features, bank) = self.model_key.split_once(" bank:").unwrap_or((&self.model_key, "none"));
        self.model_key = format!("{features} objects:{k} detector:{sha} bank:{bank}");
        self.objects = Some(ObjectRegions { detector, k });
        Ok(self)
    }

    /// Whether these are the committed models (the folder's default index), not `--weights`.
    pub fn is_committed(&self) -> bool {
        self.weights_path == crate::nets::shan::default_path() && self.visual_name == crate::features::VISUAL
    }

    /// Gradient × activation maps of one photo (its `objects` regions held fixed after its cells)
    /// for each word piece of one caption
    /// ([`super::gradient::Gradient::piece_maps`]; the models on an autodiff device are loaded
    /// once, on first use).
    pub fn gradient_maps(
        &self,
        photo: &DynamicImage,
        batch: &CaptionBatch,
        objects: Option<&Tensor<3>>,
    ) -> anyhow::Result<(Vec<Vec<f32>>, usize)> {
        let loaded = self.gradient.get_or_init(|| {
            super::gradient::Gradient::load(&self.device, &self.visual_path, &self.weights_path, &self.visual_name)
                .map_err(|e| format!("{e:#}"))
        });
        let gradient = loaded.as_ref().map_err(|e| anyhow::anyhow!("gradient maps: {e}"))?;
        let x = preprocess::batch(&[self.input(photo)], &self.device);
        gradient.piece_maps(self.visual.net.features_until(x, super::gradient::BLOCK), batch, objects)
    }

    /// The activation entering the fine-tuned block, of one photo (one photo per pass, so a
    /// photo's features do not depend on what it was batched with).
    fn entering(&self, photo: &DynamicImage) -> Tensor<4> {
        let size = self.visual.image_size();
        self.visual.entering(&[preprocess::resize_square(photo, size)], self.net.visual.first_block)
    }

    /// A photo's regions: its grid cells through SHAN's top, then its objects (with
    /// [`Self::with_objects`]).
    pub fn photo_regions(&self, photo: &DynamicImage) -> PhotoRegions {
        let entering = self.entering(photo);
        let cells = self.net.regions(entering.clone());
        let Some((object_regions, objects)) = self.object_regions(photo) else {
            return PhotoRegions { regions: cells, entering, object_regions: None, objects: Vec::new() };
        };
        let regions = Tensor::cat(vec![cells, object_regions.clone()], 1);
        PhotoRegions { regions, entering, object_regions: Some(object_regions), objects }
    }

    /// The photo's object regions [1, k, 1280] and its detections (None without objects). The
    /// detector and the crops see the model input, as the measured caches saw 224-px photos.
    fn object_regions(&self, photo: &DynamicImage) -> Option<(Tensor<3>, Vec<Detection>)> {
        let o = self.objects.as_ref()?;
        let input = [DynamicImage::ImageRgb8(self.input(photo))];
        let slots = object_crops::detect_slots(&o.detector, &input, o.k, &self.device);
        let stage = Stage::Entering(self.net.visual.first_block);
        let rows = object_crops::crop_features(&self.visual.net, &input, slots, stage, &self.device);
        let [c, h, w] = rows.row_shape[..] else { return None };
        let crops = Tensor::<4>::from_data(TensorData::new(rows.values, [o.k, c, h, w]), &self.device);
        let pooled = self.net.visual.regions(crops).mean_dim(1); // [k, 1, 1280]
        let d = pooled.dims()[2];
        let labels = o.detector.labels();
        let objects = rows.slots.first().map_or_else(Vec::new, |slots| {
            slots
                .iter()
                .map(|(bbox, score, class)| Detection {
                    label: if *score > 0.0 {
                        labels.get(*class as usize).cloned().unwrap_or_default()
                    } else {
                        "photo".into()
                    },
                    score: *score,
                    bbox: *bbox,
                })
                .collect()
        });
        Some((pooled.reshape([1, o.k, d]), objects))
    }

    /// A photo's joint-space fragments [1, k, d] (unit rows).
    pub fn project_photo(&self, photo: &DynamicImage) -> Tensor<3> {
        self.net.shan.project_regions(self.photo_regions(photo).regions)
    }

    /// SHAN's image side and the global model's embedding [1, d] of a photo, from one backbone
    /// pass (the global model embeds the grid alone).
    pub fn photo_sides(&self, photo: &DynamicImage) -> (ImageSide, Tensor<2>) {
        let PhotoRegions { regions, entering, .. } = self.photo_regions(photo);
        let global = self.global.embed_entering(entering);
        (self.side_of(regions), global)
    }

    /// SHAN's image side of region features.
    pub fn side_of(&self, regions: Tensor<3>) -> ImageSide {
        self.net.shan.encode_projected(self.net.shan.project_regions(regions))
    }

    pub fn image_side(&self, photo: &DynamicImage) -> ImageSide {
        self.side_of(self.photo_regions(photo).regions)
    }

    /// The square model input of a photo (what [`Self::project_photo`] sees).
    pub fn input(&self, photo: &DynamicImage) -> RgbImage {
        preprocess::resize_square(photo, self.visual.image_size())
    }

    /// The image side of many model inputs at once (occluded copies of one photo), in batches
    /// small enough to keep the backbone's activations bounded; the photo's `objects` regions
    /// ([1, k, 1280], unchanged) follow each input's cells.
    pub fn image_sides_of(&self, inputs: &[RgbImage], objects: Option<&Tensor<3>>) -> ImageSide {
        let projected = inputs
            .chunks(OCCLUSION_BATCH)
            .map(|chunk| {
                let x = preprocess::batch(chunk, &self.device);
                let entering = self.visual.net.features_until(x, self.net.visual.first_block);
                let cells = self.net.regions(entering);
                let regions = match objects {
                    Some(o) => Tensor::cat(vec![cells, o.clone().repeat_dim(0, chunk.len())], 1),
                    None => cells,
                };
                self.net.shan.project_regions(regions)
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
