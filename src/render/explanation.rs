//! An explanation as one PNG: the caption, the model and method, the three level scores as bars,
//! a colour bar with its value scale (uniform attention marked where the map is a distribution),
//! and one panel per content word: the photo with that word's map over the region grid, cells
//! flat (no blur) and outlined, with the detector's objects outlined over it (each with the
//! word's share). Function words ("a", "of") are listed, not drawn.

use image::{RgbaImage, imageops};

use super::colormap::viridis;
use super::text::{TextPainter, blend};
use crate::engine::explain::{Explanation, Method};
use crate::engine::objects::share_in_objects;
use crate::engine::words::content_words;
use crate::features::detections::Detection;

/// The longer side of each word panel, in pixels.
pub const PANEL: u32 = 224;
const MARGIN: u32 = 16;
const LABEL: u32 = 22;
const COLUMNS: usize = 4;
/// Opacity of the heatmap over the photo.
pub const HEAT_ALPHA: f32 = 0.6;
const BG: [u8; 3] = [250, 250, 250];
const INK: [u8; 3] = [20, 20, 20];
const MUTED: [u8; 3] = [90, 90, 90];
const HEADER: u32 = 190;

/// Where word panel `j`'s photo starts (top-left pixel), for photos scaled to `panel_height`.
pub fn panel_origin(j: usize, panel_height: u32) -> (u32, u32) {
    let (row, col) = ((j / COLUMNS) as u32, (j % COLUMNS) as u32);
    (MARGIN + col * (PANEL + MARGIN), HEADER + row * (panel_height + LABEL + MARGIN) + LABEL)
}

/// The words that get a panel, in order: the content words (every word where there is none).
pub fn shown_words(e: &Explanation) -> Vec<usize> {
    content_words(e.words.iter().map(|w| w.word.as_str()))
}

/// The photo scaled into a PANEL×PANEL box (aspect kept) and the scale applied.
fn scaled(photo: &RgbaImage) -> (RgbaImage, f32) {
    let s = PANEL as f32 / photo.width().max(photo.height()).max(1) as f32;
    let (w, h) =
        (((photo.width() as f32 * s).round() as u32).max(1), ((photo.height() as f32 * s).round() as u32).max(1));
    (imageops::resize(photo, w, h, imageops::FilterType::Triangle), s)
}

/// Objects' outline colour.
const OBJECT: [u8; 3] = [230, 40, 170];

/// `objects`: the detector's, in normalised photo coordinates (drawn on every panel).
pub fn render(photo: &RgbaImage, e: &Explanation, objects: &[Detection], text: &mut TextPainter) -> RgbaImage {
    let (small, scale) = scaled(photo);
    let shown = shown_words(e);
    let rows = shown.len().div_ceil(COLUMNS).max(1) as u32;
    let cols = shown.len().clamp(1, COLUMNS) as u32;
    let width = (MARGIN + cols * (PANEL + MARGIN)).max(820);
    let height = HEADER + rows * (small.height() + LABEL + MARGIN) + MARGIN;
    let mut img = RgbaImage::from_pixel(width, height, image::Rgba([BG[0], BG[1], BG[2], 255]));
    let heat = e.scale();

    // Header: caption, photo, model and method, level scores as bars, the colour bar.
    let mut y = MARGIN as i32;
    y += text.draw(&mut img, MARGIN as i32, y, &format!("\u{201c}{}\u{201d}", e.caption), 18.0, INK).1 as i32 + 4;
    y += text.draw(&mut img, MARGIN as i32, y, &e.image.display().to_string(), 12.0, MUTED).1 as i32 + 4;
    y += text.draw(&mut img, MARGIN as i32, y, &format!("model SHAN, heatmaps by {}", e.method), 12.0, MUTED).1 as i32
        + 6;
    let [a, b, c] = e.weights;
    // (name, score, its weight, the score's range: G2L sums two cosines)
    let bars = [("fragment L2L", e.l2l, a, 1.0), ("context G2L", e.g2l, b, 2.0), ("global G2G", e.g2g, c, 1.0)];
    for (name, value, weight, range) in bars {
        text.draw(&mut img, MARGIN as i32, y, &format!("{name} (weight {weight})"), 13.0, INK);
        bar(&mut img, MARGIN as i32 + 170, y + 3, value / range, [70, 110, 180]);
        text.draw(&mut img, MARGIN as i32 + 170 + 210, y, &format!("{value:.3}"), 13.0, INK);
        y += 20;
    }
    text.draw(&mut img, MARGIN as i32, y, &format!("final score {:.3}", e.score), 14.0, INK);

    // The colour bar over the explanation's value scale.
    let (lx, ly, lw) = (MARGIN as i32 + 470, MARGIN as i32 + 60, 300);
    text.draw(&mut img, lx, ly - 20, &heat.meaning, 12.0, INK);
    for dx in 0..lw {
        let color = viridis(dx as f32 / (lw - 1) as f32);
        for dy in 0..14 {
            blend(&mut img, lx + dx, ly + dy, color, 1.0);
        }
    }
    for (k, v) in [heat.lo, (heat.lo + heat.hi) / 2.0, heat.hi].iter().enumerate() {
        let label = format!("{v:.3}");
        let w = text.measure(&label, 12.0).0 as i32;
        let x = lx + (k as i32 * (lw - 1)) / 2 - w * k as i32 / 2;
        text.draw(&mut img, x, ly + 16, &label, 12.0, INK);
    }
    if let Some(u) = heat.uniform {
        let x = lx + (heat.position(u) * (lw - 1) as f32).round() as i32;
        for dy in -3..17 {
            blend(&mut img, x, ly + dy, [230, 40, 40], 1.0);
        }
        text.draw(&mut img, lx, ly + 34, &format!("red mark: uniform ({u:.3}); one scale for every word"), 12.0, MUTED);
    } else {
        text.draw(
            &mut img,
            lx,
            ly + 34,
            &format!("dark: {}; one scale for every word", dark_means(e.method)),
            12.0,
            MUTED,
        );
    }
    let hidden: Vec<&str> =
        (0..e.words.len()).filter(|j| !shown.contains(j)).map(|j| e.words[j].word.as_str()).collect();
    if !hidden.is_empty() {
        text.draw(&mut img, lx, ly + 52, &format!("not drawn: {}", hidden.join(", ")), 12.0, MUTED);
    }
    if let Some(w) = &e.warning {
        text.draw(&mut img, lx, ly + 70, w, 12.0, [170, 40, 40]);
    }
    if !objects.is_empty() {
        let names: Vec<String> = objects.iter().map(|o| format!("{} {:.0}%", o.label, o.score * 100.0)).collect();
        let line =
            format!("objects (SSD detector, pink): {}; ×N: the word's map in the box / its mean", names.join(", "));
        text.draw(&mut img, MARGIN as i32, ly + 88, &line, 12.0, MUTED);
    }

    for (panel, &j) in shown.iter().enumerate() {
        let word = &e.words[j];
        let (px, py) = panel_origin(panel, small.height());
        text.draw(
            &mut img,
            px as i32,
            (py - LABEL) as i32 + 2,
            &format!("{}   R_t {:.2}", word.word, word.alignment),
            14.0,
            INK,
        );
        imageops::overlay(&mut img, &small, px as i64, py as i64);
        for (cell, &weight) in e.boxes.iter().zip(&word.relevance) {
            let color = viridis(heat.position(weight));
            let [x0, y0, x1, y1] = cell.map(|v| (v * scale).round() as i32);
            for yy in y0..y1 {
                for xx in x0..x1 {
                    blend(&mut img, px as i32 + xx, py as i32 + yy, color, HEAT_ALPHA);
                }
            }
            outline(&mut img, px as i32 + x0, py as i32 + y0, px as i32 + x1, py as i32 + y1);
        }
        let (w, h) = (small.width() as f32, small.height() as f32);
        let shares = share_in_objects(&e.boxes, &word.relevance, [photo.width(), photo.height()], objects);
        for (o, share) in objects.iter().zip(shares) {
            let [x0, y0, x1, y1] =
                [o.bbox[0] * w, o.bbox[1] * h, o.bbox[2] * w, o.bbox[3] * h].map(|v| v.round() as i32);
            let (ox, oy) = (px as i32, py as i32);
            for t in 0..2 {
                for x in x0..x1 {
                    blend(&mut img, ox + x, oy + y0 + t, OBJECT, 1.0);
                    blend(&mut img, ox + x, oy + y1 - 1 - t, OBJECT, 1.0);
                }
                for y in y0..y1 {
                    blend(&mut img, ox + x0 + t, oy + y, OBJECT, 1.0);
                    blend(&mut img, ox + x1 - 1 - t, oy + y, OBJECT, 1.0);
                }
            }
            let label = format!("{} ×{share:.2}", o.label);
            let (lw, lh) = text.measure(&label, 12.0);
            for y in 0..lh as i32 + 4 {
                for x in 0..lw as i32 + 6 {
                    blend(&mut img, ox + x0 + 2 + x, oy + y0 + 2 + y, OBJECT, 1.0);
                }
            }
            text.draw(&mut img, ox + x0 + 5, oy + y0 + 4, &label, 12.0, INK);
        }
    }
    img
}

/// What a dark cell says under each method.
fn dark_means(method: Method) -> &'static str {
    match method {
        Method::Occlusion => "hiding the cell costs nothing (or helps)",
        Method::Window => "showing the cell alone adds nothing",
        Method::Gradient => "the alignment does not rise with what is in the cell",
        Method::Attention => "the word attends the cell little",
    }
}

/// A horizontal bar for a score scaled to [-1, 1]: 100 px = 1 from the centre line, negative
/// values leftwards.
fn bar(img: &mut RgbaImage, x: i32, y: i32, value: f32, color: [u8; 3]) {
    let len = (value.clamp(-1.0, 1.0) * 100.0).round() as i32;
    for dy in 0..10 {
        for dx in 0..200 {
            blend(img, x + dx, y + dy, [225, 225, 225], 1.0);
        }
        let (from, to) = if len >= 0 { (100, 100 + len) } else { (100 + len, 100) };
        for dx in from..to {
            blend(img, x + dx, y + dy, color, 1.0);
        }
        blend(img, x + 100, y + dy, INK, 1.0);
    }
}

/// A cell's border, drawn darker but see-through so the photo stays visible.
fn outline(img: &mut RgbaImage, x0: i32, y0: i32, x1: i32, y1: i32) {
    for x in x0..x1 {
        blend(img, x, y0, [0, 0, 0], 0.35);
    }
    for y in y0 + 1..y1 {
        blend(img, x0, y, [0, 0, 0], 0.35);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::explain::WordExplanation;

    fn explanation(words: Vec<Vec<f32>>) -> Explanation {
        Explanation {
            image: "grey.png".into(),
            caption: "two words".into(),
            method: Method::Attention,
            score: 0.5,
            weights: [1.0, 0.1, 0.0],
            l2l: 0.6,
            g2l: -0.2,
            g2g: 0.3,
            grid: 7,
            boxes: crate::features::preprocess::region_boxes(448, 448, 7),
            objects: vec![],
            words: words
                .into_iter()
                .enumerate()
                .map(|(i, attention)| WordExplanation {
                    word: format!("w{i}"),
                    pieces: vec![],
                    alignment: 0.1,
                    relevance: attention.clone(),
                    attention,
                    object_attention: vec![],
                })
                .collect(),
            pair_relevance: vec![0.0; 49],
            warning: None,
        }
    }

    #[test]
    fn each_cell_shows_its_words_weight_on_the_shared_scale() {
        let grey = [128u8, 128, 128];
        let photo = RgbaImage::from_pixel(448, 448, image::Rgba([grey[0], grey[1], grey[2], 255]));
        let mut first = vec![0.0f32; 49];
        first[10] = 0.5;
        first[48] = 0.5;
        let second: Vec<f32> = (0..49).map(|i| i as f32 / (48.0 * 49.0 / 2.0)).collect();
        let e = explanation(vec![first.clone(), second.clone()]);
        let img = render(&photo, &e, &[], &mut TextPainter::default());
        let scale = e.scale();
        assert_eq!((scale.lo, scale.hi), (0.0, 0.5));
        for (j, att) in [first, second].iter().enumerate() {
            let (px, py) = panel_origin(j, PANEL);
            for (cell, &w) in att.iter().enumerate() {
                // Cell centres: 224 px panel / 7 = 32 px cells.
                let (cx, cy) = (px + (cell % 7) as u32 * 32 + 16, py + (cell / 7) as u32 * 32 + 16);
                let heat = viridis(w / scale.hi);
                let want = [0, 1, 2]
                    .map(|c| (heat[c] as f32 * HEAT_ALPHA + grey[c] as f32 * (1.0 - HEAT_ALPHA)).round() as u8);
                let got = img.get_pixel(cx, cy);
                assert_eq!([got[0], got[1], got[2]], want, "word {j} cell {cell}");
                // Flat cells: a pixel near the cell's corner has the same colour (no blur).
                assert_eq!(img.get_pixel(cx - 13, cy - 13), got, "word {j} cell {cell} is not flat");
            }
        }
    }

    #[test]
    fn no_words_still_renders_the_header() {
        let photo = RgbaImage::from_pixel(10, 30, image::Rgba([0, 0, 0, 255]));
        let img = render(&photo, &explanation(vec![]), &[], &mut TextPainter::default());
        assert!(img.width() >= 820 && img.height() > HEADER);
    }

    #[test]
    fn objects_are_outlined_on_every_panel() {
        let photo = RgbaImage::from_pixel(448, 448, image::Rgba([128, 128, 128, 255]));
        let e = explanation(vec![vec![0.0; 49], vec![0.0; 49]]);
        let dog = Detection { label: "dog".into(), score: 0.9, bbox: [0.5, 0.5, 1.0, 1.0] };
        let img = render(&photo, &e, std::slice::from_ref(&dog), &mut TextPainter::default());
        for j in 0..2 {
            let (px, py) = panel_origin(j, PANEL);
            // The box's bottom-right corner (panel 224 px: x, y = 223) is drawn in the object colour.
            let p = img.get_pixel(px + 223, py + 223);
            assert_eq!([p[0], p[1], p[2]], OBJECT, "panel {j}");
            let inside = img.get_pixel(px + 150, py + 150);
            assert_ne!([inside[0], inside[1], inside[2]], OBJECT, "only the outline, panel {j}");
        }
    }
}
