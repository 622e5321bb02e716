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

/// `n` images of pseudo-random region features with five captions of 3 to 6 word pieces each.
fn frozen_split(n: usize, rng: &mut fastrand::Rng) -> alignscope::engine::frozen::FrozenSplit {
    alignscope::engine::frozen::FrozenSplit {
        regions: (0..n * 49 * 1280).map(|_| rng.f32()).collect(),
        k: 49,
        image_dim: 1280,
        words: (0..n * 5).map(|_| (0..rng.usize(3..7) * 384).map(|_| rng.f32() - 0.5).collect()).collect(),
        text_dim: 384,
    }
}

/// Train `net` two epochs through the shared loop (checkpoint to `file` in a temporary folder),
/// then load the file with `load` and check it scores the dev split as the best network does.
fn trains_saves_and_loads<N: alignscope::engine::frozen::FrozenNet>(
    net: N,
    file: &str,
    save: impl Fn(&N, &std::path::Path, &[(String, String)]) -> anyhow::Result<()>,
    load: impl Fn(&std::path::Path) -> anyhow::Result<N>,
    resume: impl Fn(&std::path::Path) -> N,
) -> alignscope::engine::recall::Recalls {
    use alignscope::engine::frozen;
    use alignscope::engine::recipe::Recipe;
    let mut rng = fastrand::Rng::with_seed(4);
    let (train_split, dev) = (frozen_split(8, &mut rng), frozen_split(4, &mut rng));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(file);
    let device = Device::flex();
    let recipe = Recipe { batch: 4, max_epochs: 2, ..Recipe::default() };
    let (best, epoch, r) = frozen::train(net, None, &train_split, &dev, &device, &recipe, &|n, e, r| save(n, &out, &frozen::notes(&recipe, e, r)), &CancelToken::default(), &|_| {}).unwrap();
    assert!((1..=2).contains(&epoch));
    let loaded = load(&out).unwrap();
    assert_eq!(frozen::evaluate(&loaded, &dev, &device), frozen::evaluate(&best, &dev, &device), "the file holds the best epoch");

    // Resumed from the checkpoint: epochs continue after it, and it stays the best unless beaten.
    let epochs = std::cell::RefCell::new(Vec::new());
    let more = Recipe { max_epochs: epoch + 1, ..recipe.clone() };
    let (_, resumed_epoch, resumed) = frozen::train(resume(&out), Some(epoch), &train_split, &dev, &device, &more, &|n, e, r| save(n, &out, &frozen::notes(&more, e, r)), &CancelToken::default(), &|m| {
        if let frozen::FrozenTrainMsg::Epoch { epoch, .. } = m {
            epochs.borrow_mut().push(epoch);
        }
    })
    .unwrap();
    assert_eq!(*epochs.borrow(), [epoch + 1]);
    assert!(resumed.rsum >= r.rsum && resumed_epoch >= epoch, "{resumed:?} at {resumed_epoch} vs {r:?} at {epoch}");
    std::fs::write(&out, b"not weights").unwrap();
    assert!(load(&out).err().unwrap().to_string().contains(file), "a damaged file is named");
    r
}

#[test]
fn dsran_trains_saves_and_loads_to_the_same_recalls() {
    use alignscope::engine::dsran;
    let config = alignscope::model::dsran::DsranConfig::new();
    let device = Device::flex().autodiff();
    let r = trains_saves_and_loads(config.init(&device), "dsran.safetensors", |n, p, notes| dsran::save(n, p, &config, notes), |p| dsran::load(p, &Device::flex()), |p| dsran::load(p, &Device::flex().autodiff()).unwrap());
    assert_eq!(r.t2i[1], 100.0, "four dev images: every image within the top 5 ({r:?})");
}

#[test]
fn racg_trains_saves_and_loads_to_the_same_recalls() {
    use alignscope::engine::racg;
    let config = alignscope::model::racg::RacgConfig::new();
    let device = Device::flex().autodiff();
    let r = trains_saves_and_loads(config.init(&device), "racg.safetensors", |n, p, notes| racg::save(n, p, &config, notes), |p| racg::load(p, &Device::flex()), |p| racg::load(p, &Device::flex().autodiff()).unwrap());
    assert_eq!(r.t2i[1], 100.0, "{r:?}");
}

#[test]
fn racg_graph_share_is_chosen_on_dev_and_written_into_the_weights() {
    use alignscope::engine::{frozen, racg};
    let mut rng = fastrand::Rng::with_seed(9);
    let dev = frozen_split(6, &mut rng);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("racg.safetensors");
    let device = Device::flex();
    let config = alignscope::model::racg::RacgConfig::new();
    let notes = vec![("best_epoch".to_string(), "3".to_string()), ("recipe".to_string(), "B".to_string())];
    racg::save(&config.init(&device), &out, &config, &notes).unwrap();
    assert_eq!(racg::load(&out, &device).unwrap().graph_share, 0.5, "the training mix until tuned");

    let (index, grid) = racg::tune_graph_share(racg::load(&out, &device).unwrap(), &out, &dev, &device).unwrap();
    assert_eq!(grid.iter().map(|(s, _)| (s * 10.0).round() as i32).collect::<Vec<_>>(), (0..=10).collect::<Vec<_>>());
    let (share, chosen) = grid[index];
    assert!(grid.iter().all(|(_, r)| r.rsum <= chosen.rsum), "{share}: {grid:?}");
    let loaded = racg::load(&out, &device).unwrap();
    assert_eq!(loaded.graph_share, share);
    assert_eq!(frozen::evaluate(&loaded, &dev, &device), chosen, "the file scores as the chosen mix");
    let [full, node, graph] = racg::evaluate_levels(&loaded, &dev, &device);
    assert_eq!((full.0, full.1, node.1, graph.1), ("full", chosen, grid[0].1, grid[10].1));
    let file = alignscope::features::weights::WeightFile::open(&out).unwrap();
    assert_eq!(file.metadata("best_epoch").unwrap(), "3", "training notes kept");
    assert!(file.metadata("dev_rsum").unwrap().contains("graph share"));
}
