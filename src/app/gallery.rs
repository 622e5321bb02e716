//! The photo grid: a folder scanned and thumbnailed in the background, drawn row by row so only
//! what is on screen costs anything. At most `texture_limit` thumbnails are held: the ones seen
//! least recently are dropped and decoded again when they come back on screen.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::folder::{FolderScan, scan_folder};
use crate::data::thumb_cache::ThumbCache;
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot, spawn_oneshot};
use crate::engine::thumbnails::{ThumbMsg, ThumbnailJob};

use super::commands::TileAction;
use super::notifications::{Level, Notifications};

/// Longest side of a decoded thumbnail at one pixel per point (tiles show them at up to ~this
/// size); scaled with the screen's pixels per point so high-DPI screens get sharp tiles.
const THUMB_PIXELS: u32 = 256;

/// Thumbnail pixels for a screen of `pixels_per_point`: at least [`THUMB_PIXELS`], in steps of 64.
pub fn thumb_pixels(pixels_per_point: f32) -> u32 {
    let wanted = (THUMB_PIXELS as f32 * pixels_per_point.clamp(1.0, 4.0)).ceil() as u32;
    wanted.div_ceil(64) * 64
}

/// Thumbnails held at once at THUMB_PIXELS (≤ 256 KB each: ~250 MB at most, whatever the
/// folder's size); fewer of the larger high-DPI ones, for the same memory.
pub const TEXTURE_LIMIT: usize = 1000;

pub enum Thumb {
    /// Queued for decoding.
    Loading,
    Ready(egui::TextureHandle),
    Failed(String),
    /// Not in memory (not decoded yet, or dropped by the cache); decoded when it comes on screen.
    Unloaded,
}

pub struct Item {
    pub path: PathBuf,
    pub thumb: Thumb,
    /// Score against the current caption, when ranked.
    pub score: Option<f32>,
    /// The frame this tile was last on screen (0: never).
    pub last_seen: u64,
}

impl Item {
    pub fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

#[derive(Default)]
pub struct Gallery {
    pub folder: Option<PathBuf>,
    /// The items are a given list of photos under `folder` (a dataset split), not all of its photos.
    pub listed: bool,
    pub items: Vec<Item>,
    pub selected: Option<usize>,
    scanning: Option<Job<FolderScan>>,
    thumbs: Option<ThumbnailJob>,
    /// Visible indices last sent to the thumbnail queue, to avoid resending every frame.
    last_visible: Vec<usize>,
    /// Display order (indices into `items`): folder order, or best score first when ranked.
    pub order: Vec<usize>,
    /// Bumped whenever `items` is replaced, so dependents (embeddings) know to start over.
    pub generation: u64,
    /// Tiles per row at the last layout (arrow keys move by rows).
    pub columns: usize,
    /// Lowest and highest score of the current ranking, set with the scores (not per tile drawn).
    score_range: (f32, f32),
    paths: Arc<Vec<PathBuf>>,
    waker: Option<Waker>,
    frame: u64,
    /// Most thumbnails held at once (0: TEXTURE_LIMIT scaled to the thumbnails' side; smaller in
    /// tests).
    pub texture_limit: usize,
    /// The selection moved by keyboard: scroll it into view at the next frame.
    scroll_to_selected: bool,
    /// The grid's scroll offset and visible height at the last frame.
    viewport: (f32, f32),
    /// Thumbnails kept between runs (None: decoded every time).
    pub thumb_cache: Option<ThumbCache>,
    /// Side of the thumbnails decoded for this folder ([`thumb_pixels`] of the screen).
    thumb_side: u32,
    /// Each item's group of near-duplicates (from the folder's index; None until computed), and
    /// which computation they came from.
    groups: Option<Vec<usize>>,
    pub groups_version: Option<usize>,
    /// Hide all but the best-placed photo of each group of near-duplicates.
    hide_duplicates: bool,
    /// Per item: how many of its near-duplicates are hidden behind it.
    hidden_copies: Vec<usize>,
    /// Scores below this are weak matches (the default ranker's calibrated line, and the
    /// percentage of dev captions whose own photo scores below it; None: no line).
    pub weak_below: Option<(f32, u32)>,
}

impl Gallery {
    /// Start showing `dir`: list it in the background, then decode thumbnails.
    pub fn open(&mut self, dir: &Path, waker: Waker) {
        self.cancel();
        *self = Self {
            folder: Some(dir.to_path_buf()),
            generation: self.generation + 1,
            texture_limit: self.texture_limit,
            thumb_cache: self.thumb_cache.clone(),
            ..Self::default()
        };
        let dir = dir.to_path_buf();
        self.scanning = Some(spawn_oneshot("scan folder", waker, move |_| scan_folder(&dir)));
    }

    /// Show a given list of photos (a dataset split) under the name `label`.
    pub fn open_files(&mut self, label: &Path, images: Vec<PathBuf>, waker: &Waker, notes: &mut Notifications) {
        self.cancel();
        *self = Self {
            folder: Some(label.to_path_buf()),
            listed: true,
            generation: self.generation + 1,
            texture_limit: self.texture_limit,
            thumb_cache: self.thumb_cache.clone(),
            ..Self::default()
        };
        self.take_scan(FolderScan { images, problems: Vec::new() }, waker, notes);
    }

    pub fn cancel(&mut self) {
        if let Some(t) = &self.thumbs {
            t.job.cancel();
        }
    }

    pub fn is_scanning(&self) -> bool {
        self.scanning.is_some()
    }

    /// Most thumbnails held at once.
    pub fn limit(&self) -> usize {
        if self.texture_limit != 0 {
            return self.texture_limit;
        }
        let side = self.thumb_side.max(THUMB_PIXELS) as usize;
        (TEXTURE_LIMIT * (THUMB_PIXELS as usize).pow(2) / side.pow(2)).max(100)
    }

    /// Thumbnails in memory now.
    pub fn textures_held(&self) -> usize {
        self.items.iter().filter(|i| matches!(i.thumb, Thumb::Ready(_))).count()
    }

    pub fn thumbs_done(&self) -> usize {
        self.items.iter().filter(|i| !matches!(i.thumb, Thumb::Loading)).count()
    }

    pub fn is_settled(&self) -> bool {
        self.folder.is_some() && !self.is_scanning() && self.thumbs_done() == self.items.len()
    }

    /// Take in what the background jobs produced since the last frame.
    pub fn poll(&mut self, ctx: &egui::Context, waker: &Waker, notes: &mut Notifications) {
        match poll_slot(&mut self.scanning) {
            Oneshot::Pending => {}
            Oneshot::Done(scan) => {
                self.thumb_side = thumb_pixels(ctx.pixels_per_point());
                self.take_scan(scan, waker, notes)
            }
            Oneshot::Gone => notes.push(Level::Error, "folder scan stopped unexpectedly"),
        }
        let Some(thumbs) = &self.thumbs else { return };
        let Some(messages) = thumbs.job.drain() else {
            self.thumbs = None;
            return;
        };
        for message in messages {
            match message {
                ThumbMsg::Ready { index, image } => {
                    if let Some(item) = self.items.get_mut(index) {
                        let size = [image.width() as usize, image.height() as usize];
                        let color = egui::ColorImage::from_rgba_unmultiplied(size, image.as_raw());
                        let name = format!("thumb:{}", item.path.display());
                        item.thumb = Thumb::Ready(ctx.load_texture(name, color, egui::TextureOptions::LINEAR));
                    }
                }
                ThumbMsg::Failed { index, error } => {
                    if let Some(item) = self.items.get_mut(index) {
                        notes.push(Level::Error, error.clone());
                        item.thumb = Thumb::Failed(error);
                    }
                }
            }
        }
        self.evict();
    }

    /// Over the limit: drop the thumbnails seen least recently (never those on screen), down to
    /// 90 % of the limit so eviction does not run for every new thumbnail.
    fn evict(&mut self) {
        let limit = self.limit();
        let held = self.textures_held();
        if held <= limit {
            return;
        }
        let on_screen: std::collections::HashSet<usize> = self.last_visible.iter().copied().collect();
        let mut candidates: Vec<usize> = (0..self.items.len())
            .filter(|i| matches!(self.items[*i].thumb, Thumb::Ready(_)) && !on_screen.contains(i))
            .collect();
        candidates.sort_by_key(|&i| (self.items[i].last_seen, i));
        for &i in candidates.iter().take(held - limit * 9 / 10) {
            self.items[i].thumb = Thumb::Unloaded;
        }
    }

    /// Decode these (unloaded, now on screen) thumbnails: in the running job, or a new one.
    fn reload(&mut self, indices: Vec<usize>) {
        for &i in &indices {
            self.items[i].thumb = Thumb::Loading;
        }
        if self.thumbs.as_ref().is_some_and(|t| t.add(indices.iter().copied())) {
            return;
        }
        let Some(waker) = self.waker.clone() else { return };
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        self.thumbs = Some(ThumbnailJob::spawn_some(
            self.paths.clone(),
            indices.into_iter().collect(),
            self.thumb_side,
            workers,
            self.thumb_cache.clone(),
            waker,
        ));
    }

    fn take_scan(&mut self, scan: FolderScan, waker: &Waker, notes: &mut Notifications) {
        self.thumb_side = self.thumb_side.max(THUMB_PIXELS);
        for problem in &scan.problems {
            notes.push(Level::Warning, problem.to_string());
        }
        if scan.images.is_empty() {
            let folder = self.folder.as_deref().map(|f| f.display().to_string()).unwrap_or_default();
            notes.push(Level::Warning, format!("{folder}: no photos found (jpg, png, webp, bmp, gif, tiff)"));
        }
        // The first `limit` photos are decoded now; the rest when they come on screen.
        let limit = self.limit();
        self.items = scan
            .images
            .iter()
            .enumerate()
            .map(|(i, p)| Item {
                path: p.clone(),
                thumb: if i < limit { Thumb::Loading } else { Thumb::Unloaded },
                score: None,
                last_seen: 0,
            })
            .collect();
        // Groups computed for an earlier listing no longer line up with the items.
        (self.groups, self.groups_version) = (None, None);
        self.reorder();
        self.generation += 1;
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        self.paths = Arc::new(scan.images);
        self.waker = Some(waker.clone());
        self.thumbs = Some(ThumbnailJob::spawn_some(
            self.paths.clone(),
            (0..limit.min(self.items.len())).collect(),
            self.thumb_side,
            workers,
            self.thumb_cache.clone(),
            waker.clone(),
        ));
    }

    /// Draw the grid; returns what a double-click or a tile's menu asked for.
    pub fn show(&mut self, ui: &mut egui::Ui, tile: f32) -> Option<TileAction> {
        if self.items.is_empty() {
            ui.centered_and_justified(|ui| {
                if self.is_scanning() {
                    ui.spinner();
                } else {
                    ui.label("No photos here. Open a folder (or drop one on the window).");
                }
            });
            return None;
        }
        let spacing = 8.0;
        let label_height = ui.text_style_height(&egui::TextStyle::Small) + 4.0;
        let columns = (((ui.available_width() + spacing) / (tile + spacing)).floor() as usize).max(1);
        // Stretch tiles so the columns fill the width instead of leaving a ragged margin.
        let tile = ((ui.available_width() - spacing * (columns - 1) as f32) / columns as f32).max(tile);
        let rows = self.order.len().div_ceil(columns);
        self.columns = columns;
        let row_height = tile + label_height + spacing;
        let mut activated = None;
        let mut visible = Vec::new();
        let mut scroll = egui::ScrollArea::vertical().auto_shrink([false, false]);
        if std::mem::take(&mut self.scroll_to_selected)
            && let Some(rank) = self.selected.and_then(|s| self.order.iter().position(|&i| i == s))
        {
            let top = (rank / columns) as f32 * row_height;
            let (offset, height) = self.viewport;
            if top < offset {
                scroll = scroll.vertical_scroll_offset(top);
            } else if top + row_height > offset + height {
                scroll = scroll.vertical_scroll_offset(top + row_height - height);
            }
        }
        let output = scroll.show_rows(ui, row_height, rows, |ui, row_range| {
            for row in row_range {
                ui.horizontal(|ui| {
                    ui.spacing_mut().item_spacing.x = spacing;
                    for rank in row * columns..((row + 1) * columns).min(self.order.len()) {
                        let index = self.order.get(rank).copied().unwrap_or(rank);
                        visible.push(index);
                        let response = self.tile(ui, index, rank, tile, label_height);
                        if response.clicked() {
                            self.selected = Some(index);
                        }
                        if response.double_clicked() {
                            activated = Some(TileAction::Inspect(index));
                        }
                        response.context_menu(|ui| {
                            for action in TileAction::menu(index) {
                                if ui.button(action.label()).clicked() {
                                    activated = Some(action);
                                    ui.close();
                                }
                            }
                        });
                    }
                });
                ui.add_space(spacing - ui.spacing().item_spacing.y);
            }
        });
        self.viewport = (output.state.clamped_offset().y, output.inner_rect.height());
        self.frame += 1;
        for &i in &visible {
            self.items[i].last_seen = self.frame;
        }
        let unloaded: Vec<usize> =
            visible.iter().copied().filter(|&i| matches!(self.items[i].thumb, Thumb::Unloaded)).collect();
        if !unloaded.is_empty() {
            self.reload(unloaded);
        }
        if visible != self.last_visible {
            if let Some(thumbs) = &self.thumbs {
                // Most urgent last: the queue pops from the end.
                thumbs.prioritize(visible.iter().rev().copied());
            }
            self.last_visible = visible;
        }
        activated
    }

    /// Scores are shown relative to the spread of this query's scores, so the strongest results
    /// stand out whatever the absolute level.
    fn relative(&self, score: f32) -> f32 {
        let (lo, hi) = self.score_range;
        if hi > lo { (score - lo) / (hi - lo) } else { 1.0 }
    }

    /// Apply scores (one per item, `None` where a photo has none) and sort best first.
    pub fn rank_by(&mut self, scores: Vec<Option<f32>>) {
        for (item, s) in self.items.iter_mut().zip(&scores) {
            item.score = *s;
        }
        self.score_range = scores.iter().flatten().fold((f32::MAX, f32::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        self.reorder();
    }

    /// The display order: best score first when ranked (else folder order), without the photos
    /// hidden as near-duplicates of a better-placed one when hiding is on.
    fn reorder(&mut self) {
        self.order = (0..self.items.len()).collect();
        if self.items.iter().any(|i| i.score.is_some()) {
            self.order.sort_by(|&a, &b| {
                let key = |i: usize| self.items[i].score.unwrap_or(f32::NEG_INFINITY);
                key(b).total_cmp(&key(a)).then(a.cmp(&b))
            });
        }
        self.hidden_copies = vec![0; self.items.len()];
        if let Some(groups) = self.groups.as_ref().filter(|g| self.hide_duplicates && g.len() == self.items.len()) {
            let (hidden, copies) = crate::engine::duplicates::hidden_in_order(groups, &self.order);
            self.order.retain(|&i| !hidden[i]);
            self.hidden_copies = copies;
        }
    }

    /// Each item's group of near-duplicates (index-aligned with `items`), once computed.
    pub fn set_groups(&mut self, groups: Vec<usize>, version: usize) {
        self.groups_version = Some(version);
        if self.groups.as_ref() != Some(&groups) {
            self.groups = Some(groups);
            self.reorder();
        }
    }

    /// Photos hidden as near-duplicates in the current order (the order leaves out only those).
    pub fn hidden(&self) -> usize {
        self.items.len() - self.order.len()
    }

    /// Whether near-duplicates are known for this folder (the toggle's count needs them).
    pub fn has_groups(&self) -> bool {
        self.groups.is_some()
    }

    /// Hide (or show again) the near-duplicates of better-placed photos.
    pub fn set_hide_duplicates(&mut self, hide: bool) {
        if self.hide_duplicates != hide {
            self.hide_duplicates = hide;
            self.reorder();
        }
    }

    /// Move the selection `step` places in display order (clamped); selects the first tile if none.
    pub fn move_selection(&mut self, step: i64) {
        if self.order.is_empty() {
            return;
        }
        let rank = match self.selected.and_then(|s| self.order.iter().position(|&i| i == s)) {
            Some(rank) => (rank as i64 + step).clamp(0, self.order.len() as i64 - 1) as usize,
            None => 0,
        };
        self.selected = Some(self.order[rank]);
        self.scroll_to_selected = true;
    }

    /// The tiles drawn at the last frame (indices into `items`).
    pub fn on_screen(&self) -> &[usize] {
        &self.last_visible
    }

    /// Whether `score` lies below the weak-match line.
    pub fn is_weak(&self, score: f32) -> bool {
        self.weak_below.is_some_and(|(line, _)| score < line)
    }

    /// The best score, when it is a weak match: nothing matches the caption well.
    pub fn best_is_weak(&self) -> Option<f32> {
        let best = self.order.first().and_then(|&i| self.items.get(i)?.score)?;
        self.is_weak(best).then_some(best)
    }

    /// Whether the tiles show a ranking (the best tile has a score).
    pub fn is_ranked(&self) -> bool {
        self.order.first().and_then(|&i| self.items.get(i)).is_some_and(|i| i.score.is_some())
    }

    /// Back to folder order, no scores.
    pub fn unrank(&mut self) {
        for item in &mut self.items {
            item.score = None;
        }
        self.reorder();
    }

    fn tile(&self, ui: &mut egui::Ui, index: usize, rank: usize, tile: f32, label_height: f32) -> egui::Response {
        let item = &self.items[index];
        let (rect, response) = ui.allocate_exact_size(egui::vec2(tile, tile + label_height), egui::Sense::click());
        if !ui.is_rect_visible(rect) {
            return response;
        }
        let painter = ui.painter_at(rect);
        let visuals = ui.visuals();
        let image_rect = egui::Rect::from_min_size(rect.min, egui::vec2(tile, tile));
        painter.rect_filled(image_rect, 4.0, visuals.extreme_bg_color);
        match &item.thumb {
            Thumb::Ready(texture) => {
                let size = texture.size_vec2();
                let scale = (tile / size.x).min(tile / size.y);
                let fitted = egui::Rect::from_center_size(image_rect.center(), size * scale);
                painter.image(
                    texture.id(),
                    fitted,
                    egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                    egui::Color32::WHITE,
                );
            }
            Thumb::Loading | Thumb::Unloaded => {
                painter.text(
                    image_rect.center(),
                    egui::Align2::CENTER_CENTER,
                    "…",
                    egui::TextStyle::Heading.resolve(ui.style()),
                    visuals.weak_text_color(),
                );
            }
            Thumb::Failed(_) => {
                painter.text(
                    image_rect.center(),
                    egui::Align2::CENTER_CENTER,
                    "unreadable",
                    egui::TextStyle::Small.resolve(ui.style()),
                    visuals.error_fg_color,
                );
            }
        }
        if let Some(score) = item.score {
            let strength = self.relative(score);
            let accent = egui::Color32::from_rgb(255, 170, 40).gamma_multiply(0.25 + 0.75 * strength);
            painter.rect_stroke(
                image_rect,
                4.0,
                egui::Stroke::new(1.0 + 3.0 * strength, accent),
                egui::StrokeKind::Inside,
            );
            let weak = self.is_weak(score);
            if weak {
                painter.rect_filled(image_rect, 4.0, egui::Color32::from_black_alpha(110));
            }
            let badge = format!("#{} · {score:.3}{}", rank + 1, if weak { " · weak" } else { "" });
            let font = egui::TextStyle::Small.resolve(ui.style());
            let galley = ui.painter().layout_no_wrap(badge, font, egui::Color32::WHITE);
            let badge_rect =
                egui::Rect::from_min_size(image_rect.min + egui::vec2(4.0, 4.0), galley.size() + egui::vec2(8.0, 4.0));
            painter.rect_filled(badge_rect, 3.0, egui::Color32::from_black_alpha(180));
            painter.galley(badge_rect.min + egui::vec2(4.0, 2.0), galley, egui::Color32::WHITE);
        }
        if let Some(&n) = self.hidden_copies.get(index).filter(|&&n| n > 0) {
            let font = egui::TextStyle::Small.resolve(ui.style());
            let text = format!("+{n} near-duplicate{}", if n == 1 { "" } else { "s" });
            let galley = ui.painter().layout_no_wrap(text, font, egui::Color32::WHITE);
            let at = egui::Rect::from_min_size(
                image_rect.right_bottom() - galley.size() - egui::vec2(12.0, 8.0),
                galley.size() + egui::vec2(8.0, 4.0),
            );
            painter.rect_filled(at, 3.0, egui::Color32::from_rgba_unmultiplied(40, 90, 160, 220));
            painter.galley(at.min + egui::vec2(4.0, 2.0), galley, egui::Color32::WHITE);
        }
        if self.selected == Some(index) {
            painter.rect_stroke(
                image_rect,
                4.0,
                egui::Stroke::new(3.0, visuals.selection.stroke.color),
                egui::StrokeKind::Inside,
            );
        } else if response.hovered() {
            painter.rect_stroke(image_rect, 4.0, visuals.widgets.hovered.bg_stroke, egui::StrokeKind::Inside);
        }
        let label_pos = egui::pos2(rect.min.x + 2.0, image_rect.max.y + 2.0);
        let font = egui::TextStyle::Small.resolve(ui.style());
        let mut job = egui::text::LayoutJob::simple_singleline(item.file_name(), font, visuals.text_color());
        job.wrap = egui::text::TextWrapping::truncate_at_width(tile - 4.0);
        let galley = ui.painter().layout_job(job);
        painter.galley(label_pos, galley, visuals.text_color());
        match &item.thumb {
            Thumb::Failed(error) => response.on_hover_text(error),
            _ => response.on_hover_text(item.path.display().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gallery(n: usize) -> Gallery {
        let items = (0..n)
            .map(|i| Item { path: PathBuf::from(format!("{i}.jpg")), thumb: Thumb::Loading, score: None, last_seen: 0 })
            .collect();
        Gallery { items, order: (0..n).collect(), ..Gallery::default() }
    }

    #[test]
    fn near_duplicates_hide_behind_their_best_placed_copy() {
        let mut g = gallery(4);
        // Photos 0, 2 and 3 are copies of one another.
        g.set_groups(vec![0, 1, 0, 0], 1);
        assert_eq!(g.order, vec![0, 1, 2, 3], "nothing hidden until asked");
        g.set_hide_duplicates(true);
        assert_eq!((g.order.clone(), g.hidden()), (vec![0, 1], 2));
        // Ranked: copy 3 scores best, so it is the one shown, with two hidden behind it.
        g.rank_by(vec![Some(0.1), Some(0.5), Some(0.2), Some(0.9)]);
        assert_eq!(g.order, vec![3, 1]);
        assert_eq!(g.hidden_copies[3], 2);
        g.set_hide_duplicates(false);
        assert_eq!((g.order.clone(), g.hidden()), (vec![3, 1, 2, 0], 0));
    }

    #[test]
    fn ranking_sorts_best_first_with_unscored_last_and_unrank_restores() {
        let mut g = gallery(4);
        g.rank_by(vec![Some(0.1), None, Some(0.7), Some(0.3)]);
        assert_eq!(g.order, vec![2, 3, 0, 1]);
        assert_eq!(g.relative(0.7), 1.0);
        assert_eq!(g.relative(0.1), 0.0);
        g.unrank();
        assert_eq!(g.order, vec![0, 1, 2, 3]);
        assert!(g.items.iter().all(|i| i.score.is_none()));
    }

    #[test]
    fn the_cache_drops_the_thumbnails_seen_least_recently_never_those_on_screen() {
        let ctx = egui::Context::default();
        let mut g = gallery(10);
        g.texture_limit = 5;
        for (i, item) in g.items.iter_mut().enumerate() {
            item.thumb = Thumb::Ready(ctx.load_texture(
                format!("t{i}"),
                egui::ColorImage::filled([2, 2], egui::Color32::RED),
                Default::default(),
            ));
            item.last_seen = [9, 1, 8, 2, 7, 3, 6, 4, 5, 0][i];
        }
        g.last_visible = vec![9]; // on screen, though never seen before this frame
        g.evict();
        // Down to 90 % of 5 = 4: the 6 oldest off-screen tiles go.
        let held: Vec<usize> = (0..10).filter(|&i| matches!(g.items[i].thumb, Thumb::Ready(_))).collect();
        assert_eq!(held, vec![0, 2, 4, 9]);
        assert!(g.items.iter().all(|i| matches!(i.thumb, Thumb::Ready(_) | Thumb::Unloaded)));
        g.evict();
        assert_eq!(g.textures_held(), 4, "under the limit: nothing more is dropped");
    }

    #[test]
    fn thumbnails_follow_the_screen_s_pixel_density_and_the_limit_keeps_memory() {
        assert_eq!((thumb_pixels(1.0), thumb_pixels(1.25), thumb_pixels(2.0)), (256, 320, 512));
        let mut g = gallery(1);
        g.thumb_side = 512;
        assert_eq!(g.limit(), TEXTURE_LIMIT / 4, "4× the pixels each: a quarter as many");
        g.texture_limit = 7;
        assert_eq!(g.limit(), 7);
    }

    #[test]
    fn arrow_steps_follow_display_order_and_stay_inside() {
        let mut g = gallery(4);
        g.rank_by(vec![Some(0.1), Some(0.9), Some(0.5), Some(0.3)]);
        g.move_selection(1);
        assert_eq!(g.selected, Some(1), "no selection: the first tile in display order");
        g.move_selection(1);
        assert_eq!(g.selected, Some(2));
        g.move_selection(10);
        assert_eq!(g.selected, Some(0), "clamped to the last tile");
        g.move_selection(-10);
        assert_eq!(g.selected, Some(1));
    }
}
