//! Object regions for the networks on the frozen backbones (issue 27, step 2): per photo the
//! detector's best `k` objects (score ≥ 0.3), each cropped from the photo, squash-resized to the
//! backbone's input and run through the whole frozen EfficientNet, its 7×7 map mean-pooled to one
//! 1280-d feature. Where a photo has fewer than `k` objects the remaining slots hold the whole
//! photo (its own box), so every photo has `k` object nodes and no mask is needed.
//! Cached per split like the grid features: `{split}-{visual}-objects{k}-{photos}.feat`, entries
//! `NAME` ([k, 1280]) and `NAME/boxes` ([k, 6]: x0, y0, x1, y1 normalised, score, COCO class;
//! score 0 marks a whole-photo slot). For SHAN, whose backbone top is its own, the crops are
//! cached as the activation entering its first tuned block instead (`…-objects{k}-block{b}-…`,
//! `NAME`: [k, C, h, w]), and its top pools them.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::extract::{ExtractMsg, file_name};
use super::source::Source;
use super::splits::FrozenSplit;
use crate::data::decode::decode_oriented;
use crate::data::feature_cache::{CacheError, CacheKey, FeatureCache};
use crate::data::flickr8k::Split;
use crate::features::checksums::sha256_file;
use crate::features::detector::{DETECTOR_WEIGHTS, Detector, MIN_SCORE};
use crate::features::efficientnet::{EfficientNetLite, FEATURE_DIM};
use crate::features::{models_dir, preprocess, values};

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

impl Stage {
    fn tag(self) -> String {
        match self {
            Stage::Pooled => String::new(),
            Stage::Entering(b) => format!("-block{b}"),
        }
    }
}

/// The cache of `photos` photos of a split (a prefix of it is cached apart from the whole).
pub fn cache_path(out_dir: &Path, split: &str, visual: &str, k: usize, stage: Stage, photos: usize) -> PathBuf {
    out_dir.join(format!("{split}-{visual}-objects{k}{}-{photos}.feat", stage.tag()))
}

fn key(visual_weights: &Path, size: usize, k: usize, stage: Stage) -> std::io::Result<CacheKey> {
    Ok(CacheKey {
        weights_sha256: sha256_file(visual_weights)?,
        preprocessing: format!(
            "exif-oriented; detector {} sha256 {} (score >= {MIN_SCORE}, best {k}); crop, squash-resize {size}x{size} \
             triangle, (x/255-0.5)/0.5; empty slots: the whole photo",
            DETECTOR_WEIGHTS,
            sha256_file(&models_dir().join(DETECTOR_WEIGHTS))?
        ),
        activation: match stage {
            Stage::Pooled => "efficientnet head, 7x7 mean-pooled, per object".into(),
            Stage::Entering(b) => format!("efficientnet entering block {b}, per object"),
        },
    })
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
    let size = net.image_size as u32;
    let found = detector.detect(images, MIN_SCORE, device);
    let slots: Vec<Vec<Slot>> = found
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
        .collect();
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

/// The first `images` photos of the split as the inputs of DSRAN or RACG ([`Source::frozen`]),
/// each photo's best `objects` detected objects following its grid cells as more region nodes
/// (0: the grid only).
pub fn frozen_split(source: &Source, split: Split, images: usize, objects: usize) -> anyhow::Result<FrozenSplit> {
    let (frozen, names) = source.frozen(split, images)?;
    if objects == 0 {
        return Ok(frozen);
    }
    let photos = split_photos(source, split, &names)?;
    let cache = object_cache(source, split.name(), &photos, objects, Stage::Pooled)?;
    frozen.with_objects(&names, &cache)
}

/// SHAN's inputs of a split (activations entering `first_block`), each photo's best `objects`
/// detected objects beside it as crops at the same block (0: the grid only).
pub fn fragment_split(
    source: &Source,
    split: Split,
    first_block: usize,
    objects: usize,
) -> anyhow::Result<super::splits::FragmentSplit> {
    let fragments = source.fragments(split, first_block)?;
    if objects == 0 {
        return Ok(fragments);
    }
    let photos = split_photos(source, split, &fragments.names)?;
    let cache = object_cache(source, split.name(), &photos, objects, Stage::Entering(first_block))?;
    fragments.with_object_crops(&cache)
}

/// The split's photos that are among `names`, in the split's order.
fn split_photos(source: &Source, split: Split, names: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let held: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    Ok(crate::data::flickr8k::load_split(source.flickr8k, split)?
        .images
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| held.contains(n.to_string_lossy().as_ref())))
        .collect())
}

/// The object cache for `photos` (a split, in order) at `stage`, built in `source`'s cache
/// folder if missing, stale or corrupt.
pub fn object_cache(
    source: &Source,
    split: &str,
    photos: &[PathBuf],
    k: usize,
    stage: Stage,
) -> anyhow::Result<FeatureCache> {
    let Source { compute, visual, cache_dir: out_dir, cancel, report, .. } = *source;
    let device = &compute.device;
    let weights = models_dir().join(format!("{visual}.safetensors"));
    let net = EfficientNetLite::load(&weights, device)?;
    let path = cache_path(out_dir, split, visual, k, stage, photos.len());
    let key = key(&weights, net.image_size, k, stage)?;
    match FeatureCache::load(&path, &key) {
        Ok(cache) => {
            report(ExtractMsg::UpToDate(path));
            return Ok(cache);
        }
        Err(CacheError::Missing { .. }) => {}
        Err(e) => report(ExtractMsg::Warning(e.to_string())),
    }
    // Only a cache to build needs the detector.
    let detector = Detector::load(&models_dir().join(DETECTOR_WEIGHTS), device)?;
    let label = format!("{split} objects");
    let mut cache = FeatureCache::new(key);
    let batch = 8;
    for (i, chunk) in photos.chunks(batch).enumerate() {
        anyhow::ensure!(!cancel.is_cancelled(), "cancelled; nothing written");
        let decoded: Vec<_> = chunk.par_iter().map(|p| decode_oriented(p)).collect();
        let (mut names, mut images) = (Vec::new(), Vec::new());
        for (p, d) in chunk.iter().zip(decoded) {
            match d {
                Ok(img) => {
                    names.push(file_name(p));
                    images.push(img);
                }
                Err(e) => report(ExtractMsg::Warning(e.to_string())),
            }
        }
        let ObjectRows { slots, values: rows, row_shape } = object_features(&net, &detector, &images, k, stage, device);
        let row: usize = row_shape.iter().product();
        let shape = [vec![k], row_shape].concat();
        for (j, (name, s)) in names.iter().zip(&slots).enumerate() {
            cache.push(name.clone(), &shape, &rows[j * k * row..(j + 1) * k * row]);
            let boxes: Vec<f32> =
                s.iter().flat_map(|(b, score, class)| [b[0], b[1], b[2], b[3], *score, *class]).collect();
            cache.push(format!("{name}/boxes"), &[k, 6], &boxes);
        }
        report(ExtractMsg::Progress {
            stage: label.clone(),
            done: ((i + 1) * batch).min(photos.len()),
            total: photos.len(),
        });
    }
    cache.save(&path)?;
    report(ExtractMsg::Saved(path));
    Ok(cache)
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
