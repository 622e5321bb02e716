//! DSRAN on the frozen backbones: its inputs (the 49 region features of the frozen EfficientNet
//! top, the word-piece features of MiniLM's frozen last layer) are computed once from the
//! feature caches, then trained with recipe B (MODELS.md), evaluated with the papers' protocol,
//! saved with its config.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use burn::config::Config as _;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};

use super::jobs::CancelToken;
use super::recall::{Recalls, recalls};
use super::shan::{DEFAULT_FIRST_BLOCK, FragmentSplit};
use crate::features::values;
use crate::features::weights::WeightFile;
use crate::model::dsran::{Dsran, DsranConfig};
use super::recipe::Recipe;
use crate::model::loss::contrastive;

/// A split as DSRAN's inputs: per image its region features, per caption its word features.
pub struct DsranSplit {
    pub regions: Vec<f32>,
    pub k: usize,
    pub image_dim: usize,
    /// Caption c (five per image, 5i..5i+5): [pieces × text_dim], [CLS] and [SEP] left out.
    pub words: Vec<Vec<f32>>,
    pub text_dim: usize,
}

impl DsranSplit {
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

    fn image_batch(&self, rows: &[usize], device: &Device) -> Tensor<3> {
        let per = self.k * self.image_dim;
        let v: Vec<f32> = rows.iter().flat_map(|&r| self.regions[r * per..(r + 1) * per].iter().copied()).collect();
        Tensor::from_data(TensorData::new(v, [rows.len(), self.k, self.image_dim]), device)
    }

    /// Word features padded to the longest caption of `rows`, and their mask.
    fn caption_batch(&self, rows: &[usize], device: &Device) -> (Tensor<3>, Tensor<2>) {
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

/// Every image × caption cosine, then Recall@K (captions encoded in length-sorted groups).
pub fn evaluate(net: &Dsran, data: &DsranSplit, device: &Device) -> Recalls {
    let (n_img, n_cap) = (data.len(), data.len() * 5);
    let images: Vec<usize> = (0..n_img).collect();
    let img = Tensor::cat(images.chunks(64).map(|rows| net.embed_images(data.image_batch(rows, device))).collect(), 0);
    let mut order: Vec<usize> = (0..n_cap).collect();
    order.sort_by_key(|&c| data.words[c].len());
    let mut scores = vec![0.0f32; n_img * n_cap];
    for caps in order.chunks(256) {
        let (words, mask) = data.caption_batch(caps, device);
        let block = values(img.clone().matmul(net.embed_texts(words, mask).transpose()));
        for i in 0..n_img {
            for (j, &c) in caps.iter().enumerate() {
                scores[i * n_cap + c] = block[i * caps.len() + j];
            }
        }
    }
    recalls(&scores, n_img, 5)
}

#[derive(Clone, Debug)]
pub struct DsranTrainConfig {
    pub model: DsranConfig,
    pub recipe: Recipe,
}

impl Default for DsranTrainConfig {
    fn default() -> Self {
        Self { model: DsranConfig::new(), recipe: Recipe { max_epochs: 20, patience: 3, ..Recipe::default() } }
    }
}

pub enum DsranTrainMsg {
    Step { epoch: usize, step: usize, steps: usize, loss: f64, seconds_per_step: f64 },
    Epoch { epoch: usize, loss: f64, dev: Recalls, seconds: f64, best: bool },
}

/// Recipe B; the best dev epoch is written to `out` at every gain (an interrupted run keeps it).
pub fn train(train: &DsranSplit, dev: &DsranSplit, device: &Device, config: &DsranTrainConfig, out: Option<&Path>, cancel: &CancelToken, report: &dyn Fn(DsranTrainMsg)) -> anyhow::Result<(Dsran, usize, Recalls)> {
    let ad = device.clone().autodiff();
    let mut net = config.model.init(&ad);
    let recipe = &config.recipe;
    let mut optim = super::recipe::optimizer(recipe.weight_decay);
    let mut rng = fastrand::Rng::with_seed(recipe.seed);
    let mut best: Option<(Dsran, usize, Recalls)> = None;
    for epoch in 1..=recipe.max_epochs {
        let started = Instant::now();
        let batches = super::recipe::epoch_batches(&mut rng, train.len(), recipe.batch);
        let (mut loss_sum, mut steps) = (0.0, 0usize);
        for batch in &batches {
            anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
            let step_start = Instant::now();
            let captions: Vec<usize> = batch.iter().map(|&i| i * 5 + rng.usize(0..5)).collect();
            let img = net.embed_images(train.image_batch(batch, &ad));
            let (words, mask) = train.caption_batch(&captions, &ad);
            let txt = net.embed_texts(words, mask);
            let loss = contrastive(recipe.loss, img.matmul(txt.transpose()), net.log_temperature.val(), epoch);
            let value = loss.clone().into_scalar::<f32>() as f64;
            anyhow::ensure!(value.is_finite(), "the loss diverged at epoch {epoch}, step {}", steps + 1);
            loss_sum += value;
            steps += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(recipe.lr, net, grads);
            report(DsranTrainMsg::Step { epoch, step: steps, steps: batches.len(), loss: value, seconds_per_step: step_start.elapsed().as_secs_f64() });
        }
        let valid = net.valid();
        let dev_recalls = evaluate(&valid, dev, device);
        let improved = best.as_ref().is_none_or(|(_, _, b)| dev_recalls.rsum > b.rsum);
        report(DsranTrainMsg::Epoch { epoch, loss: loss_sum / steps.max(1) as f64, dev: dev_recalls, seconds: started.elapsed().as_secs_f64(), best: improved });
        if improved {
            if let Some(path) = out {
                save(&valid, path, &config.model, &[("best_epoch".into(), epoch.to_string()), ("dev_rsum".into(), format!("{:.1}", dev_recalls.rsum)), ("recipe".into(), format!("B: batch {}, AdamW lr {} wd {}, loss {:?}; frozen backbones", recipe.batch, recipe.lr, recipe.weight_decay, recipe.loss))])?;
            }
            best = Some((valid, epoch, dev_recalls));
        } else if best.as_ref().is_some_and(|(_, e, _)| epoch - e >= recipe.patience) {
            break;
        }
    }
    best.context("no epoch finished")
}

/// Weights + the config that built them (metadata `dsran_config`), written atomically.
pub fn save(net: &Dsran, path: &Path, config: &DsranConfig, notes: &[(String, String)]) -> anyhow::Result<()> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true).metadata("model", "dsran").metadata("dsran_config", config.to_string());
    for (k, v) in notes {
        store = store.metadata(k.clone(), v.clone());
    }
    net.save_into(&mut store).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A saved DSRAN: its config from the file, then every tensor (missing or misshapen: an error
/// naming the file).
pub fn load(path: &Path, device: &Device) -> anyhow::Result<Dsran> {
    let file = WeightFile::open(path)?;
    let json = file.metadata("dsran_config")?;
    let config = DsranConfig::load_binary(json.as_bytes()).map_err(|e| anyhow::anyhow!("{}: dsran_config metadata: {e}", path.display()))?;
    let mut net = config.init(device);
    net.load_from(&mut SafetensorsStore::from_file(path)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(net)
}

/// Where the committed DSRAN lives.
pub fn default_path() -> PathBuf {
    crate::features::models_dir().join("dsran.safetensors")
}
