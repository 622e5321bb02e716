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
    match cli.command.unwrap_or(Command::Gui { folder: None, screenshot: None }) {
        Command::Gui { folder, screenshot } => {
            let options = alignscope::app::GuiOptions { folder, backend: cli.backend, screenshot };
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
            report(extract(cli.backend.unwrap_or_default(), flickr8k, &split, out, image_block, text_layer, batch))
        }
        Command::Features { image, text } => report(features(cli.backend.unwrap_or_default(), image, text)),
    }
}

/// A headless compute context; says on stderr which backend runs and why.
fn compute(request: BackendRequest) -> anyhow::Result<Compute> {
    let compute = Compute::headless(request)?;
    eprintln!("{}", compute.describe());
    Ok(compute)
}

fn features(request: BackendRequest, image: Option<PathBuf>, text: Option<String>) -> anyhow::Result<String> {
    match (image, text) {
        (Some(image), None) => inspect::describe_image(&compute(request)?, &image),
        (None, Some(text)) => inspect::describe_caption(&compute(request)?, &text),
        _ => anyhow::bail!("give either a photo or --text \"CAPTION\""),
    }
}

fn extract(request: BackendRequest, flickr8k: PathBuf, split: &str, out: PathBuf, image_block: usize, text_layer: usize, batch: usize) -> anyhow::Result<String> {
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
        let options = ExtractOptions { flickr8k: flickr8k.clone(), split, out_dir: out.clone(), image_block, text_layer, batch };
        extract(&compute, &options, &cancel, &|m| match m {
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
