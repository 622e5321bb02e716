use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use alignscope::engine::backend::{BackendRequest, Compute};
use alignscope::engine::bench::EncoderBench;
use alignscope::engine::inspect;
use alignscope::engine::prepare::Source;

#[derive(Parser)]
#[command(name = "alignscope", version, about = "Explore how images and captions align")]
struct Cli {
    /// Compute backend for the model: auto (wgpu on a GPU, flex on a software adapter), wgpu, flex.
    #[arg(long, global = true)]
    backend: Option<BackendRequest>,
    /// Visual backbone for extract/train/eval: a weights file stem in assets/models.
    #[arg(long, global = true, default_value = "efficientnet-lite0")]
    visual: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the window (the default).
    Gui {
        /// Folder of photos to open (default: the last one, else the bundled demo).
        #[arg(long)]
        folder: Option<PathBuf>,
        /// Save a PNG of the window once the folder has loaded, then quit.
        #[arg(long)]
        screenshot: Option<PathBuf>,
        /// Start with this caption in the query box (the folder is ranked by it).
        #[arg(long)]
        query: Option<String>,
        /// Once ranked, select the N-th photo (1 = best) and open the inspector on it.
        #[arg(long)]
        select: Option<usize>,
        /// Browse a dataset instead of a photo folder: a Flickr8k folder (token file, split files,
        /// images/), a Karpathy-split JSON (Flickr30k, COCO; images beside it or in images/), or
        /// a folder holding one.
        #[arg(long)]
        dataset: Option<PathBuf>,
        /// The dataset split to browse: train, dev or test.
        #[arg(long, default_value = "test")]
        split: String,
    },
    /// Print the backend, the wgpu adapter and driver, and check that the backend computes.
    Doctor,
    /// What the backbones see: a photo's ImageNet top-5 and region grid, or a caption's word pieces.
    Features {
        /// A photo.
        image: Option<PathBuf>,
        /// A caption (instead of a photo).
        #[arg(long)]
        text: Option<String>,
    },
    /// Compute the frozen backbone layers once for a Flickr8k split into feature caches.
    Extract {
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// train, dev, test, or all.
        #[arg(long, default_value = "all")]
        split: String,
        /// Where the caches go (never inside the dataset).
        #[arg(long, default_value = "target/feature-cache")]
        out: PathBuf,
        /// Cache the input of this EfficientNet block (15: fine-tune the last block; 16: frozen).
        #[arg(long, default_value_t = 15)]
        image_block: usize,
        /// Cache the input of this MiniLM layer (5: fine-tune the last layer; 6: frozen).
        #[arg(long, default_value_t = 5)]
        text_layer: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
    },
    /// Train a matching model on Flickr8k (feature caches are built first if needed).
    Train {
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// `shan` (the hierarchical network), `dsran` (graph-attention dual encoder), `racg`
        /// (cross-graph relations) or `global` (the dual-encoder baseline).
        #[arg(long, default_value = "shan")]
        model: String,
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        /// Default: assets/models/MODEL.safetensors (written at every dev improvement for shan).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Global model: fine-tune EfficientNet's last block + head and MiniLM's last layer with
        /// the heads, as SHAN does (the baseline with SHAN's lifts; --frozen-visual and
        /// --frozen-text turn each off).
        #[arg(long)]
        tuned: bool,
        /// SHAN, tuned global: keep EfficientNet's last block + head frozen instead of fine-tuning it.
        #[arg(long)]
        frozen_visual: bool,
        /// SHAN: the first EfficientNet block of the fine-tuned top (15: the last block; 11: the
        /// last two stages).
        #[arg(long, default_value_t = alignscope::engine::shan::DEFAULT_FIRST_BLOCK)]
        visual_from_block: usize,
        /// SHAN, tuned global: keep MiniLM's last layer frozen instead of fine-tuning it.
        #[arg(long)]
        frozen_text: bool,
        /// SHAN, DSRAN, RACG: epochs at most (training stops earlier after 3 without a dev gain).
        #[arg(long, default_value_t = 20)]
        max_epochs: usize,
        /// Model selection on the first N dev images (default: 500 for SHAN, all 1,000 for DSRAN
        /// and RACG).
        #[arg(long, value_parser = at_least_one())]
        dev_images: Option<usize>,
        /// `infonce` (symmetric, learned temperature) or `hinge` (VSE++ hardest negatives, margin
        /// 0.2, first epoch over all negatives).
        #[arg(long, default_value = "infonce")]
        loss: alignscope::model::loss::Loss,
        /// SHAN, DSRAN, RACG: continue from the checkpoint at --out (its best epoch) instead of starting over.
        #[arg(long)]
        resume: bool,
        /// SHAN, DSRAN, RACG: multiply the recipe's learning rates by this factor (e.g. 0.1
        /// with --resume: the papers' step decay once dev stops rising).
        #[arg(long, default_value_t = 1.0, value_parser = positive_factor)]
        lr_factor: f64,
        /// Global model, SHAN: once dev stops rising (or after --max-epochs for SHAN), go on from
        /// the best epoch at a tenth of the learning rates for up to N epochs (the step decay; 0: none).
        #[arg(long, default_value_t = 0)]
        decay_epochs: usize,
        /// SHAN: start the backbone tops from a tuned global model's weights file (`train
        /// --model global --tuned`) instead of the pretrained backbones.
        #[arg(long)]
        init_tops: Option<PathBuf>,
        /// SHAN: weight of each level's and the embeddings' own InfoNCE terms beside the final
        /// score's (default 0.25).
        #[arg(long, value_parser = positive_factor)]
        aux_weight: Option<f64>,
        /// SHAN, tuned global: N augmented views of every training photo (random crop of 50–100 %
        /// of the area, flip), cached once each; every step draws the photo or one of them.
        #[arg(long, default_value_t = 0)]
        aug_views: usize,
    },
    /// Choose the levels' weights in the final score on dev and write them into the weights file
    /// (SHAN: L2L, G2L, G2G, which `train` does after its best epoch; RACG: the graph level's
    /// share beside the node level).
    TuneLevels {
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        /// `shan` or `racg`.
        #[arg(long, default_value = "shan")]
        model: String,
        /// Default: the committed weights of --model.
        #[arg(long)]
        weights: Option<PathBuf>,
        #[arg(long, default_value_t = 500, value_parser = at_least_one())]
        dev_images: usize,
    },
    /// Fuse SHAN's scores with a tuned global model's (`train --model global --tuned`): weights
    /// chosen on the dev split, Recall@K on test, beside the control (SHAN's own embedding fused
    /// with the same global model).
    Fuse {
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        /// The tuned global model's weights. Default: the committed global model.
        #[arg(long)]
        global: Option<PathBuf>,
        /// Default: the committed SHAN weights.
        #[arg(long)]
        shan: Option<PathBuf>,
    },
    /// Recall@K on a Flickr8k split, the papers' protocol.
    Eval {
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        #[arg(long, default_value = "shan")]
        model: String,
        #[arg(long, default_value = "test")]
        split: String,
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        #[arg(long)]
        json: bool,
        /// Model weights (default: the committed assets/models/MODEL.safetensors).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// SHAN, DSRAN, RACG: only the split's first N images (e.g. the 500 dev images training
        /// selects on); the papers' protocol is the whole 1K test.
        #[arg(long, value_parser = at_least_one())]
        images: Option<usize>,
    },
    /// Index a folder of photos (recursively) for search; incremental, resumable, Ctrl-C safe.
    /// Exit status 2 when some photos could not be indexed.
    Index {
        dir: PathBuf,
        /// Model weights (default: the committed assets/models/shan.safetensors).
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Rank a folder's photos by a caption (indexing first where needed): `SCORE<TAB>PATH` lines.
    Search {
        dir: PathBuf,
        caption: Option<String>,
        /// Rank by similarity to an example photo instead of a caption.
        #[arg(long)]
        image: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Photos SHAN re-scores after the embedding pre-rank.
        #[arg(long, default_value_t = alignscope::engine::search::DEFAULT_CANDIDATES)]
        candidates: usize,
        /// Score every photo with SHAN (no pre-rank).
        #[arg(long)]
        exhaustive: bool,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Why a photo and a caption match: SHAN's level scores and each word's region attention.
    Explain {
        image: PathBuf,
        caption: String,
        /// Print one JSON object (scores, boxes, per word: pieces, alignment, attention).
        #[arg(long)]
        json: bool,
        /// Also write a PNG: level scores, a legend, and each word's heatmap over the photo.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Model weights (default: the committed assets/models/shan.safetensors).
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Benchmarks that print figures and ratios.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Images/s (decode + resize + EfficientNet-Lite0) and captions/s (MiniLM) per backend, beside PyTorch.
    Encoders {
        /// Flickr8k folder for photos and captions (else the demo folder).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        #[arg(long, default_value_t = 64)]
        images: usize,
        #[arg(long, default_value_t = 256)]
        captions: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 64)]
        text_batch: usize,
        /// Python with torch + the model wheels, to run tools/bench_reference.py on the same inputs.
        #[arg(long)]
        python: Option<PathBuf>,
    },
    /// Query latency of global, DSRAN and RACG over a synthetic folder, and their parameter counts.
    Networks {
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        photos: usize,
        #[arg(long, default_value_t = 20)]
        queries: usize,
    },
    /// Search latency over a synthetic index (two-stage vs exhaustive), indexing throughput, and the
    /// recall two-stage search keeps on the Flickr8k 1K test as a folder.
    Search {
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        photos: usize,
        #[arg(long, default_value_t = 50)]
        queries: usize,
        #[arg(long, default_value_t = alignscope::engine::search::DEFAULT_CANDIDATES)]
        candidates: usize,
        #[arg(long)]
        weights: Option<PathBuf>,
    },
}

/// A count of images: 0 would leave nothing to rank.
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

fn positive_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Gui { folder: None, screenshot: None, query: None, select: None, dataset: None, split: "test".into() }) {
        Command::Gui { folder, screenshot, query, select, dataset, split } => {
            let split = match split.parse() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("alignscope: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let options = alignscope::app::GuiOptions { folder, backend: cli.backend, screenshot, query, select, dataset: dataset.map(|d| (d, split)) };
            match alignscope::app::run(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("alignscope: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Doctor => {
            let (report, ok) = alignscope::engine::doctor::report(cli.backend.unwrap_or_default());
            print!("{report}");
            if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::Bench { what: BenchWhat::Encoders { flickr8k, images, captions, batch, text_batch, python } } => {
            let (images, captions) = EncoderBench::inputs(&flickr8k, &alignscope::app::demo_folder(), images, captions);
            report(EncoderBench { images, captions, batch: batch.max(1), text_batch: text_batch.max(1), python, only: cli.backend }.run())
        }
        Command::Bench { what: BenchWhat::Search { flickr8k, photos, queries, candidates, weights } } => {
            let bench = alignscope::engine::search_bench::SearchBench { photos, queries: queries.max(1), candidates, flickr8k };
            report(shan_runtime(cli.backend.unwrap_or_default(), &cli.visual, weights).and_then(|runtime| bench.run(&runtime)))
        }
        Command::Bench { what: BenchWhat::Networks { flickr8k, photos, queries } } => {
            let captions = alignscope::data::flickr8k::load_split(&flickr8k, alignscope::data::flickr8k::Split::Test).map(|d| d.captions.into_iter().map(|c| c[0].clone()).collect()).unwrap_or_else(|_| vec!["a dog runs through the grass".to_string()]);
            let bench = alignscope::engine::networks_bench::NetworksBench { photos: photos.max(1), queries: queries.max(1), captions };
            report(compute(cli.backend.unwrap_or_default()).and_then(|compute| {
                let ranker = alignscope::engine::rank::Ranker::load(&compute)?;
                let shan = alignscope::engine::shan::load(&alignscope::engine::shan::default_path(), &cli.visual, &compute.device).ok();
                bench.run(&ranker, shan.as_ref())
            }))
        }
        Command::Extract { flickr8k, split, out, image_block, text_layer, batch } => {
            report(extract(cli.backend.unwrap_or_default(), &cli.visual, flickr8k, &split, out, image_block, text_layer, batch))
        }
        Command::Train { flickr8k, model, cache, out, tuned, frozen_visual, visual_from_block, frozen_text, max_epochs, dev_images, loss, resume, lr_factor, decay_epochs, init_tops, aux_weight, aug_views } => {
            let backend = cli.backend.unwrap_or_default();
            let out = out.unwrap_or_else(|| PathBuf::from(format!("assets/models/{model}.safetensors")));
            let lifts = alignscope::engine::global_tuned::Lifts { visual: !frozen_visual, text: !frozen_text };
            if tuned && model != "global" {
                return report(Err(anyhow::anyhow!("--tuned is for --model global (SHAN fine-tunes its backbone tops unless told --frozen-visual / --frozen-text)")));
            }
            if (init_tops.is_some() || aux_weight.is_some()) && model != "shan" {
                return report(Err(anyhow::anyhow!("--init-tops and --aux-weight are for --model shan")));
            }
            if aug_views > 0 && !(model == "shan" || tuned) {
                return report(Err(anyhow::anyhow!("--aug-views is for --model shan and --model global --tuned (the others train on pooled or frozen features)")));
            }
            match model.as_str() {
                "global" => report(train(backend, &cli.visual, &flickr8k, &cache, &out, loss, decay_epochs, tuned.then_some(lifts), aug_views)),
                "dsran" | "racg" => report(train_frozen(backend, &cli.visual, &flickr8k, &cache, &out, &model, loss, max_epochs, dev_images.unwrap_or(usize::MAX), resume, lr_factor)),
                "shan" => {
                    let defaults = alignscope::engine::shan::ShanTrainConfig::default();
                    let (lr, backbone_lr) = (defaults.lr * lr_factor, defaults.backbone_lr * lr_factor);
                    let config = alignscope::engine::shan::ShanTrainConfig { finetune_visual: !frozen_visual, visual_first_block: visual_from_block, loss, resume, finetune_text: !frozen_text, max_epochs, dev_images: dev_images.unwrap_or(500), lr, backbone_lr, decay_epochs, init_tops, aux_weight: aux_weight.unwrap_or(defaults.aux_weight), ..defaults };
                    report(train_shan(backend, &cli.visual, &flickr8k, &cache, &out, &config, aug_views))
                }
                other => report(Err(unknown_model(other))),
            }
        }
        Command::Fuse { flickr8k, cache, global, shan } => report(fuse(cli.backend.unwrap_or_default(), &cli.visual, &flickr8k, &cache, &global.unwrap_or_else(alignscope::engine::global::default_path), shan)),
        Command::Eval { flickr8k, model, split, cache, json, weights, images } => {
            report(eval(cli.backend.unwrap_or_default(), &cli.visual, &flickr8k, &model, &split, &cache, json, weights, images.unwrap_or(usize::MAX)))
        }
        Command::Index { dir, weights } => match index_command(cli.backend.unwrap_or_default(), &cli.visual, &dir, weights) {
            Ok((out, failed)) => {
                print!("{out}");
                if failed { ExitCode::from(2) } else { ExitCode::SUCCESS }
            }
            Err(e) => report(Err(e)),
        },
        Command::Search { dir, caption, image, top, candidates, exhaustive, json, weights } => {
            let options = alignscope::engine::search::SearchOptions { top, candidates, exhaustive };
            report(search_command(cli.backend.unwrap_or_default(), &cli.visual, &dir, caption, image, options, json, weights))
        }
        Command::TuneLevels { flickr8k, cache, model, weights, dev_images } => report(tune_levels(cli.backend.unwrap_or_default(), &cli.visual, &flickr8k, &cache, &model, weights, dev_images)),
        Command::Explain { image, caption, json, out, weights } => report(explain(cli.backend.unwrap_or_default(), &cli.visual, &image, &caption, json, out.as_deref(), weights)),
        Command::Features { image, text } => report(features(cli.backend.unwrap_or_default(), &cli.visual, image, text)),
    }
}

/// A headless compute context; says on stderr which backend runs and why.
fn compute(request: BackendRequest) -> anyhow::Result<Compute> {
    let compute = Compute::headless(request)?;
    eprintln!("{}", compute.describe());
    Ok(compute)
}

fn features(request: BackendRequest, visual: &str, image: Option<PathBuf>, text: Option<String>) -> anyhow::Result<String> {
    match (image, text) {
        (Some(image), None) => inspect::describe_image(&compute(request)?, &image, visual),
        (None, Some(text)) => inspect::describe_caption(&compute(request)?, &text),
        _ => anyhow::bail!("give either a photo or --text \"CAPTION\""),
    }
}

fn extract(request: BackendRequest, visual: &str, flickr8k: PathBuf, split: &str, out: PathBuf, image_block: usize, text_layer: usize, batch: usize) -> anyhow::Result<String> {
    use alignscope::data::flickr8k::Split;
    use alignscope::engine::extract::{ExtractMsg, ExtractOptions, extract};
    let splits = match split {
        "all" => vec![Split::Train, Split::Dev, Split::Test],
        one => vec![one.parse::<Split>().map_err(anyhow::Error::msg)?],
    };
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let stage_start = std::cell::RefCell::new((String::new(), std::time::Instant::now()));
    let mut out_text = String::new();
    for split in splits {
        let options = ExtractOptions { flickr8k: flickr8k.clone(), visual: visual.to_string(), split, out_dir: out.clone(), image_block, text_layer, batch, view: 0 };
        let _caches = extract(&compute, &options, &cancel, &|m| match m {
            ExtractMsg::Progress { stage, done, total } => {
                let mut current = stage_start.borrow_mut();
                if current.0 != stage {
                    *current = (stage.clone(), std::time::Instant::now());
                }
                let rate = done as f64 / current.1.elapsed().as_secs_f64().max(1e-9);
                eprint!("\r{stage}: {done}/{total} ({rate:.1}/s)      ");
            }
            ExtractMsg::Warning(w) => eprintln!("\nwarning: {w}"),
            ExtractMsg::UpToDate(p) => eprintln!("\nup to date: {}", p.display()),
            ExtractMsg::Saved(p) => eprintln!("\nwrote {}", p.display()),
        })?;
    }
    out_text.push_str(&format!("done in {:.1} s\n", started.elapsed().as_secs_f64()));
    Ok(out_text)
}

fn progress(m: alignscope::engine::extract::ExtractMsg) {
    use alignscope::engine::extract::ExtractMsg;
    match m {
        ExtractMsg::Progress { stage, done, total } => eprint!("\r{stage}: {done}/{total}      "),
        ExtractMsg::Warning(w) => eprintln!("\nwarning: {w}"),
        ExtractMsg::UpToDate(p) => eprintln!("cache up to date: {}", p.display()),
        ExtractMsg::Saved(p) => eprintln!("\nwrote {}", p.display()),
    }
}

fn unknown_model(model: &str) -> anyhow::Error {
    anyhow::anyhow!("model `{model}` is not built yet (available: shan, dsran, racg, global)")
}

fn train_shan(request: BackendRequest, visual: &str, flickr8k: &std::path::Path, cache: &std::path::Path, out: &std::path::Path, config: &alignscope::engine::shan::ShanTrainConfig, aug_views: usize) -> anyhow::Result<String> {
    use alignscope::data::flickr8k::Split;
    use alignscope::engine::shan::{self, ShanTrainMsg};
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    let train_split = source.fragments_with_views(Split::Train, config.visual_first_block, aug_views)?;
    let dev = source.fragments(Split::Dev, config.visual_first_block)?.truncated(config.dev_images);
    eprintln!("prepared {} train and {} dev images in {:.0} s", train_split.len(), dev.len(), started.elapsed().as_secs_f64());
    let line = |name: &str, r: &alignscope::engine::recall::Recalls| format!("{name} {:.1} ({:.1}/{:.1}/{:.1}, {:.1}/{:.1}/{:.1})", r.rsum, r.i2t[0], r.i2t[1], r.i2t[2], r.t2i[0], r.t2i[1], r.t2i[2]);
    let trained = shan::train(visual, &train_split, &dev, &compute.device, config, Some(out), &cancel, &|m| match m {
        ShanTrainMsg::Step { epoch, step, steps, loss, seconds_per_step, phases: [e, s, b, o] } => {
            eprint!("\repoch {epoch:2} step {step}/{steps} loss {loss:.4} ({seconds_per_step:.2} s/step: encode {e:.2}, score {s:.2}, backward {b:.2}, update {o:.2})   ")
        }
        ShanTrainMsg::Resumed { epoch, dev } => eprintln!("resumed after epoch {epoch}: dev {}", line("full", &dev.full)),
        ShanTrainMsg::Weights { weights: [a, b, c], dev } => eprintln!("level weights chosen on dev: L2L {a}, G2L {b}, G2G {c}: {}", line("full", &dev)),
        ShanTrainMsg::Epoch { epoch, lr, loss, dev, train_seconds, eval_seconds, best } => eprintln!(
            "\nepoch {epoch:2}  lr {lr:.0e}  loss {loss:.4}  dev {}  {}  {}  {}  {}  train {train_seconds:.0} s, dev {eval_seconds:.0} s{}",
            line("full", &dev.full), line("l2l", &dev.l2l), line("g2l", &dev.g2l), line("g2g", &dev.g2g), line("emb", &dev.embedding), if best { "  *" } else { "" }
        ),
    })?;
    Ok(format!("best dev epoch {} (full rSum {:.1} on {} dev images); trained in {:.0} s; wrote {}\n", trained.best_epoch, trained.best_dev.full.rsum, dev.len(), trained.seconds, out.display()))
}

/// Train DSRAN or RACG (the networks on the frozen backbones) with the shared loop.
#[allow(clippy::too_many_arguments)]
fn train_frozen(request: BackendRequest, visual: &str, flickr8k: &std::path::Path, cache: &std::path::Path, out: &std::path::Path, model: &str, loss: alignscope::model::loss::Loss, max_epochs: usize, dev_images: usize, resume: bool, lr_factor: f64) -> anyhow::Result<String> {
    use alignscope::data::flickr8k::Split;
    use alignscope::engine::frozen::{self, FrozenTrainMsg};
    use alignscope::engine::recipe::Recipe;
    // A bad checkpoint is named before minutes of data preparation.
    let resumed = resumed_from(resume, out)?;
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    let device = &compute.device;
    let train_split = source.frozen(Split::Train, usize::MAX)?;
    let dev = source.frozen(Split::Dev, dev_images)?;
    eprintln!("prepared {} train and {} dev images in {:.0} s", train_split.len(), dev.len(), started.elapsed().as_secs_f64());
    let defaults = Recipe::default();
    let recipe = Recipe { loss, max_epochs, patience: 3, lr: defaults.lr * lr_factor, ..defaults };
    let report = |m: FrozenTrainMsg| match m {
        FrozenTrainMsg::Step { epoch, step, steps, loss, seconds_per_step } => eprint!("\repoch {epoch:2} step {step}/{steps} loss {loss:.4} ({seconds_per_step:.2} s/step)   "),
        FrozenTrainMsg::Epoch { epoch, loss, dev, seconds, best } => eprintln!(
            "\nepoch {epoch:2}  loss {loss:.4}  dev rSum {:.1} ({})  {seconds:.0} s{}",
            dev.rsum, both_ways(&dev), if best { "  *" } else { "" }
        ),
    };
    let ad = device.clone().autodiff();
    let (epoch, rsum) = match model {
        "dsran" => {
            use alignscope::engine::dsran;
            let config = alignscope::model::dsran::DsranConfig::new();
            let net = if resumed.is_some() { dsran::load(out, &ad)? } else { config.init(&ad) };
            let (_, epoch, r) = frozen::train(net, resumed, &train_split, &dev, device, &recipe, &|net, e, r| dsran::save(net, out, &config, &frozen::notes(&recipe, e, r)), &cancel, &report)?;
            (epoch, r.rsum)
        }
        _ => {
            use alignscope::engine::racg;
            let config = alignscope::model::racg::RacgConfig::new();
            let mut net = if resumed.is_some() { racg::load(out, &ad)? } else { config.init(&ad) };
            // A tuned checkpoint trains on with the training mix (tune-levels again afterwards).
            net.graph_share = alignscope::model::racg::TRAINING_GRAPH_SHARE;
            let (_, epoch, r) = frozen::train(net, resumed, &train_split, &dev, device, &recipe, &|net, e, r| racg::save(net, out, &config, &frozen::notes(&recipe, e, r)), &cancel, &report)?;
            (epoch, r.rsum)
        }
    };
    Ok(format!("best dev epoch {epoch} (rSum {rsum:.1}); trained in {:.0} s; wrote {}\n", started.elapsed().as_secs_f64(), out.display()))
}

/// With `--resume` and a checkpoint at `out`: the epoch it holds (its `best_epoch` note).
fn resumed_from(resume: bool, out: &std::path::Path) -> anyhow::Result<Option<usize>> {
    if !resume || !out.is_file() {
        return Ok(None);
    }
    let epoch: usize = alignscope::features::weights::WeightFile::open(out)?.metadata_parsed("best_epoch")?;
    eprintln!("resuming from {} (epoch {epoch})", out.display());
    Ok(Some(epoch))
}

fn tune_levels(request: BackendRequest, visual: &str, flickr8k: &std::path::Path, cache: &std::path::Path, model: &str, weights: Option<PathBuf>, dev_images: usize) -> anyhow::Result<String> {
    use alignscope::engine::{racg, shan};
    anyhow::ensure!(matches!(model, "shan" | "racg"), "tune-levels is for shan and racg, not `{model}`");
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    if model == "racg" {
        let weights = weights.unwrap_or_else(racg::default_path);
        // A bad weights file is named before the dev split is prepared.
        let net = racg::load(&weights, &compute.device)?;
        let dev = source.frozen(alignscope::data::flickr8k::Split::Dev, dev_images)?;
        let (chosen, grid) = racg::tune_graph_share(net, &weights, &dev, &compute.device)?;
        let mut out = format!("dev rSum on {} images by the graph level's share (0: node level alone, 1: graph level alone):\n", dev.len());
        for (i, (s, r)) in grid.iter().enumerate() {
            out.push_str(&format!("  {s:.1}  {:.1}{}\n", r.rsum, if i == chosen { "  chosen" } else { "" }));
        }
        out.push_str(&format!("wrote {}\n", weights.display()));
        return Ok(out);
    }
    let weights = &weights.unwrap_or_else(shan::default_path);
    let mut net = shan::load(weights, visual, &compute.device)?;
    let dev = source.fragments(alignscope::data::flickr8k::Split::Dev, net.visual.first_block)?.truncated(dev_images);
    let (chosen, r) = shan::choose_level_weights(&net, &dev, &compute.device, &cancel)?;
    net.shan.weights = chosen;
    let file = alignscope::features::weights::WeightFile::open(weights)?;
    let config = shan::saved_config(&file, weights)?;
    let notes: Vec<(String, String)> = ["recipe", "finetuned", "augmented_views", "best_epoch"].iter().filter_map(|k| file.metadata(k).ok().map(|v| (k.to_string(), v))).chain([("dev_rsum".to_string(), format!("{:.1} (first {} dev images, level weights chosen there)", r.rsum, dev.len()))]).collect();
    shan::save(&net, weights, &config, &notes)?;
    Ok(format!("level weights L2L {}, G2L {}, G2G {}: dev rSum {:.1} on {} images; wrote {}\n", chosen[0], chosen[1], chosen[2], r.rsum, dev.len(), weights.display()))
}

/// The global model on frozen pooled features, or with `lifts` (the backbone tops SHAN fine-tunes).
#[allow(clippy::too_many_arguments)]
fn train(request: BackendRequest, visual: &str, flickr8k: &std::path::Path, cache: &std::path::Path, out: &std::path::Path, loss: alignscope::model::loss::Loss, decay_epochs: usize, lifts: Option<alignscope::engine::global_tuned::Lifts>, aug_views: usize) -> anyhow::Result<String> {
    use alignscope::data::flickr8k::Split;
    use alignscope::engine::global::{self, TrainConfig, TrainMsg};
    use alignscope::engine::global_tuned;
    use alignscope::engine::shan::DEFAULT_FIRST_BLOCK;
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    let config = TrainConfig { loss, decay_epochs, ..TrainConfig::default() };
    let on_epoch = |m| match m {
        TrainMsg::Epoch { epoch, lr, loss, dev, seconds, best } => eprintln!(
            "epoch {epoch:2}  lr {lr:.0e}  loss {loss:.4}  dev rSum {:.1} ({})  {seconds:.1} s{}",
            dev.rsum, both_ways(&dev), if best { "  *" } else { "" }
        ),
    };
    let recipe = |best_epoch: usize| format!("B: batch {}, AdamW lr {} wd {}, loss {:?}, then lr ×0.1 for up to {} epochs; best dev epoch {}", config.batch, config.lr, config.weight_decay, config.loss, config.decay_epochs, best_epoch);
    let prepared = |n: usize, d: usize| eprintln!("prepared {n} train and {d} dev images in {:.0} s", started.elapsed().as_secs_f64());
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
            global::save(&trained.model, out, metadata)?;
            (trained.best_epoch, trained.best_dev, trained.seconds)
        }
        Some(lifts) => {
            let (train_split, dev) = (source.fragments_with_views(Split::Train, DEFAULT_FIRST_BLOCK, aug_views)?, source.fragments(Split::Dev, DEFAULT_FIRST_BLOCK)?);
            prepared(train_split.len(), dev.len());
            let init = |d: &burn::tensor::Device| global_tuned::init(visual, DEFAULT_FIRST_BLOCK, lifts, d);
            let trained = global::train(init, &train_split, &dev, &compute.device, &config, &cancel, &on_epoch)?;
            let notes = [
                ("recipe".to_string(), format!("{} (fine-tuned layers at lr × {})", recipe(trained.best_epoch), global_tuned::BACKBONE_LR_SHARE)),
                ("finetuned".to_string(), format!("visual blocks {DEFAULT_FIRST_BLOCK}.. + head: {}; MiniLM layer {}: {}", lifts.visual, alignscope::engine::shan::TEXT_TOP_LAYER, lifts.text)),
                ("augmented_views".to_string(), train_split.views.len().to_string()),
                ("dev_rsum".to_string(), format!("{:.1}", trained.best_dev.rsum)),
            ];
            global_tuned::save(&trained.model, out, &notes)?;
            (trained.best_epoch, trained.best_dev, trained.seconds)
        }
    };
    Ok(format!("best dev epoch {best_epoch} (rSum {:.1}); trained in {seconds:.0} s; wrote {}\n", best_dev.rsum, out.display()))
}

/// R@1/5/10 both ways: "i2t a/b/c, t2i d/e/f".
fn both_ways(r: &alignscope::engine::recall::Recalls) -> String {
    format!("i2t {:.1}/{:.1}/{:.1}, t2i {:.1}/{:.1}/{:.1}", r.i2t[0], r.i2t[1], r.i2t[2], r.t2i[0], r.t2i[1], r.t2i[2])
}

fn fuse(request: BackendRequest, visual: &str, flickr8k: &std::path::Path, cache: &std::path::Path, global: &std::path::Path, shan_weights: Option<PathBuf>) -> anyhow::Result<String> {
    use alignscope::data::flickr8k::Split;
    use alignscope::engine::recall::{Recalls, recalls};
    use alignscope::engine::{fusion, global_tuned, shan};
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    // Both weights files, and that they fine-tune the same block, are checked before any split
    // is prepared.
    let net = shan::load(&shan_weights.unwrap_or_else(shan::default_path), visual, &compute.device)?;
    anyhow::ensure!(global_tuned::is_tuned(&alignscope::features::weights::WeightFile::open(global)?), "{}: not a tuned global model (train it with `train --model global --tuned`)", global.display());
    let global_net = global_tuned::load(global, visual, &compute.device)?;
    let block = net.visual.first_block;
    anyhow::ensure!(global_net.visual.first_block == block, "{}: fine-tuned from block {}, SHAN from block {block}", global.display(), global_net.visual.first_block);
    let scored = |split: Split| -> anyhow::Result<fusion::SplitScores> {
        let data = source.fragments(split, block)?;
        eprintln!("scoring {split:?} ({} photos)…", data.len());
        fusion::split_scores(&net, &global_net, &data, &compute.device, &cancel)
    };
    let (dev, test) = (scored(Split::Dev)?, scored(Split::Test)?);
    let row = |label: &str, dev: &Recalls, test: &Recalls| format!("{label:<55} dev {:6.1}  test {:6.1}  ({})\n", dev.rsum, test.rsum, both_ways(test));
    let mut out = format!("rSum on all {} dev and {} test photos; fusion weights chosen on dev\n", dev.images, test.images);
    for (k, name) in fusion::SCORE_NAMES.iter().enumerate() {
        out.push_str(&row(name, &recalls(&dev.scores[k], dev.images, 5), &recalls(&test.scores[k], test.images, 5)));
    }
    for f in fusion::fusions(&dev, &test) {
        out.push_str(&row(&f.label, &f.dev, &f.test));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn eval(request: BackendRequest, visual: &str, flickr8k: &std::path::Path, model: &str, split: &str, cache: &std::path::Path, json: bool, weights: Option<PathBuf>, first: usize) -> anyhow::Result<String> {
    use alignscope::engine::recall::Recalls;
    use alignscope::engine::{global, shan};
    let which: alignscope::data::flickr8k::Split = split.parse().map_err(anyhow::Error::msg)?;
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    // (level name, recalls) in the order they are reported; "full" first.
    let (levels, images, seconds): (Vec<(&str, Recalls)>, usize, f64) = match model {
        "global" => {
            anyhow::ensure!(first == usize::MAX, "--images is for shan, dsran and racg");
            use alignscope::engine::global_tuned;
            let path = weights.unwrap_or_else(global::default_path);
            // Timed from the cached activations: the frozen layers' pass is the pooled model's input.
            let timed = |evaluate: &dyn Fn() -> Recalls| {
                let started = std::time::Instant::now();
                (evaluate(), started.elapsed().as_secs_f64())
            };
            let ((r, seconds), images) = match global_tuned::load_any(&path, visual, &compute.device)? {
                global_tuned::AnyGlobal::Tuned(net) => {
                    let data = source.fragments(which, net.visual.first_block)?;
                    (timed(&|| global::evaluate(&net, &data, &compute.device)), data.len())
                }
                global_tuned::AnyGlobal::Frozen(net) => {
                    let data = source.pooled(which)?;
                    (timed(&|| global::evaluate(&net, &data, &compute.device)), data.len())
                }
            };
            (vec![("full", r)], images, seconds)
        }
        "shan" => {
            let net = shan::load(&weights.unwrap_or_else(shan::default_path), visual, &compute.device)?;
            let data = source.fragments(which, net.visual.first_block)?.truncated(first);
            let started = std::time::Instant::now();
            let r = shan::evaluate(&net, &data, &compute.device, &cancel)?;
            (vec![("full", r.full), ("l2l", r.l2l), ("g2l", r.g2l), ("g2g", r.g2g), ("embedding", r.embedding)], data.len(), started.elapsed().as_secs_f64())
        }
        "dsran" | "racg" => {
            use alignscope::engine::frozen::evaluate;
            use alignscope::engine::{dsran, racg};
            let data = source.frozen(which, first)?;
            let started = std::time::Instant::now();
            let levels = if model == "dsran" {
                vec![("full", evaluate(&dsran::load(&weights.unwrap_or_else(dsran::default_path), &compute.device)?, &data, &compute.device))]
            } else {
                racg::evaluate_levels(&racg::load(&weights.unwrap_or_else(racg::default_path), &compute.device)?, &data, &compute.device).to_vec()
            };
            (levels, data.len(), started.elapsed().as_secs_f64())
        }
        other => return Err(unknown_model(other)),
    };
    if json {
        let round = |v: f64| (v * 10.0).round() / 10.0;
        let mut object = serde_json::json!({ "model": model, "split": split, "images": images, "seconds": (seconds * 100.0).round() / 100.0 });
        for (name, r) in &levels {
            object[*name] = serde_json::json!({ "i2t": r.i2t.map(round), "t2i": r.t2i.map(round), "rsum": round(r.rsum) });
        }
        return Ok(format!("{object}\n"));
    }
    let mut out = format!("{model} on Flickr8k {split} ({images} images × 5 captions, scored in {seconds:.1} s):\n");
    for (name, r) in &levels {
        out.push_str(&format!("  {name:9} i2t R@1/5/10 {:.1}/{:.1}/{:.1}, t2i {:.1}/{:.1}/{:.1}, rSum {:.1}\n", r.i2t[0], r.i2t[1], r.i2t[2], r.t2i[0], r.t2i[1], r.t2i[2], r.rsum));
    }
    Ok(out)
}

/// The runtime SHAN's index and search use, with the default weights unless told otherwise.
fn shan_runtime(request: BackendRequest, visual: &str, weights: Option<PathBuf>) -> anyhow::Result<alignscope::engine::runtime::Runtime> {
    let compute = compute(request)?;
    alignscope::engine::runtime::Runtime::load(&compute, &weights.unwrap_or_else(alignscope::engine::shan::default_path), visual)
}

/// The cancel token Ctrl-C trips (set once, read by the signal handler).
static INTERRUPT: std::sync::OnceLock<alignscope::engine::jobs::CancelToken> = std::sync::OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    // Only an atomic store: safe inside a signal handler.
    if let Some(token) = INTERRUPT.get() {
        token.cancel();
    }
}

/// Update `dir`'s index with a progress line (count, rate, ETA); Ctrl-C stops after the batch
/// in flight and keeps everything indexed so far.
fn update_index_cli(runtime: &alignscope::engine::runtime::Runtime, dir: &std::path::Path) -> anyhow::Result<(alignscope::engine::index::IndexSummary, alignscope::data::index_file::IndexFile)> {
    use alignscope::engine::index::{IndexMsg, update_index};
    use std::io::IsTerminal as _;
    let cancel = INTERRUPT.get_or_init(Default::default).clone();
    // SAFETY: installs a handler that performs one atomic store.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let result = update_index(runtime, dir, &cancel, &|m| match m {
        IndexMsg::Planned { photos, to_embed, unchanged, removed } => eprintln!("{photos} photos: {unchanged} unchanged, {to_embed} to embed, {removed} removed from the index"),
        IndexMsg::Embedded { done, total } if tty => {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-6);
            let eta = (total - done) as f64 / rate.max(1e-6);
            eprint!("\rembedding {done}/{total} photos, {rate:.1}/s, ETA {eta:.0} s   ");
        }
        IndexMsg::Embedded { .. } => {}
        IndexMsg::Warning(w) => eprintln!("{}warning: {w}", if tty { "\n" } else { "" }),
    });
    if tty {
        eprintln!();
    }
    result
}

fn index_command(request: BackendRequest, visual: &str, dir: &std::path::Path, weights: Option<PathBuf>) -> anyhow::Result<(String, bool)> {
    let runtime = shan_runtime(request, visual, weights)?;
    let (s, file) = update_index_cli(&runtime, dir)?;
    let mut out = format!(
        "{}: {} photos indexed ({} embedded, {} unchanged, {} removed) in {:.1} s\n",
        s.index_path.display(),
        file.entries.len(),
        s.embedded,
        s.unchanged,
        s.removed,
        s.seconds
    );
    if !s.failed.is_empty() {
        out.push_str(&format!("{} could not be indexed (see the warnings above)\n", s.failed.len()));
    }
    if s.cancelled {
        out.push_str("interrupted: what was embedded is saved; run again to finish\n");
    }
    Ok((out, !s.failed.is_empty() || s.cancelled))
}

#[allow(clippy::too_many_arguments)]
fn search_command(request: BackendRequest, visual: &str, dir: &std::path::Path, caption: Option<String>, image: Option<PathBuf>, options: alignscope::engine::search::SearchOptions, json: bool, weights: Option<PathBuf>) -> anyhow::Result<String> {
    use alignscope::engine::search::{LoadedIndex, search_caption, search_image};
    let runtime = shan_runtime(request, visual, weights)?;
    let (_, file) = update_index_cli(&runtime, dir)?;
    let index = LoadedIndex::new(dir, file);
    let started = std::time::Instant::now();
    let (hits, query) = match (caption, image) {
        (Some(caption), None) => {
            let (hits, warning) = search_caption(&runtime, &index, &caption, options)?;
            if let Some(w) = warning {
                eprintln!("warning: {w}");
            }
            (hits, serde_json::json!({ "caption": caption }))
        }
        (None, Some(image)) => (search_image(&runtime, &index, &image, options.top)?, serde_json::json!({ "image": image })),
        _ => anyhow::bail!("give either a caption or --image PHOTO"),
    };
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let stage = if options.exhaustive { "exhaustive" } else { "two-stage" };
        let object = serde_json::json!({ "query": query, "photos": index.len(), "search": stage, "candidates": options.candidates, "seconds": seconds, "results": hits });
        return Ok(format!("{object}\n"));
    }
    Ok(hits.iter().map(|h| format!("{:.4}\t{}\n", h.score, h.path.display())).collect())
}

fn explain(request: BackendRequest, visual: &str, image: &std::path::Path, caption: &str, json: bool, out: Option<&std::path::Path>, weights: Option<PathBuf>) -> anyhow::Result<String> {
    let runtime = shan_runtime(request, visual, weights)?;
    let e = alignscope::engine::explain::explain(&runtime, image, caption)?;
    if let Some(w) = &e.warning {
        eprintln!("warning: {w}");
    }
    if let Some(out) = out {
        let photo = alignscope::data::decode::decode_oriented(image)?.to_rgba8();
        let png = alignscope::render::explanation::render(&photo, &e, &mut Default::default());
        png.save_with_format(out, image::ImageFormat::Png).map_err(|err| anyhow::anyhow!("cannot write {}: {err}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    if json {
        return Ok(format!("{}\n", serde_json::to_string(&e)?));
    }
    let [a, b, c] = e.weights;
    let mut out = format!(
        "{}\n\"{}\"\nscore {:.3} = {a}·L2L {:.3} + {b}·G2L {:.3} + {c}·G2G {:.3}\n\nword            alignment  strongest region (row, col)  its weight\n",
        e.image.display(),
        e.caption,
        e.score,
        e.l2l,
        e.g2l,
        e.g2g
    );
    for w in &e.words {
        let (best, weight) = w.attention.iter().enumerate().fold((0, f32::MIN), |b, (i, &a)| if a > b.1 { (i, a) } else { b });
        out.push_str(&format!("{:15} {:9.3}  ({}, {}){:20}{weight:.3}\n", w.word, w.alignment, best / e.grid, best % e.grid, ""));
    }
    Ok(out)
}

fn report(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("alignscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}
