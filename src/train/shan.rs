//! Training SHAN with recipe B (the network with its fine-tuned backbone tops, on a split's cached
//! backbone activations) and its sharded exhaustive evaluation with every level's Recall@K.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use super::fit::{Batch, Stepped, TrainMsg, Trainer, fit};
use super::frozen::scatter;
use super::recipe::Recipe;
use super::splits::FragmentSplit;
use crate::engine::jobs::CancelToken;
use crate::engine::recall::{Recalls, recalls};
use crate::features::values;
use crate::features::weights::WeightFile;
use crate::model::loss::{Loss, contrastive, info_nce, word_region_scores};
use crate::model::shan::{ImageSide, LevelScores, ShanConfig, TextSide, pairs};
use crate::nets::DEFAULT_FIRST_BLOCK;
use crate::nets::TEXT_TOP_LAYER;
use crate::nets::shan::{ShanNet, init, load, save};

/// Captions scored together in a training step: a step's captions are sorted by length and
/// scored in groups of this many, so the per-pair tensors are padded per group (measured: the
/// pairwise scoring dominates a step).
const CAPTION_GROUP: usize = 32;

/// SHAN's two sides of a split's rows, for training and evaluation.
impl ShanNet {
    /// With object crops in `data`, each crop through the same top, mean-pooled, is one more
    /// region after the photo's grid cells.
    pub(crate) fn image_side(&self, data: &FragmentSplit, rows: &[usize], device: &Device) -> ImageSide {
        self.image_side_of(data.image_batch(rows, device), data, rows, device)
    }

    /// The image side of `rows` from their activations `entering` (the photos or, in training,
    /// views of them) and the split's object crops of the same rows, if any.
    fn image_side_of(&self, entering: Tensor<4>, data: &FragmentSplit, rows: &[usize], device: &Device) -> ImageSide {
        self.shan.encode_images(data.regions(&self.visual, entering, rows, device))
    }

    fn text_side(&self, data: &FragmentSplit, rows: &[usize], device: &Device) -> TextSide {
        let (words, mask) = self.words(data.caption_batch(rows, device));
        self.shan.encode_texts(words, mask)
    }
}

#[derive(Clone, Debug)]
pub struct ShanTrainConfig {
    pub model: ShanConfig,
    /// Recipe B's knobs: `lr` is the matching network's; `loss` that of every term (the final
    /// score's, each level's, the embeddings').
    pub recipe: Recipe,
    /// Learning rate of the fine-tuned backbone layers.
    pub backbone_lr: f64,
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
    /// Continue from the checkpoint at `out` (its best epoch) instead of starting over.
    pub resume: bool,
    /// Start the backbone tops from a tuned global model's (`train --model global --tuned`)
    /// instead of the pretrained backbone's: the tops arrive already adapted to retrieval.
    pub init_tops: Option<PathBuf>,
    /// Start from this SHAN weights file (a fine-tune) instead of a fresh network.
    pub init_shan: Option<PathBuf>,
    /// Weight of the grounding term: InfoNCE over [`word_region_scores`] at temperature
    /// [`GROUND_TEMPERATURE`] (0: none).
    pub ground_weight: f64,
}

/// The grounding term's fixed temperature (its cosines lie in [−1, 1]).
pub const GROUND_TEMPERATURE: f64 = 0.05;

impl Default for ShanTrainConfig {
    fn default() -> Self {
        Self {
            model: ShanConfig::new(),
            recipe: Recipe::matching(),
            backbone_lr: 5e-5,
            aux_weight: 0.25,
            finetune_visual: true,
            visual_first_block: DEFAULT_FIRST_BLOCK,
            finetune_text: true,
            dev_images: 500,
            resume: false,
            init_tops: None,
            init_shan: None,
            ground_weight: 0.0,
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

pub type ShanTrainMsg = TrainMsg<ShanRecalls>;

pub struct ShanTrained {
    pub net: ShanNet,
    pub best_epoch: usize,
    pub best_dev: ShanRecalls,
    pub seconds: f64,
}

/// Every image × caption score of a split, sharded so memory stays bounded.
pub fn score_split(
    net: &ShanNet,
    data: &FragmentSplit,
    device: &Device,
    cancel: &CancelToken,
    progress: &dyn Fn(usize, usize),
) -> anyhow::Result<[Vec<f32>; 4]> {
    // Small shards keep each per-pair tensor in cache: scoring 500 dev photos × 2,500 captions took
    // 126 s at 64 × 256, 86 s at 32 × 128, 61 s at 32 × 64 and 57 s at 16 × 64 (2 cores, flex).
    let (images_per_chunk, captions_per_chunk) = (16, 64);
    let (n_img, n_cap) = (data.len(), data.len() * 5);
    let images: Vec<usize> = (0..n_img).collect();
    let image_sides: Vec<ImageSide> =
        images.chunks(images_per_chunk).map(|rows| net.image_side(data, rows, device)).collect();
    let image_embeddings = Tensor::cat(image_sides.iter().map(|s| s.embedding.clone()).collect(), 0);
    if pairs::serves(&net.shan, device) {
        return score_split_fused(net, data, device, cancel, progress, &image_sides, image_embeddings);
    }
    // Captions grouped by length so a shard pads little.
    let mut order: Vec<usize> = (0..n_cap).collect();
    order.sort_by_key(|&c| data.length(c));
    let mut levels = [
        vec![0.0f32; n_img * n_cap],
        vec![0.0f32; n_img * n_cap],
        vec![0.0f32; n_img * n_cap],
        vec![0.0f32; n_img * n_cap],
    ];
    for (done, caps) in order.chunks(captions_per_chunk).enumerate() {
        progress(done * captions_per_chunk, n_cap);
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
    progress(n_cap, n_cap);
    Ok(levels)
}

/// `score_split` on the CPU: the sides from the network's tensors, the pairs through the fused
/// pass of [`crate::model::shan::pairs`]; captions in their split order (no length sort needed,
/// nothing is padded there).
fn score_split_fused(
    net: &ShanNet,
    data: &FragmentSplit,
    device: &Device,
    cancel: &CancelToken,
    progress: &dyn Fn(usize, usize),
    image_sides: &[ImageSide],
    image_embeddings: Tensor<2>,
) -> anyhow::Result<[Vec<f32>; 4]> {
    let (n_img, n_cap) = (data.len(), data.len() * 5);
    let images = pairs::HostImages::of_sides(image_sides);
    let mut captions = pairs::HostCaptions::default();
    let mut embedding = vec![0.0f32; n_img * n_cap];
    let all: Vec<usize> = (0..n_cap).collect();
    for caps in all.chunks(256) {
        progress(caps[0], n_cap);
        anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
        let txt = net.text_side(data, caps, device);
        scatter(
            &mut embedding,
            &values(image_embeddings.clone().matmul(txt.embedding.clone().transpose())),
            0,
            n_img,
            caps,
            n_cap,
        );
        captions.push(&txt);
    }
    anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
    let [l2l, g2l, g2g] = pairs::levels(&net.shan, &images, &captions);
    progress(n_cap, n_cap);
    Ok([l2l, g2l, g2g, embedding])
}

pub fn evaluate(
    net: &ShanNet,
    data: &FragmentSplit,
    device: &Device,
    cancel: &CancelToken,
    progress: &dyn Fn(usize, usize),
) -> anyhow::Result<ShanRecalls> {
    let [l2l, g2l, g2g, embedding] = score_split(net, data, device, cancel, progress)?;
    let w = net.shan.weights.map(|x| x as f32);
    let full: Vec<f32> = (0..l2l.len()).map(|i| w[0] * l2l[i] + w[1] * g2l[i] + w[2] * g2g[i]).collect();
    let n = data.len();
    Ok(ShanRecalls {
        full: recalls(&full, n, 5),
        l2l: recalls(&l2l, n, 5),
        g2l: recalls(&g2l, n, 5),
        g2g: recalls(&g2g, n, 5),
        embedding: recalls(&embedding, n, 5),
    })
}

/// Weights of the three levels in the final score that maximise rSum on `data` (a dev split), on
/// a grid with L2L's weight fixed at 1; returns them with the recalls they reach.
pub fn choose_level_weights(
    net: &ShanNet,
    data: &FragmentSplit,
    device: &Device,
    cancel: &CancelToken,
) -> anyhow::Result<([f64; 3], Recalls)> {
    let [l2l, g2l, g2g, _] = score_split(net, data, device, cancel, &|_, _| {})?;
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

/// A weights file to start from must be fine-tuned from the block this run trains from.
fn same_block(path: &Path, found: usize, wanted: usize) -> anyhow::Result<()> {
    anyhow::ensure!(found == wanted, "{} fine-tuned from block {found}, not {wanted}", path.display());
    Ok(())
}

/// Term `which`'s loss, with its own learned temperature (used by InfoNCE).
fn term(loss: Loss, epoch: usize, scores: Tensor<2>, temperatures: &Tensor<1>, which: usize) -> Tensor<1> {
    contrastive(loss, scores, temperatures.clone().slice([which..which + 1]), epoch)
}

/// SHAN's part in [`fit`]: every level's loss (plus the grounding term), one AdamW for the
/// matching network and one for the fine-tuned backbone tops.
struct ShanTrainer<'a> {
    train: &'a FragmentSplit,
    dev: &'a FragmentSplit,
    device: &'a Device,
    ad: Device,
    config: &'a ShanTrainConfig,
    out: Option<&'a Path>,
    cancel: &'a CancelToken,
    optim_shan: ModuleOptimizer,
    optim_tops: ModuleOptimizer,
}

impl Trainer for ShanTrainer<'_> {
    type Net = ShanNet;
    type Dev = ShanRecalls;

    fn reset_optimizers(&mut self) {
        self.optim_shan = super::recipe::optimizer(self.config.recipe.weight_decay);
        self.optim_tops = super::recipe::optimizer(self.config.recipe.weight_decay);
    }

    fn step(&mut self, net: ShanNet, batch: &Batch, rng: &mut fastrand::Rng) -> anyhow::Result<(ShanNet, Stepped)> {
        let (config, train, ad, epoch) = (self.config, self.train, &self.ad, batch.epoch);
        let step_start = Instant::now();
        // Pairs ordered by caption length, so each group of captions pads little; the diagonal
        // stays the true pairs.
        let mut pairs: Vec<(usize, usize)> = batch.images.iter().copied().zip(batch.captions.iter().copied()).collect();
        pairs.sort_by_key(|&(_, c)| train.length(c));
        let (images, captions): (Vec<usize>, Vec<usize>) = pairs.into_iter().unzip();
        let img = net.image_side_of(train.image_batch_sampled(&images, rng, ad), train, &images, ad);
        let groups: Vec<TextSide> = captions.chunks(CAPTION_GROUP).map(|g| net.text_side(train, g, ad)).collect();
        let encoded = step_start.elapsed().as_secs_f64();
        let parts: Vec<LevelScores> = groups.iter().map(|txt| net.shan.score(&img, txt)).collect();
        let scores = LevelScores::cat_captions(parts);
        let text_embedding = Tensor::cat(groups.iter().map(|t| t.embedding.clone()).collect(), 0);
        let temps = net.shan.log_temperature.val();
        let nce = |scores: Tensor<2>, which: usize| term(config.recipe.loss, epoch, scores, &temps, which);
        let aux = nce(scores.l2l.clone(), 1)
            + nce(scores.g2l.clone(), 2)
            + nce(scores.g2g.clone(), 3)
            + nce(img.embedding.matmul(text_embedding.transpose()), 4);
        let mut loss = nce(scores.total(net.shan.weights), 0) + aux * config.aux_weight;
        if config.ground_weight > 0.0 {
            let ground = Tensor::cat(
                groups
                    .iter()
                    .map(|t| word_region_scores(img.regions.clone(), t.words.clone(), t.mask.clone()))
                    .collect(),
                1,
            );
            let log_t = Tensor::<1>::from_floats([GROUND_TEMPERATURE.ln() as f32], ad);
            loss = loss + info_nce(ground, log_t) * config.ground_weight;
        }
        let value = loss.clone().into_scalar::<f32>() as f64;
        let scored = step_start.elapsed().as_secs_f64();
        let mut grads = loss.backward();
        let backward = step_start.elapsed().as_secs_f64();
        let ShanNet { visual, text, shan } = net;
        let shan_grads = GradientsParams::from_module(&mut grads, &shan);
        let tops = (visual, text);
        let top_grads = GradientsParams::from_module(&mut grads, &tops);
        let shan = self.optim_shan.step(config.recipe.lr * batch.lr_factor, shan, shan_grads);
        let (visual, text) = self.optim_tops.step(config.backbone_lr * batch.lr_factor, tops, top_grads);
        let total = step_start.elapsed().as_secs_f64();
        let phases = [encoded, scored - encoded, backward - scored, total - backward];
        Ok((ShanNet { visual, text, shan }, Stepped { loss: value, phases: Some(phases) }))
    }

    fn evaluate(&mut self, net: &ShanNet) -> anyhow::Result<(ShanRecalls, f64)> {
        let r = evaluate(&net.valid(), self.dev, self.device, self.cancel, &|_, _| {})?;
        Ok((r, r.full.rsum))
    }

    fn checkpoint(&mut self, net: &ShanNet, epoch: usize, dev: &ShanRecalls) -> anyhow::Result<()> {
        match self.out {
            Some(path) => save(&net.valid(), path, &self.config.model, &describe(self.config, self.train, epoch, dev)),
            None => Ok(()),
        }
    }
}

/// Recipe B through [`fit`] from a fresh network, `config.init_shan`, or (`config.resume`) the
/// checkpoint at `out`, which every dev gain rewrites; then the level weights chosen on dev.
#[allow(clippy::too_many_arguments)]
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
    let (mut net, resumed) = match out.filter(|p| config.resume && p.is_file()) {
        Some(path) => {
            let epoch: usize = WeightFile::open(path)?.metadata_parsed("best_epoch")?;
            (load(path, visual, &ad)?, Some(epoch))
        }
        None => match &config.init_shan {
            Some(path) => (load(path, visual, &ad)?, None),
            None => {
                let mut net = init(&config.model, visual, config.visual_first_block, &ad)?;
                if let Some(path) = &config.init_tops {
                    let global = crate::nets::global_tuned::load(path, visual, &ad)?;
                    same_block(path, global.visual.first_block, config.visual_first_block)?;
                    (net.visual, net.text) = (global.visual, global.text);
                }
                (net, None)
            }
        },
    };
    if let Some(path) = out.filter(|_| resumed.is_some()).or(config.init_shan.as_deref()) {
        same_block(path, net.visual.first_block, config.visual_first_block)?;
        net.shan.weights = training_weights;
    }
    if !config.finetune_visual {
        net.visual = net.visual.no_grad();
    }
    if !config.finetune_text {
        net.text = net.text.no_grad();
    }
    let wd = config.recipe.weight_decay;
    let mut trainer = ShanTrainer {
        train,
        dev,
        device,
        ad,
        config,
        out,
        cancel,
        optim_shan: super::recipe::optimizer(wd),
        optim_tops: super::recipe::optimizer(wd),
    };
    let fitted = fit(&mut trainer, net, resumed, train.len(), &config.recipe, cancel, report)?;
    let (mut net, best_epoch, mut best_dev) = (fitted.net.valid(), fitted.best_epoch, fitted.best_dev);
    // Training weighs the levels equally; the final score weighs them as dev prefers.
    let (weights, reweighted) = choose_level_weights(&net, dev, device, cancel)?;
    net.shan.weights = weights;
    best_dev.full = reweighted;
    if let Some(path) = out {
        save(&net, path, &config.model, &describe(config, train, best_epoch, &best_dev))?;
    }
    Ok(ShanTrained { net, best_epoch, best_dev, seconds: started.elapsed().as_secs_f64() })
}

fn describe(config: &ShanTrainConfig, train: &FragmentSplit, epoch: usize, dev: &ShanRecalls) -> Vec<(String, String)> {
    vec![
        (
            "recipe".into(),
            format!(
                "B: batch {}, AdamW lr {} (backbone {}) wd {}, loss {:?} (InfoNCE: learned temperatures), aux weight {}; then lr ×0.1 for up to {} epochs",
                config.recipe.batch,
                config.recipe.lr,
                config.backbone_lr,
                config.recipe.weight_decay,
                config.recipe.loss,
                config.aux_weight,
                config.recipe.decay_epochs
            ),
        ),
        (
            "finetuned".into(),
            format!(
                "visual blocks {}.. + head: {}; MiniLM layer {TEXT_TOP_LAYER}: {}",
                config.visual_first_block, config.finetune_visual, config.finetune_text
            ),
        ),
        ("augmented_views".into(), train.views.len().to_string()),
        ("objects".into(), train.objects.as_ref().map_or(0, |o| o.k).to_string()),
        ("best_epoch".into(), epoch.to_string()),
        (
            "init_shan".into(),
            config.init_shan.as_ref().map_or("none (a fresh network)".into(), |p| p.display().to_string()),
        ),
        ("ground_weight".into(), config.ground_weight.to_string()),
        (
            "tops_from".into(),
            config.init_tops.as_ref().map_or("the pretrained backbones".into(), |p| p.display().to_string()),
        ),
        ("dev_rsum".into(), format!("{:.1} (first {} dev images)", dev.full.rsum, config.dev_images)),
    ]
}
