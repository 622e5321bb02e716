//! Everything the window can be asked to do from the toolbar, the keyboard or a tile's menu, as
//! one enum with its label, tooltip and shortcut. Drawing code only collects commands; the app
//! applies them after the frame is drawn (`AlignscopeApp::apply`), in the order they were asked,
//! so no panel changes state another panel has already drawn from.

use std::path::PathBuf;

use egui::{Key, KeyboardShortcut, Modifiers};

use super::RankModel;
use super::ThumbSize;
use crate::data::flickr8k::Split;
use crate::engine::backend::BackendRequest;

/// What the user asked of a tile (by item index): double-click, or its right-click menu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileAction {
    Inspect(usize),
    OpenExternally(usize),
    Reveal(usize),
    CopyPath(usize),
    FindSimilar(usize),
}

impl TileAction {
    /// The tile menu's entries, in order.
    pub fn menu(index: usize) -> [Self; 5] {
        [
            Self::Inspect(index),
            Self::FindSimilar(index),
            Self::OpenExternally(index),
            Self::Reveal(index),
            Self::CopyPath(index),
        ]
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Inspect(_) => "Inspect",
            Self::FindSimilar(_) => "Find similar photos",
            Self::OpenExternally(_) => "Open in the system viewer",
            Self::Reveal(_) => "Show in the file manager",
            Self::CopyPath(_) => "Copy path",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    PickFolder,
    OpenFolder(PathBuf),
    PickExample,
    OpenDemo,
    PickDataset,
    OpenDataset(PathBuf, Split),
    CopyPaths,
    PickExport,
    FocusQuery,
    /// Clear the query, or close the inspector when it is empty.
    Escape,
    InspectSelected,
    /// Move the selection by this many tiles in display order.
    MoveSelection(i64),
    SetQuery(String),
    Tile(TileAction),
    SetThumbnailSize(ThumbSize),
    SetRankModel(RankModel),
    SetBackend(BackendRequest),
    /// Detected objects per photo as SHAN's regions, from the next start (0: the grid alone).
    SetObjects(usize),
    SetHideDuplicates(bool),
    StopThumbnails,
    StopIndexing,
    StopEmbedding,
    /// Show or hide the message log.
    ToggleMessages,
}

/// The keys that move the selection (not while typing in the query), by rows of `columns`.
pub fn arrow_steps(columns: i64) -> [(Key, i64); 4] {
    [(Key::ArrowRight, 1), (Key::ArrowLeft, -1), (Key::ArrowDown, columns), (Key::ArrowUp, -columns)]
}

impl Command {
    /// The button's or menu entry's text.
    pub fn label(&self) -> &'static str {
        match self {
            Self::PickFolder => "Open folder…",
            Self::OpenFolder(_) => "Open folder",
            Self::PickExample => "Photo…",
            Self::OpenDemo => "Demo",
            Self::PickDataset => "Dataset…",
            Self::OpenDataset(..) => "Open dataset",
            Self::CopyPaths => "Copy paths",
            Self::PickExport => "Export…",
            Self::FocusQuery => "Find",
            Self::Escape => "Clear the query / close the inspector",
            Self::InspectSelected => "Inspect the selected photo",
            Self::MoveSelection(_) => "Move the selection",
            Self::SetQuery(_) => "Rank by this caption",
            Self::Tile(action) => action.label(),
            Self::SetThumbnailSize(size) => size.label(),
            Self::SetRankModel(model) => match model {
                RankModel::Default => "default: SHAN + global, hubs normalised (best measured)",
                RankModel::Global => "global dual encoder",
                RankModel::Shan => "SHAN (two-stage)",
                RankModel::Dsran => "DSRAN (graph-attention dual encoder)",
                RankModel::Racg => "RACG (cross-graph relations; the folder scored per caption)",
            },
            Self::SetHideDuplicates(_) => "hide near-duplicates",
            Self::StopThumbnails | Self::StopIndexing | Self::StopEmbedding => "Stop",
            Self::ToggleMessages => "Messages",
            Self::SetBackend(request) => match request {
                BackendRequest::Auto => "auto: wgpu on a GPU, flex on a software adapter",
                BackendRequest::Wgpu => "wgpu (forced)",
                BackendRequest::Flex => "flex (CPU)",
            },
            Self::SetObjects(_) => "detected objects as SHAN regions",
        }
    }

    /// The hover text (with the shortcut, where there is one).
    pub fn tooltip(&self) -> String {
        let text = match self {
            Self::PickFolder => "Choose a folder of photos (or drop one on the window)",
            Self::PickExample => {
                "Rank a folder by a photo: its folder opens, most similar first (or drop a photo on the window)"
            }
            Self::OpenDemo => "The bundled demo photos",
            Self::PickDataset => {
                "Browse a dataset's test split (a Flickr8k folder, or Flickr30k/COCO as a Karpathy-split JSON) with its captions and Recall@K"
            }
            Self::CopyPaths => "Copy the photos' paths in displayed order (best first when ranked)",
            Self::PickExport => {
                "Save the photos in displayed order with their scores, as CSV or JSON (the shape of `alignscope search --json`)"
            }
            Self::SetHideDuplicates(_) => {
                "Show only the best-placed photo of each group of near-duplicates (re-encoded, resized, \
                 slightly cropped or edited copies: the global model's embeddings at a cosine of at least 0.85); \
                 the photo shown says how many copies it hides"
            }
            Self::StopThumbnails => "Stop decoding thumbnails",
            Self::StopIndexing => "Stop indexing after the batch in flight (what is done is kept)",
            Self::StopEmbedding => "Stop embedding photos for ranking",
            _ => "",
        };
        match self.shortcut() {
            Some(s) if text.is_empty() => format!("({})", shortcut_text(&s)),
            Some(s) => format!("{text} ({})", shortcut_text(&s)),
            None => text.to_string(),
        }
    }

    /// The key that asks for this command, where one does.
    pub fn shortcut(&self) -> Option<KeyboardShortcut> {
        match self {
            Self::FocusQuery => Some(KeyboardShortcut::new(Modifiers::COMMAND, Key::F)),
            Self::Escape => Some(KeyboardShortcut::new(Modifiers::NONE, Key::Escape)),
            Self::InspectSelected => Some(KeyboardShortcut::new(Modifiers::NONE, Key::Enter)),
            _ => None,
        }
    }
}

fn shortcut_text(s: &KeyboardShortcut) -> String {
    let mut text = String::new();
    if s.modifiers.command {
        text.push_str("Ctrl+");
    }
    text.push_str(s.logical_key.name());
    text
}

/// A button for `command`: pushed onto `commands` when clicked.
pub fn button(ui: &mut egui::Ui, command: Command, commands: &mut Vec<Command>) {
    let response = ui.button(command.label());
    ask_when_clicked(response, command, commands);
}

/// A small button for `command` (the status bar's).
pub fn small_button(ui: &mut egui::Ui, command: Command, commands: &mut Vec<Command>) {
    let response = ui.small_button(command.label());
    ask_when_clicked(response, command, commands);
}

/// `command`'s tooltip on `response` (where it has one); `command` pushed when it was clicked.
fn ask_when_clicked(response: egui::Response, command: Command, commands: &mut Vec<Command>) {
    let tooltip = command.tooltip();
    let response = if tooltip.is_empty() { response } else { response.on_hover_text(tooltip) };
    if response.clicked() {
        commands.push(command);
    }
}

#[cfg(test)]
mod tests {
    use super::Command;

    #[test]
    fn shortcuts_are_named_in_tooltips() {
        assert!(Command::FocusQuery.tooltip().contains("Ctrl+F"));
        assert!(Command::PickFolder.tooltip().starts_with("Choose a folder"));
        assert_eq!(Command::OpenDemo.shortcut(), None);
    }
}
