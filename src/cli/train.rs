//! `extract`, `train`, `tune-levels` and `fuse`: building feature caches and training the
//! networks on Flickr8k.

use std::path::{Path, PathBuf};

use alignscope::engine::backend::BackendRequest;
use alignscope::train::fit::TrainMsg;
use alignscope::train::objects::frozen_split;
use alignscope::train::source::Source;
use alignscope::train::splits::FragmentSplit;

use alignscope::data::flickr8k::Split;

use super::args::{ModelKind, RecipeArgs};
use super::{both_ways, compute, progress};

#[allow(clippy::too_many_arguments)]
pub fn extract(
    request: BackendRequest,
    visual: &str,
    flickr8k: PathBuf,
    splits: &[Split],
    out: PathBuf,
    image_block: usize,
    text_layer: usize,
    batch: usize,
) -> anyhow::Result<String> {
    use alignscope::train::extract::{ExtractOptions, extract};
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let mut out_text = String::new();
    for &split in splits {
        let options = ExtractOptions {
            flickr8k: flickr8k.clone(),
            visual: visual.to_string(),
            split,
            out_dir: out.clone(),
            image_block,
            text_layer,
            batch,
            view: 0,
        };
        let _caches = extract(&compute, &options, &cancel, &|m| progress(m))?;
    }
    out_text.push_str(&format!("done in {:.1} s\n", started.elapsed().as_secs_f64()));
    Ok(out_text)
}

#[allow(clippy::too_many_arguments)]
pub fn shan(
    request: BackendRequest,
    visual: &str,
    flickr8k: &Path,
    cache: &Path,
    out: &Path,
    config: &alignscope::train::shan::ShanTrainConfig,
    aug_views: usize,
    objects: usize,
) -> anyhow::Result<String> {
    use alignscope::train::shan::{self, ShanTrainMsg};
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    let (train_split, dev) = fragment_splits(&source, config.visual_first_block, aug_views, objects)?;
    let dev = dev.truncated(config.dev_images);
    eprintln!(
        "prepared {} train and {} dev images in {:.0} s",
        train_split.len(),
        dev.len(),
        started.elapsed().as_secs_f64()
    );
    let line = |name: &str, r: &alignscope::engine::recall::Recalls| {
        format!(
            "{name} {:.1} ({:.1}/{:.1}/{:.1}, {:.1}/{:.1}/{:.1})",
            r.rsum, r.i2t[0], r.i2t[1], r.i2t[2], r.t2i[0], r.t2i[1], r.t2i[2]
        )
    };
    let progress = super::progress::global();
    let report = |m: ShanTrainMsg| match m {
        ShanTrainMsg::Step { .. } => step_line(m),
        ShanTrainMsg::Resumed { epoch, dev } => {
            progress.println(format!("resumed after epoch {epoch}: dev {}", line("full", &dev.full)))
        }
        ShanTrainMsg::Epoch { epoch, lr, loss, dev, train_seconds, eval_seconds, best } => {
            let levels = [
                line("full", &dev.full),
                line("l2l", &dev.l2l),
                line("g2l", &dev.g2l),
                line("g2g", &dev.g2g),
                line("emb", &dev.embedding),
            ]
            .join("  ");
            let star = if best { "  *" } else { "" };
            let times = format!("train {train_seconds:.0} s, dev {eval_seconds:.0} s{star}");
            progress.println(format!("epoch {epoch:2}  lr {lr:.0e}  loss {loss:.4}  dev {levels}  {times}"))
        }
    };
    let trained = shan::train(visual, &train_split, &dev, &compute.device, config, Some(out), &cancel, &report)?;
    let [a, b, c] = trained.net.shan.weights;
    progress.println(format!(
        "level weights chosen on dev: L2L {a}, G2L {b}, G2G {c}: {}",
        line("full", &trained.best_dev.full)
    ));
    Ok(format!(
        "best dev epoch {} (full rSum {:.1} on {} dev images); trained in {:.0} s; wrote {}\n",
        trained.best_epoch,
        trained.best_dev.full.rsum,
        dev.len(),
        trained.seconds,
        out.display()
    ))
}

/// The train and dev splits of SHAN or the tuned global model: activations entering
/// `first_block`, the train split with `aug_views` augmented views or each photo's best `objects`
/// detected objects as crops at the same block (dev too).
fn fragment_splits(
    source: &Source,
    first_block: usize,
    aug_views: usize,
    objects: usize,
) -> anyhow::Result<(FragmentSplit, FragmentSplit)> {
    use alignscope::train::objects::fragment_split;
    let train = match objects {
        0 => source.fragments_with_views(Split::Train, first_block, aug_views)?,
        k => fragment_split(source, Split::Train, first_block, k)?,
    };
    Ok((train, fragment_split(source, Split::Dev, first_block, objects)?))
}

/// Train DSRAN or RACG (the networks on the frozen backbones) with the shared loop.
#[allow(clippy::too_many_arguments)]
pub fn frozen(
    request: BackendRequest,
    visual: &str,
    flickr8k: &Path,
    cache: &Path,
    out: &Path,
    model: ModelKind,
    recipe: &RecipeArgs,
    dev_images: usize,
    resume: bool,
    objects: usize,
) -> anyhow::Result<String> {
    use alignscope::train::frozen::{self, FrozenTrainMsg};
    use alignscope::train::recipe::Recipe;
    // A bad checkpoint is named before minutes of data preparation.
    let resumed = resumed_from(resume, out)?;
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    let device = &compute.device;
    let train_split = frozen_split(&source, Split::Train, usize::MAX, objects)?;
    let dev = frozen_split(&source, Split::Dev, dev_images, objects)?;
    eprintln!(
        "prepared {} train and {} dev images in {:.0} s",
        train_split.len(),
        dev.len(),
        started.elapsed().as_secs_f64()
    );
    let recipe = recipe.apply(Recipe::matching());
    let report = |m: FrozenTrainMsg| recalls_line(m);
    let ad = device.clone().autodiff();
    let (epoch, rsum) = match model {
        ModelKind::Dsran => {
            use alignscope::nets::dsran;
            let config = alignscope::model::dsran::DsranConfig::new().with_objects(Some(objects));
            let mut net = if resumed.is_some() { dsran::load(out, &ad)? } else { config.init(&ad) };
            if resumed.is_some() && objects > 0 && net.objects == 0 {
                // A grid-only checkpoint grows its object stream as a copy of its grid stream.
                eprintln!(
                    "{}: adding an object stream for {objects} objects, copied from the grid stream",
                    out.display()
                );
                net = net.with_object_stream(objects);
            }
            dsran::ensure_objects(&net, objects, out)?;
            let (_, epoch, r) = frozen::train(
                net,
                resumed,
                &train_split,
                &dev,
                device,
                &recipe,
                &|net, e, r| dsran::save(net, out, &config, &frozen::notes(&recipe, e, r)),
                &cancel,
                &report,
            )?;
            (epoch, r.rsum)
        }
        _ => {
            use alignscope::nets::racg;
            let config = alignscope::model::racg::RacgConfig::new();
            let mut net = if resumed.is_some() { racg::load(out, &ad)? } else { config.init(&ad) };
            // A tuned checkpoint trains on with the training mix (tune-levels again afterwards).
            net.graph_share = alignscope::model::racg::TRAINING_GRAPH_SHARE;
            let (_, epoch, r) = frozen::train(
                net,
                resumed,
                &train_split,
                &dev,
                device,
                &recipe,
                &|net, e, r| racg::save(net, out, &config, &frozen::notes(&recipe, e, r)),
                &cancel,
                &report,
            )?;
            (epoch, r.rsum)
        }
    };
    Ok(format!(
        "best dev epoch {epoch} (rSum {rsum:.1}); trained in {:.0} s; wrote {}\n",
        started.elapsed().as_secs_f64(),
        out.display()
    ))
}

/// A training step on the progress bar.
fn step_line<D>(m: TrainMsg<D>) {
    if let TrainMsg::Step { epoch, step, steps, loss, seconds_per_step, phases } = m {
        let phases = phases.map_or(String::new(), |[e, s, b, o]| {
            format!(": encode {e:.2}, score {s:.2}, backward {b:.2}, update {o:.2}")
        });
        let detail = format!("loss {loss:.4} ({seconds_per_step:.2} s/step{phases})");
        progress::global().update(&format!("epoch {epoch:2}"), step as u64, steps as u64, &detail)
    }
}

/// The epoch lines of a network whose dev figures are one Recall@K (DSRAN, RACG, global).
fn recalls_line(m: TrainMsg<alignscope::engine::recall::Recalls>) {
    match m {
        TrainMsg::Epoch { epoch, lr, loss, dev, train_seconds, eval_seconds, best } => progress::global().println(format!(
            "epoch {epoch:2}  lr {lr:.0e}  loss {loss:.4}  dev rSum {:.1} ({})  train {train_seconds:.0} s, dev {eval_seconds:.0} s{}",
            dev.rsum,
            both_ways(&dev),
            if best { "  *" } else { "" }
        )),
        TrainMsg::Resumed { epoch, dev } => {
            progress::global().println(format!("resumed after epoch {epoch}: dev rSum {:.1} ({})", dev.rsum, both_ways(&dev)))
        }
        TrainMsg::Step { .. } => step_line(m),
    }
}

/// With `--resume` and a checkpoint at `out`: the epoch it holds (its `best_epoch` note).
fn resumed_from(resume: bool, out: &Path) -> anyhow::Result<Option<usize>> {
    if !resume || !out.is_file() {
        return Ok(None);
    }
    let epoch: usize = alignscope::features::weights::WeightFile::open(out)?.metadata_parsed("best_epoch")?;
    eprintln!("resuming from {} (epoch {epoch})", out.display());
    Ok(Some(epoch))
}

pub fn tune_levels(
    request: BackendRequest,
    visual: &str,
    flickr8k: &Path,
    cache: &Path,
    model: ModelKind,
    weights: Option<PathBuf>,
    dev_images: usize,
) -> anyhow::Result<String> {
    use alignscope::nets;
    use alignscope::train::{racg, shan};
    anyhow::ensure!(
        matches!(model, ModelKind::Shan | ModelKind::Racg),
        "tune-levels is for shan and racg, not `{model}`"
    );
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    if model == ModelKind::Racg {
        let weights = weights.unwrap_or_else(nets::racg::default_path);
        // A bad weights file is named before the dev split is prepared.
        let net = nets::racg::load(&weights, &compute.device)?;
        let dev = source.frozen(alignscope::data::flickr8k::Split::Dev, dev_images)?.0;
        let (chosen, grid) = racg::tune_graph_share(net, &weights, &dev, &compute.device)?;
        let mut out = format!(
            "dev rSum on {} images by the graph level's share (0: node level alone, 1: graph level alone):\n",
            dev.len()
        );
        for (i, (s, r)) in grid.iter().enumerate() {
            out.push_str(&format!("  {s:.1}  {:.1}{}\n", r.rsum, if i == chosen { "  chosen" } else { "" }));
        }
        out.push_str(&format!("wrote {}\n", weights.display()));
        return Ok(out);
    }
    let weights = &weights.unwrap_or_else(nets::shan::default_path);
    let mut net = nets::shan::load(weights, visual, &compute.device)?;
    let dev = source.fragments(alignscope::data::flickr8k::Split::Dev, net.visual.first_block)?.truncated(dev_images);
    let (chosen, r) = shan::choose_level_weights(&net, &dev, &compute.device, &cancel)?;
    net.shan.weights = chosen;
    let file = alignscope::features::weights::WeightFile::open(weights)?;
    let config = nets::shan::saved_config(&file, weights)?;
    let notes: Vec<(String, String)> = ["recipe", "finetuned", "augmented_views", "best_epoch"]
        .iter()
        .filter_map(|k| file.metadata(k).ok().map(|v| (k.to_string(), v)))
        .chain([(
            "dev_rsum".to_string(),
            format!("{:.1} (first {} dev images, level weights chosen there)", r.rsum, dev.len()),
        )])
        .collect();
    nets::shan::save(&net, weights, &config, &notes)?;
    Ok(format!(
        "level weights L2L {}, G2L {}, G2G {}: dev rSum {:.1} on {} images; wrote {}\n",
        chosen[0],
        chosen[1],
        chosen[2],
        r.rsum,
        dev.len(),
        weights.display()
    ))
}

/// The global model on frozen pooled features, or with `lifts` (the backbone tops SHAN fine-tunes).
#[allow(clippy::too_many_arguments)]
pub fn global(
    request: BackendRequest,
    visual: &str,
    flickr8k: &Path,
    cache: &Path,
    out: &Path,
    recipe: &RecipeArgs,
    lifts: Option<alignscope::nets::global_tuned::Lifts>,
    aug_views: usize,
    objects: usize,
    init_global: Option<&Path>,
) -> anyhow::Result<String> {
    use alignscope::nets::DEFAULT_FIRST_BLOCK;
    use alignscope::nets::global_tuned;
    use alignscope::train::global::{self, TrainConfig, TrainMsg};
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    let config = recipe.apply(TrainConfig::default());
    let on_epoch = |m: TrainMsg| recalls_line(m);
    let recipe = |best_epoch: usize| {
        format!(
            "B: batch {}, AdamW lr {} wd {}, loss {:?}, then lr ×0.1 for up to {} epochs; best dev epoch {}",
            config.batch, config.lr, config.weight_decay, config.loss, config.decay_epochs, best_epoch
        )
    };
    let prepared = |n: usize, d: usize| {
        eprintln!("prepared {n} train and {d} dev images in {:.0} s", started.elapsed().as_secs_f64())
    };
    let (best_epoch, best_dev, seconds) = match lifts {
        None => {
            let (train_split, dev) = (source.pooled(Split::Train)?, source.pooled(Split::Dev)?);
            prepared(train_split.len(), dev.len());
            let init = |d: &burn::tensor::Device| Ok(alignscope::model::global::GlobalConfig::new().init(d));
            let trained = global::train(init, &train_split, &dev, &compute.device, &config, &cancel, &on_epoch)?;
            let metadata = std::collections::HashMap::from([
                ("model".to_string(), "global".to_string()),
                ("recipe".to_string(), recipe(trained.best_epoch)),
                ("features".to_string(), format!("frozen {visual} pooled (1280), MiniLM mean-pooled (384)")),
                ("dev_rsum".to_string(), format!("{:.1}", trained.best_dev.rsum)),
            ]);
            alignscope::nets::global::save(&trained.model, out, metadata)?;
            (trained.best_epoch, trained.best_dev, trained.seconds)
        }
        Some(lifts) => {
            let (train_split, dev) = fragment_splits(&source, DEFAULT_FIRST_BLOCK, aug_views, objects)?;
            prepared(train_split.len(), dev.len());
            let init = |d: &burn::tensor::Device| match init_global {
                Some(path) => global_tuned::load(path, visual, d).map(|net| global_tuned::with_lifts(net, lifts)),
                None => global_tuned::init(visual, DEFAULT_FIRST_BLOCK, lifts, d),
            };
            let trained = global::train(init, &train_split, &dev, &compute.device, &config, &cancel, &on_epoch)?;
            let notes = [
                (
                    "recipe".to_string(),
                    format!("{} (fine-tuned layers at lr × {})", recipe(trained.best_epoch), global::BACKBONE_LR_SHARE),
                ),
                (
                    "finetuned".to_string(),
                    format!(
                        "visual blocks {DEFAULT_FIRST_BLOCK}.. + head: {}; MiniLM layer {}: {}",
                        lifts.visual,
                        alignscope::nets::TEXT_TOP_LAYER,
                        lifts.text
                    ),
                ),
                ("augmented_views".to_string(), train_split.views.len().to_string()),
                ("objects".to_string(), objects.to_string()),
                ("init".to_string(), init_global.map_or("fresh heads".into(), |p| p.display().to_string())),
                ("dev_rsum".to_string(), format!("{:.1}", trained.best_dev.rsum)),
            ];
            global_tuned::save(&trained.model, out, &notes)?;
            (trained.best_epoch, trained.best_dev, trained.seconds)
        }
    };
    Ok(format!(
        "best dev epoch {best_epoch} (rSum {:.1}); trained in {seconds:.0} s; wrote {}\n",
        best_dev.rsum,
        out.display()
    ))
}

pub fn fuse(
    request: BackendRequest,
    visual: &str,
    flickr8k: &Path,
    cache: &Path,
    global: &Path,
    shan_weights: Option<PathBuf>,
) -> anyhow::Result<String> {
    use alignscope::engine::recall::{Recalls, recalls};
    use alignscope::nets::shan;
    use alignscope::train::fusion;
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    // Both weights files, and that they fine-tune the same block, are checked before any split
    // is prepared.
    let (net, global_net) = alignscope::nets::shan_and_global(
        &shan_weights.unwrap_or_else(shan::default_path),
        global,
        visual,
        &compute.device,
    )?;
    let block = net.visual.first_block;
    let scored = |split: Split| -> anyhow::Result<fusion::SplitScores> {
        let data = source.fragments(split, block)?;
        eprintln!("scoring {split:?} ({} photos)…", data.len());
        fusion::split_scores(&net, &global_net, &data, &compute.device, &cancel)
    };
    let (dev, test) = (scored(Split::Dev)?, scored(Split::Test)?);
    let row = |label: &str, dev: &Recalls, test: &Recalls| {
        format!("{label:<55} dev {:6.1}  test {:6.1}  ({})\n", dev.rsum, test.rsum, both_ways(test))
    };
    let mut out =
        format!("rSum on all {} dev and {} test photos; fusion weights chosen on dev\n", dev.images, test.images);
    for (k, name) in fusion::SCORE_NAMES.iter().enumerate() {
        out.push_str(&row(name, &recalls(&dev.scores[k], dev.images, 5), &recalls(&test.scores[k], test.images, 5)));
    }
    for f in fusion::fusions(&dev, &test) {
        out.push_str(&row(&f.label, &f.dev, &f.test));
    }
    Ok(out)
}

/// `rankers`: the default ranker's candidates on dev and test (fusion weight and bank temperature
/// chosen on dev), their hubness, and with `write` the chosen bank written for the app.
pub fn rankers(
    request: BackendRequest,
    visual: &str,
    flickr8k: &Path,
    cache: &Path,
    write: Option<&Path>,
    folder: Option<&Path>,
) -> anyhow::Result<String> {
    use alignscope::features::checksums::sha256_file;
    use alignscope::nets::{global, shan};
    use alignscope::train::default_ranker::{self as ranker, SplitScores};
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    let (shan_path, global_path) = (shan::default_path(), global::default_path());
    let (net, global_net) = alignscope::nets::shan_and_global(&shan_path, &global_path, visual, &compute.device)?;
    let hash = |p: &Path| sha256_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    let made_with = (hash(&shan_path)?, hash(&global_path)?);
    let block = net.visual.first_block;
    let device = &compute.device;
    let scores = |split: Split| -> anyhow::Result<SplitScores> {
        let data = source.fragments(split, block)?;
        Ok(SplitScores::new(ranker::embed_split(&net, &global_net, &data, device)))
    };
    let (dev, test) = (scores(Split::Dev)?, scores(Split::Test)?);
    let bank = ranker::embed_bank(&net, &global_net, &source.fragments(Split::Train, block)?, device);
    let (candidates, chosen) = ranker::choose(&dev, &test, &bank, made_with);
    let mut out = format!(
        "rSum on all {} dev and {} test photos (weights chosen on dev); hubness: test photos' appearances in the 5,000 captions' top-10s\n",
        dev.images, test.images
    );
    for c in &candidates {
        out.push_str(&format!(
            "{:<76} dev {:6.1}  test {:6.1}  ({})  skew {:.2}, max {}, never {}\n",
            c.label,
            c.dev.rsum,
            c.test.rsum,
            both_ways(&c.test),
            c.test_hubness.skewness,
            c.test_hubness.max,
            c.test_hubness.never
        ));
    }
    if let Some(dir) = folder {
        // The folder's features with the chosen bank's normalisers, in memory (nothing is written).
        let mut runtime = alignscope::engine::runtime::Runtime::load(&compute, &shan_path, visual)?;
        runtime.bank = Ok(chosen.clone());
        let mut file = alignscope::data::index_file::IndexFile::new(runtime.index_header());
        for path in alignscope::data::folder::scan_folder(dir).images {
            match alignscope::data::decode::decode_oriented(&path) {
                Ok(photo) => {
                    let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                    file.entries.insert(rel, runtime.index_features(&photo));
                }
                Err(e) => eprintln!("warning: {e}"),
            }
        }
        let index = alignscope::engine::search::LoadedIndex::new(dir, file);
        out.push_str(&format!(
            "{} ({} photos) ranked by the {} test captions: the photo first most often\n",
            dir.display(),
            index.len(),
            test.embeddings().captions()
        ));
        for (name, hub, share) in ranker::folder_hubs(&index, test.embeddings(), &chosen) {
            out.push_str(&format!("  {name:<18} {hub} first for {share:.1} % of the captions\n"));
        }
    }
    if let Some(path) = write {
        chosen.save(path)?;
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    Ok(out)
}
