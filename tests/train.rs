//! Training on tiny synthetic splits: SHAN writes a checkpoint per dev gain and `resume` continues
//! after its epoch; DSRAN and RACG train through the shared loop, save and load.

use std::cell::RefCell;

use alignscope::engine::jobs::CancelToken;
use alignscope::train::recipe::Recipe;
use alignscope::train::shan::{ShanTrainConfig, ShanTrainMsg, train};
use alignscope::train::splits::FragmentSplit;
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
        views: Vec::new(),
        objects: None,
    }
}

#[test]
fn training_batches_draw_each_image_as_itself_or_one_of_its_views() {
    use alignscope::data::feature_cache::{CacheKey, FeatureCache};
    let base = split(3, 9);
    let device = Device::flex();
    let mut rng = fastrand::Rng::with_seed(1);
    let plain = base.image_batch(&[2, 0], &device).into_data();
    assert_eq!(
        base.image_batch_sampled(&[2, 0], &mut rng, &device).into_data(),
        plain,
        "no views: the images themselves"
    );
    assert_eq!(rng.u64(..), fastrand::Rng::with_seed(1).u64(..), "and no draw from the generator");

    // View v of image i is the constant v·10 + i (in the caches' f16), stored in reverse name order.
    let key = CacheKey { weights_sha256: "x".into(), preprocessing: "x".into(), activation: "x".into() };
    let caches: Vec<FeatureCache> = (1..=2)
        .map(|v| {
            let mut cache = FeatureCache::new(key.clone());
            for i in (0..3).rev() {
                cache.push(format!("{i}.jpg"), &[192, 7, 7], &vec![(v * 10 + i) as f32; 192 * 49]);
            }
            cache
        })
        .collect();
    let with_views = split(3, 9).with_views(&caches).unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        let batch = with_views.image_batch_sampled(&[1], &mut rng, &device).into_data().try_to_vec::<f32>().unwrap();
        let first = batch[0];
        if first == 11.0 || first == 21.0 {
            assert!(batch.iter().all(|&x| x == first), "a view is taken whole");
            seen.insert(first as i32);
        } else {
            assert_eq!(batch, base.image_batch(&[1], &device).into_data().try_to_vec::<f32>().unwrap());
            seen.insert(0);
        }
    }
    assert_eq!(seen.len(), 3, "the image and both views are drawn: {seen:?}");
    assert_eq!(with_views.truncated(2).views[1].len(), 2 * 192 * 49);

    let mut missing = FeatureCache::new(key);
    missing.push("0.jpg", &[192, 7, 7], &vec![0.0; 192 * 49]);
    let err = split(3, 9).with_views(&[missing]).err().expect("an image without its view is an error");
    assert!(err.to_string().contains("1.jpg"), "{err}");
}

/// SHAN's recipe on a few images: batches of 4, `max_epochs`, then `decay_epochs`.
fn tiny_shan(max_epochs: usize, decay_epochs: usize) -> ShanTrainConfig {
    let defaults = ShanTrainConfig::default();
    let recipe = Recipe { batch: 4, max_epochs, decay_epochs, ..defaults.recipe.clone() };
    ShanTrainConfig { recipe, dev_images: 4, ..defaults }
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
    let config = tiny_shan(1, 0);
    let first =
        train("efficientnet-lite0", &train_split, &dev, &device, &config, Some(&out), &cancel, &report).unwrap();
    assert_eq!(first.best_epoch, 1);
    assert_eq!(epochs.take(), vec![1]);
    let saved = alignscope::features::weights::WeightFile::open(&out).unwrap();
    assert_eq!(saved.metadata("best_epoch").unwrap(), "1");
    assert_eq!(saved.metadata("augmented_views").unwrap(), "0", "how many augmented views it trained on");

    let resumed = ShanTrainConfig { recipe: Recipe { max_epochs: 2, ..config.recipe.clone() }, resume: true, ..config };
    let second =
        train("efficientnet-lite0", &train_split, &dev, &device, &resumed, Some(&out), &cancel, &report).unwrap();
    assert_eq!(epochs.take(), vec![101, 2], "resumed after epoch 1, then ran epoch 2 only");
    assert!((1..=2).contains(&second.best_epoch));
}

#[test]
fn shan_fine_tunes_a_weights_file_and_the_grounding_term_adds_to_the_loss() {
    let (train_split, dev) = (split(8, 5), split(4, 6));
    let dir = tempfile::tempdir().unwrap();
    let (start, out) = (dir.path().join("start.safetensors"), dir.path().join("tuned.safetensors"));
    let device = Device::flex();
    let cancel = CancelToken::default();
    let config = tiny_shan(1, 0);
    train("efficientnet-lite0", &train_split, &dev, &device, &config, Some(&start), &cancel, &|_| {}).unwrap();
    // From the same weights and seed, the same first batch: its loss with the term is larger.
    let first_loss = |ground_weight: f64| {
        let (losses, epochs) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()));
        let report = |m: ShanTrainMsg| match m {
            ShanTrainMsg::Step { loss, .. } => losses.borrow_mut().push(loss),
            ShanTrainMsg::Epoch { epoch, .. } => epochs.borrow_mut().push(epoch),
            _ => {}
        };
        let tuned = ShanTrainConfig { init_shan: Some(start.clone()), ground_weight, ..config.clone() };
        train("efficientnet-lite0", &train_split, &dev, &device, &tuned, Some(&out), &cancel, &report).unwrap();
        assert_eq!(epochs.take(), vec![1], "a fine-tune counts its own epochs");
        losses.take()[0]
    };
    let (without, with) = (first_loss(0.0), first_loss(1.0));
    assert!(with > without + 0.1, "the grounding term's InfoNCE adds to the loss: {with} vs {without}");
    let saved = alignscope::features::weights::WeightFile::open(&out).unwrap();
    assert_eq!(saved.metadata("ground_weight").unwrap(), "1");
    assert_eq!(saved.metadata("init_shan").unwrap(), start.display().to_string());
    let other_block = ShanTrainConfig { init_shan: Some(start.clone()), visual_first_block: 14, ..config };
    let err = train("efficientnet-lite0", &train_split, &dev, &device, &other_block, None, &cancel, &|_| {});
    assert!(err.is_err_and(|e| e.to_string().contains("block")), "a file fine-tuned from another block is refused");
}

#[test]
fn shan_decay_phase_goes_on_from_the_best_epoch_at_a_tenth_of_the_rates() {
    let (train_split, dev) = (split(8, 3), split(4, 4));
    let device = Device::flex();
    let epochs = RefCell::new(Vec::new());
    let report = |m: ShanTrainMsg| {
        if let ShanTrainMsg::Epoch { epoch, lr, .. } = m {
            epochs.borrow_mut().push((epoch, lr));
        }
    };
    let config = tiny_shan(1, 2);
    let trained =
        train("efficientnet-lite0", &train_split, &dev, &device, &config, None, &CancelToken::default(), &report)
            .unwrap();
    let epochs = epochs.take();
    assert_eq!(epochs.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3], "epochs are numbered on through the decay");
    assert_eq!(epochs[0].1, config.recipe.lr);
    assert!(epochs[1..].iter().all(|e| (e.1 - config.recipe.lr * 0.1).abs() < 1e-15), "{epochs:?}");
    assert!((1..=3).contains(&trained.best_epoch));
}

/// `n` images of pseudo-random region features with five captions of 3 to 6 word pieces each.
fn frozen_split(n: usize, rng: &mut fastrand::Rng) -> alignscope::train::splits::FrozenSplit {
    alignscope::train::splits::FrozenSplit {
        regions: (0..n * 49 * 1280).map(|_| rng.f32()).collect(),
        k: 49,
        image_dim: 1280,
        words: (0..n * 5).map(|_| (0..rng.usize(3..7) * 384).map(|_| rng.f32() - 0.5).collect()).collect(),
        text_dim: 384,
    }
}

/// Train `net` two epochs through the shared loop (checkpoint to `file` in a temporary folder),
/// then load the file with `load` and check it scores the dev split as the best network does.
fn trains_saves_and_loads<N: alignscope::train::frozen::FrozenNet>(
    net: N,
    file: &str,
    save: impl Fn(&N, &std::path::Path, &[(String, String)]) -> anyhow::Result<()>,
    load: impl Fn(&std::path::Path) -> anyhow::Result<N>,
    resume: impl Fn(&std::path::Path) -> N,
) -> alignscope::engine::recall::Recalls {
    use alignscope::train::frozen;
    let mut rng = fastrand::Rng::with_seed(4);
    let (train_split, dev) = (frozen_split(8, &mut rng), frozen_split(4, &mut rng));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(file);
    let device = Device::flex();
    let recipe = Recipe { batch: 4, max_epochs: 2, ..Recipe::default() };
    let (best, epoch, r) = frozen::train(
        net,
        None,
        &train_split,
        &dev,
        &device,
        &recipe,
        &|n, e, r| save(n, &out, &frozen::notes(&recipe, e, r)),
        &CancelToken::default(),
        &|_| {},
    )
    .unwrap();
    assert!((1..=2).contains(&epoch));
    let loaded = load(&out).unwrap();
    assert_eq!(
        frozen::evaluate(&loaded, &dev, &device),
        frozen::evaluate(&best, &dev, &device),
        "the file holds the best epoch"
    );

    // Resumed from the checkpoint: epochs continue after it, and it stays the best unless beaten.
    let epochs = std::cell::RefCell::new(Vec::new());
    let more = Recipe { max_epochs: epoch + 1, ..recipe.clone() };
    let (_, resumed_epoch, resumed) = frozen::train(
        resume(&out),
        Some(epoch),
        &train_split,
        &dev,
        &device,
        &more,
        &|n, e, r| save(n, &out, &frozen::notes(&more, e, r)),
        &CancelToken::default(),
        &|m| {
            if let frozen::FrozenTrainMsg::Epoch { epoch, .. } = m {
                epochs.borrow_mut().push(epoch);
            }
        },
    )
    .unwrap();
    assert_eq!(*epochs.borrow(), [epoch + 1]);
    assert!(resumed.rsum >= r.rsum && resumed_epoch >= epoch, "{resumed:?} at {resumed_epoch} vs {r:?} at {epoch}");
    std::fs::write(&out, b"not weights").unwrap();
    assert!(load(&out).err().unwrap().to_string().contains(file), "a damaged file is named");
    r
}

#[test]
fn dsran_trains_saves_and_loads_to_the_same_recalls() {
    use alignscope::nets::dsran;
    let config = alignscope::model::dsran::DsranConfig::new();
    let device = Device::flex().autodiff();
    let r = trains_saves_and_loads(
        config.init(&device),
        "dsran.safetensors",
        |n, p, notes| dsran::save(n, p, &config, notes),
        |p| dsran::load(p, &Device::flex()),
        |p| dsran::load(p, &Device::flex().autodiff()).unwrap(),
    );
    assert_eq!(r.t2i[1], 100.0, "four dev images: every image within the top 5 ({r:?})");
}

#[test]
fn racg_trains_saves_and_loads_to_the_same_recalls() {
    use alignscope::nets::racg;
    let config = alignscope::model::racg::RacgConfig::new();
    let device = Device::flex().autodiff();
    let r = trains_saves_and_loads(
        config.init(&device),
        "racg.safetensors",
        |n, p, notes| racg::save(n, p, &config, notes),
        |p| racg::load(p, &Device::flex()),
        |p| racg::load(p, &Device::flex().autodiff()).unwrap(),
    );
    assert_eq!(r.t2i[1], 100.0, "{r:?}");
}

#[test]
fn racg_graph_share_is_chosen_on_dev_and_written_into_the_weights() {
    use alignscope::nets::racg::{load, save};
    use alignscope::train::{frozen, racg};
    let mut rng = fastrand::Rng::with_seed(9);
    let dev = frozen_split(6, &mut rng);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("racg.safetensors");
    let device = Device::flex();
    let config = alignscope::model::racg::RacgConfig::new();
    let notes = vec![("best_epoch".to_string(), "3".to_string()), ("recipe".to_string(), "B".to_string())];
    save(&config.init(&device), &out, &config, &notes).unwrap();
    assert_eq!(load(&out, &device).unwrap().graph_share, 0.5, "the training mix until tuned");

    let (index, grid) = racg::tune_graph_share(load(&out, &device).unwrap(), &out, &dev, &device).unwrap();
    assert_eq!(grid.iter().map(|(s, _)| (s * 10.0).round() as i32).collect::<Vec<_>>(), (0..=10).collect::<Vec<_>>());
    let (share, chosen) = grid[index];
    assert!(grid.iter().all(|(_, r)| r.rsum <= chosen.rsum), "{share}: {grid:?}");
    let loaded = load(&out, &device).unwrap();
    assert_eq!(loaded.graph_share, share);
    assert_eq!(frozen::evaluate(&loaded, &dev, &device), chosen, "the file scores as the chosen mix");
    let [full, node, graph] = racg::evaluate_levels(&loaded, &dev, &device, &|_, _| {});
    assert_eq!((full.0, full.1, node.1, graph.1), ("full", chosen, grid[0].1, grid[10].1));
    let file = alignscope::features::weights::WeightFile::open(&out).unwrap();
    assert_eq!(file.metadata("best_epoch").unwrap(), "3", "training notes kept");
    assert!(file.metadata("dev_rsum").unwrap().contains("graph share"));
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn tuned_global_with_frozen_tops_embeds_as_the_frozen_feature_global_model() {
    use alignscope::features::efficientnet::EfficientNetLite;
    use alignscope::features::minilm::{MiniLm, TokenBatch};
    use alignscope::nets::global_tuned::{Lifts, init};
    use alignscope::train::global::DualEncoder;
    use burn::tensor::{Int, Tensor, TensorData};
    let device = Device::flex();
    let data = split(3, 5);
    let net = init("efficientnet-lite0", 15, Lifts { visual: false, text: false }, &device).unwrap();
    let models = alignscope::features::models_dir();
    // The frozen global model's input: the cached activation through the rest of the backbone,
    // average-pooled; the hidden states through MiniLM's last layer, mean-pooled with the mask.
    let backbone = EfficientNetLite::load(&models.join("efficientnet-lite0.safetensors"), &device).unwrap();
    let pooled = EfficientNetLite::pool(backbone.features_from(data.image_batch(&[0, 1, 2], &device), 15));
    let expected = net.head.embed_images(pooled);
    let got = DualEncoder::embed_images(&net, &data, &[0, 1, 2], &device);
    assert!(max_difference(&alignscope::features::values(got), &alignscope::features::values(expected)) < 1e-4);

    let text = MiniLm::load(&models.join(alignscope::features::TEXT_WEIGHTS), &device).unwrap();
    let rows = [0, 4, 7, 11];
    let batch = data.caption_batch(&rows, &device);
    let lengths = batch.lengths.clone();
    let n = batch.tokens;
    let mask: Vec<f32> = lengths.iter().flat_map(|&l| (0..n).map(move |j| if j < l { 1.0 } else { 0.0 })).collect();
    let tokens = TokenBatch {
        ids: Tensor::<2, Int>::zeros([rows.len(), n], &device),
        mask: Tensor::from_data(TensorData::new(mask, [rows.len(), n]), &device),
        lengths,
    };
    let hidden =
        text.hidden_from(batch.hidden, &tokens, alignscope::nets::TEXT_TOP_LAYER).reshape([rows.len(), n, text.hidden]);
    let expected = net.head.embed_texts(MiniLm::mean_pool(hidden, tokens.mask));
    let got = DualEncoder::embed_texts(&net, &data, &rows, &device);
    assert!(max_difference(&alignscope::features::values(got), &alignscope::features::values(expected)) < 1e-4);
}

#[test]
fn tuned_global_trains_only_the_lifted_layers_saves_and_loads() {
    use alignscope::nets::global_tuned::{self, Lifts};
    use alignscope::train::global::{self, TrainConfig, evaluate};
    let (train_split, dev) = (split(8, 1), split(4, 2));
    let device = Device::flex();
    let lifts = Lifts { visual: false, text: true };
    let config = TrainConfig { batch: 4, max_epochs: 2, ..TrainConfig::default() };
    let init = |d: &Device| global_tuned::init("efficientnet-lite0", 15, lifts, d);
    let trained = global::train(init, &train_split, &dev, &device, &config, &CancelToken::default(), &|_| {}).unwrap();
    let fresh = init(&device).unwrap();
    assert_eq!(
        alignscope::features::values(trained.model.visual.head.weight.val()),
        alignscope::features::values(fresh.visual.head.weight.val()),
        "a frozen top keeps its pretrained weights"
    );
    assert!(
        max_difference(
            &alignscope::features::values(trained.model.text.output.weight.val()),
            &alignscope::features::values(fresh.text.output.weight.val())
        ) > 0.0,
        "a lifted layer trains"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("global-tuned.safetensors");
    global_tuned::save(&trained.model, &out, &[("dev_rsum".into(), "1".into())]).unwrap();
    assert!(global_tuned::is_tuned(&alignscope::features::weights::WeightFile::open(&out).unwrap()));
    let loaded = global_tuned::load(&out, "efficientnet-lite0", &device).unwrap();
    assert_eq!(
        evaluate(&loaded, &dev, &device),
        evaluate(&trained.model, &dev, &device),
        "the file holds the trained network"
    );
    std::fs::write(&out, b"not weights").unwrap();
    assert!(
        global_tuned::load(&out, "efficientnet-lite0", &device)
            .err()
            .unwrap()
            .to_string()
            .contains("global-tuned.safetensors"),
        "a damaged file is named"
    );
}

#[test]
fn shan_starts_its_backbone_tops_from_a_tuned_global_model() {
    use alignscope::features::values;
    use alignscope::nets::global_tuned::{self, Lifts};
    use alignscope::train::global::{self, TrainConfig};
    let (train_split, dev) = (split(8, 6), split(4, 7));
    let device = Device::flex();
    let init = |d: &Device| global_tuned::init("efficientnet-lite0", 15, Lifts { visual: true, text: true }, d);
    let tuned = global::train(
        init,
        &train_split,
        &dev,
        &device,
        &TrainConfig { batch: 4, max_epochs: 1, ..TrainConfig::default() },
        &CancelToken::default(),
        &|_| {},
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tops = dir.path().join("global-tuned.safetensors");
    global_tuned::save(&tuned.model, &tops, &[]).unwrap();

    // Tops frozen in SHAN's run: they must come out as the global model's, not the pretrained ones.
    let config = ShanTrainConfig {
        finetune_visual: false,
        finetune_text: false,
        init_tops: Some(tops.clone()),
        ..tiny_shan(1, 0)
    };
    let shan =
        train("efficientnet-lite0", &train_split, &dev, &device, &config, None, &CancelToken::default(), &|_| {})
            .unwrap();
    assert_eq!(values(shan.net.visual.head.weight.val()), values(tuned.model.visual.head.weight.val()));
    assert_eq!(values(shan.net.text.output.weight.val()), values(tuned.model.text.output.weight.val()));
    let pretrained = init(&device).unwrap();
    assert!(
        max_difference(&values(shan.net.text.output.weight.val()), &values(pretrained.text.output.weight.val())) > 0.0,
        "the global model's tops differ from the pretrained ones"
    );

    let other_block = ShanTrainConfig { visual_first_block: 14, ..config };
    let err =
        train("efficientnet-lite0", &train_split, &dev, &device, &other_block, None, &CancelToken::default(), &|_| {})
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("global-tuned.safetensors") && err.contains("block 15"), "{err}");
}
