//! Training on tiny synthetic splits: SHAN writes a checkpoint per dev gain and `resume` continues
//! after its epoch; DSRAN and RACG train through the shared loop, save and load.

use std::cell::RefCell;

use alignscope::engine::jobs::CancelToken;
use alignscope::engine::shan::{FragmentSplit, ShanTrainConfig, ShanTrainMsg, train};
use burn::tensor::Device;

/// `n` images (the activation entering EfficientNet's last block: 192 × 7 × 7) with five
/// captions each (6 to 9 MiniLM hidden states of 384, [CLS] and [SEP] included), pseudo-random.
fn split(n: usize, seed: u64) -> FragmentSplit {
    let mut rng = fastrand::Rng::with_seed(seed);
    let image_shape = [192, 7, 7];
    FragmentSplit {
        names: (0..n).map(|i| format!("{i}.jpg")).collect(),
        images: (0..n * 192 * 49).map(|_| rng.f32() - 0.5).collect(),
        image_shape,
        captions: (0..n * 5).map(|_| (0..rng.usize(6..10) * 384).map(|_| rng.f32() - 0.5).collect()).collect(),
        text_dim: 384,
    }
}

#[test]
fn training_writes_a_checkpoint_and_resume_continues_after_its_epoch() {
    let (train_split, dev) = (split(8, 1), split(4, 2));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shan.safetensors");
    let device = Device::flex();
    let cancel = CancelToken::default();
    let epochs = RefCell::new(Vec::new());
    let report = |m: ShanTrainMsg| match m {
        ShanTrainMsg::Epoch { epoch, .. } => epochs.borrow_mut().push(epoch),
        ShanTrainMsg::Resumed { epoch, .. } => epochs.borrow_mut().push(100 + epoch),
        _ => {}
    };
    let config = ShanTrainConfig { batch: 4, max_epochs: 1, dev_images: 4, ..Default::default() };
    let first = train("efficientnet-lite0", &train_split, &dev, &device, &config, Some(&out), &cancel, &report).unwrap();
    assert_eq!(first.best_epoch, 1);
    assert_eq!(epochs.take(), vec![1]);
    let saved = alignscope::features::weights::WeightFile::open(&out).unwrap();
    assert_eq!(saved.metadata("best_epoch").unwrap(), "1");

    let resumed = ShanTrainConfig { max_epochs: 2, resume: true, ..config };
    let second = train("efficientnet-lite0", &train_split, &dev, &device, &resumed, Some(&out), &cancel, &report).unwrap();
    assert_eq!(epochs.take(), vec![101, 2], "resumed after epoch 1, then ran epoch 2 only");
    assert!((1..=2).contains(&second.best_epoch));
}

#[test]
fn dsran_trains_saves_and_loads_to_the_same_recalls() {
    use alignscope::engine::dsran;
    use alignscope::engine::frozen::{self, FrozenSplit};
    use alignscope::engine::recipe::Recipe;
    let mut rng = fastrand::Rng::with_seed(4);
    let mut data = |n: usize| FrozenSplit {
        regions: (0..n * 49 * 1280).map(|_| rng.f32()).collect(),
        k: 49,
        image_dim: 1280,
        words: (0..n * 5).map(|_| (0..rng.usize(3..7) * 384).map(|_| rng.f32() - 0.5).collect()).collect(),
        text_dim: 384,
    };
    let (train_split, dev) = (data(8), data(4));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dsran.safetensors");
    let device = Device::flex();
    let recipe = Recipe { batch: 4, max_epochs: 2, ..Recipe::default() };
    let config = alignscope::model::dsran::DsranConfig::new();
    let save = |net: &alignscope::model::dsran::Dsran, e: usize, r: &alignscope::engine::recall::Recalls| dsran::save(net, &out, &config, &frozen::notes(&recipe, e, r));
    let (net, epoch, r) = frozen::train(config.init(&device.clone().autodiff()), &train_split, &dev, &device, &recipe, &save, &CancelToken::default(), &|_| {}).unwrap();
    assert!((1..=2).contains(&epoch));
    assert!(r.t2i[1] == 100.0, "four dev images: every image within the top 5 ({r:?})");
    let loaded = dsran::load(&out, &device).unwrap();
    assert_eq!(frozen::evaluate(&loaded, &dev, &device), frozen::evaluate(&net, &dev, &device), "the file holds the best epoch");
    std::fs::write(&out, b"not weights").unwrap();
    assert!(dsran::load(&out, &device).unwrap_err().to_string().contains("dsran.safetensors"));
}

#[test]
fn racg_trains_saves_and_loads_to_the_same_recalls() {
    use alignscope::engine::frozen::{self, FrozenSplit};
    use alignscope::engine::racg;
    use alignscope::engine::recipe::Recipe;
    let mut rng = fastrand::Rng::with_seed(9);
    let mut data = |n: usize| FrozenSplit {
        regions: (0..n * 49 * 1280).map(|_| rng.f32()).collect(),
        k: 49,
        image_dim: 1280,
        words: (0..n * 5).map(|_| (0..rng.usize(3..7) * 384).map(|_| rng.f32() - 0.5).collect()).collect(),
        text_dim: 384,
    };
    let (train_split, dev) = (data(8), data(4));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("racg.safetensors");
    let device = Device::flex();
    let recipe = Recipe { batch: 4, max_epochs: 2, ..Recipe::default() };
    let config = alignscope::model::racg::RacgConfig::new();
    let save = |net: &alignscope::model::racg::Racg, e: usize, r: &alignscope::engine::recall::Recalls| racg::save(net, &out, &config, &frozen::notes(&recipe, e, r));
    let (net, epoch, _) = frozen::train(config.init(&device.clone().autodiff()), &train_split, &dev, &device, &recipe, &save, &CancelToken::default(), &|_| {}).unwrap();
    assert!((1..=2).contains(&epoch));
    let loaded = racg::load(&out, &device).unwrap();
    assert_eq!(frozen::evaluate(&loaded, &dev, &device), frozen::evaluate(&net, &dev, &device));
}
