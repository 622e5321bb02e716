//! Computing the frozen parts of both backbones once for a dataset split, into feature caches:
//! the activation entering a chosen EfficientNet block (the blocks after it can be fine-tuned or
//! run frozen to get the regions) and the hidden states entering a chosen MiniLM layer.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::decode::decode_oriented;
use crate::data::feature_cache::{CacheError, CacheKey, FeatureCache};
use crate::data::flickr8k::{Split, load_split};
use crate::engine::backend::Compute;
use crate::engine::jobs::CancelToken;
use crate::features::checksums::sha256_file;
use crate::features::efficientnet::EfficientNetLite;
use crate::features::minilm::{MiniLm, TokenBatch};
use crate::features::tokenizer::WordPiece;
use crate::features::{TEXT_WEIGHTS, VOCAB, models_dir, preprocess, text::MAX_TOKENS, values};

pub enum ExtractMsg {
    Progress { stage: String, done: usize, total: usize },
    Warning(String),
    UpToDate(PathBuf),
    Saved(PathBuf),
}

#[derive(Clone)]
pub struct ExtractOptions {
    pub flickr8k: PathBuf,
    /// The visual backbone: a weights file stem in assets/models (`efficientnet-lite0`, `…-lite2`).
    pub visual: String,
    pub split: Split,
    pub out_dir: PathBuf,
    /// EfficientNet block whose input is cached (16 = after the last block, before the head).
    pub image_block: usize,
    /// MiniLM layer whose input is cached (6 = the final token features).
    pub text_layer: usize,
    pub batch: usize,
    /// 0: the photo as it is; v ≥ 1: its v-th augmented training view (`preprocess::augmented_view`).
    pub view: usize,
}

pub fn image_cache_path(o: &ExtractOptions) -> PathBuf {
    let view = if o.view == 0 { String::new() } else { format!("-view{}", o.view) };
    o.out_dir.join(format!("{}-{}-block{}{view}.feat", o.split.name(), o.visual, o.image_block))
}

pub fn text_cache_path(o: &ExtractOptions) -> PathBuf {
    o.out_dir.join(format!("{}-captions-layer{}.feat", o.split.name(), o.text_layer))
}

pub fn image_key(weights: &Path, size: usize, block: usize, view: usize) -> std::io::Result<CacheKey> {
    let view = match view {
        0 => String::new(),
        v => format!("augmented view {v} (crop 0.5-1 of the area, ratio 3/4-4/3, flip 1/2; seed of name and view), "),
    };
    Ok(CacheKey {
        weights_sha256: sha256_file(weights)?,
        preprocessing: format!("exif-oriented, {view}squash-resize {size}x{size} triangle, (x/255-0.5)/0.5"),
        activation: format!("efficientnet input of block {block}"),
    })
}

pub fn text_key(weights: &Path, layer: usize) -> std::io::Result<CacheKey> {
    Ok(CacheKey {
        weights_sha256: sha256_file(weights)?,
        preprocessing: format!("bert-uncased wordpiece, max {MAX_TOKENS} pieces"),
        activation: format!("minilm input of layer {layer}"),
    })
}

/// The two caches of a split, valid for the current weights.
pub struct Extracted {
    pub images: FeatureCache,
    pub captions: FeatureCache,
}

/// The image cache of `o` (its view of each photo), built if missing, stale or corrupt.
pub fn image_cache(
    compute: &Compute,
    o: &ExtractOptions,
    photos: &[PathBuf],
    cancel: &CancelToken,
    report: &dyn Fn(ExtractMsg),
) -> anyhow::Result<FeatureCache> {
    let device = &compute.device;
    let weights = models_dir().join(format!("{}.safetensors", o.visual));
    let net = EfficientNetLite::load(&weights, device)?;
    anyhow::ensure!(
        o.image_block < net.blocks.len(),
        "{} has blocks 0..{}, not {}",
        o.visual,
        net.blocks.len(),
        o.image_block
    );
    let path = image_cache_path(o);
    let key = image_key(&weights, net.image_size, o.image_block, o.view)?;
    if let Some(cache) = valid(&path, &key, report) {
        report(ExtractMsg::UpToDate(path));
        return Ok(cache);
    }
    let stage = match o.view {
        0 => format!("{} images", o.split.name()),
        v => format!("{} images, view {v}", o.split.name()),
    };
    let size = net.image_size as u32;
    let prepare = |p: &PathBuf| {
        decode_oriented(p).map(|img| match o.view {
            0 => preprocess::resize_square(&img, size),
            v => preprocess::augmented_view(&img, size, view_seed(&file_name(p), v)),
        })
    };
    let mut cache = FeatureCache::new(key);
    let total = photos.len();
    report(ExtractMsg::Progress { stage: stage.clone(), done: 0, total });
    for (i, chunk) in photos.chunks(o.batch.max(1)).enumerate() {
        if cancel.is_cancelled() {
            anyhow::bail!("cancelled; nothing written");
        }
        let decoded: Vec<_> = chunk.par_iter().map(prepare).collect();
        let mut ok = Vec::new();
        let mut names = Vec::new();
        for (p, d) in chunk.iter().zip(decoded) {
            match d {
                Ok(img) => {
                    ok.push(img);
                    names.push(file_name(p));
                }
                Err(e) => report(ExtractMsg::Warning(e.to_string())),
            }
        }
        if !ok.is_empty() {
            let micro = crate::features::visual::micro_batch_for(device);
            let parts: Vec<_> =
                ok.chunks(micro).map(|c| net.features_until(preprocess::batch(c, device), o.image_block)).collect();
            let act = burn::tensor::Tensor::cat(parts, 0);
            let [b, c, h, w] = act.dims();
            let v = values(act);
            let per = c * h * w;
            for (k, name) in names.into_iter().enumerate().take(b) {
                cache.push(name, &[c, h, w], &v[k * per..(k + 1) * per]);
            }
        }
        report(ExtractMsg::Progress { stage: stage.clone(), done: ((i + 1) * o.batch).min(total), total });
    }
    cache.save(&path)?;
    report(ExtractMsg::Saved(path));
    Ok(cache)
}

/// The seed of a photo's augmented view: from its file name, so it does not depend on the order
/// or the machine (FNV-1a).
fn view_seed(name: &str, view: usize) -> u64 {
    name.bytes()
        .chain(view.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Build whichever of the two caches is missing, stale or corrupt; return both.
pub fn extract(
    compute: &Compute,
    o: &ExtractOptions,
    cancel: &CancelToken,
    report: &dyn Fn(ExtractMsg),
) -> anyhow::Result<Extracted> {
    let data = load_split(&o.flickr8k, o.split)?;
    let images = image_cache(compute, o, &data.images, cancel, report)?;
    let device = &compute.device;

    let dir = models_dir();
    let weights = dir.join(TEXT_WEIGHTS);
    let model = MiniLm::load(&weights, device)?;
    let tokenizer = WordPiece::load(&dir.join(VOCAB), MAX_TOKENS.min(model.max_positions()))?;
    let path = text_cache_path(o);
    let key = text_key(&weights, o.text_layer)?;
    if let Some(captions) = valid(&path, &key, report) {
        report(ExtractMsg::UpToDate(path));
        return Ok(Extracted { images, captions });
    }
    let mut cache = FeatureCache::new(key);
    let captions: Vec<(String, &str)> = data
        .images
        .iter()
        .zip(&data.captions)
        .flat_map(|(p, caps)| caps.iter().enumerate().map(move |(k, c)| (format!("{}#{k}", file_name(p)), c.as_str())))
        .collect();
    let total = captions.len();
    report(ExtractMsg::Progress { stage: format!("{} captions", o.split.name()), done: 0, total });
    let text_batch = o.batch.max(1) * 4;
    for (i, chunk) in captions.chunks(text_batch).enumerate() {
        if cancel.is_cancelled() {
            anyhow::bail!("cancelled; the image cache is kept, the caption cache not written");
        }
        let mut ids = Vec::new();
        let mut names = Vec::new();
        for (name, caption) in chunk {
            match tokenizer.tokenize(caption) {
                Ok(t) => {
                    ids.push(t.ids);
                    names.push(name.clone());
                }
                Err(e) => report(ExtractMsg::Warning(format!("{name}: {e}"))),
            }
        }
        if !ids.is_empty() {
            let batch = TokenBatch::new(&ids, tokenizer.pad_id(), device);
            let [b, n] = batch.ids.dims();
            let hidden = model.hidden_until(&batch, o.text_layer);
            let h = hidden.dims()[1];
            let v = values(hidden);
            for (k, name) in names.into_iter().enumerate().take(b) {
                let len = batch.lengths[k];
                cache.push(name, &[len, h], &v[k * n * h..(k * n + len) * h]);
            }
        }
        report(ExtractMsg::Progress {
            stage: format!("{} captions", o.split.name()),
            done: ((i + 1) * text_batch).min(total),
            total,
        });
    }
    cache.save(&path)?;
    report(ExtractMsg::Saved(path));
    Ok(Extracted { images, captions: cache })
}

/// The valid cache for `key` at `path`, if there is one; a stale or corrupt one is reported.
fn valid(path: &Path, key: &CacheKey, report: &dyn Fn(ExtractMsg)) -> Option<FeatureCache> {
    match FeatureCache::load(path, key) {
        Ok(cache) => Some(cache),
        Err(CacheError::Missing { .. }) => None,
        Err(e) => {
            report(ExtractMsg::Warning(e.to_string()));
            None
        }
    }
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
