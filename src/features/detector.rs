//! SSD-MobileNetV2 (COCO, 90 classes) in burn: the object detector whose boxes the inspector
//! draws. Converted once from the TensorFlow model zoo's frozen graph by
//! tools/convert_detector.py (batch norm folded, fp16); MobileNetV2's inverted residuals are the
//! EfficientNet-Lite MBConv blocks with 3×3 kernels, so they share that code.
//!
//! Input: the whole photo resized to 300×300 as TensorFlow's `resize_bilinear` (no half-pixel
//! centres) does it, scaled to [-1, 1]. Six feature maps (19, 10, 5, 3, 2, 1 cells: block 13's
//! expansion, the 1280-channel head, four extra stride-2 layers) each get a 3×3 box and class
//! predictor; [`super::detections`] decodes and suppresses.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::DynamicImage;

use super::detections::{Detection, anchors, decode, suppress};
use super::efficientnet::{BlockSpec, FEATURE_DIM, MbConv, SameConv, load_blocks, relu6};
use super::weights::{WeightFile, WeightsError};

/// The committed weights file (assets/models).
pub const DETECTOR_WEIGHTS: &str = "ssd-mobilenet-v2-coco.safetensors";
/// Detections below this score are not reported (the threshold the parity fixture uses).
pub const MIN_SCORE: f32 = 0.3;
/// The block whose expansion output is the first feature map (stride 16).
const FIRST_MAP_BLOCK: usize = 13;
/// Boxes of one class overlapping a better one by more than this are suppressed (the model's
/// own post-processing setting).
const MAX_IOU: f32 = 0.6;
const MAX_DETECTIONS: usize = 100;

#[derive(Clone, Debug, serde::Deserialize)]
struct ExtraSpec {
    reduce: usize,
    output: usize,
}

/// One extra feature layer: 1×1 reduce, 3×3 depthwise at stride 2, 1×1 project, each ReLU6.
#[derive(Module, Debug)]
struct Extra {
    reduce: SameConv,
    depthwise: SameConv,
    project: SameConv,
}

#[derive(Module, Debug)]
struct Predictor {
    class: SameConv,
    boxes: SameConv,
}

#[derive(Module, Debug)]
pub struct Detector {
    stem: SameConv,
    blocks: Vec<MbConv>,
    head: SameConv,
    extras: Vec<Extra>,
    predictors: Vec<Predictor>,
    image_size: usize,
    labels: Vec<String>,
}

impl Detector {
    /// The detector in `path` (read once per process and device).
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        super::load_once(path, device, || Self::read(path, device))
    }

    fn read(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        let w = WeightFile::open(path)?;
        let specs: Vec<BlockSpec> = w.metadata_parsed("blocks")?;
        let extra_specs: Vec<ExtraSpec> = w.metadata_parsed("extras")?;
        let labels: Vec<String> = w.metadata_parsed("labels")?;
        let bad = |cause: &str| WeightsError::Metadata {
            path: path.to_path_buf(),
            key: "blocks".into(),
            cause: cause.into(),
        };
        let first = specs.get(FIRST_MAP_BLOCK).ok_or_else(|| bad("fewer MobileNetV2 blocks than SSD needs"))?;
        if extra_specs.len() != 4 || labels.len() < 2 {
            return Err(bad("not SSD-MobileNetV2's four extra layers and a label list"));
        }
        let stem = SameConv::load(&w, "stem", [specs[0].input, 3, 3, 3], 2, 1, device)?;
        let blocks = load_blocks(&w, &specs, device)?;
        let last = specs.last().map_or(320, |b| b.output);
        // MobileNetV2's head is EfficientNet's width (its shape is checked as it loads).
        let head_dim = FEATURE_DIM;
        let head = SameConv::load(&w, "head", [head_dim, last, 1, 1], 1, 1, device)?;
        let mut extras = Vec::new();
        let mut channels = vec![first.input * first.expand, head_dim];
        let mut input = head_dim;
        for (j, e) in extra_specs.iter().enumerate() {
            let conv = |part: &str, shape: [usize; 4], stride: usize, groups: usize| {
                SameConv::load(&w, &format!("extras.{j}.{part}"), shape, stride, groups, device)
            };
            extras.push(Extra {
                reduce: conv("reduce", [e.reduce, input, 1, 1], 1, 1)?,
                depthwise: conv("depthwise", [e.reduce, 1, 3, 3], 2, e.reduce)?,
                project: conv("project", [e.output, e.reduce, 1, 1], 1, 1)?,
            });
            channels.push(e.output);
            input = e.output;
        }
        let anchors_per_cell = |k: usize| if k == 0 { 3 } else { 6 };
        let predictors = channels
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                let a = anchors_per_cell(k);
                let conv = |part: &str, out: usize| {
                    SameConv::load(&w, &format!("predictors.{k}.{part}"), [out, c, 3, 3], 1, 1, device)
                };
                Ok(Predictor { class: conv("class", a * labels.len())?, boxes: conv("box", a * 4)? })
            })
            .collect::<Result<Vec<_>, WeightsError>>()?;
        let image_size = w.metadata_parsed("image_size")?;
        Ok(Self { stem, blocks, head, extras, predictors, image_size, labels })
    }

    /// Class names by class index (0 is the background).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The six feature maps.
    fn feature_maps(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = relu6(self.stem.forward(x));
        let mut maps = Vec::with_capacity(6);
        for (i, b) in self.blocks.iter().enumerate() {
            if i == FIRST_MAP_BLOCK
                && let Some(expand) = &b.expand
            {
                // Block 13 is split: its expansion output is the first map.
                let expanded = relu6(expand.forward(x));
                maps.push(expanded.clone());
                x = b.project.forward(relu6(b.depthwise.forward(expanded)));
            } else {
                x = b.forward(x);
            }
        }
        x = relu6(self.head.forward(x));
        maps.push(x.clone());
        for e in &self.extras {
            x = relu6(e.project.forward(relu6(e.depthwise.forward(relu6(e.reduce.forward(x))))));
            maps.push(x.clone());
        }
        maps
    }

    /// Raw outputs for a batch [B, 3, S, S]: box codes [B, anchors, 4] and class logits
    /// [B, anchors, classes], anchors ordered as [`anchors`] lists them; and the maps' sizes.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<3>, Tensor<3>, Vec<usize>) {
        let classes = self.labels.len();
        let (mut codes, mut logits, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
        for (map, p) in self.feature_maps(x).into_iter().zip(&self.predictors) {
            let [b, _, h, _] = map.dims();
            sizes.push(h);
            // [B, A·k, H, W] → [B, H·W·A, k]: per cell, its anchors in order.
            let flat = |t: Tensor<4>, k: usize| t.permute([0, 2, 3, 1]).reshape([b as i32, -1, k as i32]);
            codes.push(flat(p.boxes.forward(map.clone()), 4));
            logits.push(flat(p.class.forward(map), classes));
        }
        (Tensor::cat(codes, 1), Tensor::cat(logits, 1), sizes)
    }

    /// The objects in each photo scoring at least `min_score`, best first.
    pub fn detect(&self, photos: &[DynamicImage], min_score: f32, device: &Device) -> Vec<Vec<Detection>> {
        if photos.is_empty() {
            return Vec::new();
        }
        let s = self.image_size;
        let values: Vec<f32> = photos.iter().flat_map(|p| tf_resize_normalised(p, s)).collect();
        let x = Tensor::from_data(TensorData::new(values, [photos.len(), 3, s, s]), device);
        let (codes, logits, sizes) = self.forward(x);
        let grid = anchors(&sizes);
        let codes = super::values(codes);
        let probs = super::values(burn::tensor::activation::sigmoid(logits));
        let classes = self.labels.len();
        (0..photos.len())
            .map(|i| {
                let boxes: Vec<[f32; 4]> = grid
                    .iter()
                    .enumerate()
                    .map(|(a, anchor)| {
                        let c = &codes[(i * grid.len() + a) * 4..][..4];
                        decode(*anchor, [c[0], c[1], c[2], c[3]])
                    })
                    .collect();
                let scores: Vec<Vec<f32>> =
                    (0..grid.len()).map(|a| probs[(i * grid.len() + a) * classes..][..classes].to_vec()).collect();
                suppress(&boxes, &scores, &self.labels, min_score, MAX_IOU, MAX_DETECTIONS)
            })
            .collect()
    }
}

/// CHW floats in [-1, 1] of the photo resized to `size`×`size` the way TensorFlow 1's
/// `resize_bilinear` (align_corners = false, no half-pixel centres) samples: output pixel i reads
/// input position i·in/out. Matching it keeps the boxes within 1e-3 of the reference.
pub fn tf_resize_normalised(photo: &DynamicImage, size: usize) -> Vec<f32> {
    let rgb = photo.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let raw = rgb.as_raw();
    if w == 0 || h == 0 {
        return vec![0.0; 3 * size * size];
    }
    let taps = |out: usize, len: usize| -> Vec<(usize, usize, f32)> {
        let scale = len as f32 / out as f32;
        (0..out)
            .map(|i| {
                let pos = i as f32 * scale;
                let lo = (pos.floor() as usize).min(len.saturating_sub(1));
                (lo, (lo + 1).min(len.saturating_sub(1)), pos - lo as f32)
            })
            .collect()
    };
    let (ys, xs) = (taps(size, h), taps(size, w));
    let plane = size * size;
    let mut out = vec![0.0f32; 3 * plane];
    let px = |y: usize, x: usize, c: usize| raw[(y * w + x) * 3 + c] as f32;
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let top = px(y0, x0, c) + (px(y0, x1, c) - px(y0, x0, c)) * fx;
                let bottom = px(y1, x0, c) + (px(y1, x1, c) - px(y1, x0, c)) * fx;
                let v = top + (bottom - top) * fy;
                out[c * plane + oy * size + ox] = v * (2.0 / 255.0) - 1.0;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::tf_resize_normalised;

    #[test]
    fn tf_resize_samples_from_the_top_left() {
        // 2×1 → 4×4: columns read input x = 0, 0.5, 1, 1.5 (clamped to the last pixel).
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(2, 1, |x, _| {
            image::Rgb(if x == 0 { [0, 0, 0] } else { [255, 255, 255] })
        }));
        let v = tf_resize_normalised(&img, 4);
        assert_eq!(&v[..4], &[-1.0, 0.0, 1.0, 1.0]);
        assert_eq!(v.len(), 48);
    }
}
