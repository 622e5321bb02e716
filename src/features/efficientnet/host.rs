//! EfficientNet-Lite on the CPU without tensors, for flex: the arithmetic of
//! [`EfficientNetLite`](super::EfficientNetLite) on one photo at a time in channels-last layout,
//! so that a 1×1 convolution is one matrix product through gemm ([pixels, in] × [in, out]), a
//! depthwise convolution a loop over pixels whose inner loop runs along the channels, and bias,
//! ReLU6 and the skip join the pass that writes the values. Each photo runs on one core; photos
//! run side by side.

use std::ops::Range;

use image::RgbImage;

use super::{EfficientNetLite, MbConv, SameConv, same_padding};
use crate::features::host::{matmul, vectorised_fn};
use crate::features::values;

/// An activation, channels last: [h, w, c].
#[derive(Clone)]
pub struct Act {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Act {
    /// A photo scaled to [-1, 1], as `preprocess::normalize` does (there channels first).
    pub fn of_photo(rgb: &RgbImage) -> Self {
        let (w, h) = rgb.dimensions();
        let data = rgb.as_raw().iter().map(|&v| v as f32 / 127.5 - 1.0).collect();
        Act { h: h as usize, w: w as usize, c: 3, data }
    }

    /// The same values channels first, [c, h, w].
    pub fn channels_first(&self) -> Vec<f32> {
        let plane = self.h * self.w;
        let mut out = vec![0.0f32; self.c * plane];
        for (p, pixel) in self.data.chunks_exact(self.c).enumerate() {
            for (ch, v) in pixel.iter().enumerate() {
                out[ch * plane + p] = *v;
            }
        }
        out
    }

    /// The mean over pixels, per channel (`EfficientNetLite::pool`).
    pub fn mean_pixel(&self) -> Vec<f32> {
        let mut sum = vec![0.0f32; self.c];
        for pixel in self.data.chunks_exact(self.c.max(1)) {
            sum.iter_mut().zip(pixel).for_each(|(s, v)| *s += v);
        }
        let n = (self.h * self.w).max(1) as f32;
        sum.iter_mut().for_each(|s| *s /= n);
        sum
    }
}

/// A convolution's weights, host copies, laid out for the loop that uses them.
struct Conv {
    /// 1×1: PyTorch's [out, in] as stored. k×k depthwise: [ky, kx, c]. Stem: [ky, kx, in, out].
    weight: Vec<f32>,
    bias: Vec<f32>,
    out: usize,
    input: usize,
    kernel: usize,
    stride: usize,
}

impl Conv {
    fn of(conv: &SameConv) -> Self {
        let [out, per_group, kernel, _] = conv.weight.dims();
        let raw = values(conv.weight.val());
        let input = per_group * conv.groups;
        let weight = if kernel == 1 {
            raw
        } else if conv.groups > 1 {
            // Depthwise [c, 1, ky, kx] → [ky, kx, c].
            let mut w = vec![0.0f32; raw.len()];
            for c in 0..out {
                for t in 0..kernel * kernel {
                    w[t * out + c] = raw[c * kernel * kernel + t];
                }
            }
            w
        } else {
            // Dense [out, in, ky, kx] → [ky, kx, in, out].
            let mut w = vec![0.0f32; raw.len()];
            for o in 0..out {
                for i in 0..per_group {
                    for t in 0..kernel * kernel {
                        w[(t * per_group + i) * out + o] = raw[(o * per_group + i) * kernel * kernel + t];
                    }
                }
            }
            w
        };
        Conv { weight, bias: values(conv.bias.val()), out, input, kernel, stride: conv.stride }
    }
}

struct Block {
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    skip: bool,
}

impl Block {
    fn of(b: &MbConv) -> Self {
        Block {
            expand: b.expand.as_ref().map(Conv::of),
            depthwise: Conv::of(&b.depthwise),
            project: Conv::of(&b.project),
            skip: b.skip,
        }
    }
}

/// The network's weights, host copies: what a batch of photos reads.
pub struct HostNet {
    stem: Conv,
    blocks: Vec<Block>,
    head: Conv,
}

impl HostNet {
    pub fn of(net: &EfficientNetLite) -> Self {
        HostNet {
            stem: Conv::of(&net.stem),
            blocks: net.blocks.iter().map(Block::of).collect(),
            head: Conv::of(&net.head),
        }
    }

    /// Stem (from a photo) then blocks `range` (`features_until` for 0..b).
    pub fn until(&self, photo: &RgbImage, block: usize) -> Act {
        let x = spatial_conv(&Act::of_photo(photo), &self.stem, false);
        self.blocks(x, 0..block)
    }

    /// Blocks `range`, from the activation entering the first.
    pub fn blocks(&self, mut x: Act, range: Range<usize>) -> Act {
        for b in &self.blocks[range.start.min(self.blocks.len())..range.end.min(self.blocks.len())] {
            let inner = match &b.expand {
                Some(e) => pointwise(&x, e, true, None),
                None => Act { h: x.h, w: x.w, c: x.c, data: x.data.clone() },
            };
            let inner = spatial_conv(&inner, &b.depthwise, true);
            x = pointwise(&inner, &b.project, false, if b.skip { Some(&x) } else { None });
        }
        x
    }

    /// Blocks `block..` and the head (`features_from`).
    pub fn from(&self, x: Act, block: usize) -> Act {
        let x = self.blocks(x, block..self.blocks.len());
        pointwise(&x, &self.head, true, None)
    }
}

/// A 1×1 convolution: [pixels, in] × [in, out] + bias, then ReLU6 or the skip's input added.
fn pointwise(x: &Act, conv: &Conv, relu6: bool, skip: Option<&Act>) -> Act {
    let pixels = x.h * x.w;
    let mut data = vec![0.0f32; pixels * conv.out];
    // The weight [out, in] read as [in, out]: element (i, o) at o·in + i.
    matmul(&mut data, [pixels, conv.out, conv.input], (&x.data, conv.input, 1), (&conv.weight, 1, conv.input), false);
    epilogue(&mut data, &conv.bias, relu6, skip.map(|s| &s.data[..]));
    Act { h: x.h, w: x.w, c: conv.out, data }
}

vectorised_fn! {
    /// Bias, then ReLU6 or the skip's values added, row by row (rows of `bias.len()`).
    fn epilogue(data: &mut [f32], bias: &[f32], relu6: bool, skip: Option<&[f32]>) {
        let c = bias.len().max(1);
        for (p, row) in data.chunks_mut(c).enumerate() {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            if relu6 {
                row.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0));
            }
            if let Some(skip) = skip {
                row.iter_mut().zip(&skip[p * c..][..c]).for_each(|(v, s)| *v += s);
            }
        }
    }
}

vectorised_fn! {
    /// A k×k convolution with TF "same" padding, + bias, ReLU6: depthwise (each channel its own
    /// filter) or dense (the stem: every input channel into every output).
    fn spatial_conv_into(x: &Act, conv: &Conv, depthwise: bool, out: &mut Act) {
        let (k, s, cin, cout) = (conv.kernel, conv.stride, x.c, out.c);
        let (pad_y, pad_x) = (same_padding(x.h, k, s).0, same_padding(x.w, k, s).0);
        for oy in 0..out.h {
            for ox in 0..out.w {
                let o = &mut out.data[(oy * out.w + ox) * cout..][..cout];
                o.copy_from_slice(&conv.bias);
                for ky in 0..k {
                    let iy = (oy * s + ky) as isize - pad_y as isize;
                    if iy < 0 || iy >= x.h as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = (ox * s + kx) as isize - pad_x as isize;
                        if ix < 0 || ix >= x.w as isize {
                            continue;
                        }
                        let input = &x.data[(iy as usize * x.w + ix as usize) * cin..][..cin];
                        let tap = ky * k + kx;
                        if depthwise {
                            let w = &conv.weight[tap * cout..][..cout];
                            o.iter_mut().zip(input).zip(w).for_each(|((o, i), w)| *o += i * w);
                        } else {
                            for (i, v) in input.iter().enumerate() {
                                let w = &conv.weight[(tap * cin + i) * cout..][..cout];
                                o.iter_mut().zip(w).for_each(|(o, w)| *o += v * w);
                            }
                        }
                    }
                }
                o.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0));
            }
        }
    }
}

/// [`spatial_conv_into`] into a new activation (the output size of TF "same" at the stride).
fn spatial_conv(x: &Act, conv: &Conv, depthwise: bool) -> Act {
    let (h, w) = (x.h.div_ceil(conv.stride), x.w.div_ceil(conv.stride));
    let mut out = Act { h, w, c: conv.out, data: vec![0.0f32; h * w * conv.out] };
    spatial_conv_into(x, conv, depthwise, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::preprocess;
    use burn::tensor::Device;

    #[test]
    fn the_host_network_gives_the_tensor_networks_activations_and_maps() {
        let path = crate::features::models_dir().join(crate::features::VISUAL_WEIGHTS);
        let device = Device::flex();
        let net = EfficientNetLite::load(&path, &device).expect("the committed EfficientNet-Lite0 weights");
        // A photo with structure at every scale: gradients and a checkerboard.
        let photo = RgbImage::from_fn(224, 224, |x, y| {
            image::Rgb([(x % 256) as u8, ((x * y) % 251) as u8, if (x / 16 + y / 16) % 2 == 0 { 220 } else { 30 }])
        });
        let host = HostNet::of(&net);
        let block = 15;
        let entering = net.features_until(preprocess::batch(std::slice::from_ref(&photo), &device), block);
        let maps = values(net.features_from(entering.clone(), block));
        let host_entering = host.until(&photo, block);
        let [_, c, h, w] = entering.dims();
        assert_eq!([host_entering.c, host_entering.h, host_entering.w], [c, h, w]);
        let host_maps = host.from(host_entering, block).channels_first();
        let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        let worst_maps = worst(&host_maps, &maps);
        assert_eq!(host_maps.len(), maps.len());
        assert!(worst_maps < 1e-3, "feature maps differ by up to {worst_maps}");
        let pooled = values(EfficientNetLite::pool(net.features_from(entering, block)));
        let host_pooled = host.from(host.until(&photo, block), block).mean_pixel();
        assert!(worst(&host_pooled, &pooled) < 1e-4, "pooled features differ");
    }
}
