//! SHAN training on a tiny synthetic split: a checkpoint per dev gain, and `resume` continuing
//! after the checkpoint's epoch instead of starting over.

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
