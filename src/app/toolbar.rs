//! The top bar: open folder, caption query, settings. It only collects [`Command`]s (and edits
//! the query text); the app applies them after the frame.

use super::commands::{Command, button};
use super::settings::OBJECTS;
use super::{AlignscopeApp, RankModel, ThumbSize};
use crate::engine::backend::BackendRequest;

pub fn show(app: &mut AlignscopeApp, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        ui.heading("alignscope");
        ui.separator();
        button(ui, Command::PickFolder, commands);
        // Not checked on disk here (the UI thread does not touch the disk): a folder gone since
        // is reported when chosen.
        let recent = &app.settings.recent_folders;
        ui.add_enabled_ui(!recent.is_empty(), |ui| {
            ui.menu_button("Recent", |ui| {
                for folder in recent {
                    if ui.button(folder.display().to_string()).clicked() {
                        commands.push(Command::OpenFolder(folder.clone()));
                        ui.close();
                    }
                }
            })
        });
        button(ui, Command::PickExample, commands);
        button(ui, Command::OpenDemo, commands);
        button(ui, Command::PickDataset, commands);
        ui.separator();
        let hover = match (app.ranking.uses_index(), &app.models.ranker.unavailable) {
            (Some(model), _) => format!("Photos are ranked by the {} model from the folder's index", model.name()),
            (None, Some(why)) => format!("Caption ranking is unavailable: {why}"),
            (None, None) => "Photos are ranked by the model chosen in Settings, embedded this session".to_string(),
        };
        let query = egui::TextEdit::singleline(&mut app.query)
            .id(query_id())
            .hint_text("Describe a photo to rank the folder…  (Ctrl+F)")
            .desired_width(ui.available_width() - 300.0);
        ui.add(query).on_hover_text(hover);
        button(ui, Command::CopyPaths, commands);
        button(ui, Command::PickExport, commands);
        ui.menu_button("Settings", |ui| settings_menu(app, ui, commands));
    });
}

/// The query box's id, so Ctrl+F can focus it.
pub fn query_id() -> egui::Id {
    egui::Id::unique("alignscope query")
}

/// A radio entry for `command`, selected when `selected`; pushes it when clicked.
fn radio(ui: &mut egui::Ui, selected: bool, command: Command, commands: &mut Vec<Command>) -> egui::Response {
    let response = ui.radio(selected, command.label());
    if response.clicked() && !selected {
        commands.push(command);
    }
    response
}

fn settings_menu(app: &AlignscopeApp, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
    let settings = &app.settings;
    ui.label("Thumbnail size");
    for size in ThumbSize::ALL {
        radio(ui, settings.thumbnail_size == size, Command::SetThumbnailSize(size), commands);
    }
    ui.separator();
    ui.label("Ranking model (the first three from the folder's index, as `alignscope search`)");
    for model in [RankModel::Default, RankModel::Global, RankModel::Shan, RankModel::Dsran, RankModel::Racg] {
        let entry = radio(ui, settings.rank_model == model, Command::SetRankModel(model), commands);
        if let Some(why) = model.network().and_then(|n| app.models.ranker.get()?.missing(n).map(str::to_string)) {
            entry.on_hover_text(format!("Unavailable: {why}"));
        }
    }
    ui.separator();
    ui.label("Model backend (applies at next start)");
    for request in [BackendRequest::Auto, BackendRequest::Wgpu, BackendRequest::Flex] {
        radio(ui, settings.backend == request, Command::SetBackend(request), commands);
    }
    ui.separator();
    let mut objects = settings.objects > 0;
    let label = format!("Detected objects as SHAN regions ({OBJECTS} per photo; applies at next start)");
    if ui
        .checkbox(&mut objects, label)
        .on_hover_text(
            "Each photo's best objects (SSD-MobileNetV2) become regions SHAN aligns words with, beside the 7×7 grid: \
             Flickr8k test rSum 308.3 against 305.1 with the same weights; indexing runs the detector and a crop per \
             object, so it is slower, and the folder gets an index of its own",
        )
        .changed()
    {
        commands.push(Command::SetObjects(if objects { OBJECTS } else { 0 }));
    }
}
