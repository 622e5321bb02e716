//! The visual path: decoded photo → resized pixels → EfficientNet-Lite → 49 regions + pooled vector.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::DynamicImage;

use super::efficientnet::host::{Act, HostNet};
use super::efficientnet::{EfficientNetLite, FEATURE_DIM};
use super::preprocess;
use super::weights::WeightsError;

/// What one photo gives the matching networks.
#[derive(Clone, Debug)]
pub struct ImageFeatures {
    /// `grid*grid` regions × 1280, row-major over the grid.
    pub regions: Vec<f32>,
    pub grid: usize,
    /// Each region's box in the original photo's pixels.
    pub boxes: Vec<[f32; 4]>,
    /// Mean of the regions: the global image vector (1280).
    pub pooled: Vec<f32>,
}

pub struct VisualEncoder {
    pub net: EfficientNetLite,
    pub device: Device,
    /// Photos per backbone pass. On the CPU, small passes keep each layer's activations in cache:
    /// `bench encoders` measured flex at 25 img/s with passes of 16 and 32–36 with passes of 2
    /// (same run, 2 cores). GPUs want the whole batch.
    pub micro_batch: usize,
    /// The host copy of `net`'s weights for flex, made on first use (the backbone is frozen).
    host: std::sync::OnceLock<HostNet>,
}

/// Photos per backbone pass on flex (see [`VisualEncoder::micro_batch`]).
pub const FLEX_MICRO_BATCH: usize = 2;

/// Photos per backbone pass on `device`: small on flex, unbounded elsewhere.
pub fn micro_batch_for(device: &Device) -> usize {
    // burn 0.22 exposes the backend of a device only through its Debug form ("Device<Flex…>").
    if format!("{device:?}").contains("Flex") { FLEX_MICRO_BATCH } else { usize::MAX }
}

impl VisualEncoder {
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        Ok(Self {
            net: EfficientNetLite::load(path, device)?,
            device: device.clone(),
            micro_batch: micro_batch_for(device),
            host: std::sync::OnceLock::new(),
        })
    }

    pub fn image_size(&self) -> u32 {
        self.net.image_size as u32
    }

    /// Feature maps [B, 1280, g, g] for a batch of decoded photos.
    pub fn feature_maps(&self, images: &[DynamicImage]) -> Tensor<4> {
        self.maps_from(images, self.net.blocks.len()).1
    }

    /// The activation entering block `block` (what a fine-tuned top starts from) and the frozen
    /// feature maps computed from it, for a batch of decoded photos.
    pub fn maps_from(&self, images: &[DynamicImage], block: usize) -> (Tensor<4>, Tensor<4>) {
        let size = self.image_size();
        let resized: Vec<_> = images.iter().map(|i| preprocess::resize_square(i, size)).collect();
        if self.device == Device::flex() {
            return self.maps_from_host(&resized, block);
        }
        let (entering, maps): (Vec<Tensor<4>>, Vec<Tensor<4>>) = resized
            .chunks(self.micro_batch.max(1))
            .map(|c| {
                let entering = self.net.features_until(preprocess::batch(c, &self.device), block);
                (entering.clone(), self.net.features_from(entering, block))
            })
            .unzip();
        (Tensor::cat(entering, 0), Tensor::cat(maps, 0))
    }

    /// The activation entering `block` of square model inputs (each `image_size()` wide), one
    /// photo per pass on flex (the host network), one batch elsewhere.
    pub fn entering(&self, resized: &[image::RgbImage], block: usize) -> Tensor<4> {
        if self.device != Device::flex() {
            return self.net.features_until(preprocess::batch(resized, &self.device), block);
        }
        use rayon::prelude::*;
        let host = self.host();
        let acts: Vec<Act> = resized.par_iter().map(|photo| host.until(photo, block)).collect();
        stack(&acts.iter().collect::<Vec<_>>(), &self.device)
    }

    /// The host copy of the backbone's weights, made on first use.
    fn host(&self) -> &HostNet {
        self.host.get_or_init(|| HostNet::of(&self.net))
    }

    /// `maps_from` on flex: each photo through the host network (`efficientnet::host`) on one
    /// core, photos side by side; the same two tensors back.
    fn maps_from_host(&self, resized: &[image::RgbImage], block: usize) -> (Tensor<4>, Tensor<4>) {
        use rayon::prelude::*;
        let host = self.host();
        let acts: Vec<(Act, Act)> = resized
            .par_iter()
            .map(|photo| {
                let entering = host.until(photo, block);
                (entering.clone(), host.from(entering, block))
            })
            .collect();
        let (entering, maps): (Vec<&Act>, Vec<&Act>) = acts.iter().map(|(e, m)| (e, m)).unzip();
        (stack(&entering, &self.device), stack(&maps, &self.device))
    }

    /// Regions, boxes and pooled vectors for a batch of decoded photos.
    pub fn encode(&self, images: &[DynamicImage]) -> Vec<ImageFeatures> {
        if images.is_empty() {
            return Vec::new();
        }
        let maps = self.feature_maps(images);
        split_maps(maps, images.iter().map(|i| (i.width(), i.height())))
    }

    /// ImageNet top-`k` (class index, probability) for each photo (parity checks, `features`).
    pub fn top_classes(&self, images: &[DynamicImage], k: usize) -> Vec<Vec<(usize, f32)>> {
        let logits = self.net.classify(EfficientNetLite::pool(self.feature_maps(images)));
        let [b, classes] = logits.dims();
        let probs = super::values(burn::tensor::activation::softmax(logits, 1));
        (0..b)
            .map(|i| {
                let mut row: Vec<(usize, f32)> =
                    probs[i * classes..(i + 1) * classes].iter().copied().enumerate().collect();
                row.sort_by(|a, b| b.1.total_cmp(&a.1));
                row.truncate(k);
                row
            })
            .collect()
    }
}

/// Channels-last activations of equal shape as one channels-first batch [B, C, h, w].
fn stack(acts: &[&Act], device: &Device) -> Tensor<4> {
    let dims = acts.first().map_or([0, 0, 0], |a| [a.c, a.h, a.w]);
    let data: Vec<f32> = acts.iter().flat_map(|a| a.channels_first()).collect();
    Tensor::from_data(TensorData::new(data, [acts.len(), dims[0], dims[1], dims[2]]), device)
}

/// [B, C, g, g] → per photo: regions in row-major grid order and their mean.
pub fn split_maps(maps: Tensor<4>, sizes: impl Iterator<Item = (u32, u32)>) -> Vec<ImageFeatures> {
    let [b, c, g, _] = maps.dims();
    debug_assert_eq!(c, FEATURE_DIM);
    // [B, C, g*g] → [B, g*g, C]: one row per region.
    let values = super::values(maps.reshape([b, c, g * g]).swap_dims(1, 2));
    sizes
        .enumerate()
        .map(|(i, (w, h))| {
            let regions = values[i * g * g * c..(i + 1) * g * g * c].to_vec();
            let mut pooled = vec![0.0f32; c];
            for region in regions.chunks_exact(c) {
                for (p, v) in pooled.iter_mut().zip(region) {
                    *p += v / (g * g) as f32;
                }
            }
            ImageFeatures { regions, grid: g, boxes: preprocess::region_boxes(w, h, g), pooled }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn flex_devices_are_recognised_for_micro_batching() {
        assert_eq!(super::micro_batch_for(&burn::tensor::Device::flex()), super::FLEX_MICRO_BATCH);
    }
}
