//! Training SHAN with recipe B (the network with its fine-tuned backbone tops, on a split's cached
//! backbone activations) and its sharded exhaustive evaluation with every level's Recall@K.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use super::frozen::scatter;
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
    // Resuming restarts the optimisers' moments (AdamW rebuilds them within a few steps); the
    // epochs after the checkpoint's best, which did not improve dev, are run again.
    let (mut net, first_epoch, mut best) = match out.filter(|p| config.resume && p.is_file()) {
        Some(path) => {
            let epoch: usize = WeightFile::open(path)?.metadata_parsed("best_epoch")?;
            let mut net = load(path, visual, &ad)?;
            same_block(path, net.visual.first_block, config.visual_first_block)?;
            net.shan.weights = training_weights;
            let dev_recalls = evaluate(&net.valid(), dev, device, cancel, &|_, _| {})?;
            report(ShanTrainMsg::Resumed { epoch, dev: dev_recalls });
            let valid = net.valid();
            (net, epoch + 1, Some((valid, epoch, dev_recalls)))
        }
        None if let Some(path) = &config.init_shan => {
            let mut net = load(path, visual, &ad)?;
            same_block(path, net.visual.first_block, config.visual_first_block)?;
            net.shan.weights = training_weights;
            (net, 1, None)
        }
        None => {
            let mut net = init(&config.model, visual, config.visual_first_block, &ad)?;
            if let Some(path) = &config.init_tops {
                let global = crate::nets::global_tuned::load(path, visual, &ad)?;
                same_block(path, global.visual.first_block, config.visual_first_block)?;
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
        let (mut optim_shan, mut optim_tops) =
            (super::recipe::optimizer(config.weight_decay), super::recipe::optimizer(config.weight_decay));
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
                let groups: Vec<TextSide> =
                    captions.chunks(CAPTION_GROUP).map(|g| net.text_side(train, g, &ad)).collect();
                let encoded = step_start.elapsed().as_secs_f64();
                let parts: Vec<LevelScores> = groups.iter().map(|txt| net.shan.score(&img, txt)).collect();
                let scores = LevelScores::cat_captions(parts);
                let text_embedding = Tensor::cat(groups.iter().map(|t| t.embedding.clone()).collect(), 0);
                let temps = net.shan.log_temperature.val();
                let nce = |scores: Tensor<2>, which: usize| term(config.loss, epoch, scores, &temps, which);
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
                    let log_t = Tensor::<1>::from_floats([GROUND_TEMPERATURE.ln() as f32], &ad);
                    loss = loss + info_nce(ground, log_t) * config.ground_weight;
                }
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
                report(ShanTrainMsg::Step {
                    epoch,
                    step: steps,
                    steps: batches.len(),
                    loss: value,
                    seconds_per_step: total,
                    phases,
                });
            }
            let train_seconds = epoch_start.elapsed().as_secs_f64();
            let eval_start = Instant::now();
            let valid = net.valid();
            let dev_recalls = evaluate(&valid, dev, device, cancel, &|_, _| {})?;
            let improved = best.as_ref().is_none_or(|(_, _, b)| dev_recalls.full.rsum > b.full.rsum);
            let lr = config.lr * factor;
            report(ShanTrainMsg::Epoch {
                epoch,
                lr,
                loss: loss_sum / steps.max(1) as f64,
                dev: dev_recalls,
                train_seconds,
                eval_seconds: eval_start.elapsed().as_secs_f64(),
                best: improved,
            });
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
        (
            "recipe".into(),
            format!(
                "B: batch {}, AdamW lr {} (backbone {}) wd {}, loss {:?} (InfoNCE: learned temperatures), aux weight {}; then lr ×0.1 for up to {} epochs",
                config.batch,
                config.lr,
                config.backbone_lr,
                config.weight_decay,
                config.loss,
                config.aux_weight,
                config.decay_epochs
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
