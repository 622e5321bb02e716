//! Object regions of photos: the detector's best `k` objects of each photo as slots (box, score,
//! COCO class; slots beyond what it found hold the whole photo, so every photo has `k`), each
//! cropped from the photo, squash-resized to the backbone's input and run through the backbone
//! up to a [`Stage`]. The training caches (`train::objects`) and the folder index's object
//! regions (`engine::runtime`) both come from here.

use rayon::prelude::*;

use super::detector::{Detector, MIN_SCORE};
use super::efficientnet::{EfficientNetLite, FEATURE_DIM};
use super::{preprocess, values};

/// Smallest crop side, in photo pixels (a box thinner than this is widened around its centre).
const MIN_CROP: f32 = 8.0;

/// What is kept of each object crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The whole frozen backbone's 7×7 map, mean-pooled: one 1280-d row (DSRAN, RACG).
    Pooled,
    /// The activation entering this block, [C, h, w] (SHAN's tuned top starts there).
    Entering(usize),
}

/// The crop of `photo` inside the normalised box `b` (at least [`MIN_CROP`] pixels a side).
fn crop(photo: &image::DynamicImage, b: [f32; 4]) -> image::DynamicImage {
    let (w, h) = (photo.width() as f32, photo.height() as f32);
    let side = |lo: f32, hi: f32, len: f32| {
        let (mut lo, mut hi) = (lo * len, hi * len);
        if hi - lo < MIN_CROP {
            let c = (lo + hi) / 2.0;
            (lo, hi) = (c - MIN_CROP / 2.0, c + MIN_CROP / 2.0);
        }
        let lo = lo.clamp(0.0, (len - MIN_CROP).max(0.0));
        (lo as u32, (hi.min(len) - lo).max(1.0) as u32)
    };
    let (x, cw) = side(b[0], b[2], w);
    let (y, ch) = side(b[1], b[3], h);
    photo.crop_imm(x, y, cw, ch)
}

/// One object slot: normalised box, score, COCO class (score 0: the whole photo).
pub type Slot = ([f32; 4], f32, f32);

/// The objects of a batch of photos.
pub struct ObjectRows {
    /// Per photo its `k` slots.
    pub slots: Vec<Vec<Slot>>,
    /// Each slot's features at the stage asked for, row-major: [photos · k, row_shape…].
    pub values: Vec<f32>,
    /// [1280] pooled, [C, h, w] entering a block.
    pub row_shape: Vec<usize>,
}

/// The detector's best `k` objects of each photo as slots (empty slots: the whole photo).
pub fn detect_slots(
    detector: &Detector,
    images: &[image::DynamicImage],
    k: usize,
    device: &burn::tensor::Device,
) -> Vec<Vec<Slot>> {
    detector
        .detect(images, MIN_SCORE, device)
        .iter()
        .map(|objects| {
            let mut s: Vec<_> = objects
                .iter()
                .take(k)
                .map(|o| {
                    let class = detector.labels().iter().position(|l| *l == o.label).unwrap_or(0);
                    (o.bbox, o.score, class as f32)
                })
                .collect();
            s.resize(k, ([0.0, 0.0, 1.0, 1.0], 0.0, 0.0));
            s
        })
        .collect()
}

/// The detector's best `k` objects of each photo, cropped and run through the backbone `net` up
/// to `stage`.
pub fn object_features(
    net: &EfficientNetLite,
    detector: &Detector,
    images: &[image::DynamicImage],
    k: usize,
    stage: Stage,
    device: &burn::tensor::Device,
) -> ObjectRows {
    crop_features(net, images, detect_slots(detector, images, k, device), stage, device)
}

/// Each photo's `slots` cropped and run through the backbone `net` up to `stage`.
pub fn crop_features(
    net: &EfficientNetLite,
    images: &[image::DynamicImage],
    slots: Vec<Vec<Slot>>,
    stage: Stage,
    device: &burn::tensor::Device,
) -> ObjectRows {
    let size = net.image_size as u32;
    let crops: Vec<image::RgbImage> = images
        .par_iter()
        .zip(&slots)
        .flat_map_iter(|(img, s)| s.iter().map(|(b, _, _)| preprocess::resize_square(&crop(img, *b), size)))
        .collect();
    if *device == burn::tensor::Device::flex() {
        // The host backbone, one crop per core (features::efficientnet::host).
        let host = crate::features::efficientnet::host::HostNet::of(net);
        let blocks = net.blocks.len();
        // Each crop reduced to its row on its own core (a pooled crop keeps 1280 values, not its map).
        let rows: Vec<(Vec<f32>, Vec<usize>)> = crops
            .par_iter()
            .map(|c| match stage {
                Stage::Pooled => (host.from(host.until(c, blocks), blocks).mean_pixel(), vec![FEATURE_DIM]),
                Stage::Entering(b) => {
                    let a = host.until(c, b);
                    (a.channels_first(), vec![a.c, a.h, a.w])
                }
            })
            .collect();
        let row_shape = rows.first().map(|(_, shape)| shape.clone()).unwrap_or_default();
        let values = rows.into_iter().flat_map(|(row, _)| row).collect();
        return ObjectRows { slots, values, row_shape };
    }
    let micro = crate::features::visual::micro_batch_for(device);
    let (mut values_out, mut row_shape) = (Vec::new(), Vec::new());
    for c in crops.chunks(micro) {
        let batch = preprocess::batch(c, device);
        let rows = match stage {
            Stage::Pooled => EfficientNetLite::pool(net.features(batch)).unsqueeze_dim::<3>(2).unsqueeze_dim::<4>(3),
            Stage::Entering(b) => net.features_until(batch, b),
        };
        let [_, ch, h, w] = rows.dims();
        row_shape = if stage == Stage::Pooled { vec![ch] } else { vec![ch, h, w] };
        values_out.extend(values(rows));
    }
    ObjectRows { slots, values: values_out, row_shape }
}

#[cfg(test)]
mod tests {
    use super::crop;

    #[test]
    fn crops_follow_the_box_and_stay_inside_the_photo() {
        let photo = image::DynamicImage::new_rgb8(200, 100);
        let c = crop(&photo, [0.25, 0.5, 0.75, 1.0]);
        assert_eq!((c.width(), c.height()), (100, 50));
        // A sliver at the edge is widened to 8 px, inside the photo.
        let c = crop(&photo, [0.999, 0.0, 1.0, 1.0]);
        assert_eq!((c.width(), c.height()), (8, 100));
    }
}
