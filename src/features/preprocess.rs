//! Pixels in the form the EfficientNet-Lite weights expect, and the region boxes that go with them.
//!
//! Choice: the whole photo is resized to S×S ("squash", bilinear), aspect ratio not kept. Nothing
//! is cropped away, so every part of the photo can be retrieved and explained, and each of the
//! 7×7 grid cells maps back to an exact rectangle of the original photo (wider than tall for
//! landscape photos). The TF-ported weights want pixels scaled to [-1, 1]: (x/255 − 0.5)/0.5.

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, RgbImage, imageops::FilterType};

/// The photo resized to `size`×`size` RGB.
pub fn resize_square(image: &DynamicImage, size: u32) -> RgbImage {
    if image.width() == size && image.height() == size {
        return image.to_rgb8();
    }
    image.resize_exact(size, size, FilterType::Triangle).to_rgb8()
}

/// A training view of the photo (train-time augmentation, MODELS.md's lift 1): a random crop of
/// 50–100 % of its area at an aspect ratio of 3/4–4/3 (log-uniform), mirrored with probability ½,
/// squashed to `size`×`size`. `seed` fixes the draw, so a cached view can be rebuilt identically.
pub fn augmented_view(image: &DynamicImage, size: u32, seed: u64) -> RgbImage {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (w, h) = (image.width() as f32, image.height() as f32);
    let area = w * h * (0.5 + 0.5 * rng.f32());
    let (lo, hi) = ((3.0f32 / 4.0).ln(), (4.0f32 / 3.0).ln());
    let ratio = (lo + rng.f32() * (hi - lo)).exp();
    let cw = (area * ratio).sqrt().clamp(1.0, w.max(1.0));
    let ch = (area / ratio).sqrt().clamp(1.0, h.max(1.0));
    let (x, y) = (rng.f32() * (w - cw), rng.f32() * (h - ch));
    let crop = image.crop_imm(x as u32, y as u32, cw as u32, ch as u32);
    let crop = if rng.bool() { crop.fliph() } else { crop };
    resize_square(&crop, size)
}

/// CHW floats in [-1, 1] for one S×S RGB image.
pub fn normalize(rgb: &RgbImage) -> Vec<f32> {
    let (w, h) = rgb.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px[c] as f32 / 127.5 - 1.0;
        }
    }
    out
}

/// A batch [B, 3, S, S] from S×S images.
pub fn batch(images: &[RgbImage], device: &Device) -> Tensor<4> {
    let size = images.first().map_or(0, |i| i.width() as usize);
    let values: Vec<f32> = images.iter().flat_map(normalize).collect();
    Tensor::from_data(TensorData::new(values, [images.len(), 3, size, size]), device)
}

/// The box, in original-photo pixels `[x0, y0, x1, y1]`, of each cell of a `grid`×`grid` feature
/// map, row-major (the order regions are stored in).
pub fn region_boxes(width: u32, height: u32, grid: usize) -> Vec<[f32; 4]> {
    let (cw, ch) = (width as f32 / grid as f32, height as f32 / grid as f32);
    (0..grid * grid)
        .map(|i| {
            let (r, c) = ((i / grid) as f32, (i % grid) as f32);
            [c * cw, r * ch, (c + 1.0) * cw, (r + 1.0) * ch]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_tile_the_photo() {
        let boxes = region_boxes(700, 350, 7);
        assert_eq!(boxes.len(), 49);
        assert_eq!(boxes[0], [0.0, 0.0, 100.0, 50.0]);
        assert_eq!(boxes[8], [100.0, 50.0, 200.0, 100.0]);
        assert_eq!(boxes[48], [600.0, 300.0, 700.0, 350.0]);
    }

    #[test]
    fn augmented_views_are_reproducible_crops_of_the_photo() {
        // Left half black, right half white: any crop of ≥ 50 % of the area at ratio ≤ 4/3 keeps
        // both colours, and a mirrored view has the white on the left.
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 64, |x, _| {
            image::Rgb(if x < 32 { [0; 3] } else { [255; 3] })
        }));
        let mut mirrored = 0;
        for seed in 0..20 {
            let view = augmented_view(&photo, 16, seed);
            assert_eq!(view.dimensions(), (16, 16));
            assert_eq!(view, augmented_view(&photo, 16, seed), "seed {seed} draws the same view");
            let (left, right) = (view.get_pixel(0, 8)[0], view.get_pixel(15, 8)[0]);
            assert!(left.abs_diff(right) > 200, "seed {seed}: both halves stay in the crop");
            mirrored += usize::from(left > right);
        }
        assert!((3..=17).contains(&mirrored), "about half the views are mirrored: {mirrored} of 20");
        assert_ne!(augmented_view(&photo, 16, 1), augmented_view(&photo, 16, 2));
    }

    #[test]
    fn normalize_maps_to_minus_one_one_in_chw() {
        let img =
            RgbImage::from_fn(2, 1, |x, _| if x == 0 { image::Rgb([0, 255, 0]) } else { image::Rgb([255, 0, 255]) });
        assert_eq!(normalize(&img), vec![-1.0, 1.0, 1.0, -1.0, -1.0, 1.0]);
    }
}
