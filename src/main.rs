use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use alignscope::engine::backend::{BackendRequest, Compute};
use alignscope::engine::bench::EncoderBench;
use alignscope::engine::inspect;

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
        /// Only `global` (the dual-encoder baseline) so far.
        #[arg(long, default_value = "global")]
        model: String,
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        #[arg(long, default_value = "assets/models/global.safetensors")]
        out: PathBuf,
    },
    /// Recall@K on a Flickr8k split, the papers' protocol.
    Eval {
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        #[arg(long, default_value = "global")]
        model: String,
        #[arg(long, default_value = "test")]
        split: String,
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        #[arg(long)]
        json: bool,
        /// Model weights (default: the committed assets/models/global.safetensors).
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Gui { folder: None, screenshot: None, query: None }) {
        Command::Gui { folder, screenshot, query } => {
            let options = alignscope::app::GuiOptions { folder, backend: cli.backend, screenshot, query };
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
        Command::Extract { flickr8k, split, out, image_block, text_layer, batch } => {
            report(extract(cli.backend.unwrap_or_default(), &cli.visual, flickr8k, &split, out, image_block, text_layer, batch))
        }
        Command::Train { flickr8k, model, cache, out } => report(train(cli.backend.unwrap_or_default(), &cli.visual, &flickr8k, &model, &cache, &out)),
        Command::Eval { flickr8k, model, split, cache, json, weights } => {
            report(eval(cli.backend.unwrap_or_default(), &cli.visual, &flickr8k, &model, &split, &cache, json, weights))
        }
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
        let options = ExtractOptions { flickr8k: flickr8k.clone(), visual: visual.to_string(), split, out_dir: out.clone(), image_block, text_layer, batch };
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

fn check_model(model: &str) -> anyhow::Result<()> {
    anyhow::ensure!(model == "global", "model `{model}` is not built yet (available: global)");
    Ok(())
}

fn train(request: BackendRequest, visual: &str, flickr8k: &std::path::Path, model: &str, cache: &std::path::Path, out: &std::path::Path) -> anyhow::Result<String> {
    use alignscope::data::flickr8k::Split;
    use alignscope::engine::global::{self, TrainConfig, TrainMsg};
    use alignscope::engine::prepare::prepare_split;
    check_model(model)?;
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let started = std::time::Instant::now();
    let train_split = prepare_split(&compute, flickr8k, cache, Split::Train, visual, &cancel, &progress)?;
    let dev = prepare_split(&compute, flickr8k, cache, Split::Dev, visual, &cancel, &progress)?;
    eprintln!("prepared {} train and {} dev images in {:.0} s", train_split.len(), dev.len(), started.elapsed().as_secs_f64());
    let config = TrainConfig::default();
    let trained = global::train(&train_split, &dev, &compute.device, &config, &cancel, &|m| match m {
        TrainMsg::Epoch { epoch, loss, dev, seconds, best } => eprintln!(
            "epoch {epoch:2}  loss {loss:.4}  dev rSum {:.1} (i2t {:.1}/{:.1}/{:.1}, t2i {:.1}/{:.1}/{:.1})  {seconds:.1} s{}",
            dev.rsum, dev.i2t[0], dev.i2t[1], dev.i2t[2], dev.t2i[0], dev.t2i[1], dev.t2i[2], if best { "  *" } else { "" }
        ),
    })?;
    let metadata = std::collections::HashMap::from([
        ("model".to_string(), "global".to_string()),
        ("recipe".to_string(), format!("B: batch {}, AdamW lr {} wd {}, InfoNCE learned temperature, best dev epoch {}", config.batch, config.lr, config.weight_decay, trained.best_epoch)),
        ("features".to_string(), format!("frozen {visual} pooled (1280), MiniLM mean-pooled (384)")),
        ("dev_rsum".to_string(), format!("{:.1}", trained.best_dev.rsum)),
    ]);
    global::save(&trained.model, out, metadata)?;
    Ok(format!("best dev epoch {} (rSum {:.1}); trained in {:.0} s; wrote {}\n", trained.best_epoch, trained.best_dev.rsum, trained.seconds, out.display()))
}

#[allow(clippy::too_many_arguments)]
fn eval(request: BackendRequest, visual: &str, flickr8k: &std::path::Path, model: &str, split: &str, cache: &std::path::Path, json: bool, weights: Option<PathBuf>) -> anyhow::Result<String> {
    use alignscope::engine::global;
    use alignscope::engine::prepare::prepare_split;
    check_model(model)?;
    let which: alignscope::data::flickr8k::Split = split.parse().map_err(anyhow::Error::msg)?;
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let data = prepare_split(&compute, flickr8k, cache, which, visual, &cancel, &progress)?;
    let net = global::load(&weights.unwrap_or_else(global::default_path), &compute.device)?;
    let started = std::time::Instant::now();
    let r = global::evaluate(&net, &data, &compute.device);
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let round = |v: f64| (v * 10.0).round() / 10.0;
        let object = serde_json::json!({
            "model": model,
            "split": split,
            "full": { "i2t": r.i2t.map(round), "t2i": r.t2i.map(round), "rsum": round(r.rsum) },
            "images": data.len(),
            "seconds": (seconds * 100.0).round() / 100.0,
        });
        return Ok(format!("{object}\n"));
    }
    Ok(format!(
        "{model} on Flickr8k {split} ({} images × 5 captions): i2t R@1/5/10 {:.1}/{:.1}/{:.1}, t2i {:.1}/{:.1}/{:.1}, rSum {:.1} (scored in {seconds:.2} s)\n",
        data.len(), r.i2t[0], r.i2t[1], r.i2t[2], r.t2i[0], r.t2i[1], r.t2i[2], r.rsum
    ))
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
