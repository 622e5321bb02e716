//! Typed values of the command line.

/// The matching networks `train`, `eval` and `tune-levels` know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKind {
    /// What the app and `search` rank with: SHAN's and the global model's embeddings fused,
    /// normalised against a bank of training captions (`rankers`).
    Default,
    /// The step-wise hierarchical alignment network.
    Shan,
    /// Graph-attention dual encoder.
    Dsran,
    /// Cross-graph relations.
    Racg,
    /// The dual-encoder baseline.
    Global,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Shan => "shan",
            Self::Dsran => "dsran",
            Self::Racg => "racg",
            Self::Global => "global",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The splits `extract` caches: one, or all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Splits {
    Train,
    Dev,
    Test,
    All,
}

impl Splits {
    pub fn list(self) -> Vec<alignscope::data::flickr8k::Split> {
        use alignscope::data::flickr8k::Split;
        match self {
            Self::Train => vec![Split::Train],
            Self::Dev => vec![Split::Dev],
            Self::Test => vec![Split::Test],
            Self::All => vec![Split::Train, Split::Dev, Split::Test],
        }
    }
}

/// A count of images: 0 would leave nothing to rank.
pub fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => Err(format!("{s:?} is not a number ≥ 0")),
    }
}

pub fn positive_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

/// Recipe B's knobs that `train` takes for every network, flattened into its flags.
#[derive(clap::Args, Clone, Debug)]
pub struct RecipeArgs {
    /// Epochs at most before the decay (training stops earlier after 3 epochs without a dev
    /// gain; the global model after 4). Default: 20 (the global model: 30).
    #[arg(long)]
    pub max_epochs: Option<usize>,
    /// `infonce` (symmetric, learned temperature) or `hinge` (VSE++ hardest negatives, margin
    /// 0.2, first epoch over all negatives).
    #[arg(long, default_value = "infonce")]
    pub loss: alignscope::model::loss::Loss,
    /// Multiply the recipe's learning rates by this factor (e.g. 0.1 with --resume: the papers'
    /// step decay once dev stops rising).
    #[arg(long, default_value_t = 1.0, value_parser = positive_factor)]
    pub lr_factor: f64,
    /// Once dev stops rising (or after --max-epochs), go on from the best epoch at a tenth of the
    /// learning rates for up to N epochs (the step decay; 0: none).
    #[arg(long, default_value_t = 0)]
    pub decay_epochs: usize,
}

/// What SHAN's regions are for `index`, `search` and `explain`.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct RegionArgs {
    /// Each photo's best N detected objects (SSD-MobileNetV2) as N more regions SHAN aligns
    /// words with, beside the 7×7 grid (`eval --model shan --objects 4`: 308.3 against 305.1;
    /// indexing runs the detector and N crops per photo). Kept in an index of its own. 0: the grid.
    #[arg(long, default_value_t = 0)]
    pub objects: usize,
}

impl RecipeArgs {
    /// The network's own recipe with these flags applied (its learning rate times --lr-factor).
    pub fn apply(&self, defaults: alignscope::train::recipe::Recipe) -> alignscope::train::recipe::Recipe {
        alignscope::train::recipe::Recipe {
            max_epochs: self.max_epochs.unwrap_or(defaults.max_epochs),
            loss: self.loss,
            lr: defaults.lr * self.lr_factor,
            decay_epochs: self.decay_epochs,
            ..defaults
        }
    }
}
