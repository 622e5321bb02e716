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
