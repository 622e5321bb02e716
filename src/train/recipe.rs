//! Pieces of "recipe B" (MODELS.md) every trained network shares: each epoch visits every
//! training image once, in a fresh random order (its caption drawn by the caller); AdamW with
//! gradient clipping 2.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer};

use crate::model::loss::Loss;

/// Recipe B's knobs, which drive [`super::fit::fit`] for every network. The default is the global
/// model's; [`Recipe::matching`] SHAN's, DSRAN's and RACG's.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f32,
    pub max_epochs: usize,
    /// Stop after this many epochs without a dev gain.
    pub patience: usize,
    pub seed: u64,
    pub loss: Loss,
    /// The step decay ("×0.1 decay late", MODELS.md): once dev stops rising, training goes on
    /// from the best epoch at a tenth of the learning rate for up to this many epochs (same
    /// patience; `train --decay-epochs N`; off by default), or as a second run:
    /// `train --resume --lr-factor 0.1`.
    pub decay_epochs: usize,
}

impl Recipe {
    /// The matching networks' (SHAN, DSRAN, RACG): 20 epochs at most, patience 3; their epochs
    /// cost minutes each.
    pub fn matching() -> Self {
        Self { max_epochs: 20, patience: 3, ..Self::default() }
    }
}

impl Default for Recipe {
    fn default() -> Self {
        Self {
            batch: 128,
            lr: 2e-4,
            weight_decay: 1e-4,
            max_epochs: 30,
            patience: 4,
            seed: 7,
            loss: Loss::InfoNce,
            decay_epochs: 0,
        }
    }
}

/// AdamW with recipe B's weight decay and gradient-norm clipping at 2.
pub fn optimizer(weight_decay: f32) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(2.0)))
        .init()
}

/// One epoch's batches of image indices `0..n`: shuffled, `batch` at a time; a last batch of one
/// image is dropped (a contrastive loss needs negatives).
pub fn epoch_batches(rng: &mut fastrand::Rng, n: usize, batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    order.chunks(batch.max(2)).filter(|b| b.len() >= 2).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_image_once_per_epoch() {
        let mut rng = fastrand::Rng::with_seed(3);
        let batches = super::epoch_batches(&mut rng, 10, 4);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(super::epoch_batches(&mut rng, 9, 4).len(), 2, "a lone last image is dropped");
    }
}
