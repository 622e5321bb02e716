//! SHAN end to end: the cached backbone activations of a split, the network with the backbone
//! layers it fine-tunes (EfficientNet's last MBConv block + head, MiniLM's last layer), training
//! with recipe B, sharded exhaustive evaluation with every level's Recall@K, saving and loading.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use burn::config::Config as _;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};

use super::frozen::scatter;
use super::jobs::CancelToken;
use super::recall::{Recalls, recalls};
use crate::data::feature_cache::FeatureCache;
use crate::features::efficientnet::{EfficientNetLite, Top};
use crate::features::minilm::{Layer, MiniLm, additive_mask};
use crate::features::weights::WeightFile;
use crate::features::{TEXT_WEIGHTS, models_dir, values};
use crate::model::loss::{Loss, contrastive};
use crate::model::shan::{ImageSide, LevelScores, Shan, ShanConfig, TextSide};

/// Captions scored together in a training step: a step's captions are sorted by length and
/// scored in groups of this many, so the per-pair tensors are padded per group (measured: the
/// pairwise scoring dominates a step).
const CAPTION_GROUP: usize = 32;

/// The MiniLM layer whose input is cached; it and the layers after it run per step.
pub const TEXT_TOP_LAYER: usize = 5;

/// The matching network with the backbone layers it owns.
#[derive(Module, Debug)]
pub struct ShanNet {
    pub visual: Top,
    pub text: Layer,
    pub shan: Shan,
}

/// A split as the network's inputs: the activation entering the visual top per image, the
/// hidden states entering MiniLM's last layer per caption (five per image, rows 5i..5i+5).
pub struct FragmentSplit {
    pub names: Vec<String>,
    pub images: Vec<f32>,
    pub image_shape: [usize; 3],
    pub captions: Vec<Vec<f32>>,
    pub text_dim: usize,
    /// Augmented views of the images, laid out as `images` (training only; usually none).
    pub views: Vec<Vec<f32>>,
}

impl FragmentSplit {
    /// Align the two caches by image name (images with all five captions cached).
    pub fn from_caches(images: &FeatureCache, captions: &FeatureCache) -> anyhow::Result<Self> {
        let names: Vec<String> = images.entries.iter().map(|e| e.name.clone()).collect();
        let first = images.entries.first().context("the image cache is empty")?;
        let image_shape: [usize; 3] = first.shape.as_slice().try_into().context("cached image activations are not C×H×W")?;
        let text_dim = *captions.entries.first().context("the caption cache is empty")?.shape.last().unwrap_or(&0);
        anyhow::ensure!(text_dim > 0, "cached caption features have no width");
        let mut split = Self { names: Vec::new(), images: Vec::new(), image_shape, captions: Vec::new(), text_dim, views: Vec::new() };
        for (i, rows) in super::prepare::with_five_captions(&names, captions) {
            anyhow::ensure!(images.entries[i].shape == first.shape, "cached image {} has shape {:?}, not {:?}", names[i], images.entries[i].shape, first.shape);
            split.names.push(names[i].clone());
            split.images.extend(images.values(i));
            split.captions.extend(rows.iter().map(|&r| captions.values(r)));
        }
        anyhow::ensure!(!split.names.is_empty(), "no image has all five captions cached");
        Ok(split)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The first `n` images and their captions.
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        let per = self.image_shape.iter().product::<usize>();
        self.names.truncate(n);
        self.images.truncate(n * per);
        self.captions.truncate(n * 5);
        self.views.iter_mut().for_each(|v| v.truncate(n * per));
        self
    }

    /// The split with augmented views of its images beside them, from caches of those views
    /// (matched by name; every image must have each view).
    pub fn with_views(mut self, caches: &[FeatureCache]) -> anyhow::Result<Self> {
        for cache in caches {
            let rows: HashMap<&str, usize> = cache.entries.iter().enumerate().map(|(i, e)| (e.name.as_str(), i)).collect();
            let mut view = Vec::with_capacity(self.images.len());
            for name in &self.names {
                let row = *rows.get(name.as_str()).with_context(|| format!("{name} is missing from an augmented view's cache"))?;
                anyhow::ensure!(cache.entries[row].shape == self.image_shape, "{name}: augmented view of shape {:?}, not {:?}", cache.entries[row].shape, self.image_shape);
                view.extend(cache.values(row));
            }
            self.views.push(view);
        }
        Ok(self)
    }

    /// A training batch: each image as itself or one of its augmented views, drawn uniformly
    /// (the photo itself, and no draw from `rng`, when there are no views).
    pub fn image_batch_sampled(&self, rows: &[usize], rng: &mut fastrand::Rng, device: &Device) -> Tensor<4> {
        if self.views.is_empty() {
            return self.image_batch(rows, device);
        }
        let picks: Vec<(&[f32], usize)> = rows
            .iter()
            .map(|&r| match rng.usize(0..=self.views.len()) {
                0 => (self.images.as_slice(), r),
                k => (self.views[k - 1].as_slice(), r),
            })
            .collect();
        self.stack(picks.into_iter(), device)
    }

    pub fn image_batch(&self, rows: &[usize], device: &Device) -> Tensor<4> {
        self.stack(rows.iter().map(|&r| (self.images.as_slice(), r)), device)
    }

    /// Image `r` of each `(source, r)` (the images or one of their views) as one batch.
    fn stack<'a>(&self, picks: impl ExactSizeIterator<Item = (&'a [f32], usize)>, device: &Device) -> Tensor<4> {
        let per = self.image_shape.iter().product::<usize>();
        let n = picks.len();
        let v: Vec<f32> = picks.flat_map(|(source, r)| source[r * per..(r + 1) * per].iter().copied()).collect();
        let [c, h, w] = self.image_shape;
        Tensor::from_data(TensorData::new(v, [n, c, h, w]), device)
    }

    /// Token counts (with [CLS] and [SEP]) of captions.
    pub fn length(&self, caption: usize) -> usize {
        self.captions[caption].len() / self.text_dim
    }

    pub fn caption_batch(&self, rows: &[usize], device: &Device) -> CaptionBatch {
        let lengths: Vec<usize> = rows.iter().map(|&r| self.length(r)).collect();
        let n = lengths.iter().copied().max().unwrap_or(1).max(3);
        let h = self.text_dim;
        let mut x = vec![0.0f32; rows.len() * n * h];
        for (k, &r) in rows.iter().enumerate() {
            x[k * n * h..k * n * h + self.captions[r].len()].copy_from_slice(&self.captions[r]);
        }
        CaptionBatch { hidden: Tensor::from_data(TensorData::new(x, [rows.len() * n, h]), device), lengths, tokens: n }
    }
}

/// Captions padded to `tokens`, as the hidden states entering MiniLM's last layer [B·tokens, H]
/// (`tokens` ≥ 3 so every row has room for [CLS], a piece and [SEP]).
pub struct CaptionBatch {
    pub hidden: Tensor<2>,
    pub lengths: Vec<usize>,
    pub tokens: usize,
}

/// 1 where a row has a token, 0 for padding: [rows, n], row r real for its first `len(r)` slots.
fn length_mask(lengths: &[usize], n: usize, device: &Device) -> Tensor<2> {
    let m: Vec<f32> = lengths.iter().flat_map(|&l| (0..n).map(move |j| if j < l { 1.0 } else { 0.0 })).collect();
    Tensor::from_data(TensorData::new(m, [lengths.len(), n]), device)
}

/// Every token's features after MiniLM's last layer [B, n, 384] ([CLS] and [SEP] included) and
/// the mask of real tokens [B, n].
pub fn tokens(layer: &Layer, batch: CaptionBatch) -> (Tensor<3>, Tensor<2>) {
    let CaptionBatch { hidden, lengths, tokens: n } = batch;
    let b = lengths.len();
    let mask = length_mask(&lengths, n, &hidden.device());
    let out = layer.forward(hidden, additive_mask(mask.clone()), b);
    let h = out.dims()[1];
    (out.reshape([b, n, h]), mask)
}

impl ShanNet {
    /// Region features [B, k, 1280] from cached activations.
    pub fn regions(&self, x: Tensor<4>) -> Tensor<3> {
        self.visual.regions(x)
    }

    /// Word (piece) features [B, n−2, 384] and their mask, without [CLS] and [SEP].
    pub fn words(&self, batch: CaptionBatch) -> (Tensor<3>, Tensor<2>) {
        let pieces: Vec<usize> = batch.lengths.iter().map(|l| l.saturating_sub(2)).collect();
        let (tokens, _) = tokens(&self.text, batch);
        let [b, n, _] = tokens.dims();
        let device = tokens.device();
        (tokens.slice([0..b, 1..n - 1]), length_mask(&pieces, n - 2, &device))
    }

    fn image_side(&self, data: &FragmentSplit, rows: &[usize], device: &Device) -> ImageSide {
        self.image_side_of(data.image_batch(rows, device))
    }

    fn image_side_of(&self, entering: Tensor<4>) -> ImageSide {
        self.shan.encode_images(self.regions(entering))
    }

    fn text_side(&self, data: &FragmentSplit, rows: &[usize], device: &Device) -> TextSide {
        let (words, mask) = self.words(data.caption_batch(rows, device));
        self.shan.encode_texts(words, mask)
    }
}

#[derive(Clone, Debug)]
pub struct ShanTrainConfig {
    pub model: ShanConfig,
    pub batch: usize,
    pub lr: f64,
    /// Learning rate of the fine-tuned backbone layers.
    pub backbone_lr: f64,
    pub weight_decay: f32,
    pub max_epochs: usize,
    pub patience: usize,
    pub seed: u64,
    /// Weight of the per-level and pair-independent InfoNCE terms beside the final score's.
    pub aux_weight: f64,
    /// Fine-tune EfficientNet's blocks from `visual_first_block` + head / MiniLM's last layer
    /// (else frozen).
    pub finetune_visual: bool,
    /// The first EfficientNet block of the trained top: 15 = the last block, 11 = the last two
    /// stages (cache 112×14×14; MODELS.md measured +12 dev rSum over 15 for the global model).
    pub visual_first_block: usize,
    pub finetune_text: bool,
    /// Model selection on the first `dev_images` dev images (exhaustive scoring is the cost).
    pub dev_images: usize,
    /// The loss of every term (the final score's, each level's, the embeddings').
    pub loss: Loss,
    /// Continue from the checkpoint at `out` (its best epoch) instead of starting over.
    pub resume: bool,
    /// The step decay ("×0.1 decay late", MODELS.md): once dev stops rising (or after
    /// `max_epochs`), training goes on from the best epoch at a tenth of both learning rates for up
    /// to this many epochs (same patience; 0: none).
    pub decay_epochs: usize,
    /// Start the backbone tops from a tuned global model's (`train --model global --tuned`)
    /// instead of the pretrained backbone's: the tops arrive already adapted to retrieval.
    pub init_tops: Option<PathBuf>,
}

impl Default for ShanTrainConfig {
    fn default() -> Self {
        Self {
            model: ShanConfig::new(),
            batch: 128,
            lr: 2e-4,
            backbone_lr: 5e-5,
            weight_decay: 1e-4,
            max_epochs: 20,
            patience: 3,
            seed: 7,
            aux_weight: 0.25,
            finetune_visual: true,
            visual_first_block: DEFAULT_FIRST_BLOCK,
            finetune_text: true,
            dev_images: 500,
            loss: Loss::InfoNce,
            resume: false,
            decay_epochs: 0,
            init_tops: None,
        }
    }
}

/// Recall@K of the final score, of each level alone, and of the pair-independent embeddings.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ShanRecalls {
    pub full: Recalls,
    pub l2l: Recalls,
    pub g2l: Recalls,
    pub g2g: Recalls,
    pub embedding: Recalls,
}

pub enum ShanTrainMsg {
    /// `phases`: seconds spent encoding both sides, scoring + loss, backward, optimiser step.
    Step { epoch: usize, step: usize, steps: usize, loss: f64, seconds_per_step: f64, phases: [f64; 4] },
    /// `lr`: the matching network's learning rate in this epoch (a tenth of it in the decay phase).
    Epoch { epoch: usize, lr: f64, loss: f64, dev: ShanRecalls, train_seconds: f64, eval_seconds: f64, best: bool },
    /// The level weights chosen on dev for the best epoch, and the full score's dev recalls.
    Weights { weights: [f64; 3], dev: Recalls },
    /// Training continues after `epoch`, the checkpoint's, whose dev recalls were measured again.
    Resumed { epoch: usize, dev: ShanRecalls },
}

pub struct ShanTrained {
    pub net: ShanNet,
    pub best_epoch: usize,
    pub best_dev: ShanRecalls,
    pub seconds: f64,
}

/// The visual top starts at the last MBConv block unless a config says otherwise.
pub const DEFAULT_FIRST_BLOCK: usize = 15;

/// The network at its starting point: the backbone tops (EfficientNet from `first_block`) from
/// the committed backbone weights.
pub fn init(config: &ShanConfig, visual: &str, first_block: usize, device: &Device) -> anyhow::Result<ShanNet> {
    let net = EfficientNetLite::load(&models_dir().join(format!("{visual}.safetensors")), device)?;
    let text = MiniLm::load(&models_dir().join(TEXT_WEIGHTS), device)?;
    let layer = text.layers.into_iter().nth(TEXT_TOP_LAYER).context("MiniLM has fewer layers than expected")?;
    anyhow::ensure!(first_block < net.blocks.len(), "{visual} has {} blocks; cannot fine-tune from block {first_block}", net.blocks.len());
    Ok(ShanNet { visual: net.top(first_block), text: layer, shan: config.init(device) })
}

/// Every image × caption score of a split, sharded so memory stays bounded.
pub fn score_split(net: &ShanNet, data: &FragmentSplit, device: &Device, cancel: &CancelToken) -> anyhow::Result<[Vec<f32>; 4]> {
    // Small shards keep each per-pair tensor in cache: scoring 500 dev photos × 2,500 captions took
    // 126 s at 64 × 256, 86 s at 32 × 128, 61 s at 32 × 64 and 57 s at 16 × 64 (2 cores, flex).
    let (images_per_chunk, captions_per_chunk) = (16, 64);
    let (n_img, n_cap) = (data.len(), data.len() * 5);
    let images: Vec<usize> = (0..n_img).collect();
    let image_sides: Vec<ImageSide> = images.chunks(images_per_chunk).map(|rows| net.image_side(data, rows, device)).collect();
    // Captions grouped by length so a shard pads little.
    let mut order: Vec<usize> = (0..n_cap).collect();
    order.sort_by_key(|&c| data.length(c));
    let mut levels = [vec![0.0f32; n_img * n_cap], vec![0.0f32; n_img * n_cap], vec![0.0f32; n_img * n_cap], vec![0.0f32; n_img * n_cap]];
    let image_embeddings = Tensor::cat(image_sides.iter().map(|s| s.embedding.clone()).collect(), 0);
    for caps in order.chunks(captions_per_chunk) {
        anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
        let txt = net.text_side(data, caps, device);
        let embedding = values(image_embeddings.clone().matmul(txt.embedding.clone().transpose()));
        scatter(&mut levels[3], &embedding, 0, n_img, caps, n_cap);
        for (chunk, img) in image_sides.iter().enumerate() {
            let LevelScores { l2l, g2l, g2g } = net.shan.score(img, &txt);
            let first = chunk * images_per_chunk;
            let rows = img.embedding.dims()[0];
            for (level, s) in [l2l, g2l, g2g].into_iter().enumerate() {
                scatter(&mut levels[level], &values(s), first, rows, caps, n_cap);
            }
        }
    }
    Ok(levels)
}


pub fn evaluate(net: &ShanNet, data: &FragmentSplit, device: &Device, cancel: &CancelToken) -> anyhow::Result<ShanRecalls> {
    let [l2l, g2l, g2g, embedding] = score_split(net, data, device, cancel)?;
    let w = net.shan.weights.map(|x| x as f32);
    let full: Vec<f32> = (0..l2l.len()).map(|i| w[0] * l2l[i] + w[1] * g2l[i] + w[2] * g2g[i]).collect();
    let n = data.len();
    Ok(ShanRecalls { full: recalls(&full, n, 5), l2l: recalls(&l2l, n, 5), g2l: recalls(&g2l, n, 5), g2g: recalls(&g2g, n, 5), embedding: recalls(&embedding, n, 5) })
}

/// Weights of the three levels in the final score that maximise rSum on `data` (a dev split), on
/// a grid with L2L's weight fixed at 1; returns them with the recalls they reach.
pub fn choose_level_weights(net: &ShanNet, data: &FragmentSplit, device: &Device, cancel: &CancelToken) -> anyhow::Result<([f64; 3], Recalls)> {
    let [l2l, g2l, g2g, _] = score_split(net, data, device, cancel)?;
    let grid = [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0];
    let mut best: Option<([f64; 3], Recalls)> = None;
    for &w2 in &grid {
        for &w3 in &grid {
            let full: Vec<f32> = (0..l2l.len()).map(|i| l2l[i] + w2 as f32 * g2l[i] + w3 as f32 * g2g[i]).collect();
            let r = recalls(&full, data.len(), 5);
            if best.as_ref().is_none_or(|(_, b)| r.rsum > b.rsum) {
                best = Some(([1.0, w2, w3], r));
            }
        }
    }
    best.context("no weights tried")
}

/// Term `which`'s loss, with its own learned temperature (used by InfoNCE).
fn term(loss: Loss, epoch: usize, scores: Tensor<2>, temperatures: &Tensor<1>, which: usize) -> Tensor<1> {
    contrastive(loss, scores, temperatures.clone().slice([which..which + 1]), epoch)
}

pub fn train(
    visual: &str,
    train: &FragmentSplit,
    dev: &FragmentSplit,
    device: &Device,
    config: &ShanTrainConfig,
    out: Option<&Path>,
    cancel: &CancelToken,
    report: &dyn Fn(ShanTrainMsg),
) -> anyhow::Result<ShanTrained> {
    let started = Instant::now();
    let ad = device.clone().autodiff();
    let training_weights = [config.model.weight_l2l, config.model.weight_g2l, config.model.weight_g2g];
    // Resuming restarts the optimisers' moments (AdamW rebuilds them within a few steps); the
    // epochs after the checkpoint's best, which did not improve dev, are run again.
    let (mut net, first_epoch, mut best) = match out.filter(|p| config.resume && p.is_file()) {
        Some(path) => {
            let epoch: usize = WeightFile::open(path)?.metadata_parsed("best_epoch")?;
            let mut net = load(path, visual, &ad)?;
            anyhow::ensure!(net.visual.first_block == config.visual_first_block, "{} fine-tuned from block {}, not {}", path.display(), net.visual.first_block, config.visual_first_block);
            net.shan.weights = training_weights;
            let dev_recalls = evaluate(&net.valid(), dev, device, cancel)?;
            report(ShanTrainMsg::Resumed { epoch, dev: dev_recalls });
            let valid = net.valid();
            (net, epoch + 1, Some((valid, epoch, dev_recalls)))
        }
        None => {
            let mut net = init(&config.model, visual, config.visual_first_block, &ad)?;
            if let Some(path) = &config.init_tops {
                let global = super::global_tuned::load(path, visual, &ad)?;
                anyhow::ensure!(global.visual.first_block == config.visual_first_block, "{} fine-tuned from block {}, not {}", path.display(), global.visual.first_block, config.visual_first_block);
                (net.visual, net.text) = (global.visual, global.text);
            }
            (net, 1, None)
        }
    };
    if !config.finetune_visual {
        net.visual = net.visual.no_grad();
    }
    if !config.finetune_text {
        net.text = net.text.no_grad();
    }
    // A resumed run draws other batches than the epochs it skips would have.
    let mut rng = fastrand::Rng::with_seed(config.seed + first_epoch as u64 - 1);
    // The best epoch's network on the autodiff device, where the decay phase starts from.
    let mut best_train = best.as_ref().map(|_| net.clone());
    let mut epoch = first_epoch - 1;
    // Recipe B at the configured rates, then (the step decay) from the best epoch at a tenth.
    for factor in [1.0, 0.1] {
        let last = if factor == 1.0 {
            config.max_epochs
        } else {
            match (&best_train, config.decay_epochs) {
                (Some(b), 1..) => net = b.clone(),
                _ => break,
            }
            epoch + config.decay_epochs
        };
        let (mut optim_shan, mut optim_tops) = (super::recipe::optimizer(config.weight_decay), super::recipe::optimizer(config.weight_decay));
        let mut stale = 0;
        while epoch < last {
            epoch += 1;
            let epoch_start = Instant::now();
            let batches = super::recipe::epoch_batches(&mut rng, train.len(), config.batch);
            let (mut loss_sum, mut steps) = (0.0, 0usize);
            for batch in &batches {
                anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
                let step_start = Instant::now();
                // Pairs ordered by caption length, so each group of captions pads little; the
                // diagonal stays the true pairs.
                let mut pairs: Vec<(usize, usize)> = batch.iter().map(|&i| (i, i * 5 + rng.usize(0..5))).collect();
                pairs.sort_by_key(|&(_, c)| train.length(c));
                let (images, captions): (Vec<usize>, Vec<usize>) = pairs.into_iter().unzip();
                let img = net.image_side_of(train.image_batch_sampled(&images, &mut rng, &ad));
                let groups: Vec<TextSide> = captions.chunks(CAPTION_GROUP).map(|g| net.text_side(train, g, &ad)).collect();
                let encoded = step_start.elapsed().as_secs_f64();
                let parts: Vec<LevelScores> = groups.iter().map(|txt| net.shan.score(&img, txt)).collect();
                let scores = LevelScores::cat_captions(parts);
                let text_embedding = Tensor::cat(groups.iter().map(|t| t.embedding.clone()).collect(), 0);
                let temps = net.shan.log_temperature.val();
                let nce = |scores: Tensor<2>, which: usize| term(config.loss, epoch, scores, &temps, which);
                let aux = nce(scores.l2l.clone(), 1) + nce(scores.g2l.clone(), 2) + nce(scores.g2g.clone(), 3) + nce(img.embedding.matmul(text_embedding.transpose()), 4);
                let loss = nce(scores.total(net.shan.weights), 0) + aux * config.aux_weight;
                let value = loss.clone().into_scalar::<f32>() as f64;
                anyhow::ensure!(value.is_finite(), "the loss diverged at epoch {epoch}, step {}", steps + 1);
                loss_sum += value;
                steps += 1;
                let scored = step_start.elapsed().as_secs_f64();
                let mut grads = loss.backward();
                let backward = step_start.elapsed().as_secs_f64();
                let ShanNet { visual, text, shan } = net;
                let shan_grads = GradientsParams::from_module(&mut grads, &shan);
                let tops = (visual, text);
                let top_grads = GradientsParams::from_module(&mut grads, &tops);
                let shan = optim_shan.step(config.lr * factor, shan, shan_grads);
                let (visual, text) = optim_tops.step(config.backbone_lr * factor, tops, top_grads);
                net = ShanNet { visual, text, shan };
                let total = step_start.elapsed().as_secs_f64();
                let phases = [encoded, scored - encoded, backward - scored, total - backward];
                report(ShanTrainMsg::Step { epoch, step: steps, steps: batches.len(), loss: value, seconds_per_step: total, phases });
            }
            let train_seconds = epoch_start.elapsed().as_secs_f64();
            let eval_start = Instant::now();
            let valid = net.valid();
            let dev_recalls = evaluate(&valid, dev, device, cancel)?;
            let improved = best.as_ref().is_none_or(|(_, _, b)| dev_recalls.full.rsum > b.full.rsum);
            let lr = config.lr * factor;
            report(ShanTrainMsg::Epoch { epoch, lr, loss: loss_sum / steps.max(1) as f64, dev: dev_recalls, train_seconds, eval_seconds: eval_start.elapsed().as_secs_f64(), best: improved });
            if improved {
                if let Some(path) = out {
                    // A checkpoint per improvement: an interrupted run keeps its best epoch so far.
                    save(&valid, path, &config.model, &describe(config, train, epoch, &dev_recalls))?;
                }
                best = Some((valid, epoch, dev_recalls));
                best_train = Some(net.clone());
                stale = 0;
            } else {
                stale += 1;
                if stale >= config.patience {
                    break;
                }
            }
        }
    }
    let (mut net, best_epoch, mut best_dev) = best.context("no epoch finished")?;
    // Training weighs the levels equally; the final score weighs them as dev prefers.
    let (weights, reweighted) = choose_level_weights(&net, dev, device, cancel)?;
    net.shan.weights = weights;
    best_dev.full = reweighted;
    report(ShanTrainMsg::Weights { weights, dev: reweighted });
    if let Some(path) = out {
        save(&net, path, &config.model, &describe(config, train, best_epoch, &best_dev))?;
    }
    Ok(ShanTrained { net, best_epoch, best_dev, seconds: started.elapsed().as_secs_f64() })
}

fn describe(config: &ShanTrainConfig, train: &FragmentSplit, epoch: usize, dev: &ShanRecalls) -> Vec<(String, String)> {
    vec![
        ("recipe".into(), format!("B: batch {}, AdamW lr {} (backbone {}) wd {}, loss {:?} (InfoNCE: learned temperatures), aux weight {}; then lr ×0.1 for up to {} epochs", config.batch, config.lr, config.backbone_lr, config.weight_decay, config.loss, config.aux_weight, config.decay_epochs)),
        ("finetuned".into(), format!("visual blocks {}.. + head: {}; MiniLM layer {TEXT_TOP_LAYER}: {}", config.visual_first_block, config.finetune_visual, config.finetune_text)),
        ("augmented_views".into(), train.views.len().to_string()),
        ("best_epoch".into(), epoch.to_string()),
        ("tops_from".into(), config.init_tops.as_ref().map_or("the pretrained backbones".into(), |p| p.display().to_string())),
        ("dev_rsum".into(), format!("{:.1} (first {} dev images)", dev.full.rsum, config.dev_images)),
    ]
}

/// The config a saved SHAN was built with (its `shan_config` metadata).
pub fn saved_config(file: &WeightFile, path: &Path) -> anyhow::Result<ShanConfig> {
    let json = file.metadata("shan_config")?;
    ShanConfig::load_binary(json.as_bytes()).map_err(|e| anyhow::anyhow!("{}: shan_config metadata: {e}", path.display()))
}

/// Weights + the config that built them (metadata `shan_config`), written atomically.
pub fn save(net: &ShanNet, path: &Path, config: &ShanConfig, notes: &[(String, String)]) -> anyhow::Result<()> {
    // The level weights live in the network (chosen on dev after training); the file's config
    // carries them so a loaded network scores the same.
    let [w1, w2, w3] = net.shan.weights;
    let config = config.clone().with_weight_l2l(w1).with_weight_g2l(w2).with_weight_g2g(w3);
    let mut notes = notes.to_vec();
    notes.push(("visual_first_block".into(), net.visual.first_block.to_string()));
    super::frozen::save(net, path, "shan", "shan_config", config.to_string(), &notes)
}

/// A saved SHAN: its config from the file's metadata, the backbone tops rebuilt, then every
/// tensor from the file (a missing or misshapen tensor is an error naming the file).
pub fn load(path: &Path, visual: &str, device: &Device) -> anyhow::Result<ShanNet> {
    let file = WeightFile::open(path)?;
    let config = saved_config(&file, path)?;
    let first: usize = file.metadata_parsed("visual_first_block")?;
    let mut net = init(&config, visual, first, device)?;
    net.load_from(&mut SafetensorsStore::from_file(path)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(net)
}

/// Where the committed SHAN lives.
pub fn default_path() -> PathBuf {
    models_dir().join("shan.safetensors")
}
