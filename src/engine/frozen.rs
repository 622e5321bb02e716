//! Networks trained on the frozen backbones (DSRAN, RACG): their inputs computed once from the
//! feature caches (the 49 region features of EfficientNet's frozen top, the word-piece features
//! of MiniLM's frozen last layer), one training loop ("recipe B", MODELS.md) for every such
//! network through [`FrozenNet`], Recall@K, and saving with the network's config.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};

use super::jobs::CancelToken;
use super::recall::{Recalls, recalls};
use super::recipe::Recipe;
use super::shan::{DEFAULT_FIRST_BLOCK, FragmentSplit};
use crate::features::values;
use crate::model::loss::Loss;

/// A split as the frozen-backbone networks' inputs: per image its region features, per caption its word features.
pub struct FrozenSplit {
    pub regions: Vec<f32>,
    pub k: usize,
    pub image_dim: usize,
    /// Caption c (five per image, 5i..5i+5): [pieces × text_dim], [CLS] and [SEP] left out.
    pub words: Vec<Vec<f32>>,
    pub text_dim: usize,
}

impl FrozenSplit {
    /// Run the frozen tops once over a split's cached activations (entering the last block).
    pub fn from_fragments(data: &FragmentSplit, visual: &str, device: &Device) -> anyhow::Result<Self> {
        // SHAN's network owns the backbone tops; only they are used here (frozen, as loaded).
        let tops = super::shan::init(&crate::model::shan::ShanConfig::new(), visual, DEFAULT_FIRST_BLOCK, device)?;
        let images: Vec<usize> = (0..data.len()).collect();
        let (mut regions, mut k, mut image_dim) = (Vec::new(), 0, 0);
        for rows in images.chunks(32) {
            let r = tops.regions(data.image_batch(rows, device));
            [_, k, image_dim] = r.dims();
            regions.extend(values(r));
        }
        let captions: Vec<usize> = (0..data.len() * 5).collect();
        let mut words = Vec::with_capacity(captions.len());
        let mut text_dim = 0;
        for rows in captions.chunks(64) {
            let (w, _) = tops.words(data.caption_batch(rows, device));
            let [b, n, h] = w.dims();
            text_dim = h;
            let v = values(w);
            for (i, &c) in rows.iter().enumerate().take(b) {
                let pieces = data.length(c).saturating_sub(2).min(n);
                words.push(v[i * n * h..(i * n + pieces) * h].to_vec());
            }
        }
        Ok(Self { regions, k, image_dim, words, text_dim })
    }

    pub fn len(&self) -> usize {
        self.words.len() / 5
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The first `n` images and their captions.
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.regions.truncate(n * self.k * self.image_dim);
        self.words.truncate(n * 5);
        self
    }

    pub fn image_batch(&self, rows: &[usize], device: &Device) -> Tensor<3> {
        let per = self.k * self.image_dim;
        let v: Vec<f32> = rows.iter().flat_map(|&r| self.regions[r * per..(r + 1) * per].iter().copied()).collect();
        Tensor::from_data(TensorData::new(v, [rows.len(), self.k, self.image_dim]), device)
    }

    /// Word features padded to the longest caption of `rows`, and their mask.
    pub fn caption_batch(&self, rows: &[usize], device: &Device) -> (Tensor<3>, Tensor<2>) {
        let h = self.text_dim;
        let n = rows.iter().map(|&r| self.words[r].len() / h).max().unwrap_or(1).max(1);
        let (mut x, mut mask) = (vec![0.0f32; rows.len() * n * h], vec![0.0f32; rows.len() * n]);
        for (i, &r) in rows.iter().enumerate() {
            x[i * n * h..i * n * h + self.words[r].len()].copy_from_slice(&self.words[r]);
            mask[i * n..i * n + self.words[r].len() / h].fill(1.0);
        }
        (Tensor::from_data(TensorData::new(x, [rows.len(), n, h]), device), Tensor::from_data(TensorData::new(mask, [rows.len(), n]), device))
    }
}

/// What the shared training loop needs of a network on the frozen backbones.
pub trait FrozenNet: Module + Sized {
    /// The batch's loss: `images[i]` and `captions[i]` are the true pairs.
    fn batch_loss(&self, data: &FrozenSplit, images: &[usize], captions: &[usize], loss: Loss, epoch: usize, device: &Device) -> Tensor<1>;
    /// Every image × caption score of a split, row-major [images, captions].
    fn score_split(&self, data: &FrozenSplit, device: &Device) -> Vec<f32>;
}

/// Recall@K of a split, the papers' protocol.
pub fn evaluate<N: FrozenNet>(net: &N, data: &FrozenSplit, device: &Device) -> Recalls {
    recalls(&net.score_split(data, device), data.len(), 5)
}

pub enum FrozenTrainMsg {
    Step { epoch: usize, step: usize, steps: usize, loss: f64, seconds_per_step: f64 },
    Epoch { epoch: usize, loss: f64, dev: Recalls, seconds: f64, best: bool },
}

/// Recipe B from `net` (built on `device.autodiff()`); `checkpoint` is called at every dev gain
/// (so an interrupted run keeps its best epoch). `resumed`: `net` is a checkpoint of that best
/// epoch; its dev recalls are measured again and training continues after it (up to
/// `max_epochs` in all; AdamW's moments start afresh, and the batches differ from the ones an
/// uninterrupted run would have drawn). Returns the best network, its epoch and recalls.
#[allow(clippy::too_many_arguments)]
pub fn train<N: FrozenNet>(mut net: N, resumed: Option<usize>, train: &FrozenSplit, dev: &FrozenSplit, device: &Device, recipe: &Recipe, checkpoint: &dyn Fn(&N, usize, &Recalls) -> anyhow::Result<()>, cancel: &CancelToken, report: &dyn Fn(FrozenTrainMsg)) -> anyhow::Result<(N, usize, Recalls)> {
    let ad = device.clone().autodiff();
    let mut optim = super::recipe::optimizer(recipe.weight_decay);
    let mut rng = fastrand::Rng::with_seed(recipe.seed + resumed.unwrap_or(0) as u64);
    let mut best: Option<(N, usize, Recalls)> = resumed.map(|epoch| {
        let valid = net.valid();
        let r = evaluate(&valid, dev, device);
        (valid, epoch, r)
    });
    for epoch in resumed.unwrap_or(0) + 1..=recipe.max_epochs {
        let started = Instant::now();
        let batches = super::recipe::epoch_batches(&mut rng, train.len(), recipe.batch);
        let (mut loss_sum, mut steps) = (0.0, 0usize);
        for batch in &batches {
            anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
            let step_start = Instant::now();
            let captions: Vec<usize> = batch.iter().map(|&i| i * 5 + rng.usize(0..5)).collect();
            let loss = net.batch_loss(train, batch, &captions, recipe.loss, epoch, &ad);
            let value = loss.clone().into_scalar::<f32>() as f64;
            anyhow::ensure!(value.is_finite(), "the loss diverged at epoch {epoch}, step {}", steps + 1);
            loss_sum += value;
            steps += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(recipe.lr, net, grads);
            report(FrozenTrainMsg::Step { epoch, step: steps, steps: batches.len(), loss: value, seconds_per_step: step_start.elapsed().as_secs_f64() });
        }
        let valid = net.valid();
        let dev_recalls = evaluate(&valid, dev, device);
        let improved = best.as_ref().is_none_or(|(_, _, b)| dev_recalls.rsum > b.rsum);
        report(FrozenTrainMsg::Epoch { epoch, loss: loss_sum / steps.max(1) as f64, dev: dev_recalls, seconds: started.elapsed().as_secs_f64(), best: improved });
        if improved {
            checkpoint(&valid, epoch, &dev_recalls)?;
            best = Some((valid, epoch, dev_recalls));
        } else if best.as_ref().is_some_and(|(_, e, _)| epoch - e >= recipe.patience) {
            break;
        }
    }
    best.context("no epoch finished")
}

/// Weights + metadata (`model`, the config under `config_key`, notes), written atomically, 0644
/// (every trained network here: SHAN, DSRAN, RACG).
pub fn save<N: Module>(net: &N, path: &Path, model: &str, config_key: &str, config_json: String, notes: &[(String, String)]) -> anyhow::Result<()> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true).metadata("model", model).metadata(config_key, config_json);
    for (k, v) in notes {
        store = store.metadata(k.clone(), v.clone());
    }
    net.save_into(&mut store).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    // The store writes through a private (0600) temporary file; weights are meant to be shared.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A saved network: its config from the file's `config_key` metadata, the network built from it,
/// then every tensor (a missing or misshapen one is an error naming the file).
pub fn load<C: burn::config::Config, N: Module>(path: &Path, config_key: &str, init: impl FnOnce(&C) -> N) -> anyhow::Result<N> {
    let mut net = init(&saved_config(&crate::features::weights::WeightFile::open(path)?, path, config_key)?);
    net.load_from(&mut SafetensorsStore::from_file(path)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(net)
}

/// The config a saved network was built from (the `config_key` metadata of `file`, opened from `path`).
pub fn saved_config<C: burn::config::Config>(file: &crate::features::weights::WeightFile, path: &Path, config_key: &str) -> anyhow::Result<C> {
    let json = file.metadata(config_key)?;
    C::load_binary(json.as_bytes()).map_err(|e| anyhow::anyhow!("{}: {config_key} metadata: {e}", path.display()))
}

/// The notes a checkpoint carries.
pub fn notes(recipe: &Recipe, epoch: usize, dev: &Recalls) -> Vec<(String, String)> {
    vec![
        ("best_epoch".into(), epoch.to_string()),
        ("dev_rsum".into(), format!("{:.1}", dev.rsum)),
        ("recipe".into(), format!("B: batch {}, AdamW lr {} wd {}, loss {:?}; frozen backbones", recipe.batch, recipe.lr, recipe.weight_decay, recipe.loss)),
    ]
}

/// Write a [rows, caps.len()] block into the [images, n_cap] matrix.
pub fn scatter(matrix: &mut [f32], block: &[f32], first: usize, rows: usize, caps: &[usize], n_cap: usize) {
    for r in 0..rows {
        for (k, &c) in caps.iter().enumerate() {
            matrix[(first + r) * n_cap + c] = block[r * caps.len() + k];
        }
    }
}
