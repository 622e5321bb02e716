//! The networks on the frozen backbones (DSRAN, RACG) in the one training loop through
//! [`FrozenNet`], their Recall@K, and the notes a checkpoint carries.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use super::fit::{Batch, Stepped, TrainMsg, Trainer, fit};
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

pub type FrozenTrainMsg = TrainMsg<Recalls>;

/// A frozen-backbone network's part in [`fit`]: its loss on the split's batches, one AdamW.
struct FrozenTrainer<'a, N: FrozenNet> {
    train: &'a FrozenSplit,
    dev: &'a FrozenSplit,
    device: &'a Device,
    ad: Device,
    recipe: &'a Recipe,
    optim: ModuleOptimizer,
    checkpoint: &'a dyn Fn(&N, usize, &Recalls) -> anyhow::Result<()>,
}

impl<N: FrozenNet + Clone> Trainer for FrozenTrainer<'_, N> {
    type Net = N;
    type Dev = Recalls;

    fn reset_optimizers(&mut self) {
        self.optim = super::recipe::optimizer(self.recipe.weight_decay);
    }

    fn step(&mut self, net: N, batch: &Batch, _rng: &mut fastrand::Rng) -> anyhow::Result<(N, Stepped)> {
        let loss = net.batch_loss(self.train, batch.images, batch.captions, self.recipe.loss, batch.epoch, &self.ad);
        let value = loss.clone().into_scalar::<f32>() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let net = self.optim.step(self.recipe.lr * batch.lr_factor, net, grads);
        Ok((net, Stepped { loss: value, phases: None }))
    }

    fn evaluate(&mut self, net: &N) -> anyhow::Result<(Recalls, f64)> {
        let r = evaluate(&net.valid(), self.dev, self.device);
        Ok((r, r.rsum))
    }

    fn checkpoint(&mut self, net: &N, epoch: usize, dev: &Recalls) -> anyhow::Result<()> {
        (self.checkpoint)(&net.valid(), epoch, dev)
    }
}

/// Recipe B from `net` (built on `device.autodiff()`) through [`fit`]; `checkpoint` is called
/// at every dev gain. `resumed`: `net` is a checkpoint of that best epoch (see [`fit`]). Returns
/// the best network, its epoch and recalls.
#[allow(clippy::too_many_arguments)]
pub fn train<N: FrozenNet + Clone>(
    net: N,
    resumed: Option<usize>,
    train: &FrozenSplit,
    dev: &FrozenSplit,
    device: &Device,
    recipe: &Recipe,
    checkpoint: &dyn Fn(&N, usize, &Recalls) -> anyhow::Result<()>,
    cancel: &CancelToken,
    report: &dyn Fn(FrozenTrainMsg),
) -> anyhow::Result<(N, usize, Recalls)> {
    let mut trainer = FrozenTrainer {
        train,
        dev,
        device,
        ad: device.clone().autodiff(),
        recipe,
        optim: super::recipe::optimizer(recipe.weight_decay),
        checkpoint,
    };
    let fitted = fit(&mut trainer, net, resumed, train.len(), recipe, cancel, report)?;
    Ok((fitted.net.valid(), fitted.best_epoch, fitted.best_dev))
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
