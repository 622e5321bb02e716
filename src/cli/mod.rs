//! The command line: typed arguments, one file per command group; `main` only parses and
//! dispatches here.

mod args;
mod bench;
mod embedded;
mod eval;
mod folder;
mod grounding;
mod progress;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use alignscope::data::flickr8k::Split;
use alignscope::engine::backend::{BackendRequest, Compute};
use alignscope::engine::explain::Method;
use args::{ModelKind, RecipeArgs, RegionArgs, Splits, at_least_one, non_negative, positive_factor};

#[derive(Parser)]
#[command(name = "alignscope", version, about = "Explore how images and captions align")]
pub struct Cli {
    /// Compute backend for the model: auto (wgpu on a GPU, flex on a software adapter), wgpu, flex.
    #[arg(long, global = true)]
    backend: Option<BackendRequest>,
    /// Visual backbone for extract/train/eval: a weights file stem in assets/models.
    #[arg(long, global = true, default_value = "efficientnet-lite0")]
    visual: String,
    /// More log output from wgpu, eframe and burn: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors and results: no progress bars, no log output below errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Open the window (the default).
    ///
    /// Example: alignscope gui --folder ~/Pictures --query "a dog on a beach"
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
        split: Split,
        /// Each photo's best N detected objects as N more regions SHAN aligns words with
        /// (default: the Settings' choice; 0: the grid alone).
        #[arg(long)]
        objects: Option<usize>,
    },
    /// Print the backend, the wgpu adapter and driver, and check that the backend computes.
    ///
    /// Example: alignscope doctor
    Doctor,
    /// Write the models and demo photos this binary carries (checked against CHECKSUMS) to where
    /// an installed or copied binary finds them: $XDG_DATA_HOME/alignscope/{models,demo}, by
    /// default ~/.local/share/alignscope. A binary that finds no models does this on its first run.
    ///
    /// Example: alignscope install-models (again after `cargo install --path .` with new weights)
    InstallModels {
        /// Install the models here instead, the demo photos beside it in `demo` (then point
        /// $ALIGNSCOPE_MODELS at it).
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// What the backbones see: a photo's ImageNet top-5 and region grid, its objects (the SSD
    /// detector), or a caption's word pieces.
    ///
    /// Example: alignscope features photo.jpg; alignscope features photo.jpg --objects --json;
    /// alignscope features --text "a dog runs"
    Features {
        /// A photo.
        image: Option<PathBuf>,
        /// A caption (instead of a photo).
        #[arg(long)]
        text: Option<String>,
        /// List the photo's objects (COCO label, score, box) as the SSD-MobileNetV2 detector finds them.
        #[arg(long)]
        objects: bool,
        /// With --objects: one JSON object `{"photo", "objects": [{"label", "score", "box": [x0, y0, x1, y1]}]}`,
        /// boxes in normalised photo coordinates.
        #[arg(long, requires = "objects")]
        json: bool,
    },
    /// Compute the frozen backbone layers once for a Flickr8k split into feature caches.
    ///
    /// Example: alignscope extract --split all --flickr8k ~/data/Flickr8k
    Extract {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// The split(s) to cache.
        #[arg(long, value_enum, default_value = "all")]
        split: Splits,
        /// Where the caches go (never inside the dataset).
        #[arg(long, default_value = "target/feature-cache")]
        out: PathBuf,
        /// Cache the input of this EfficientNet block (15: fine-tune the last block; 16: frozen).
        #[arg(long, default_value_t = 15)]
        image_block: usize,
        /// Cache the input of this MiniLM layer (5: fine-tune the last layer; 6: frozen).
        #[arg(long, default_value_t = 5)]
        text_layer: usize,
        /// Photos per backbone pass.
        #[arg(long, default_value_t = 16)]
        batch: usize,
    },
    /// Train a matching model on Flickr8k (feature caches are built first if needed).
    ///
    /// Example: alignscope train --model racg --out racg.safetensors --flickr8k ~/data/Flickr8k
    Train {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// The network to train (the default ranker is not trained: see `rankers`).
        #[arg(long, value_enum, default_value = "shan")]
        model: ModelKind,
        /// Where the feature caches are kept (built here when missing or stale).
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        /// Where the trained weights go (written at every dev improvement for shan). Default: the
        /// shipped assets/models/MODEL.safetensors, which needs --overwrite.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Allow --out to replace a shipped model in assets/models.
        #[arg(long)]
        overwrite: bool,
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
        #[arg(long, default_value_t = alignscope::nets::DEFAULT_FIRST_BLOCK)]
        visual_from_block: usize,
        /// SHAN, tuned global: keep MiniLM's last layer frozen instead of fine-tuning it.
        #[arg(long)]
        frozen_text: bool,
        /// Model selection on the first N dev images (default: 500 for SHAN, all 1,000 for DSRAN
        /// and RACG).
        #[arg(long, value_parser = at_least_one())]
        dev_images: Option<usize>,
        /// SHAN, DSRAN, RACG: continue from the checkpoint at --out (its best epoch) instead of starting over.
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        recipe: RecipeArgs,
        /// SHAN: start the backbone tops from a tuned global model's weights file (`train
        /// --model global --tuned`) instead of the pretrained backbones.
        #[arg(long)]
        init_tops: Option<PathBuf>,
        /// SHAN: start from this SHAN weights file (e.g. the committed one) and fine-tune it,
        /// instead of a fresh network.
        #[arg(long)]
        init_shan: Option<PathBuf>,
        /// Tuned global: start from this tuned global model's weights file (e.g. the committed
        /// one) and fine-tune it, instead of fresh heads on the pretrained backbones.
        #[arg(long)]
        init_global: Option<PathBuf>,
        /// SHAN: weight of the grounding term, an InfoNCE over each pair's word–region score
        /// (every word's best region, averaged over the words); 0: none.
        #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
        ground_weight: f64,
        /// SHAN: weight of each level's and the embeddings' own InfoNCE terms beside the final
        /// score's (default 0.25).
        #[arg(long, value_parser = positive_factor)]
        aux_weight: Option<f64>,
        /// SHAN, tuned global: N augmented views of every training photo (random crop of 50–100 %
        /// of the area, flip), cached once each; every step draws the photo or one of them.
        #[arg(long, default_value_t = 0)]
        aug_views: usize,
        /// Each photo's best N detected objects (SSD-MobileNetV2) beside the 7×7 grid. DSRAN,
        /// RACG: crops through the frozen backbone (RACG: N more region nodes; DSRAN: its object
        /// stream, or one grown from the grid stream of a `--resume`d grid-only checkpoint).
        /// SHAN, tuned global: crops through the fine-tuned top, each one more region (the
        /// global model pools them with the cells). 0: the grid only.
        #[arg(long, default_value_t = 0)]
        objects: usize,
    },
    /// Choose the levels' weights in the final score on dev and write them into the weights file
    /// (SHAN: L2L, G2L, G2G, which `train` does after its best epoch; RACG: the graph level's
    /// share beside the node level).
    ///
    /// Example: alignscope tune-levels --model shan --weights shan.safetensors
    TuneLevels {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// Where the feature caches are kept (built here when missing or stale).
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        /// `shan` or `racg`.
        #[arg(long, value_enum, default_value = "shan")]
        model: ModelKind,
        /// Default: the committed weights of --model.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Dev photos the weights are chosen on.
        #[arg(long, default_value_t = 500, value_parser = at_least_one())]
        dev_images: usize,
    },
    /// Fuse SHAN's scores with a tuned global model's (`train --model global --tuned`): weights
    /// chosen on the dev split, Recall@K on test, beside the control (SHAN's own embedding fused
    /// with the same global model).
    ///
    /// Example: alignscope fuse --flickr8k ~/data/Flickr8k
    Fuse {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// Where the feature caches are kept (built here when missing or stale).
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        /// The tuned global model's weights. Default: the committed global model.
        #[arg(long)]
        global: Option<PathBuf>,
        /// Default: the committed SHAN weights.
        #[arg(long)]
        shan: Option<PathBuf>,
    },
    /// Choose the default ranker: SHAN's and the global model's embeddings fused, normalised
    /// against a bank of training captions or not; weights chosen on dev, rSum and hubness on test.
    ///
    /// Example: alignscope rankers --folder assets/demo
    Rankers {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// Where the feature caches are kept (built here when missing or stale).
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        /// Write the chosen bank here (the app's is assets/models/query-bank.safetensors).
        #[arg(long)]
        write: Option<PathBuf>,
        /// Also index this folder (e.g. out-of-distribution photos) and say which photo the test
        /// captions put first most often under each ranker.
        #[arg(long)]
        folder: Option<PathBuf>,
    },
    /// Recall@K on a Flickr8k split, the papers' protocol.
    ///
    /// Example: alignscope eval --model default --split test --json
    Eval {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// The network: default (what the window and `search` rank with), shan, global, dsran or racg.
        #[arg(long, value_enum, default_value = "shan")]
        model: ModelKind,
        /// The split: train, dev or test.
        #[arg(long, default_value = "test")]
        split: Split,
        /// Where the feature caches are kept (built here when missing or stale).
        #[arg(long, default_value = "target/feature-cache")]
        cache: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Model weights (default: the committed assets/models/MODEL.safetensors).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// SHAN, DSRAN, RACG: only the split's first N images (e.g. the 500 dev images training
        /// selects on); the papers' protocol is the whole 1K test.
        #[arg(long, value_parser = at_least_one())]
        images: Option<usize>,
        /// With --model default --split dev: write the weak-match line (the score 5 % of dev
        /// captions give their own photo less than) beside the query bank, for the window.
        #[arg(long)]
        calibrate: bool,
        /// Each photo's best N detected objects (SSD-MobileNetV2, crops through the backbone; the
        /// fine-tuned top for SHAN and the global model, which pools them with the cells; the
        /// default: SHAN's part) as N more regions beside the 7×7 grid (DSRAN weights with an
        /// object stream need their N); 0: the grid only.
        #[arg(long, default_value_t = 0)]
        objects: usize,
    },
    /// Index a folder of photos (recursively) for search; incremental, resumable, Ctrl-C safe.
    /// Exit status 2 when some photos could not be indexed.
    ///
    /// Example: alignscope index ~/Pictures
    Index {
        /// The folder of photos (searched recursively).
        dir: PathBuf,
        /// Model weights (default: the committed assets/models/shan.safetensors).
        #[arg(long)]
        weights: Option<PathBuf>,
        #[command(flatten)]
        regions: RegionArgs,
    },
    /// Rank a folder's photos by a caption (indexing first where needed): `SCORE<TAB>PATH` lines.
    ///
    /// Example: alignscope search ~/Pictures "a red car" --top 5; alignscope search ~/Pictures --image car.jpg
    Search {
        /// The folder of photos (searched recursively).
        dir: PathBuf,
        /// The caption to rank the photos by.
        caption: Option<String>,
        /// Rank by similarity to an example photo instead of a caption.
        #[arg(long)]
        image: Option<PathBuf>,
        /// How many results to print, best first.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// The network that ranks (the window's Settings offer the same): `default` (SHAN's and
        /// the global model's embeddings fused, normalised against a query bank), `global`, or
        /// `shan` (two-stage), from the folder's index; `dsran` or `racg` embed the photos for this
        /// search (their features are not indexed).
        #[arg(long, value_enum, default_value = "default")]
        model: ModelKind,
        /// --model shan: photos SHAN re-scores after the embedding pre-rank.
        #[arg(long, default_value_t = alignscope::engine::search::DEFAULT_CANDIDATES)]
        candidates: usize,
        /// --model shan: score every photo with SHAN (no pre-rank).
        #[arg(long)]
        exhaustive: bool,
        /// Print only the paths, one per line, best first (for `xargs` and friends).
        #[arg(long, conflicts_with = "json")]
        paths_only: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// SHAN weights (default: the committed assets/models/shan.safetensors; the default ranker needs those).
        #[arg(long)]
        weights: Option<PathBuf>,
        #[command(flatten)]
        regions: RegionArgs,
    },
    /// Why a photo and a caption match: SHAN's level scores and each word's region attention.
    ///
    /// Example: alignscope explain photo.jpg "a dog on a beach" --out why.png
    Explain {
        /// The photo.
        image: PathBuf,
        /// The caption.
        caption: String,
        /// Print one JSON object (scores, boxes, per word: pieces, alignment, attention, relevance).
        #[arg(long)]
        json: bool,
        /// Also write a PNG: level scores, the colour bar, and each content word's heatmap.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Model weights (default: the committed assets/models/shan.safetensors).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// How each word's heatmap is computed: `gradient` (gradient × activation of the word's
        /// alignment on a 28×28 map, averaged per cell; one backward pass), `occlusion` (what the
        /// word's alignment loses when each cell is hidden; 49 more backbone passes), `window`
        /// (what it gains when only a block of cells is shown) or `attention` (SHAN's word→region
        /// attention). `alignscope grounding` measures each.
        #[arg(long, default_value = "gradient")]
        method: Method,
        #[command(flatten)]
        regions: RegionArgs,
    },
    /// Do the explanations point at what the words name? The pointing game on a set of boxed
    /// words (default: the committed Flickr8k test set) beside the centre pointer and chance, and
    /// deletion on Flickr8k test pairs: hide the k cells the pair's explanation ranks highest, or k
    /// random cells, and see the pair's score and the true photo's rank fall.
    ///
    /// Example: alignscope grounding --model shan --method occlusion --json
    Grounding {
        /// The network explained.
        #[arg(long, value_enum, default_value = "shan")]
        model: ModelKind,
        /// `gradient` (SHAN only: gradient × activation on a 28×28 map, pointing with its own
        /// finer grid), `occlusion` (what the word's score loses when each cell is hidden),
        /// `window` (what it gains when only a block of cells is shown) or `attention` (the
        /// network's own word→region attention; not for the global model).
        #[arg(long, default_value = "gradient")]
        method: Method,
        /// The grounding set (TSV: image caption word x0 y0 x1 y1, with a header line).
        #[arg(long)]
        set: Option<PathBuf>,
        /// Flickr8k folder: the set's photos and the deletion test's photos and captions.
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// Test photos (each with one of its captions, drawn with a fixed seed) in the deletion
        /// test; 0 skips it.
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Also write every measured item's word maps to this file (JSON lines).
        #[arg(long)]
        maps: Option<PathBuf>,
        /// SHAN: explain with these weights instead of the committed ones (e.g. a `train` run's).
        #[arg(long)]
        weights: Option<PathBuf>,
    },
    /// Benchmarks that print figures and ratios.
    ///
    /// Example: alignscope bench search
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
pub enum BenchWhat {
    /// Images/s (decode + resize + EfficientNet-Lite0) and captions/s (MiniLM) per backend, beside PyTorch.
    ///
    /// Example: alignscope bench encoders --python /usr/bin/python3
    Encoders {
        /// Flickr8k folder for photos and captions (else the demo folder).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// Flickr8k test photos to time.
        #[arg(long, default_value_t = 64)]
        images: usize,
        /// Flickr8k test captions to time.
        #[arg(long, default_value_t = 256)]
        captions: usize,
        /// Photos per backbone pass.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Captions per MiniLM pass.
        #[arg(long, default_value_t = 64)]
        text_batch: usize,
        /// Python with torch + the model wheels, to run tools/bench_reference.py on the same inputs.
        #[arg(long)]
        python: Option<PathBuf>,
    },
    /// Query latency of global, DSRAN and RACG over a synthetic folder, and their parameter counts.
    ///
    /// Example: alignscope bench networks
    Networks {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// Photos in the synthetic folder the networks score.
        #[arg(long, default_value_t = 10_000)]
        photos: usize,
        /// Timed queries.
        #[arg(long, default_value_t = 20)]
        queries: usize,
    },
    /// Where near-duplicates end: Flickr8k test photos and altered copies (re-encoded, resized,
    /// cropped, brightened, mirrored) as one folder; each copy's cosine to its original, each
    /// photo's to its nearest other, and what each threshold groups.
    ///
    /// Example: alignscope bench duplicates --photos 1000 --altered 100
    Duplicates {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// Test photos in the folder.
        #[arg(long, default_value_t = 1000)]
        photos: usize,
        /// Of which this many get altered copies.
        #[arg(long, default_value_t = 100)]
        altered: usize,
    },
    /// How cost grows with the folder: per size (synthetic photos, real shapes), the index file per
    /// photo, writing and reopening it, and the default's and SHAN two-stage's query latency.
    ///
    /// Example: alignscope bench scale --sizes 1000,10000,100000
    Scale {
        /// Folder sizes, in photos.
        #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000, 100_000])]
        sizes: Vec<usize>,
        /// Timed queries per size and model.
        #[arg(long, default_value_t = 10)]
        queries: usize,
        /// Write and reopen the index file only up to this size (about 55 KB per photo).
        #[arg(long, default_value_t = 10_000)]
        write_up_to: usize,
    },
    /// Query latency over a synthetic index (the default, SHAN two-stage and exhaustive), then on
    /// the Flickr8k 1K test as a folder: indexing throughput, reopening it, the default's recall
    /// and hubness, and the recall SHAN's two-stage search keeps.
    ///
    /// Example: alignscope bench search --flickr8k ~/data/Flickr8k
    Search {
        /// The Flickr8k folder (images/, Flickr8k.token.txt and the split files).
        #[arg(long, default_value = "../shared/data/flickr8k")]
        flickr8k: PathBuf,
        /// Photos in the synthetic index.
        #[arg(long, default_value_t = 10_000)]
        photos: usize,
        /// Timed queries.
        #[arg(long, default_value_t = 50)]
        queries: usize,
        /// Photos SHAN re-scores after the embedding pre-rank.
        #[arg(long, default_value_t = alignscope::engine::search::DEFAULT_CANDIDATES)]
        candidates: usize,
        /// SHAN weights (default: the committed assets/models/shan.safetensors).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Index each photo's best N detected objects as N more regions (`index --objects N`).
        #[arg(long, default_value_t = 0)]
        objects: usize,
    },
}

/// Training may write `out` unless it would replace a shipped model without --overwrite.
fn may_write_weights(out: &std::path::Path, overwrite: bool) -> anyhow::Result<()> {
    let shipped = alignscope::features::models_dir().canonicalize().ok();
    let parent = out.parent().map(|p| if p.as_os_str().is_empty() { std::path::Path::new(".") } else { p });
    let into_shipped = parent.and_then(|p| p.canonicalize().ok()).is_some_and(|p| Some(p) == shipped);
    anyhow::ensure!(
        overwrite || !into_shipped || !out.exists(),
        "{}: a shipped model; train into another file with --out FILE, or give --overwrite to replace it",
        out.display()
    );
    // Made now, not when the first checkpoint is written after minutes of preparation.
    if let Some(dir) = parent {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("{}: cannot create the folder for the weights: {e}", dir.display()))?;
    }
    Ok(())
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    progress::init(cli.verbose, cli.quiet);
    embedded::install_if_missing(cli.quiet);
    let backend = cli.backend.unwrap_or_default();
    let visual = cli.visual.as_str();
    let command = cli.command.unwrap_or(Command::Gui {
        folder: None,
        screenshot: None,
        query: None,
        select: None,
        dataset: None,
        split: Split::Test,
        objects: None,
    });
    match command {
        Command::Gui { folder, screenshot, query, select, dataset, split, objects } => {
            let options = alignscope::app::GuiOptions {
                folder,
                backend: cli.backend,
                screenshot,
                query,
                select,
                dataset: dataset.map(|d| (d, split)),
                objects,
            };
            report(alignscope::app::run(options).map(|()| String::new()))
        }
        Command::Doctor => {
            let (report, ok) = alignscope::engine::doctor::report(backend);
            print!("{report}");
            if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::InstallModels { to } => report(embedded::install_models(to)),
        Command::Grounding { model, method, set, flickr8k, pairs, json, maps, weights } => {
            if weights.is_some() && !matches!(model, ModelKind::Shan) {
                return report(Err(anyhow::anyhow!("--weights is for --model shan")));
            }
            report(grounding::run(backend, visual, model, method, set, &flickr8k, pairs, json, maps, weights))
        }
        Command::Bench { what } => report(bench::run(what, cli.backend, visual)),
        Command::Extract { flickr8k, split, out, image_block, text_layer, batch } => {
            report(train::extract(backend, visual, flickr8k, &split.list(), out, image_block, text_layer, batch))
        }
        Command::Train {
            flickr8k,
            model,
            cache,
            out,
            tuned,
            frozen_visual,
            visual_from_block,
            frozen_text,
            dev_images,
            resume,
            recipe,
            init_tops,
            init_shan,
            init_global,
            ground_weight,
            aux_weight,
            aug_views,
            objects,
            overwrite,
        } => {
            let out = out.unwrap_or_else(|| alignscope::features::models_dir().join(format!("{model}.safetensors")));
            let lifts = alignscope::nets::global_tuned::Lifts { visual: !frozen_visual, text: !frozen_text };
            if tuned && model != ModelKind::Global {
                return report(Err(anyhow::anyhow!(
                    "--tuned is for --model global (SHAN fine-tunes its backbone tops unless told --frozen-visual / --frozen-text)"
                )));
            }
            if (init_tops.is_some() || aux_weight.is_some() || init_shan.is_some() || ground_weight > 0.0)
                && model != ModelKind::Shan
            {
                return report(Err(anyhow::anyhow!(
                    "--init-tops, --init-shan, --ground-weight and --aux-weight are for --model shan"
                )));
            }
            if aug_views > 0 && !(model == ModelKind::Shan || tuned) {
                return report(Err(anyhow::anyhow!(
                    "--aug-views is for --model shan and --model global --tuned (the others train on pooled or frozen features)"
                )));
            }
            if objects > 0 && !(matches!(model, ModelKind::Dsran | ModelKind::Racg | ModelKind::Shan) || tuned) {
                return report(Err(anyhow::anyhow!(
                    "--objects is for --model dsran, racg, shan and global --tuned (the frozen global model trains on pooled features)"
                )));
            }
            if objects > 0 && aug_views > 0 {
                return report(Err(anyhow::anyhow!(
                    "--objects and --aug-views do not go together (a view's crop would not hold its photo's objects)"
                )));
            }
            if init_global.is_some() && !tuned {
                return report(Err(anyhow::anyhow!("--init-global is for --model global --tuned")));
            }
            if let Err(e) = may_write_weights(&out, overwrite) {
                return report(Err(e));
            }
            match model {
                ModelKind::Global => report(train::global(
                    backend,
                    visual,
                    &flickr8k,
                    &cache,
                    &out,
                    &recipe,
                    tuned.then_some(lifts),
                    aug_views,
                    objects,
                    init_global.as_deref(),
                )),
                ModelKind::Default => report(Err(anyhow::anyhow!(
                    "the default ranker is not trained: it fuses the shan and global models (`alignscope rankers --write`)"
                ))),
                ModelKind::Dsran | ModelKind::Racg => report(train::frozen(
                    backend,
                    visual,
                    &flickr8k,
                    &cache,
                    &out,
                    model,
                    &recipe,
                    dev_images.unwrap_or(usize::MAX),
                    resume,
                    objects,
                )),
                ModelKind::Shan => {
                    let defaults = alignscope::train::shan::ShanTrainConfig::default();
                    let config = alignscope::train::shan::ShanTrainConfig {
                        recipe: recipe.apply(defaults.recipe.clone()),
                        backbone_lr: defaults.backbone_lr * recipe.lr_factor,
                        finetune_visual: !frozen_visual,
                        visual_first_block: visual_from_block,
                        resume,
                        finetune_text: !frozen_text,
                        dev_images: dev_images.unwrap_or(500),
                        init_tops,
                        init_shan,
                        ground_weight,
                        aux_weight: aux_weight.unwrap_or(defaults.aux_weight),
                        ..defaults
                    };
                    report(train::shan(backend, visual, &flickr8k, &cache, &out, &config, aug_views, objects))
                }
            }
        }
        Command::Fuse { flickr8k, cache, global, shan } => report(train::fuse(
            backend,
            visual,
            &flickr8k,
            &cache,
            &global.unwrap_or_else(alignscope::nets::global::default_path),
            shan,
        )),
        Command::Rankers { flickr8k, cache, write, folder } => {
            report(train::rankers(backend, visual, &flickr8k, &cache, write.as_deref(), folder.as_deref()))
        }
        Command::Eval { flickr8k, model, split, cache, json, weights, images, objects, calibrate } => {
            report(eval::eval(
                backend,
                visual,
                &flickr8k,
                model,
                split,
                &cache,
                json,
                weights,
                images.unwrap_or(usize::MAX),
                objects,
                calibrate,
            ))
        }
        Command::Index { dir, weights, regions: RegionArgs { objects } } => {
            match folder::index_command(backend, visual, &dir, weights, objects) {
                Ok((out, failed)) => {
                    print!("{out}");
                    if failed { ExitCode::from(2) } else { ExitCode::SUCCESS }
                }
                Err(e) => report(Err(e)),
            }
        }
        Command::Search {
            dir,
            caption,
            image,
            top,
            model,
            candidates,
            exhaustive,
            paths_only,
            json,
            weights,
            regions: RegionArgs { objects },
        } => {
            use alignscope::engine::rank::RankerModel;
            use alignscope::engine::search::{SearchModel, SearchOptions};
            let output = if json {
                folder::Output::Json
            } else if paths_only {
                folder::Output::Paths
            } else {
                folder::Output::Lines
            };
            if exhaustive && model != ModelKind::Shan {
                return report(Err(anyhow::anyhow!("--exhaustive is for --model shan")));
            }
            let model = match model {
                ModelKind::Default => SearchModel::Default,
                ModelKind::Global => SearchModel::Global,
                ModelKind::Shan => SearchModel::Shan,
                session @ (ModelKind::Dsran | ModelKind::Racg) => {
                    let model = if session == ModelKind::Dsran { RankerModel::Dsran } else { RankerModel::Racg };
                    let result = match (&caption, &image, &weights, objects) {
                        (Some(caption), None, None, 0) => {
                            folder::search_session(backend, &dir, caption, model, top, output)
                        }
                        _ => Err(anyhow::anyhow!(
                            "--model {session} ranks by a caption, with its committed weights, on the grid"
                        )),
                    };
                    return report(result);
                }
            };
            let options = SearchOptions { model, top, candidates, exhaustive };
            report(folder::search_command(backend, visual, &dir, caption, image, options, output, weights, objects))
        }
        Command::TuneLevels { flickr8k, cache, model, weights, dev_images } => {
            report(train::tune_levels(backend, visual, &flickr8k, &cache, model, weights, dev_images))
        }
        Command::Explain { image, caption, json, out, weights, method, regions: RegionArgs { objects } } => {
            report(folder::explain(backend, visual, &image, &caption, method, json, out.as_deref(), weights, objects))
        }
        Command::Features { image, text, objects, json } => {
            report(folder::features(backend, visual, image, text, objects, json))
        }
    }
}

/// A headless compute context; says on stderr which backend runs and why.
pub fn compute(request: BackendRequest) -> anyhow::Result<Compute> {
    let compute = Compute::headless(request)?;
    if !progress::quiet() {
        eprintln!("{}", compute.describe());
    }
    Ok(compute)
}

/// Feature extraction's messages: a bar per stage, the rest as lines.
pub fn progress(m: alignscope::train::extract::ExtractMsg) {
    use alignscope::train::extract::ExtractMsg;
    let progress = progress::global();
    match m {
        ExtractMsg::Progress { stage, done, total } => progress.update(&stage, done as u64, total as u64, ""),
        ExtractMsg::Warning(w) => progress.println(format!("warning: {w}")),
        ExtractMsg::UpToDate(p) => progress.info(format!("cache up to date: {}", p.display())),
        ExtractMsg::Saved(p) => progress.info(format!("wrote {}", p.display())),
    }
}

/// R@1/5/10 both ways: "i2t a/b/c, t2i d/e/f".
pub fn both_ways(r: &alignscope::engine::recall::Recalls) -> String {
    format!("i2t {:.1}/{:.1}/{:.1}, t2i {:.1}/{:.1}/{:.1}", r.i2t[0], r.i2t[1], r.i2t[2], r.t2i[0], r.t2i[1], r.t2i[2])
}

pub fn report(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(out) => {
            progress::global().finish();
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            progress::global().finish();
            eprintln!("alignscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command and every argument says what it is for in `--help` (issue: `DIR`, `--json`,
    /// `--top` and others had no text).
    #[test]
    fn every_command_and_argument_has_help_text() {
        let mut missing = Vec::new();
        let mut visit = |cmd: &clap::Command, path: String| {
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("{path} (the command)"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
        };
        let root = super::Cli::command();
        visit(&root, String::new());
        for sub in root.get_subcommands() {
            visit(sub, sub.get_name().to_string());
            for subsub in sub.get_subcommands() {
                visit(subsub, format!("{} {}", sub.get_name(), subsub.get_name()));
            }
        }
        assert!(missing.is_empty(), "no help text: {missing:#?}");
        let no_example: Vec<String> = root
            .get_subcommands()
            .flat_map(|sub| std::iter::once(sub).chain(sub.get_subcommands()))
            .filter(|cmd| !cmd.get_long_about().is_some_and(|about| about.to_string().contains("Example: alignscope")))
            .map(|cmd| cmd.get_name().to_string())
            .collect();
        assert!(no_example.is_empty(), "no example in --help: {no_example:?}");
    }
}
