//! Object regions for the networks on the frozen backbones (issue 27, step 2): per photo the
//! detector's best `k` objects (score ≥ 0.3), each cropped from the photo, squash-resized to the
//! backbone's input and run through the whole frozen EfficientNet, its 7×7 map mean-pooled to one
//! 1280-d feature. Where a photo has fewer than `k` objects the remaining slots hold the whole
//! photo (its own box), so every photo has `k` object nodes and no mask is needed.
//! Cached per split like the grid features: `{split}-{visual}-objects{k}-{photos}.feat`, entries
//! `NAME` ([k, 1280]) and `NAME/boxes` ([k, 6]: x0, y0, x1, y1 normalised, score, COCO class;
//! score 0 marks a whole-photo slot). For SHAN, whose backbone top is its own, the crops are
//! cached as the activation entering its first tuned block instead (`…-objects{k}-block{b}-…`,
//! `NAME`: [k, C, h, w]), and its top pools them. Such a cache takes its boxes from the pooled
//! cache of the same photos where that is there (stored as f16, so a crop's edge may lie a pixel
//! from a freshly detected one's) instead of running the detector again.

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
use crate::features::efficientnet::EfficientNetLite;
use crate::features::models_dir;
use crate::features::object_crops::{ObjectRows, Slot, Stage};
use crate::features::object_crops::{crop_features, detect_slots};

fn tag(stage: Stage) -> String {
    match stage {
        Stage::Pooled => String::new(),
        Stage::Entering(b) => format!("-block{b}"),
    }
}

/// The cache of `photos` photos of a split (a prefix of it is cached apart from the whole).
pub fn cache_path(out_dir: &Path, split: &str, visual: &str, k: usize, stage: Stage, photos: usize) -> PathBuf {
    out_dir.join(format!("{split}-{visual}-objects{k}{}-{photos}.feat", tag(stage)))
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
    // The boxes of the same photos' pooled cache, where it is there: the crops are cut again
    // without running the detector again (its boxes come back as the cache's f16).
    let known = known_slots(out_dir, split, visual, k, stage, photos.len(), &weights, net.image_size);
    // Only a cache to build needs the detector, and only for photos whose boxes are not known.
    let mut detector = None;
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
        let slots = match names.iter().map(|n| known.get(n).cloned()).collect::<Option<Vec<_>>>() {
            Some(slots) => slots,
            None => {
                let d = match detector.take() {
                    Some(d) => d,
                    None => Detector::load(&models_dir().join(DETECTOR_WEIGHTS), device)?,
                };
                let found = detect_slots(&d, &images, k, device);
                detector = Some(d);
                found
            }
        };
        let ObjectRows { slots, values: rows, row_shape } = crop_features(&net, &images, slots, stage, device);
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

/// Each photo's slots from the pooled cache of the same photos (`NAME/boxes`), when `stage` is
/// another and that cache is there and current; empty otherwise.
#[allow(clippy::too_many_arguments)]
fn known_slots(
    out_dir: &Path,
    split: &str,
    visual: &str,
    k: usize,
    stage: Stage,
    photos: usize,
    weights: &Path,
    size: usize,
) -> std::collections::HashMap<String, Vec<Slot>> {
    let pooled = (stage != Stage::Pooled)
        .then(|| key(weights, size, k, Stage::Pooled).ok())
        .flatten()
        .and_then(|key| FeatureCache::load(&cache_path(out_dir, split, visual, k, Stage::Pooled, photos), &key).ok());
    let Some(cache) = pooled else { return Default::default() };
    cache
        .rows_by_name()
        .iter()
        .filter_map(|(name, &row)| {
            let photo = name.strip_suffix("/boxes")?;
            let v = cache.values(row);
            (v.len() == k * 6).then(|| {
                let slots = v.chunks(6).map(|b| ([b[0], b[1], b[2], b[3]], b[4], b[5])).collect();
                (photo.to_string(), slots)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block-stage cache reuses the boxes of the pooled cache of the same photos (current key
    /// only); the pooled stage itself, or a stale pooled cache, gives none.
    #[test]
    fn a_block_stage_cache_takes_its_boxes_from_the_pooled_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let visual = crate::features::VISUAL;
        let weights = models_dir().join(format!("{visual}.safetensors"));
        let mut pooled = FeatureCache::new(key(&weights, 224, 2, Stage::Pooled).unwrap());
        pooled.push("a.jpg", &[2, 3], &[0.0; 6]);
        pooled.push("a.jpg/boxes", &[2, 6], &[0.25, 0.5, 0.75, 1.0, 0.875, 17.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        pooled.save(&cache_path(tmp.path(), "dev", visual, 2, Stage::Pooled, 1)).unwrap();
        let known = |stage, size| known_slots(tmp.path(), "dev", visual, 2, stage, 1, &weights, size);
        let slots = known(Stage::Entering(15), 224);
        assert_eq!(
            slots.get("a.jpg"),
            Some(&vec![([0.25, 0.5, 0.75, 1.0], 0.875, 17.0), ([0.0, 0.0, 1.0, 1.0], 0.0, 0.0)]),
            "{slots:?}"
        );
        assert!(known(Stage::Pooled, 224).is_empty());
        assert!(known(Stage::Entering(15), 260).is_empty(), "another input size: another key");
    }
}
