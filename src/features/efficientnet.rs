//! EfficientNet-Lite (ImageNet) in burn: stem, MBConv blocks without squeeze-excitation, ReLU6,
//! TensorFlow "same" padding, batch norm folded into the convolutions by tools/convert_weights.py.
//! The architecture (kernel, stride, expansion of each block) is read from the weights' metadata,
//! so Lite0 and Lite2 are the same code.

use burn::module::{Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

use super::weights::{WeightFile, WeightsError};

pub mod host;

/// One MBConv block's shape, as written by the converter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct BlockSpec {
    pub kernel: usize,
    pub stride: usize,
    pub expand: usize,
    pub input: usize,
    pub output: usize,
    pub skip: bool,
}

/// A convolution with bias (batch norm folded in) and TF "same" padding.
#[derive(Module, Debug)]
pub struct SameConv {
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
    pub stride: usize,
    pub groups: usize,
}

/// TensorFlow "SAME": output = ceil(n / stride); the odd pixel of padding goes after.
pub fn same_padding(n: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(n);
    (total / 2, total - total / 2)
}

impl SameConv {
    pub(crate) fn load(
        w: &WeightFile,
        name: &str,
        shape: [usize; 4],
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Result<Self, WeightsError> {
        Ok(Self {
            weight: Param::from_tensor(w.tensor(&format!("{name}.weight"), shape, device)?),
            bias: Param::from_tensor(w.tensor(&format!("{name}.bias"), [shape[0]], device)?),
            stride,
            groups,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [_, _, kh, kw] = self.weight.dims();
        let padding = [same_padding(h, kh, self.stride), same_padding(w, kw, self.stride)];
        let options = ConvOptions::new_with_padding([self.stride; 2], padding, [1, 1], self.groups);
        conv2d(x, self.weight.val(), Some(self.bias.val()), options)
    }
}

pub(crate) fn relu6(x: Tensor<4>) -> Tensor<4> {
    x.clamp(0.0, 6.0)
}

#[derive(Module, Debug)]
pub struct MbConv {
    pub expand: Option<SameConv>,
    pub depthwise: SameConv,
    pub project: SameConv,
    pub skip: bool,
}

impl MbConv {
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(expand) = &self.expand {
            x = relu6(expand.forward(x));
        }
        x = relu6(self.depthwise.forward(x));
        x = self.project.forward(x);
        if self.skip { x + input } else { x }
    }
}

/// The MBConv blocks `specs` describes, named `blocks.{i}.{expand,depthwise,project}` in `w`
/// (EfficientNet-Lite and MobileNetV2, whose inverted residuals are the same block).
pub(crate) fn load_blocks(w: &WeightFile, specs: &[BlockSpec], device: &Device) -> Result<Vec<MbConv>, WeightsError> {
    let mut blocks = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let hidden = s.input * s.expand;
        let expand = if s.expand != 1 {
            Some(SameConv::load(w, &format!("blocks.{i}.expand"), [hidden, s.input, 1, 1], 1, 1, device)?)
        } else {
            None
        };
        blocks.push(MbConv {
            expand,
            depthwise: SameConv::load(
                w,
                &format!("blocks.{i}.depthwise"),
                [hidden, 1, s.kernel, s.kernel],
                s.stride,
                hidden,
                device,
            )?,
            project: SameConv::load(w, &format!("blocks.{i}.project"), [s.output, hidden, 1, 1], 1, 1, device)?,
            skip: s.skip,
        });
    }
    Ok(blocks)
}

fn top_forward(blocks: &[MbConv], head: &SameConv, mut x: Tensor<4>) -> Tensor<4> {
    for b in blocks {
        x = b.forward(x);
    }
    relu6(head.forward(x))
}

/// The last blocks and the head, run from the cached activation entering `first_block`.
#[derive(Module, Debug)]
pub struct Top {
    pub first_block: usize,
    pub blocks: Vec<MbConv>,
    pub head: SameConv,
}

impl Top {
    /// [B, C, h, w] entering `first_block` → region features [B, h·w, 1280] (row-major cells).
    pub fn regions(&self, x: Tensor<4>) -> Tensor<3> {
        regions_of(top_forward(&self.blocks, &self.head, x))
    }

    /// A photo's region features `cells` [B, h·w, 1280] followed by its `k` detected objects,
    /// each object crop's activation ([B·k, C, h, w], photo by photo) run through this top and
    /// mean-pooled to one region: [B, h·w + k, 1280].
    pub fn with_objects(&self, cells: Tensor<3>, crops: Tensor<4>) -> Tensor<3> {
        let [b, _, d] = cells.dims();
        let objects = self.regions(crops).mean_dim(1);
        let k = objects.dims()[0] / b.max(1);
        Tensor::cat(vec![cells, objects.reshape([b, k, d])], 1)
    }
}

/// Feature maps [B, C, h, w] as region features [B, h·w, C], cells row-major (the order every
/// network here was trained on and every heatmap is drawn in).
pub fn regions_of(maps: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = maps.dims();
    maps.reshape([b, c, h * w]).swap_dims(1, 2)
}

#[derive(Module, Debug)]
pub struct EfficientNetLite {
    pub stem: SameConv,
    pub blocks: Vec<MbConv>,
    pub head: SameConv,
    /// ImageNet classifier, kept so parity can be checked on classes: [1000, 1280] and bias.
    pub classifier_weight: Param<Tensor<2>>,
    pub classifier_bias: Param<Tensor<1>>,
    pub image_size: usize,
}

/// Channels of the last feature map (the region features).
pub const FEATURE_DIM: usize = 1280;

impl EfficientNetLite {
    /// The network in `path` (read once per process and device; later calls share its tensors).
    pub fn load(path: &std::path::Path, device: &Device) -> Result<Self, WeightsError> {
        super::load_once(path, device, || Self::read(path, device))
    }

    fn read(path: &std::path::Path, device: &Device) -> Result<Self, WeightsError> {
        let w = WeightFile::open(path)?;
        let specs: Vec<BlockSpec> = w.metadata_parsed("blocks")?;
        if specs.is_empty() {
            return Err(WeightsError::Metadata {
                path: path.to_path_buf(),
                key: "blocks".into(),
                cause: "no MBConv blocks listed".into(),
            });
        }
        let image_size: usize = w.metadata_parsed("image_size")?;
        let stem_out = specs.first().map_or(32, |b| b.input);
        let stem = SameConv::load(&w, "stem", [stem_out, 3, 3, 3], 2, 1, device)?;
        let blocks = load_blocks(&w, &specs, device)?;
        let last = specs.last().map_or(320, |b| b.output);
        let head = SameConv::load(&w, "head", [FEATURE_DIM, last, 1, 1], 1, 1, device)?;
        let classes = w.values("classifier.bias", &[1000]).map(|v| v.len())?;
        Ok(Self {
            stem,
            blocks,
            head,
            classifier_weight: Param::from_tensor(w.tensor("classifier.weight", [classes, FEATURE_DIM], device)?),
            classifier_bias: Param::from_tensor(w.tensor("classifier.bias", [classes], device)?),
            image_size,
        })
    }

    /// [B, 3, S, S] scaled to [-1, 1] → the last feature map [B, 1280, S/32, S/32].
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.features_until(x, self.blocks.len());
        self.features_from(x, self.blocks.len())
    }

    /// Stem and blocks `0..block`: the activation entering block `block` (cached for fine-tuning).
    pub fn features_until(&self, x: Tensor<4>, block: usize) -> Tensor<4> {
        let mut x = relu6(self.stem.forward(x));
        for b in &self.blocks[..block.min(self.blocks.len())] {
            x = b.forward(x);
        }
        x
    }

    /// Blocks `block..` and the head, from an activation [`Self::features_until`] returned.
    pub fn features_from(&self, x: Tensor<4>, block: usize) -> Tensor<4> {
        top_forward(&self.blocks[block.min(self.blocks.len())..], &self.head, x)
    }

    /// A copy of blocks `block..` and the head: the part a matching network fine-tunes.
    pub fn top(&self, block: usize) -> Top {
        Top {
            first_block: block,
            blocks: self.blocks[block.min(self.blocks.len())..].to_vec(),
            head: self.head.clone(),
        }
    }

    /// Global average pooling of a feature map: [B, 1280].
    pub fn pool(features: Tensor<4>) -> Tensor<2> {
        let [b, c, _, _] = features.dims();
        features.flatten::<3>(2, 3).mean_dim(2).reshape([b, c])
    }

    /// ImageNet logits [B, 1000] from pooled features.
    pub fn classify(&self, pooled: Tensor<2>) -> Tensor<2> {
        pooled.matmul(self.classifier_weight.val().transpose()) + self.classifier_bias.val().unsqueeze()
    }
}

#[cfg(test)]
mod tests {
    use super::same_padding;

    #[test]
    fn same_padding_matches_tensorflow() {
        // The static paddings the PyTorch port computes for 224 px inputs.
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(56, 5, 2), (1, 2));
        assert_eq!(same_padding(28, 5, 1), (2, 2));
        assert_eq!(same_padding(112, 3, 1), (1, 1));
        // Odd sizes (EfficientNet-Lite2 at 260 px reaches 65).
        assert_eq!(same_padding(65, 5, 2), (2, 2));
    }
}
