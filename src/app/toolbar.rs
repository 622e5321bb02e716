//! The top bar: open folder, caption query, settings.

use super::{AlignscopeApp, ThumbSize};
use crate::engine::backend::BackendRequest;
use crate::engine::rank::RankerModel;

pub fn show(app: &mut AlignscopeApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.heading("alignscope");
        ui.separator();
        if ui.button("Open folder…").on_hover_text("Choose a folder of photos (or drop one on the window)").clicked() {
            app.pick_folder();
        }
        // Not checked on disk here (the UI thread does not touch the disk): a folder gone since
        // is reported when chosen.
        let recent = app.settings.recent_folders.clone();
        ui.add_enabled_ui(!recent.is_empty(), |ui| {
            ui.menu_button("Recent", |ui| {
                for folder in recent {
                    if ui.button(folder.display().to_string()).clicked() {
                        app.open_folder(folder);
                        ui.close();
                    }
                }
            })
        });
        if ui.button("Photo…").on_hover_text("Rank a folder by a photo: its folder opens, most similar first (or drop a photo on the window)").clicked() {
            app.pick_example();
        }
        if ui.button("Demo").on_hover_text("The bundled demo photos").clicked() {
            app.open_folder(super::demo_folder());
        }
        if ui.button("Dataset…").on_hover_text("Browse a dataset's test split (a Flickr8k folder, or Flickr30k/COCO as a Karpathy-split JSON) with its captions and Recall@K").clicked() {
            app.pick_dataset();
        }
        ui.separator();
        let query = egui::TextEdit::singleline(&mut app.query)
            .id(query_id())
            .hint_text("Describe a photo to rank the folder…  (Ctrl+F)")
            .desired_width(ui.available_width() - 300.0);
        let hover = match (app.ranking.uses_index(), &app.ranking.unavailable) {
            (Some(model), _) => format!("Photos are ranked by the {} model from the folder's index", model.name()),
            (None, Some(why)) => format!("Caption ranking is unavailable: {why}"),
            (None, None) => "Photos are ranked by the model chosen in Settings, embedded this session".to_string(),
        };
        ui.add(query).on_hover_text(hover);
        if ui.button("Copy paths").on_hover_text("Copy the photos' paths in displayed order (best first when ranked)").clicked() {
            ui.ctx().copy_text(app.ranked_paths());
            app.notes.push(super::Level::Info, format!("copied {} paths", app.gallery.order.len()));
        }
        if ui.button("Export…").on_hover_text("Save the photos in displayed order with their scores, as CSV or JSON (the shape of `alignscope search --json`)").clicked() {
            app.pick_export();
        }
        ui.menu_button("Settings", |ui| settings_menu(app, ui));
    });
}

/// The query box's id, so Ctrl+F can focus it.
pub fn query_id() -> egui::Id {
    egui::Id::unique("alignscope query")
}

fn settings_menu(app: &mut AlignscopeApp, ui: &mut egui::Ui) {
    ui.label("Thumbnail size");
    for size in ThumbSize::ALL {
        ui.radio_value(&mut app.settings.thumbnail_size, size, size.label());
    }
    ui.separator();
    ui.label("Ranking model (the first three from the folder's index, as `alignscope search`)");
    for (choice, label) in [
        (super::RankModel::Default, "default: SHAN + global, hubs normalised (best measured)"),
        (super::RankModel::Global, "global dual encoder"),
        (super::RankModel::Shan, "SHAN (two-stage)"),
    ] {
        ui.radio_value(&mut app.settings.rank_model, choice, label);
    }
    for (choice, model, label) in [
        (super::RankModel::Dsran, RankerModel::Dsran, "DSRAN (graph-attention dual encoder)"),
        (super::RankModel::Racg, RankerModel::Racg, "RACG (cross-graph relations; the folder scored per caption)"),
    ] {
        let radio = ui.radio_value(&mut app.settings.rank_model, choice, label);
        if let Some(why) = app.ranking.missing(model) {
            radio.on_hover_text(format!("Unavailable: {why}"));
            if app.settings.rank_model == choice {
                app.settings.rank_model = super::RankModel::Default;
                app.notes.push(super::Level::Warning, format!("{} cannot rank: {why}", model.name()));
            }
        }
    }
    ui.separator();
    ui.label("Model backend (applies at next start)");
    let before = app.settings.backend;
    for (request, label) in [
        (BackendRequest::Auto, "auto: wgpu on a GPU, flex on a software adapter"),
        (BackendRequest::Wgpu, "wgpu (forced)"),
        (BackendRequest::Flex, "flex (CPU)"),
    ] {
        ui.radio_value(&mut app.settings.backend, request, label);
    }
    if app.settings.backend != before {
        app.backend_pending = true;
    }
}
