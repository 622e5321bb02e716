//! One training loop ("recipe B", MODELS.md) for every network on the frozen backbones (DSRAN,
//! RACG) through [`FrozenNet`], their Recall@K, and the notes a checkpoint carries.

use std::time::Instant;

use anyhow::Context as _;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use super::recipe::Recipe;
use super::splits::FrozenSplit;
use crate::engine::jobs::CancelToken;
use crate::engine::recall::{Recalls, recalls};
use crate::model::loss::Loss;

pub trait FrozenNet: Module + Sized {
    /// The batch's loss: `images[i]` and `captions[i]` are the true pairs.
    fn batch_loss(
        &self,
        data: &FrozenSplit,
        images: &[usize],
        captions: &[usize],
        loss: Loss,
        epoch: usize,
        device: &Device,
    ) -> Tensor<1>;
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
pub fn train<N: FrozenNet>(
    mut net: N,
    resumed: Option<usize>,
    train: &FrozenSplit,
    dev: &FrozenSplit,
    device: &Device,
    recipe: &Recipe,
    checkpoint: &dyn Fn(&N, usize, &Recalls) -> anyhow::Result<()>,
    cancel: &CancelToken,
    report: &dyn Fn(FrozenTrainMsg),
) -> anyhow::Result<(N, usize, Recalls)> {
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
            report(FrozenTrainMsg::Step {
                epoch,
                step: steps,
                steps: batches.len(),
                loss: value,
                seconds_per_step: step_start.elapsed().as_secs_f64(),
            });
        }
        let valid = net.valid();
        let dev_recalls = evaluate(&valid, dev, device);
        let improved = best.as_ref().is_none_or(|(_, _, b)| dev_recalls.rsum > b.rsum);
        report(FrozenTrainMsg::Epoch {
            epoch,
            loss: loss_sum / steps.max(1) as f64,
            dev: dev_recalls,
            seconds: started.elapsed().as_secs_f64(),
            best: improved,
        });
        if improved {
            checkpoint(&valid, epoch, &dev_recalls)?;
            best = Some((valid, epoch, dev_recalls));
        } else if best.as_ref().is_some_and(|(_, e, _)| epoch - e >= recipe.patience) {
            break;
        }
    }
    best.context("no epoch finished")
}

/// The notes a checkpoint carries.
pub fn notes(recipe: &Recipe, epoch: usize, dev: &Recalls) -> Vec<(String, String)> {
    vec![
        ("best_epoch".into(), epoch.to_string()),
        ("dev_rsum".into(), format!("{:.1}", dev.rsum)),
        (
            "recipe".into(),
            format!(
                "B: batch {}, AdamW lr {} wd {}, loss {:?}; frozen backbones",
                recipe.batch, recipe.lr, recipe.weight_decay, recipe.loss
            ),
        ),
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
