//! The bottom bar: folder, progress, backend and adapter, message counts.

use super::commands::{Command, small_button};
use super::{AlignscopeApp, Level};

pub fn show(app: &AlignscopeApp, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        match (&app.dataset, &app.gallery.folder) {
            (Some(d), _) => ui
                .label(format!(
                    "Dataset: {} ({})",
                    d.root.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                    d.split.name()
                ))
                .on_hover_text(d.root.display().to_string()),
            // The name only (a full path crowds the bar); the path on hover.
            (None, Some(folder)) => ui
                .label(format!(
                    "Folder: {}",
                    folder
                        .file_name()
                        .map_or_else(|| folder.display().to_string(), |n| n.to_string_lossy().into_owned())
                ))
                .on_hover_text(folder.display().to_string()),
            (None, None) => ui.label("no folder"),
        };
        ui.separator();
        let total = app.gallery.items.len();
        if app.gallery.is_scanning() {
            ui.spinner();
            ui.label("scanning…");
        } else {
            ui.label(format!("{total} photos"));
            let done = app.gallery.thumbs_done();
            if done < total {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total as f32)
                        .desired_width(120.0)
                        .text(format!("thumbnails {done}/{total}")),
                );
                small_button(ui, Command::StopThumbnails, commands);
            }
        }
        if app.gallery.has_groups() {
            ui.separator();
            let label = if app.gallery.hidden() > 0 {
                format!("hide near-duplicates ({} hidden)", app.gallery.hidden())
            } else {
                "hide near-duplicates".to_string()
            };
            let mut hide = app.settings.hide_duplicates;
            let command = Command::SetHideDuplicates(!hide);
            if ui.checkbox(&mut hide, label).on_hover_text(command.tooltip()).changed() {
                commands.push(command);
            }
        }
        if let Some(photo) = app.similar_photo() {
            ui.separator();
            let name = photo.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            ui.label(format!("ranked by similarity to {name}"));
        }
        if let (Some(best), Some((line, percent))) = (app.gallery.best_is_weak(), app.gallery.weak_below) {
            ui.separator();
            ui.colored_label(ui.visuals().warn_fg_color, "no photo matches well").on_hover_text(format!(
                "The best score, {best:.2}, is below {line:.2}: {} % of Flickr8k dev captions score their own \
                 photo higher. Tiles below that line are dimmed and marked \"weak\".",
                100 - percent
            ));
        }
        if app.objects > 0 {
            ui.separator();
            ui.label(format!("SHAN + {} objects", app.objects)).on_hover_text(
                "Each photo's best detected objects are regions SHAN aligns words with (Settings); \
                 the folder has an index of its own for them",
            );
        }
        if app.gallery.is_ranked() {
            ui.separator();
            ui.label("#rank · score").on_hover_text(
                "Tiles are ordered best first; a brighter border is nearer the best match. Scores compare \
                 photos within one query, not across \
                 queries or models. The default ranker's score is a log-ratio: 0 means the caption \
                 fits the photo as well as 3,000 training captions together; higher is better.",
            );
        }
        if let Some((done, total)) = app.ranking.index.progress {
            ui.separator();
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .desired_width(120.0)
                    .text(format!("indexing {done}/{total}")),
            );
            small_button(ui, Command::StopIndexing, commands);
        }
        if app.ranking.is_embedding() {
            ui.separator();
            let (done, total) = (app.ranking.embedded(), app.gallery.items.len());
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .desired_width(120.0)
                    .text(format!("embedding {done}/{total}")),
            );
            small_button(ui, Command::StopEmbedding, commands);
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let errors = app.notes.count(Level::Error) + app.notes.count(Level::Warning);
            let label = if errors > 0 { format!("{errors} problems") } else { "Messages".to_string() };
            if ui.small_button(label).clicked() {
                commands.push(Command::ToggleMessages);
            }
            ui.separator();
            match &app.compute {
                Ok(compute) => {
                    ui.label(compute.status_line()).on_hover_text(compute.describe());
                }
                Err(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, "backend unavailable").on_hover_text(e.as_str());
                }
            }
            if app.backend_pending {
                ui.colored_label(ui.visuals().warn_fg_color, format!("restart to use {}", app.settings.backend));
            }
            if app.objects_pending {
                let to = if app.settings.objects > 0 { "to index objects" } else { "for the grid alone" };
                ui.colored_label(ui.visuals().warn_fg_color, format!("restart {to}"));
            }
        });
    });
}
