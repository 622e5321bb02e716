//! The top bar: open folder, caption query, settings.

use super::{AlignscopeApp, ThumbSize};
use crate::engine::backend::BackendRequest;

pub fn show(app: &mut AlignscopeApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.heading("alignscope");
        ui.separator();
        if ui.button("Open folder…").on_hover_text("Choose a folder of photos (or drop one on the window)").clicked() {
            app.pick_folder();
        }
        if ui.button("Demo").on_hover_text("The bundled demo photos").clicked() {
            app.open_folder(super::demo_folder());
        }
        ui.separator();
        let query = egui::TextEdit::singleline(&mut app.query)
            .hint_text("Type a caption… (ranking arrives with the trained matching model)")
            .desired_width(ui.available_width() - 140.0);
        ui.add(query).on_hover_text(
            "Ranking by caption needs the trained matching model; until its weights ship in \
             assets/models/, the query is not applied.",
        );
        ui.menu_button("Settings", |ui| settings_menu(app, ui));
    });
}

fn settings_menu(app: &mut AlignscopeApp, ui: &mut egui::Ui) {
    ui.label("Thumbnail size");
    for size in ThumbSize::ALL {
        ui.radio_value(&mut app.settings.thumbnail_size, size, size.label());
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
