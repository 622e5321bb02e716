//! Non-modal messages: errors that name the file and the cause, never a blocking dialog.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

pub struct Notification {
    pub level: Level,
    pub text: String,
    pub at: Instant,
}

#[derive(Default)]
pub struct Notifications {
    pub items: Vec<Notification>,
    pub expanded: bool,
}

/// How long a toast stays in the corner; the log in the status bar keeps everything.
const TOAST_TIME: Duration = Duration::from_secs(6);

impl Notifications {
    pub fn push(&mut self, level: Level, text: impl Into<String>) {
        self.items.push(Notification { level, text: text.into(), at: Instant::now() });
    }

    pub fn count(&self, level: Level) -> usize {
        self.items.iter().filter(|n| n.level == level).count()
    }

    /// Recent messages as toasts in the bottom-right corner.
    pub fn show_toasts(&self, ctx: &egui::Context) {
        let recent: Vec<&Notification> =
            self.items.iter().rev().filter(|n| n.level != Level::Info && n.at.elapsed() < TOAST_TIME).take(3).collect();
        if recent.is_empty() {
            return;
        }
        egui::Area::new(egui::Id::unique("toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-12.0, -36.0))
            .interactable(false)
            .show(ctx, |ui| {
                for n in recent {
                    egui::Frame::popup(ui.style()).show(ui, |ui| {
                        ui.set_max_width(420.0);
                        ui.colored_label(color(n.level, ui.visuals()), &n.text);
                    });
                }
            });
        ctx.request_repaint_after(Duration::from_millis(500));
    }

    /// The full log, opened from the status bar.
    pub fn show_log(&mut self, ctx: &egui::Context) {
        let mut open = self.expanded;
        egui::Window::new("Messages").open(&mut open).default_width(560.0).show(ctx, |ui| {
            egui::ScrollArea::vertical().max_height(320.0).show(ui, |ui| {
                for n in self.items.iter().rev() {
                    ui.colored_label(color(n.level, ui.visuals()), &n.text);
                }
            });
            if ui.button("Clear").clicked() {
                self.items.clear();
            }
        });
        self.expanded = open;
    }
}

pub fn color(level: Level, visuals: &egui::Visuals) -> egui::Color32 {
    match level {
        Level::Info => visuals.text_color(),
        Level::Warning => visuals.warn_fg_color,
        Level::Error => visuals.error_fg_color,
    }
}
