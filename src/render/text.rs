//! Text drawn into an image with egui's own fonts and glyph rasterizer (epaint), so exported PNGs
//! use the app's typeface without another font stack.

use egui::epaint::text::{FontDefinitions, Fonts, TextOptions};
use egui::epaint::{Color32, FontId};
use image::{Rgba, RgbaImage};

pub struct TextPainter {
    fonts: Fonts,
}

impl Default for TextPainter {
    fn default() -> Self {
        Self { fonts: Fonts::new(TextOptions::default(), FontDefinitions::default()) }
    }
}

impl TextPainter {
    /// Width and height in pixels of `text` at `size` px.
    pub fn measure(&mut self, text: &str, size: f32) -> (u32, u32) {
        let galley = self.fonts.with_pixels_per_point(1.0).layout_no_wrap(
            text.to_string(),
            FontId::proportional(size),
            Color32::WHITE,
        );
        (galley.size().x.ceil() as u32, galley.size().y.ceil() as u32)
    }

    /// Draw `text` with its top-left corner at (x, y), alpha-blended; glyphs outside the image are
    /// clipped. Returns the text's width and height.
    pub fn draw(&mut self, img: &mut RgbaImage, x: i32, y: i32, text: &str, size: f32, color: [u8; 3]) -> (u32, u32) {
        let galley = self.fonts.with_pixels_per_point(1.0).layout_no_wrap(
            text.to_string(),
            FontId::proportional(size),
            Color32::WHITE,
        );
        // Layout rasterizes the glyphs into the atlas; read it after.
        let atlas = self.fonts.image();
        for placed in &galley.rows {
            let visuals = &placed.row.visuals;
            let glyphs = &visuals.mesh.vertices[visuals.glyph_vertex_range.clone()];
            // Each glyph is a quad of 4 vertices; at 1 pixel per point, 1 texel = 1 pixel.
            for quad in glyphs.chunks_exact(4) {
                let min = |f: fn(&egui::epaint::Vertex) -> f32| quad.iter().map(f).fold(f32::MAX, f32::min);
                let (px, py) = (min(|v| v.pos.x) + placed.pos.x, min(|v| v.pos.y) + placed.pos.y);
                let (u0, v0) = (min(|v| v.uv.x) as usize, min(|v| v.uv.y) as usize);
                let max = |f: fn(&egui::epaint::Vertex) -> f32| quad.iter().map(f).fold(f32::MIN, f32::max);
                let (u1, v1) = (max(|v| v.uv.x) as usize, max(|v| v.uv.y) as usize);
                for v in v0..v1.min(atlas.size[1]) {
                    for u in u0..u1.min(atlas.size[0]) {
                        let texel = atlas.pixels[v * atlas.size[0] + u];
                        let (tx, ty) =
                            (x + px.round() as i32 + (u - u0) as i32, y + py.round() as i32 + (v - v0) as i32);
                        blend(img, tx, ty, color, texel.a() as f32 / 255.0);
                    }
                }
            }
        }
        (galley.size().x.ceil() as u32, galley.size().y.ceil() as u32)
    }
}

/// Blend `color` over the pixel at (x, y) with opacity `alpha`; outside the image: nothing.
pub fn blend(img: &mut RgbaImage, x: i32, y: i32, color: [u8; 3], alpha: f32) {
    if x < 0 || y < 0 || x as u32 >= img.width() || y as u32 >= img.height() || alpha <= 0.0 {
        return;
    }
    let p = img.get_pixel_mut(x as u32, y as u32);
    let mix = |c: u8, d: u8| (c as f32 * alpha + d as f32 * (1.0 - alpha)).round() as u8;
    *p = Rgba([mix(color[0], p[0]), mix(color[1], p[1]), mix(color[2], p[2]), 255]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_marks_pixels_inside_its_measured_box_only() {
        let mut painter = TextPainter::default();
        let mut img = RgbaImage::from_pixel(200, 40, Rgba([255, 255, 255, 255]));
        let (w, h) = painter.draw(&mut img, 10, 5, "Heatmap 0.25", 16.0, [0, 0, 0]);
        assert!(w > 40 && w < 190 && h >= 12, "text box {w}×{h}");
        assert_eq!((w, h), painter.measure("Heatmap 0.25", 16.0));
        let dark: Vec<(u32, u32)> =
            img.enumerate_pixels().filter(|(_, _, p)| p[0] < 128).map(|(x, y, _)| (x, y)).collect();
        assert!(dark.len() > 50, "only {} dark pixels", dark.len());
        assert!(
            dark.iter().all(|&(x, y)| (10..10 + w + 1).contains(&x) && (5..5 + h + 1).contains(&y)),
            "ink outside the text box"
        );
    }

    #[test]
    fn text_off_the_image_is_clipped() {
        let mut img = RgbaImage::new(8, 8);
        TextPainter::default().draw(&mut img, -50, -50, "far away", 14.0, [255, 0, 0]);
        TextPainter::default().draw(&mut img, 100, 100, "far away", 14.0, [255, 0, 0]);
        assert!(img.pixels().all(|p| p[3] == 0));
    }
}
