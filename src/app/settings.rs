//! What the app remembers between runs.

use std::path::PathBuf;

use crate::engine::backend::BackendRequest;

pub const STORAGE_KEY: &str = "alignscope.settings";

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub last_folder: Option<PathBuf>,
    /// Folders opened, most recent first (at most [`RECENT`]).
    pub recent_folders: Vec<PathBuf>,
    /// Applied at the next start: the wgpu device is shared with the window, made once.
    pub backend: BackendRequest,
    pub thumbnail_size: ThumbSize,
    pub rank_model: RankModel,
    /// Show only the best-placed photo of each group of near-duplicates.
    pub hide_duplicates: bool,
    /// Each photo's best N detected objects as N more regions SHAN aligns words with (its own
    /// index; 0: the grid alone). Applied at the next start.
    pub objects: usize,
}

/// The objects per photo the setting offers (what `eval --model shan --objects 4` measured).
pub const OBJECTS: usize = 4;

/// Folders remembered in "Recent".
pub const RECENT: usize = 8;

impl Settings {
    /// `dir` was opened: it is the last folder and first among the recent ones (once).
    pub fn remember_folder(&mut self, dir: &std::path::Path) {
        self.last_folder = Some(dir.to_path_buf());
        self.recent_folders.retain(|f| f != dir);
        self.recent_folders.insert(0, dir.to_path_buf());
        self.recent_folders.truncate(RECENT);
    }
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
    /// The per-session network behind DSRAN's and RACG's choices (which may be unavailable).
    pub fn network(self) -> Option<crate::engine::rank::RankerModel> {
        use crate::engine::rank::RankerModel;
        match self {
            Self::Dsran => Some(RankerModel::Dsran),
            Self::Racg => Some(RankerModel::Racg),
            _ => None,
        }
    }

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

#[cfg(test)]
mod tests {
    #[test]
    fn recent_folders_are_most_recent_first_once_each_and_bounded() {
        let mut s = super::Settings::default();
        for i in 0..10 {
            s.remember_folder(std::path::Path::new(&format!("/f{i}")));
        }
        s.remember_folder(std::path::Path::new("/f5"));
        let names: Vec<String> = s.recent_folders.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(names, ["/f5", "/f9", "/f8", "/f7", "/f6", "/f4", "/f3", "/f2"]);
        assert_eq!(s.last_folder.as_deref(), Some(std::path::Path::new("/f5")));
    }
}
