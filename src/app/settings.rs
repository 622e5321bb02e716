//! What the app remembers between runs.

use std::path::PathBuf;

use crate::engine::backend::BackendRequest;

pub const STORAGE_KEY: &str = "alignscope.settings";

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub last_folder: Option<PathBuf>,
    /// Applied at the next start: the wgpu device is shared with the window, made once.
    pub backend: BackendRequest,
    pub thumbnail_size: ThumbSize,
    pub rank_model: RankModel,
}

/// What ranks the gallery by a caption: the first three from the folder's persistent index (the
/// one `alignscope index` / `search` keep; datasets rank with the global model embedded per
/// session), DSRAN and RACG embedded per session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RankModel {
    /// SHAN's and the global model's embeddings fused, normalised against a query bank.
    #[default]
    Default,
    /// The global dual encoder.
    Global,
    /// SHAN, two-stage (exhaustive up to 1,000 photos).
    #[serde(alias = "ShanIndex")]
    Shan,
    /// DSRAN (graph-attention dual encoder), embedded with the global model's backbone pass.
    Dsran,
    /// RACG (cross-graph relations): photo graphs kept per session, the folder scored per caption.
    Racg,
}

impl RankModel {
    /// The index's network for this choice (None: ranked per session).
    pub fn index_model(self) -> Option<crate::engine::search::SearchModel> {
        use crate::engine::search::SearchModel;
        match self {
            Self::Default => Some(SearchModel::Default),
            Self::Global => Some(SearchModel::Global),
            Self::Shan => Some(SearchModel::Shan),
            Self::Dsran | Self::Racg => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Dsran => "DSRAN",
            Self::Racg => "RACG",
            indexed => indexed.index_model().map_or("", |m| m.name()),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ThumbSize {
    Small,
    #[default]
    Medium,
    Large,
}

impl ThumbSize {
    pub const ALL: [ThumbSize; 3] = [ThumbSize::Small, ThumbSize::Medium, ThumbSize::Large];

    pub fn pixels(self) -> f32 {
        match self {
            Self::Small => 112.0,
            Self::Medium => 160.0,
            Self::Large => 224.0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Small => "Small",
            Self::Medium => "Medium",
            Self::Large => "Large",
        }
    }
}
