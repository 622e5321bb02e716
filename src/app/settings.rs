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

/// What ranks the gallery by a caption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RankModel {
    /// The global dual encoder; photos embedded per session.
    #[default]
    Global,
    /// SHAN from the folder's persistent index (photo folders; datasets use the global model).
    ShanIndex,
    /// DSRAN (graph-attention dual encoder), embedded with the global model's backbone pass.
    Dsran,
    /// RACG (cross-graph relations): photo graphs kept per session, the folder scored per caption.
    Racg,
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
