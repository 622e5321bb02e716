//! The one training loop every network runs ("recipe B", MODELS.md): each epoch visits every
//! training image once in a fresh random order with one of its five captions drawn at random;
//! the dev figures after each epoch pick the best epoch (a checkpoint at every gain); after
//! `patience` epochs without a gain, or at `max_epochs`, training goes on from the best epoch at a
//! tenth of the learning rates for up to `decay_epochs` (the step decay). What differs between
//! networks (their inputs, loss, optimisers, dev figures, checkpoint) is their [`Trainer`].

use std::time::Instant;

use anyhow::Context as _;

use super::recipe::{Recipe, epoch_batches};
use crate::engine::jobs::CancelToken;

/// One training step's pairs: `images[i]` and `captions[i]` are true pairs.
pub struct Batch<'a> {
    pub epoch: usize,
    /// The factor on the recipe's learning rates: 1, or 0.1 in the decay phase.
    pub lr_factor: f64,
    pub images: &'a [usize],
    pub captions: &'a [usize],
}

/// What one step reports besides the network it leaves.
pub struct Stepped {
    pub loss: f64,
    /// SHAN: seconds spent encoding both sides, scoring + loss, backward, optimiser step.
    pub phases: Option<[f64; 4]>,
}

/// A network's part in [`fit`].
pub trait Trainer {
    /// The network being trained (on the autodiff device).
    type Net: Clone;
    /// Its dev figures after an epoch.
    type Dev: Copy;
    /// Fresh optimiser state: at the start, and again when the decay phase begins.
    fn reset_optimizers(&mut self);
    /// The batch's loss, back-propagated and one optimiser step taken. `rng` is the loop's own
    /// (for networks that draw augmented views).
    fn step(&mut self, net: Self::Net, batch: &Batch, rng: &mut fastrand::Rng) -> anyhow::Result<(Self::Net, Stepped)>;
    /// The dev figures of `net` and the rSum epochs are chosen by.
    fn evaluate(&mut self, net: &Self::Net) -> anyhow::Result<(Self::Dev, f64)>;
    /// Called at every dev gain (so an interrupted run keeps its best epoch so far).
    fn checkpoint(&mut self, _net: &Self::Net, _epoch: usize, _dev: &Self::Dev) -> anyhow::Result<()> {
        Ok(())
    }
}

pub enum TrainMsg<D> {
    /// Training continues after `epoch`, the checkpoint's, whose dev figures were measured again.
    Resumed {
        epoch: usize,
        dev: D,
    },
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
        seconds_per_step: f64,
        phases: Option<[f64; 4]>,
    },
    /// `lr`: the recipe's learning rate in this epoch (a tenth of it in the decay phase).
    Epoch {
        epoch: usize,
        lr: f64,
        loss: f64,
        dev: D,
        train_seconds: f64,
        eval_seconds: f64,
        best: bool,
    },
}

pub struct Fitted<N, D> {
    /// The best epoch's network (still on the autodiff device).
    pub net: N,
    pub best_epoch: usize,
    pub best_dev: D,
    pub seconds: f64,
}

/// Train `net` on `images` training images by `recipe`. `resumed`: `net` is the checkpoint of
/// that best epoch; its dev figures are measured again and training continues after it (up to
/// `max_epochs` in all; the optimisers' moments start afresh, and the batches differ from the ones
/// an uninterrupted run would have drawn).
pub fn fit<T: Trainer>(
    trainer: &mut T,
    mut net: T::Net,
    resumed: Option<usize>,
    images: usize,
    recipe: &Recipe,
    cancel: &CancelToken,
    report: &dyn Fn(TrainMsg<T::Dev>),
) -> anyhow::Result<Fitted<T::Net, T::Dev>> {
    let started = Instant::now();
    // The best epoch: its network (where the decay phase starts from), epoch, figures and rSum.
    let mut best: Option<(T::Net, usize, T::Dev, f64)> = None;
    if let Some(epoch) = resumed {
        let (dev, rsum) = trainer.evaluate(&net)?;
        report(TrainMsg::Resumed { epoch, dev });
        best = Some((net.clone(), epoch, dev, rsum));
    }
    let mut rng = fastrand::Rng::with_seed(recipe.seed + resumed.unwrap_or(0) as u64);
    let mut epoch = resumed.unwrap_or(0);
    for lr_factor in [1.0, 0.1] {
        let last = if lr_factor == 1.0 {
            recipe.max_epochs
        } else {
            match (&best, recipe.decay_epochs) {
                (Some((b, ..)), 1..) => net = b.clone(),
                _ => break,
            }
            epoch + recipe.decay_epochs
        };
        trainer.reset_optimizers();
        let mut stale = 0;
        while epoch < last {
            epoch += 1;
            let epoch_start = Instant::now();
            let batches = epoch_batches(&mut rng, images, recipe.batch);
            let (mut loss_sum, mut steps) = (0.0, 0usize);
            for batch in &batches {
                anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
                let step_start = Instant::now();
                let captions: Vec<usize> = batch.iter().map(|&i| i * 5 + rng.usize(0..5)).collect();
                let pairs = Batch { epoch, lr_factor, images: batch, captions: &captions };
                let (next, stepped) = trainer.step(net, &pairs, &mut rng)?;
                net = next;
                anyhow::ensure!(stepped.loss.is_finite(), "the loss diverged at epoch {epoch}, step {}", steps + 1);
                loss_sum += stepped.loss;
                steps += 1;
                report(TrainMsg::Step {
                    epoch,
                    step: steps,
                    steps: batches.len(),
                    loss: stepped.loss,
                    seconds_per_step: step_start.elapsed().as_secs_f64(),
                    phases: stepped.phases,
                });
            }
            let train_seconds = epoch_start.elapsed().as_secs_f64();
            let eval_start = Instant::now();
            let (dev, rsum) = trainer.evaluate(&net)?;
            let improved = best.as_ref().is_none_or(|b| rsum > b.3);
            report(TrainMsg::Epoch {
                epoch,
                lr: recipe.lr * lr_factor,
                loss: loss_sum / steps.max(1) as f64,
                dev,
                train_seconds,
                eval_seconds: eval_start.elapsed().as_secs_f64(),
                best: improved,
            });
            if improved {
                trainer.checkpoint(&net, epoch, &dev)?;
                best = Some((net.clone(), epoch, dev, rsum));
                stale = 0;
            } else {
                stale += 1;
                if stale >= recipe.patience {
                    break;
                }
            }
        }
    }
    let (net, best_epoch, best_dev, _) = best.context("no epoch finished")?;
    Ok(Fitted { net, best_epoch, best_dev, seconds: started.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A "network" that is one number: each step adds the step's lr factor; dev prefers the
    /// value scripted for each epoch.
    struct Scripted {
        dev_by_epoch: Vec<f64>,
        evaluated: usize,
        resets: usize,
        checkpoints: Vec<usize>,
        epoch_of_step: Vec<(usize, f64)>,
    }

    impl Trainer for Scripted {
        type Net = f64;
        type Dev = f64;
        fn reset_optimizers(&mut self) {
            self.resets += 1;
        }
        fn step(&mut self, net: f64, batch: &Batch, _rng: &mut fastrand::Rng) -> anyhow::Result<(f64, Stepped)> {
            assert_eq!(batch.images.len(), batch.captions.len());
            for (&i, &c) in batch.images.iter().zip(batch.captions) {
                assert_eq!(c / 5, i, "a caption of the image itself");
            }
            self.epoch_of_step.push((batch.epoch, batch.lr_factor));
            Ok((net + batch.lr_factor, Stepped { loss: 1.0, phases: None }))
        }
        fn evaluate(&mut self, _net: &f64) -> anyhow::Result<(f64, f64)> {
            let rsum = self.dev_by_epoch[self.evaluated];
            self.evaluated += 1;
            Ok((rsum, rsum))
        }
        fn checkpoint(&mut self, _net: &f64, epoch: usize, _dev: &f64) -> anyhow::Result<()> {
            self.checkpoints.push(epoch);
            Ok(())
        }
    }

    fn scripted(dev_by_epoch: &[f64]) -> Scripted {
        Scripted {
            dev_by_epoch: dev_by_epoch.to_vec(),
            evaluated: 0,
            resets: 0,
            checkpoints: vec![],
            epoch_of_step: vec![],
        }
    }

    #[test]
    fn patience_then_the_decay_from_the_best_epoch() {
        // Epochs 1–4 at the full rate (dev peaks at 2, patience 2 stops after 4), then the decay
        // from epoch 2's network: epochs 5–6 at a tenth, 5 improving.
        let mut t = scripted(&[1.0, 3.0, 2.0, 2.5, 4.0, 3.5]);
        let recipe = Recipe { batch: 2, max_epochs: 10, patience: 2, decay_epochs: 2, ..Recipe::default() };
        let epochs = RefCell::new(vec![]);
        let report = |m: TrainMsg<f64>| {
            if let TrainMsg::Epoch { epoch, lr, best, .. } = m {
                epochs.borrow_mut().push((epoch, lr, best));
            }
        };
        let fitted = fit(&mut t, 0.0, None, 4, &recipe, &CancelToken::default(), &report).unwrap();
        let lr = recipe.lr;
        assert_eq!(
            epochs.into_inner(),
            vec![
                (1, lr, true),
                (2, lr, true),
                (3, lr, false),
                (4, lr, false),
                (5, lr * 0.1, true),
                (6, lr * 0.1, false)
            ]
        );
        assert_eq!((fitted.best_epoch, fitted.best_dev), (5, 4.0));
        assert_eq!(t.checkpoints, vec![1, 2, 5]);
        assert_eq!(t.resets, 2, "fresh optimisers for the decay");
        // Two steps per epoch (4 images, batch 2): epoch 2's network is 4.0, epoch 5's 4.2.
        assert!((fitted.net - 4.2).abs() < 1e-9, "{}", fitted.net);
        assert_eq!(t.epoch_of_step.iter().filter(|(e, _)| *e == 5).count(), 2);
    }

    #[test]
    fn a_resumed_run_is_measured_again_and_continues_after_its_epoch() {
        let mut t = scripted(&[5.0, 4.0, 6.0]);
        let recipe = Recipe { batch: 2, max_epochs: 5, patience: 3, ..Recipe::default() };
        let resumed = RefCell::new(None);
        let report = |m: TrainMsg<f64>| {
            if let TrainMsg::Resumed { epoch, dev } = m {
                *resumed.borrow_mut() = Some((epoch, dev));
            }
        };
        let fitted = fit(&mut t, 0.0, Some(3), 4, &recipe, &CancelToken::default(), &report).unwrap();
        assert_eq!(resumed.into_inner(), Some((3, 5.0)));
        assert_eq!((fitted.best_epoch, fitted.best_dev), (5, 6.0));
        assert_eq!(t.checkpoints, vec![5], "the resumed epoch is not written again");
    }

    #[test]
    fn a_diverged_loss_or_a_cancel_stops_with_a_reason() {
        struct Nan;
        impl Trainer for Nan {
            type Net = ();
            type Dev = ();
            fn reset_optimizers(&mut self) {}
            fn step(&mut self, _: (), _: &Batch, _: &mut fastrand::Rng) -> anyhow::Result<((), Stepped)> {
                Ok(((), Stepped { loss: f64::NAN, phases: None }))
            }
            fn evaluate(&mut self, _: &()) -> anyhow::Result<((), f64)> {
                Ok(((), 0.0))
            }
        }
        let recipe = Recipe { batch: 2, max_epochs: 1, ..Recipe::default() };
        let e = fit(&mut Nan, (), None, 4, &recipe, &CancelToken::default(), &|_| {}).err().unwrap();
        assert!(e.to_string().contains("diverged at epoch 1, step 1"), "{e}");
        let cancel = CancelToken::default();
        cancel.cancel();
        let e = fit(&mut Nan, (), None, 4, &recipe, &cancel, &|_| {}).err().unwrap();
        assert_eq!(e.to_string(), "cancelled");
    }
}
