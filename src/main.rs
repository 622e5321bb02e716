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
            report(EncoderBench { images, captions, batch: batch.max(1), text_batch: text_batch.max(1), python }.run())
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
