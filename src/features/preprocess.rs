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
    fn normalize_maps_to_minus_one_one_in_chw() {
        let img = RgbImage::from_fn(2, 1, |x, _| if x == 0 { image::Rgb([0, 255, 0]) } else { image::Rgb([255, 0, 255]) });
        assert_eq!(normalize(&img), vec![-1.0, 1.0, 1.0, -1.0, -1.0, 1.0]);
    }
}
