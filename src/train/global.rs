//! Training and evaluating the global dual encoder ("recipe B", MODELS.md):
//! every epoch visits each training image once with one of its five captions drawn at random (so
//! a batch never holds an image twice), symmetric InfoNCE with a learned temperature, AdamW,
//! gradient clipping 2; the best dev epoch is kept; after `patience` epochs without a dev gain
//! training goes on from the best epoch at a tenth of the learning rate (`decay_epochs`).

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use super::fit::{Batch, Stepped, Trainer, fit};
use super::splits::{FragmentSplit, PooledSplit};
use crate::engine::jobs::CancelToken;
use crate::engine::recall::{Recalls, recalls};
use crate::features::values;
use crate::model::global::GlobalModel;
use crate::model::loss::contrastive;
use crate::nets::global_tuned::TunedGlobal;

/// The global model trains with recipe B's defaults.
pub type TrainConfig = super::recipe::Recipe;

pub type TrainMsg = super::fit::TrainMsg<Recalls>;

pub struct Trained<E> {
    pub model: E,
    pub best_epoch: usize,
    pub best_dev: Recalls,
    pub seconds: f64,
}

/// The two AdamW optimisers of a dual encoder: the heads', and the fine-tuned backbone layers'.
pub struct Optimizers {
    pub heads: ModuleOptimizer,
    pub tops: ModuleOptimizer,
}

/// What the global training loop needs of a dual encoder: the heads on frozen pooled features
/// ([`GlobalModel`]), or the same heads over fine-tuned backbone tops (`global_tuned`).
pub trait DualEncoder: Module + Clone + Sized {
    type Split;
    /// Images of a split (captions i·5..i·5+5 are image i's).
    fn images(split: &Self::Split) -> usize;
    /// Unit-norm joint embeddings [rows, d].
    fn embed_images(&self, split: &Self::Split, rows: &[usize], device: &Device) -> Tensor<2>;
    fn embed_texts(&self, split: &Self::Split, rows: &[usize], device: &Device) -> Tensor<2>;
    /// A training batch's image embeddings: where the split holds augmented views, each image as
    /// itself or one of them, drawn from `rng`.
    fn embed_train_images(
        &self,
        split: &Self::Split,
        rows: &[usize],
        _rng: &mut fastrand::Rng,
        device: &Device,
    ) -> Tensor<2> {
        self.embed_images(split, rows, device)
    }
    fn log_temperature(&self) -> Tensor<1>;
    /// Back-propagate `loss` and take one optimiser step (the heads at `lr`).
    fn step(self, optim: &mut Optimizers, lr: f64, loss: Tensor<1>) -> Self;
}

impl DualEncoder for GlobalModel {
    type Split = PooledSplit;

    fn images(split: &PooledSplit) -> usize {
        split.len()
    }

    fn embed_images(&self, split: &PooledSplit, rows: &[usize], device: &Device) -> Tensor<2> {
        GlobalModel::embed_images(self, split.image_rows(rows, device))
    }

    fn embed_texts(&self, split: &PooledSplit, rows: &[usize], device: &Device) -> Tensor<2> {
        GlobalModel::embed_texts(self, split.caption_rows(rows, device))
    }

    fn log_temperature(&self) -> Tensor<1> {
        self.log_temperature.val()
    }

    fn step(self, optim: &mut Optimizers, lr: f64, loss: Tensor<1>) -> Self {
        let grads = GradientsParams::from_grads(loss.backward(), &self);
        optim.heads.step(lr, self, grads)
    }
}

/// Embeddings of rows `0..n`, a chunk at a time (memory stays bounded with backbone layers).
fn embed_all(n: usize, embed: impl Fn(&[usize]) -> Tensor<2>) -> Tensor<2> {
    let rows: Vec<usize> = (0..n).collect();
    Tensor::cat(rows.chunks(256).map(embed).collect(), 0)
}

/// Every image × caption cosine of a split (row-major, images × captions).
pub fn scores<E: DualEncoder>(model: &E, split: &E::Split, device: &Device) -> Vec<f32> {
    let n = E::images(split);
    let images = embed_all(n, |rows| model.embed_images(split, rows, device));
    let texts = embed_all(n * 5, |rows| model.embed_texts(split, rows, device));
    values(images.matmul(texts.transpose()))
}

/// Joint embeddings of all images and all captions, then Recall@K.
pub fn evaluate<E: DualEncoder>(model: &E, split: &E::Split, device: &Device) -> Recalls {
    recalls(&scores(model, split, device), E::images(split), 5)
}

/// A dual encoder's part in [`fit`]: InfoNCE (or hinge) over the batch's cosines, two AdamWs.
struct DualTrainer<'a, E: DualEncoder> {
    train: &'a E::Split,
    dev: &'a E::Split,
    device: &'a Device,
    ad: Device,
    config: &'a TrainConfig,
    optim: Optimizers,
}

impl<E: DualEncoder> Trainer for DualTrainer<'_, E> {
    type Net = E;
    type Dev = Recalls;

    fn reset_optimizers(&mut self) {
        let optimizer = || super::recipe::optimizer(self.config.weight_decay);
        self.optim = Optimizers { heads: optimizer(), tops: optimizer() };
    }

    fn step(&mut self, model: E, batch: &Batch, rng: &mut fastrand::Rng) -> anyhow::Result<(E, Stepped)> {
        let img = model.embed_train_images(self.train, batch.images, rng, &self.ad);
        let txt = model.embed_texts(self.train, batch.captions, &self.ad);
        let loss = contrastive(self.config.loss, img.matmul(txt.transpose()), model.log_temperature(), batch.epoch);
        let value = loss.clone().into_scalar::<f32>() as f64;
        let model = model.step(&mut self.optim, self.config.lr * batch.lr_factor, loss);
        Ok((model, Stepped { loss: value, phases: None }))
    }

    fn evaluate(&mut self, model: &E) -> anyhow::Result<(Recalls, f64)> {
        let r = evaluate(&model.valid(), self.dev, self.device);
        Ok((r, r.rsum))
    }
}

/// Recipe B from `init` (built on the autodiff device it is given) through [`fit`], then the
/// step decay.
pub fn train<E: DualEncoder>(
    init: impl Fn(&Device) -> anyhow::Result<E>,
    train: &E::Split,
    dev: &E::Split,
    device: &Device,
    config: &TrainConfig,
    cancel: &CancelToken,
    report: &dyn Fn(TrainMsg),
) -> anyhow::Result<Trained<E>> {
    let ad = device.clone().autodiff();
    let model = init(&ad)?;
    let optimizer = || super::recipe::optimizer(config.weight_decay);
    let optim = Optimizers { heads: optimizer(), tops: optimizer() };
    let mut trainer = DualTrainer { train, dev, device, ad, config, optim };
    let fitted = fit(&mut trainer, model, None, E::images(train), config, cancel, report)?;
    Ok(Trained {
        model: fitted.net.valid(),
        best_epoch: fitted.best_epoch,
        best_dev: fitted.best_dev,
        seconds: fitted.seconds,
    })
}

/// The fine-tuned layers' learning rate as a share of the heads' (MODELS.md: 5e-5 beside 2e-4).
pub const BACKBONE_LR_SHARE: f64 = 0.25;

impl DualEncoder for TunedGlobal {
    type Split = FragmentSplit;

    fn images(split: &FragmentSplit) -> usize {
        split.len()
    }

    fn embed_images(&self, split: &FragmentSplit, rows: &[usize], device: &Device) -> Tensor<2> {
        self.embed_regions(split.regions(&self.visual, split.image_batch(rows, device), rows, device))
    }

    fn embed_train_images(
        &self,
        split: &FragmentSplit,
        rows: &[usize],
        rng: &mut fastrand::Rng,
        device: &Device,
    ) -> Tensor<2> {
        self.embed_regions(split.regions(&self.visual, split.image_batch_sampled(rows, rng, device), rows, device))
    }

    fn embed_texts(&self, split: &FragmentSplit, rows: &[usize], device: &Device) -> Tensor<2> {
        self.embed_hidden(split.caption_batch(rows, device))
    }

    fn log_temperature(&self) -> Tensor<1> {
        self.head.log_temperature.val()
    }

    fn step(self, optim: &mut Optimizers, lr: f64, loss: Tensor<1>) -> Self {
        let mut grads = loss.backward();
        let TunedGlobal { visual, text, head } = self;
        let head_grads = GradientsParams::from_module(&mut grads, &head);
        let tops = (visual, text);
        let top_grads = GradientsParams::from_module(&mut grads, &tops);
        let head = optim.heads.step(lr, head, head_grads);
        let (visual, text) = optim.tops.step(lr * BACKBONE_LR_SHARE, tops, top_grads);
        TunedGlobal { visual, text, head }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::global::GlobalConfig;

    /// `n` images with five captions each, pseudo-random features of the model's widths.
    fn split(n: usize, rng: &mut fastrand::Rng) -> PooledSplit {
        let c = GlobalConfig::new();
        PooledSplit {
            names: (0..n).map(|i| format!("{i}.jpg")).collect(),
            images: (0..n * c.image_dim).map(|_| rng.f32() - 0.5).collect(),
            image_dim: c.image_dim,
            captions: (0..n * 5 * c.text_dim).map(|_| rng.f32() - 0.5).collect(),
            text_dim: c.text_dim,
        }
    }

    #[test]
    fn after_dev_stops_rising_training_goes_on_from_the_best_epoch_at_a_tenth_of_the_rate() {
        let mut rng = fastrand::Rng::with_seed(5);
        let (train_split, dev) = (split(16, &mut rng), split(8, &mut rng));
        let device = Device::flex();
        let config = TrainConfig { batch: 8, max_epochs: 3, patience: 1, decay_epochs: 2, ..TrainConfig::default() };
        let epochs = std::cell::RefCell::new(Vec::new());
        let trained = train(
            |d| Ok(GlobalConfig::new().init(d)),
            &train_split,
            &dev,
            &device,
            &config,
            &CancelToken::default(),
            &|m| {
                if let TrainMsg::Epoch { epoch, lr, dev, best, .. } = m {
                    epochs.borrow_mut().push((epoch, lr, dev.rsum, best))
                }
            },
        )
        .unwrap();
        let epochs = epochs.into_inner();
        let first_phase = epochs.iter().take_while(|e| e.1 == config.lr).count();
        assert!((1..=3).contains(&first_phase), "{epochs:?}");
        let decayed = &epochs[first_phase..];
        assert!(
            !decayed.is_empty() && decayed.len() <= 2 && decayed.iter().all(|e| (e.1 - config.lr * 0.1).abs() < 1e-12),
            "{epochs:?}"
        );
        assert_eq!(decayed[0].0, first_phase + 1, "epochs are numbered on");
        let best = epochs.iter().rfind(|e| e.3).unwrap();
        assert_eq!((trained.best_epoch, trained.best_dev.rsum), (best.0, best.2));
        assert_eq!(evaluate(&trained.model, &dev, &device).rsum, best.2, "the returned model is the best epoch's");
    }
}
