//! RACG on the frozen backbones: its scores and loss for the shared training loop, save and load.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};

use super::frozen::{FrozenNet, FrozenSplit, scatter};
use crate::features::values;
use crate::model::loss::{Loss, contrastive};
use crate::model::matcher::Matcher;
use crate::model::racg::{Graph, Racg, RacgConfig};

/// Captions scored together (the per-pair attention is [images, captions, words, regions]).
const CAPTION_GROUP: usize = 32;

impl FrozenNet for Racg {
    fn batch_loss(&self, data: &FrozenSplit, images: &[usize], captions: &[usize], loss: Loss, epoch: usize, device: &Device) -> Tensor<1> {
        let regions = data.image_batch(images, device);
        let img = self.encode_images(regions.clone());
        // Captions in groups of similar length, so the per-pair tensors pad little; the columns
        // are put back in the batch's order so the diagonal stays the true pairs.
        let mut order: Vec<usize> = (0..captions.len()).collect();
        order.sort_by_key(|&j| data.words[captions[j]].len());
        let mut columns = Vec::new();
        let mut reconstruction = Tensor::<1>::zeros([1], device);
        for group in order.chunks(CAPTION_GROUP) {
            let rows: Vec<usize> = group.iter().map(|&j| captions[j]).collect();
            let (words, mask) = data.caption_batch(&rows, device);
            let txt = self.encode_texts(words.clone(), mask);
            reconstruction = reconstruction + self.reconstruction(&img, regions.clone(), &txt, words) * (group.len() as f64 / captions.len() as f64);
            columns.push(self.score_batch(&img, &txt).total);
        }
        let scores = Tensor::cat(columns, 1);
        // Column k of `scores` is caption order[k]: invert the permutation.
        let mut inverse = vec![0i64; order.len()];
        for (k, &j) in order.iter().enumerate() {
            inverse[j] = k as i64;
        }
        let scores = scores.select(1, Tensor::from_data(burn::tensor::TensorData::new(inverse, [order.len()]), device));
        contrastive(loss, scores, self.log_temperature.val(), epoch) + reconstruction * self.reconstruction_weight
    }

    fn score_split(&self, data: &FrozenSplit, device: &Device) -> Vec<f32> {
        let (n_img, n_cap) = (data.len(), data.len() * 5);
        let images: Vec<usize> = (0..n_img).collect();
        let graphs: Vec<Graph> = images.chunks(16).map(|rows| self.encode_images(data.image_batch(rows, device))).collect();
        let mut order: Vec<usize> = (0..n_cap).collect();
        order.sort_by_key(|&c| data.words[c].len());
        let mut scores = vec![0.0f32; n_img * n_cap];
        for caps in order.chunks(64) {
            let (words, mask) = data.caption_batch(caps, device);
            let txt = self.encode_texts(words, mask);
            for (chunk, img) in graphs.iter().enumerate() {
                let rows = img.mask.dims()[0];
                scatter(&mut scores, &values(self.score_batch(img, &txt).total), chunk * 16, rows, caps, n_cap);
            }
        }
        scores
    }
}

/// Weights + the config that built them (metadata `racg_config`), written atomically.
pub fn save(net: &Racg, path: &Path, config: &RacgConfig, notes: &[(String, String)]) -> anyhow::Result<()> {
    super::frozen::save(net, path, "racg", "racg_config", config.to_string(), notes)
}

pub fn load(path: &Path, device: &Device) -> anyhow::Result<Racg> {
    super::frozen::load(path, "racg_config", |c: &RacgConfig| c.init(device))
}

/// Where the committed RACG lives.
pub fn default_path() -> PathBuf {
    crate::features::models_dir().join("racg.safetensors")
}
