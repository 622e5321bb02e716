//! `alignscope features`: what the backbones see in one photo or one caption.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::backend::Compute;
use crate::data::decode::decode_oriented;
use crate::features::text::TextEncoder;
use crate::features::visual::VisualEncoder;
use crate::features::{TEXT_WEIGHTS, VOCAB, imagenet_classes, models_dir};

/// `visual`: the backbone's weights file stem in assets/models.
pub fn describe_image(compute: &Compute, path: &Path, visual: &str) -> anyhow::Result<String> {
    let image = decode_oriented(path)?;
    let encoder = VisualEncoder::load(&models_dir().join(format!("{visual}.safetensors")), &compute.device)?;
    let features = encoder.encode(std::slice::from_ref(&image)).pop().context("no features")?;
    let top = encoder.top_classes(std::slice::from_ref(&image), 5).pop().unwrap_or_default();
    let classes = imagenet_classes();
    let mut out = String::new();
    writeln!(out, "{} ({}×{})", path.display(), image.width(), image.height())?;
    writeln!(out, "ImageNet top-5 ({visual} classifier):")?;
    for (class, p) in top {
        let name = classes.get(class).map_or("?", String::as_str);
        writeln!(out, "  {:5.1}%  {class:4}  {name}", p * 100.0)?;
    }
    let dim = features.regions.len() / (features.grid * features.grid);
    writeln!(
        out,
        "regions: {g}×{g} grid = {} regions × {dim} features (input {s}×{s}, squash-resized)",
        features.grid * features.grid,
        g = features.grid,
        s = encoder.image_size()
    )?;
    let b = features.boxes[0];
    writeln!(
        out,
        "region 0 box (x0, y0, x1, y1) in photo pixels: ({:.1}, {:.1}, {:.1}, {:.1})",
        b[0], b[1], b[2], b[3]
    )?;
    writeln!(
        out,
        "pooled vector: {} values, L2 norm {:.3}",
        features.pooled.len(),
        features.pooled.iter().map(|v| v * v).sum::<f32>().sqrt()
    )?;
    Ok(out)
}

/// The photo's objects as the SSD detector finds them (score ≥ 0.3), best first; as text
/// lines or one JSON object.
pub fn describe_objects(compute: &Compute, path: &Path, json: bool) -> anyhow::Result<String> {
    let image = decode_oriented(path)?;
    let detector = super::objects::load_detector(&compute.device).map_err(anyhow::Error::msg)?;
    let objects = super::objects::objects_in(&detector, &image, &compute.device);
    if json {
        let mut object = serde_json::Map::new();
        crate::data::path_text::json_fields(path, "photo", &mut object);
        object.insert("objects".into(), serde_json::to_value(&objects)?);
        return Ok(serde_json::Value::Object(object).to_string() + "\n");
    }
    Ok(super::objects::describe(&objects, [image.width(), image.height()], path))
}

pub fn describe_caption(compute: &Compute, caption: &str) -> anyhow::Result<String> {
    let dir = models_dir();
    let encoder = TextEncoder::load(&dir.join(TEXT_WEIGHTS), &dir.join(VOCAB), &compute.device)?;
    let features = encoder.encode(&[caption]).pop().context("no features")?.map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = &features.tokenized;
    let mut out = String::new();
    if let Some(warning) = features.warning() {
        writeln!(out, "warning: {warning}")?;
    }
    writeln!(
        out,
        "{} word pieces, {} words, token features {}×{}",
        t.ids.len(),
        t.words.len(),
        t.ids.len(),
        features.dim
    )?;
    writeln!(out, "{:>4}  {:>6}  {:<16}  word", "#", "id", "piece")?;
    for (k, (piece, id)) in t.pieces.iter().zip(&t.ids).enumerate() {
        let word = t.piece_word[k].and_then(|w| t.words.get(w)).map_or("-", String::as_str);
        writeln!(out, "{k:>4}  {id:>6}  {piece:<16}  {word}")?;
    }
    Ok(out)
}
