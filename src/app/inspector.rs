//! The inspector: why the selected photo matches the caption under SHAN. The photo with the
//! selected word's heatmap over the region grid (flat cells; gradient × activation by default,
//! occlusion, windows or SHAN's attention on request) with its colour bar, the caption as word
//! chips coloured by their alignment R_t, the three level scores as bars, "all words" small
//! multiples, and export as PNG. "Pin" keeps an explanation beside the live one, so
//! two captions (pin, edit the query) or two photos (pin, select another) can be compared. The
//! same pair under the three networks side by side: SHAN's word attention, DSRAN's graph
//! attention, RACG's cross-graph attention for the same word, each with its score and folder
//! rank. The object detector's boxes are drawn over the heatmap, each with the word's share.
//! SHAN loads and explains in the background.

use std::path::PathBuf;
use std::sync::Arc;

use image::RgbaImage;

use super::models::Models;
use super::ranking::ModelScore;
use crate::engine::explain::{Explanation, Method, explain_photo};
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot, spawn_oneshot};
use crate::engine::objects::{load_detector, objects_in, share_in_objects};
use crate::engine::rank::Ranker;
use crate::engine::runtime::Runtime;
use crate::engine::scale::HeatScale;
use crate::engine::words::content_words;
use crate::features::detections::Detection;
use crate::render::colormap::viridis;

use super::notifications::{Level, Notifications};

/// Longest side of the photo kept for display and export.
const PHOTO_PIXELS: u32 = 448;
/// Opacity of the heatmap over the photo (the exported PNG uses the same).
const HEAT_ALPHA: f32 = crate::render::explanation::HEAT_ALPHA;

/// One explained pair, ready to draw.
pub struct Explained {
    pub explanation: Explanation,
    /// The photo scaled to at most PHOTO_PIXELS, and its original size (the boxes' pixels).
    pub photo: Arc<RgbaImage>,
    pub original: [u32; 2],
    /// DSRAN's graph attention over the same regions, when DSRAN is loaded.
    pub dsran_attention: Option<Vec<f32>>,
    /// RACG's cross-graph attention of each word over the same regions, when RACG is loaded (or
    /// why it could not be computed).
    pub racg_attention: Option<Result<Vec<(String, Vec<f32>)>, String>>,
    /// The detector's objects in the photo (or why there are none to show).
    pub objects: Result<Vec<Detection>, String>,
    /// Whether DSRAN and RACG were asked (they load after SHAN: explained before, the pair is
    /// explained again once they are there).
    with_ranker: bool,
}

/// An explanation on screen, with the word chosen in it.
pub struct View {
    pub explained: Explained,
    texture: egui::TextureHandle,
    /// The word whose heatmap is shown (index into the explanation's words).
    pub word: usize,
    pub all_words: bool,
    /// Draw the detector's objects over the heatmap.
    pub show_objects: bool,
}

type ExplainResult = Result<Explained, String>;

#[derive(Default)]
pub struct Inspector {
    pub open: bool,
    job: Option<Job<(PathBuf, String, ExplainResult)>>,
    /// The pair last asked for.
    wanted: Option<(PathBuf, String)>,
    /// The selected photo and the query, explained.
    pub current: Option<View>,
    /// An explanation kept for comparison.
    pub pinned: Option<View>,
    /// The weights painted for the live view's word at the last frame, cell by cell (tests
    /// compare them with `alignscope explain --json`).
    pub painted: Vec<f32>,
    export: Option<Job<Result<Option<PathBuf>, String>>>,
    /// How SHAN's heatmaps are computed.
    pub method: Method,
}

impl Inspector {
    pub fn is_busy(&self) -> bool {
        self.job.is_some()
    }

    /// Ask for the explanation of `photo` and `caption`; the latest request wins, one job at a time.
    pub fn request(&mut self, photo: Option<PathBuf>, caption: &str, models: &Models, waker: &Waker) {
        let caption = caption.trim();
        let wanted = photo.filter(|_| !caption.is_empty()).map(|p| (p, caption.to_string()));
        if wanted.is_none() {
            self.current = None;
        }
        self.wanted = wanted;
        self.start_if_idle(models, waker);
    }

    /// Explain the wanted pair once SHAN is loaded (with DSRAN and RACG beside it once they are).
    fn start_if_idle(&mut self, models: &Models, waker: &Waker) {
        let (Some(runtime), None, Some((path, caption))) = (models.runtime(), &self.job, &self.wanted) else { return };
        let ranker = models.ranker();
        let shown = self.current.as_ref().map(|c| {
            let e = &c.explained.explanation;
            (&e.image, &e.caption, e.method, c.explained.with_ranker)
        });
        if shown == Some((path, caption, self.method, ranker.is_some())) {
            return;
        }
        let (path, caption) = (path.clone(), caption.clone());
        let method = self.method;
        // The objects depend on the photo alone: another caption or method keeps them.
        let known = self
            .current
            .as_ref()
            .filter(|c| c.explained.explanation.image == path)
            .map(|c| c.explained.objects.clone());
        self.job = Some(spawn_oneshot("explain", waker.clone(), move |_| {
            let result = explain_pair(&runtime, ranker.as_deref(), &path, &caption, method, known);
            (path, caption, result)
        }));
    }

    pub fn poll(&mut self, ctx: &egui::Context, models: &Models, waker: &Waker, notes: &mut Notifications) {
        match poll_slot(&mut self.job) {
            Oneshot::Done((path, caption, Ok(explained))) => {
                let image = &explained.photo;
                let pixels = egui::ColorImage::from_rgba_unmultiplied(
                    [image.width() as usize, image.height() as usize],
                    image.as_raw(),
                );
                let texture =
                    ctx.load_texture(format!("inspector {}", path.display()), pixels, egui::TextureOptions::LINEAR);
                // Same caption (another photo): keep the chosen word; else start on the content
                // word that aligns best, not on "a".
                let best = explained.explanation.first_word();
                let (word, all_words) = match &self.current {
                    Some(c)
                        if c.explained.explanation.caption == caption && c.word < explained.explanation.words.len() =>
                    {
                        (c.word, c.all_words)
                    }
                    _ => (best, false),
                };
                let show_objects = self.current.as_ref().is_none_or(|c| c.show_objects);
                self.current = Some(View { explained, texture, word, all_words, show_objects });
            }
            Oneshot::Done((path, _, Err(e))) => {
                notes.push(Level::Error, format!("{}: cannot explain: {e}", path.display()));
                // Do not retry the same pair every frame.
                self.wanted = None;
            }
            Oneshot::Gone => notes.push(Level::Error, "the explanation job stopped unexpectedly"),
            Oneshot::Pending => {}
        }
        self.start_if_idle(models, waker);
        match poll_slot(&mut self.export) {
            Oneshot::Done(Ok(Some(path))) => notes.push(Level::Info, format!("saved {}", path.display())),
            Oneshot::Done(Ok(None)) | Oneshot::Pending => {}
            Oneshot::Done(Err(e)) => notes.push(Level::Error, e),
            Oneshot::Gone => notes.push(Level::Error, "the export stopped unexpectedly"),
        }
    }

    /// Draw the inspector; `rank` is the live photo's place in the folder ranked by `ranked_by`,
    /// when ranked; `scores` its score and rank under each pair-independent model.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        rank: Option<(usize, usize)>,
        ranked_by: &str,
        scores: &[ModelScore],
        loaded: &Models,
        waker: &Waker,
    ) {
        ui.horizontal(|ui| {
            ui.heading("Inspector");
            if ui.small_button("Close").on_hover_text("Close the inspector (Enter reopens it)").clicked() {
                self.open = false;
            }
            if self.current.is_some() && ui.small_button("Pin").on_hover_text("Keep this explanation beside the live one: then change the caption or select another photo to compare").clicked() {
                self.pinned = self.current.as_ref().map(|c| View { explained: c.explained.clone_shared(), texture: c.texture.clone(), word: c.word, all_words: c.all_words, show_objects: c.show_objects });
            }
            if self.pinned.is_some() && ui.small_button("Unpin").clicked() {
                self.pinned = None;
            }
            egui::ComboBox::from_id_salt("heatmap method")
                .selected_text(format!("heatmap: {}", self.method))
                .show_ui(ui, |ui| {
                    for m in Method::ALL {
                        ui.selectable_value(&mut self.method, m, m.name()).on_hover_text(m.meaning());
                    }
                })
                .response
                .on_hover_text("How SHAN's heatmaps are computed (alignscope grounding measures each)");
        });
        if let Some(why) = &loaded.runtime.unavailable {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Explanations are unavailable: {why}"));
            return;
        }
        if loaded.runtime().is_none() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("loading SHAN…");
            });
            return;
        }
        if self.current.is_none() {
            ui.label(if self.wanted.is_some() {
                "explaining…"
            } else {
                "Select a photo and type a caption to see why they match."
            });
            return;
        }
        if self.job.is_some() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.weak("updating…");
            });
        }
        let mut save = None;
        // The heatmap, its colour bar and Save come first; the tables below scroll.
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            match (&mut self.current, &mut self.pinned) {
                (Some(current), Some(pinned)) => {
                    ui.columns(2, |columns| {
                        columns[0].strong("live");
                        self.painted = view(&mut columns[0], current, rank, ranked_by, "live", &mut save);
                        columns[1].strong("pinned");
                        view(&mut columns[1], pinned, None, ranked_by, "pinned", &mut save);
                    });
                }
                (Some(current), None) => self.painted = view(ui, current, rank, ranked_by, "live", &mut save),
                _ => {}
            }
            if let Some(current) = &self.current {
                ui.separator();
                model_table(ui, current, rank, ranked_by, scores);
            }
        });
        if let Some(explained) = save
            && self.export.is_none()
        {
            self.export = Some(export(explained, waker));
        }
    }
}

/// The same photo and caption under each network: score and rank in the folder.
fn model_table(
    ui: &mut egui::Ui,
    current: &View,
    rank: Option<(usize, usize)>,
    ranked_by: &str,
    models: &[ModelScore],
) {
    let n = rank.map(|(_, n)| n);
    let of = |r: usize| n.map_or(format!("#{r}"), |n| format!("#{r} of {n}"));
    egui::CollapsingHeader::new("This pair under each model").default_open(true).show(ui, |ui| {
        egui::Grid::new("models").num_columns(3).striped(true).show(ui, |ui| {
            ui.strong("model");
            ui.strong("score");
            ui.strong("rank in folder");
            ui.end_row();
            ui.label("SHAN (explained above)");
            ui.label(format!("{:.3}", current.explained.explanation.score));
            ui.label(match rank {
                Some((r, _)) if ranked_by == "SHAN" => of(r + 1),
                _ => "(SHAN ranks: Settings > Ranking model)".to_string(),
            });
            ui.end_row();
            for m in models {
                ui.label(match m.name {
                    "RACG" => "RACG (cross-graph)".to_string(),
                    "default" => "default (SHAN + global, hubs normalised)".to_string(),
                    name => format!("{name} (cosine)"),
                });
                ui.label(format!("{:.3}", m.score));
                ui.label(of(m.rank));
                ui.end_row();
            }
        });
        side_by_side(ui, current, rank, ranked_by, models);
    });
}

impl Explained {
    /// A second handle on the same explanation (the photo is shared, not copied).
    fn clone_shared(&self) -> Self {
        Self {
            explanation: self.explanation.clone(),
            photo: self.photo.clone(),
            original: self.original,
            dsran_attention: self.dsran_attention.clone(),
            racg_attention: self.racg_attention.clone(),
            objects: self.objects.clone(),
            with_ranker: self.with_ranker,
        }
    }
}

/// One explanation: name, rank, level bars, word chips, heatmap(s), legend, save. Returns the
/// weights painted for the chosen word (empty in the all-words view); sets `save` when asked to.
fn view(
    ui: &mut egui::Ui,
    v: &mut View,
    rank: Option<(usize, usize)>,
    ranked_by: &str,
    id: &str,
    save: &mut Option<Explained>,
) -> Vec<f32> {
    let e = &v.explained.explanation;
    let name = e.image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    ui.horizontal_wrapped(|ui| {
        ui.label(egui::RichText::new(name).strong()).on_hover_text(e.image.display().to_string());
        ui.label(format!("\u{201c}{}\u{201d}", e.caption));
    });
    if let Some((r, n)) = rank {
        ui.weak(format!("rank {} of {n} in the folder (ranked by {ranked_by}); SHAN score {:.3}", r + 1, e.score));
    }
    if let Some(w) = &e.warning {
        ui.colored_label(ui.visuals().warn_fg_color, w);
    }
    word_chips(ui, &e.words, &mut v.word, &mut v.all_words);
    let scale = e.scale();
    let mut painted = Vec::new();
    // The heatmap fits beside the chips, colour bar and Save in a 1280×800 window.
    let room = (ui.available_height() - 150.0).max(160.0);
    let [w, h] = v.explained.original.map(|x| x.max(1) as f32);
    if v.all_words {
        let width = ((ui.available_width() - 8.0) / 3.0).max(40.0);
        egui::Grid::new(format!("all words {id}")).spacing([4.0, 4.0]).show(ui, |ui| {
            let shown = content_words(e.words.iter().map(|w| w.word.as_str()));
            for (j, w) in shown.into_iter().map(|j| &e.words[j]).enumerate() {
                ui.vertical(|ui| {
                    ui.label(&w.word);
                    heat_image(ui, &v.texture, &v.explained, &w.relevance, &scale, width);
                });
                if j % 3 == 2 {
                    ui.end_row();
                }
            }
        });
    } else if let Some(word) = e.words.get(v.word) {
        let width = ui.available_width().min(512.0).min(room * w / h);
        let response = heat_image(ui, &v.texture, &v.explained, &word.relevance, &scale, width);
        if v.show_objects
            && let Ok(objects) = &v.explained.objects
        {
            let shares = share_in_objects(&e.boxes, &word.relevance, v.explained.original, objects);
            object_boxes(ui, response.rect, objects, &shares, &word.object_attention, &word.word);
        }
        painted = word.relevance.clone();
        if let Some(cell) = response.hover_pos().and_then(|p| cell_at(&v.explained, response.rect, p)) {
            response.on_hover_text_at_pointer(format!(
                "cell ({}, {}): \u{201c}{}\u{201d} {:.3} by {}; SHAN's attention {:.3}",
                cell / e.grid,
                cell % e.grid,
                word.word,
                word.relevance[cell],
                e.method,
                word.attention[cell]
            ));
        }
    }
    colour_bar(ui, &scale, ui.available_width().min(320.0));
    ui.horizontal(|ui| {
        if ui
            .button("Save PNG…")
            .on_hover_text("The explanation as one image: level bars, colour bar, a panel per content word")
            .clicked()
        {
            *save = Some(v.explained.clone_shared());
        }
        ui.checkbox(&mut v.all_words, "all words");
        match &v.explained.objects {
            Ok(objects) => {
                let label = format!("objects ({})", objects.len());
                ui.checkbox(&mut v.show_objects, label).on_hover_text(
                    "Boxes of the things the SSD-MobileNetV2 detector finds (COCO classes, score ≥ 0.3); \
                     ×N: the word's map inside the box against its mean over the photo; SHAN N %: its \
                     attention on the object, where Settings make objects SHAN regions",
                );
            }
            Err(why) => {
                ui.weak("no objects").on_hover_text(format!("the object detector is unavailable: {why}"));
            }
        }
    });
    ui.add_space(4.0);
    level_bars(ui, e, id);
    painted
}

/// The caption's words as chips coloured by R_t; a click shows that word's heatmap.
fn word_chips(
    ui: &mut egui::Ui,
    words: &[crate::engine::explain::WordExplanation],
    selected: &mut usize,
    all_words: &mut bool,
) {
    let (lo, hi) = words.iter().fold((f32::MAX, f32::MIN), |(lo, hi), w| (lo.min(w.alignment), hi.max(w.alignment)));
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        for (j, w) in words.iter().enumerate() {
            let t = if hi > lo { (w.alignment - lo) / (hi - lo) } else { 1.0 };
            let [r, g, b] = viridis(t);
            let text_color = if t > 0.55 { egui::Color32::BLACK } else { egui::Color32::WHITE };
            let mut chip = egui::Button::new(egui::RichText::new(&w.word).color(text_color))
                .fill(egui::Color32::from_rgb(r, g, b))
                .corner_radius(8.0);
            if j == *selected && !*all_words {
                chip = chip.stroke(egui::Stroke::new(2.0, ui.visuals().selection.stroke.color));
            }
            let response =
                ui.add(chip).on_hover_text(format!("R_t {:.3} (pieces: {})", w.alignment, w.pieces.join(" ")));
            if response.clicked() {
                *selected = j;
                *all_words = false;
            }
        }
    });
    ui.weak(format!("chip colour: R_t, the word's alignment, from {lo:.2} (dark) to {hi:.2} (bright)"));
}

/// `objects`: the photo's objects when already detected (else they are detected here).
fn explain_pair(
    runtime: &Runtime,
    ranker: Option<&Ranker>,
    path: &std::path::Path,
    caption: &str,
    method: Method,
    objects: Option<Result<Vec<Detection>, String>>,
) -> ExplainResult {
    let photo = crate::data::decode::decode_oriented(path).map_err(|e| e.to_string())?;
    let explanation = explain_photo(runtime, &photo, path, caption, method).map_err(|e| format!("{e:#}"))?;
    let original = [photo.width(), photo.height()];
    // One backbone pass serves both networks' explanations.
    let regions = ranker.filter(|r| r.dsran.is_some() || r.racg.is_some()).map(|r| (r, r.regions(&photo)));
    let dsran_attention = regions.as_ref().and_then(|(r, regions)| r.dsran_attention(regions.clone()));
    let racg_attention =
        regions.and_then(|(r, regions)| r.racg_attention(regions, caption)).map(|r| r.map_err(|e| format!("{e:#}")));
    // The objects SHAN saw as regions (detected ones first, then whole-photo slots), where it did.
    let objects = match objects {
        _ if runtime.objects.is_some() => Ok(explanation.detected()),
        Some(known) => known,
        None => load_detector(&runtime.device).map(|d| objects_in(&d, &photo, &runtime.device)),
    };
    let photo = photo.thumbnail(PHOTO_PIXELS, PHOTO_PIXELS).to_rgba8();
    Ok(Explained {
        explanation,
        photo: Arc::new(photo),
        original,
        dsran_attention,
        racg_attention,
        objects,
        with_ranker: ranker.is_some(),
    })
}

/// The pair under each explaining network, side by side: SHAN's and RACG's attention of the
/// chosen word over the regions, DSRAN's global node's graph attention; each panel with the
/// network's score and folder rank, and its own value range (the networks' weights are not on
/// one scale).
fn side_by_side(ui: &mut egui::Ui, v: &View, rank: Option<(usize, usize)>, ranked_by: &str, models: &[ModelScore]) {
    let e = &v.explained;
    let word = e.explanation.words.get(v.word);
    let racg_word = match (&e.racg_attention, word) {
        (Some(Ok(words)), Some(w)) => words.get(v.word).filter(|(name, _)| *name == w.word).map(|(_, a)| a.clone()),
        _ => None,
    };
    let shan_rank = rank.filter(|_| ranked_by == "SHAN").map(|(r, _)| r + 1);
    let of = |name: &str| models.iter().find(|m| m.name == name).map(|m| (m.score, Some(m.rank)));
    let panels: [(&str, Option<(f32, Option<usize>)>, Option<Vec<f32>>, String); 3] = [
        (
            "SHAN",
            Some((e.explanation.score, shan_rank)),
            word.map(|w| w.relevance.clone()),
            word.map_or(String::new(), |w| format!("\u{201c}{}\u{201d} by {}", w.word, e.explanation.method)),
        ),
        ("DSRAN", of("DSRAN"), e.dsran_attention.clone(), "its global node's graph attention".into()),
        (
            "RACG",
            of("RACG"),
            racg_word,
            match &e.racg_attention {
                Some(Err(why)) => format!("unavailable: {why}"),
                None => "not loaded".into(),
                Some(Ok(_)) => {
                    word.map_or(String::new(), |w| format!("\u{201c}{}\u{201d}'s cross-graph attention", w.word))
                }
            },
        ),
    ];
    // Each panel on its own scale (the networks' weights are not comparable), never stretched:
    // attention maps from 0 to at least 4× uniform, SHAN's map on its explanation's scale.
    let cells = e.explanation.boxes.len();
    let panels = panels.map(|(name, scored, attention, what)| {
        let attention = attention.map(|a| {
            let scale = if name == "SHAN" {
                HeatScale { meaning: String::new(), ..e.explanation.scale() }
            } else {
                HeatScale::attention([a.as_slice()], cells, "")
            };
            (a, scale)
        });
        (name, scored, attention, what)
    });
    if panels[1].2.is_none() && panels[2].2.is_none() {
        return;
    }
    ui.add_space(4.0);
    ui.strong("Side by side: this pair under each network");
    let width = ((ui.available_width() - 16.0) / 3.0).max(60.0);
    egui::Grid::new("side by side").num_columns(3).spacing([8.0, 4.0]).show(ui, |ui| {
        for (name, _, _, _) in &panels {
            ui.strong(*name);
        }
        ui.end_row();
        for (_, scored, _, _) in &panels {
            ui.label(match scored {
                Some((s, Some(r))) => format!("score {s:.3}, rank #{r}"),
                Some((s, None)) => format!("score {s:.3}"),
                None => "not scored yet".into(),
            });
        }
        ui.end_row();
        for (_, _, attention, _) in &panels {
            match attention {
                Some((a, scale)) => {
                    ui.vertical(|ui| {
                        heat_image(ui, &v.texture, e, a, scale, width);
                        colour_bar(ui, scale, width);
                    });
                }
                None => {
                    ui.weak("-");
                }
            }
        }
        ui.end_row();
        for (_, _, _, what) in &panels {
            ui.add_sized([width, 0.0], egui::Label::new(egui::RichText::new(what).weak().small()).wrap());
        }
        ui.end_row();
    });
}

/// The photo at `width` with a map over its cells on `scale`; returns the image's response.
fn heat_image(
    ui: &mut egui::Ui,
    texture: &egui::TextureHandle,
    current: &Explained,
    attention: &[f32],
    scale_of_values: &HeatScale,
    width: f32,
) -> egui::Response {
    let [w, h] = current.original.map(|v| v.max(1) as f32);
    let size = egui::vec2(width, width * h / w);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.image(
        texture.id(),
        rect,
        egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
        egui::Color32::WHITE,
    );
    let scale = width / w;
    for (cell, &weight) in current.explanation.boxes.iter().zip(attention) {
        let [r, g, b] = viridis(scale_of_values.position(weight));
        let cell_rect = egui::Rect::from_min_max(
            rect.min + egui::vec2(cell[0], cell[1]) * scale,
            rect.min + egui::vec2(cell[2], cell[3]) * scale,
        );
        painter.rect_filled(cell_rect, 0.0, egui::Color32::from_rgba_unmultiplied(r, g, b, (HEAT_ALPHA * 255.0) as u8));
        painter.rect_stroke(
            cell_rect,
            0.0,
            egui::Stroke::new(1.0, egui::Color32::from_black_alpha(90)),
            egui::StrokeKind::Inside,
        );
    }
    response
}

/// The detector's boxes over an image drawn at `rect`, each labelled with its class, score and
/// the word's share (×1 = the word's mean over the photo; brighter boxes hold more of it) and,
/// where SHAN saw the objects as regions, its attention on each (`attention`, else empty).
fn object_boxes(ui: &egui::Ui, rect: egui::Rect, objects: &[Detection], shares: &[f32], attention: &[f32], word: &str) {
    let painter = ui.painter_at(rect);
    let font = egui::FontId::proportional(11.0);
    for (i, (o, share)) in objects.iter().zip(shares).enumerate() {
        let b = o.bbox;
        let r = egui::Rect::from_min_max(
            rect.min + egui::vec2(b[0] * rect.width(), b[1] * rect.height()),
            rect.min + egui::vec2(b[2] * rect.width(), b[3] * rect.height()),
        );
        let strong = *share >= 1.0;
        let colour = if strong { egui::Color32::from_rgb(255, 80, 200) } else { egui::Color32::from_gray(230) };
        painter.rect_stroke(
            r.shrink(1.0),
            2.0,
            egui::Stroke::new(if strong { 2.5 } else { 1.5 }, colour),
            egui::StrokeKind::Inside,
        );
        let shan = attention.get(i).map_or(String::new(), |a| format!(", SHAN {:.0}%", a * 100.0));
        let text = format!("{} {:.0}% \u{201c}{word}\u{201d} ×{share:.2}{shan}", o.label, o.score * 100.0);
        let galley = painter.layout_no_wrap(text, font.clone(), egui::Color32::BLACK);
        let at = egui::Rect::from_min_size(r.min + egui::vec2(2.0, 2.0), galley.size() + egui::vec2(4.0, 0.0));
        painter.rect_filled(at, 2.0, colour);
        painter.galley(at.min + egui::vec2(2.0, 0.0), galley, egui::Color32::BLACK);
    }
}

/// The region under `pos` in an image drawn at `rect`.
fn cell_at(current: &Explained, rect: egui::Rect, pos: egui::Pos2) -> Option<usize> {
    let scale = rect.width() / current.original[0].max(1) as f32;
    let p = (pos - rect.min) / scale;
    current.explanation.boxes.iter().position(|b| p.x >= b[0] && p.x < b[2] && p.y >= b[1] && p.y < b[3])
}

/// The colour bar of `scale`: its meaning, the gradient with the uniform weight marked (where the
/// map is a distribution), and its ends' values.
fn colour_bar(ui: &mut egui::Ui, scale: &HeatScale, width: f32) {
    if !scale.meaning.is_empty() {
        ui.small(&scale.meaning);
    }
    let (rect, response) = ui.allocate_exact_size(egui::vec2(width, 12.0), egui::Sense::hover());
    let steps = 64;
    for i in 0..steps {
        let [r, g, b] = viridis(i as f32 / (steps - 1) as f32);
        let x0 = rect.min.x + rect.width() * i as f32 / steps as f32;
        let x1 = rect.min.x + rect.width() * (i + 1) as f32 / steps as f32;
        ui.painter().rect_filled(
            egui::Rect::from_min_max(egui::pos2(x0, rect.min.y), egui::pos2(x1, rect.max.y)),
            0.0,
            egui::Color32::from_rgb(r, g, b),
        );
    }
    if let Some(u) = scale.uniform {
        let x = rect.min.x + rect.width() * scale.position(u);
        ui.painter().vline(x, rect.min.y - 2.0..=rect.max.y + 2.0, egui::Stroke::new(2.0, egui::Color32::RED));
        response.on_hover_text(format!("red mark: uniform weight {u:.3} (a map this flat says nothing)"));
    }
    ui.horizontal(|ui| {
        ui.set_width(width);
        ui.small(format!("{:.3}", scale.lo));
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| ui.small(format!("{:.3}", scale.hi)));
    });
}

/// Fragment, context and global scores side by side, with their weights and the final score.
fn level_bars(ui: &mut egui::Ui, e: &Explanation, id: &str) {
    let [a, b, c] = e.weights;
    egui::Grid::new(format!("levels {id}")).num_columns(3).spacing([8.0, 4.0]).show(ui, |ui| {
        // (name, score, weight, range: G2L sums two cosines)
        for (name, value, weight, range, hint) in [
            ("fragment L2L", e.l2l, a, 1.0, "region-word attention, both directions"),
            ("context G2L", e.g2l, b, 2.0, "each modality's global context against the other's fragments"),
            ("global G2G", e.g2g, c, 1.0, "the two global vectors"),
        ] {
            ui.label(name).on_hover_text(hint);
            let (rect, _) = ui.allocate_exact_size(egui::vec2(160.0, 12.0), egui::Sense::hover());
            let painter = ui.painter();
            painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
            let mid = rect.center().x;
            let end = mid + (value / range).clamp(-1.0, 1.0) * rect.width() / 2.0;
            painter.rect_filled(
                egui::Rect::from_x_y_ranges(mid.min(end)..=mid.max(end), rect.y_range()),
                0.0,
                egui::Color32::from_rgb(70, 110, 180),
            );
            painter.vline(mid, rect.y_range(), egui::Stroke::new(1.0, ui.visuals().text_color()));
            ui.label(format!("{value:.3} × {weight}"));
            ui.end_row();
        }
        ui.strong("final score");
        ui.label("");
        ui.strong(format!("{:.3}", e.score));
        ui.end_row();
    });
}

/// Ask where to save (the dialog blocks its own thread, not the UI's), then write the PNG.
fn export(current: Explained, waker: &Waker) -> Job<Result<Option<PathBuf>, String>> {
    let Explained { photo, explanation, objects, .. } = current;
    spawn_oneshot("save explanation", waker.clone(), move |_| {
        let stem =
            explanation.image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "photo".into());
        let Some(path) = rfd::FileDialog::new()
            .set_title("Save the explanation")
            .set_file_name(format!("{stem}-explained.png"))
            .save_file()
        else {
            return Ok(None);
        };
        let objects = objects.unwrap_or_default();
        let png = crate::render::explanation::render(
            &photo,
            &scaled_boxes(&explanation, &photo),
            &objects,
            &mut Default::default(),
        );
        png.save_with_format(&path, image::ImageFormat::Png)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Some(path))
    })
}

/// The explanation with its boxes in the pixels of `photo` (a scaled copy of the original).
fn scaled_boxes(e: &Explanation, photo: &RgbaImage) -> Explanation {
    let mut e = e.clone();
    e.boxes = crate::features::preprocess::region_boxes(photo.width(), photo.height(), e.grid);
    e
}
