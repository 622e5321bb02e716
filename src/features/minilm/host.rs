//! One MiniLM layer on the CPU without tensors, for flex: the arithmetic of
//! [`Layer::forward`](super::Layer::forward) on host buffers. Through flex's tensors a third of
//! the text path's time went to elementwise passes (bias, mask, scaling, softmax, GELU and the two
//! layer norms, each reading and writing the whole batch) and a tenth to page faults on fresh
//! buffers; here each of those is one pass over rows that stay in cache, padding tokens are not
//! computed at all, and the matrix products still go through gemm.

use rayon::prelude::*;

use super::{Dense, Layer, Norm};
use crate::features::host::{dot, exp_nonpositive, matmul, sum, vectorised_fn};
use crate::features::values;

/// A dense layer's weights as host copies ([in, out] row-major, as `Dense` keeps them).
struct HostDense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    out: usize,
}

impl HostDense {
    fn of(dense: &Dense) -> Self {
        let out = dense.bias.dims()[0];
        HostDense { weight: values(dense.weight.val()), bias: values(dense.bias.val()), out }
    }

    /// x [rows, in] → [rows, out] (+ bias), on the calling thread.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let inp = self.weight.len() / self.out.max(1);
        let mut y = vec![0.0f32; rows * self.out];
        matmul(&mut y, [rows, self.out, inp], (x, inp, 1), (&self.weight, self.out, 1), false);
        y.chunks_mut(self.out.max(1)).for_each(|r| r.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b));
        y
    }
}

/// A layer's weights, host copies.
struct HostLayer {
    qkv: [HostDense; 3],
    attention_out: HostDense,
    attention_norm: (Vec<f32>, Vec<f32>, f32),
    intermediate: HostDense,
    output: HostDense,
    output_norm: (Vec<f32>, Vec<f32>, f32),
    heads: usize,
}

/// `Layer::forward` for the real tokens of a padded batch: `x` [B·N, H] row-major with sequence
/// b's tokens in rows b·N .. b·N + lengths[b]. Padding rows come back as they went in. The
/// sequences are split into one part per thread, each part computed on its thread alone (many
/// small parallel steps cost more in thread wake-ups than they saved: measured, a sixth of the
/// time went to waking rayon's threads).
pub fn forward(layer: &Layer, x: &[f32], lengths: &[usize], n: usize) -> Vec<f32> {
    let hidden = layer.query.bias.dims()[0];
    let norm = |l: &Norm| (values(l.weight.val()), values(l.bias.val()), l.eps as f32);
    let weights = HostLayer {
        qkv: [&layer.query, &layer.key, &layer.value].map(HostDense::of),
        attention_out: HostDense::of(&layer.attention_out),
        attention_norm: norm(&layer.attention_norm),
        intermediate: HostDense::of(&layer.intermediate),
        output: HostDense::of(&layer.output),
        output_norm: norm(&layer.output_norm),
        heads: layer.heads,
    };
    let lengths: Vec<usize> = lengths.iter().map(|&len| len.min(n)).collect();
    // Parts of about equal token counts, whole sequences each.
    let total: usize = lengths.iter().sum();
    let parts = rayon::current_num_threads().max(1);
    let mut bounds = vec![0];
    let mut seen = 0;
    for (b, len) in lengths.iter().enumerate() {
        seen += len;
        if seen * parts >= total * bounds.len() && b + 1 < lengths.len() && bounds.len() < parts {
            bounds.push(b + 1);
        }
    }
    bounds.push(lengths.len());
    let mut result = x.to_vec();
    let outs: Vec<Vec<f32>> = bounds
        .windows(2)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|w| {
            let rows: Vec<usize> = (w[0]..w[1]).flat_map(|b| (0..lengths[b]).map(move |j| b * n + j)).collect();
            let real: Vec<f32> = rows.iter().flat_map(|&p| x[p * hidden..][..hidden].iter().copied()).collect();
            forward_packed(&weights, real, &lengths[w[0]..w[1]], hidden)
        })
        .collect();
    for (w, out) in bounds.windows(2).zip(outs) {
        let rows = (w[0]..w[1]).flat_map(|b| (0..lengths[b]).map(move |j| b * n + j));
        for (i, p) in rows.enumerate() {
            result[p * hidden..][..hidden].copy_from_slice(&out[i * hidden..][..hidden]);
        }
    }
    result
}

/// The layer on packed tokens `real` [Σ lengths, hidden] of consecutive sequences.
fn forward_packed(w: &HostLayer, real: Vec<f32>, lengths: &[usize], hidden: usize) -> Vec<f32> {
    let r = real.len() / hidden.max(1);
    let [q, k, v] = [0, 1, 2].map(|i| w.qkv[i].forward(&real, r));
    let mut context = vec![0.0f32; r * hidden];
    let dh = hidden / w.heads.max(1);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut first = 0;
    for &len in lengths {
        attend(
            [&q, &k, &v],
            first,
            len,
            [hidden, w.heads, dh],
            scale,
            &mut context[first * hidden..(first + len) * hidden],
        );
        first += len;
    }
    let mut attended = w.attention_out.forward(&context, r);
    attended.iter_mut().zip(&real).for_each(|(a, x)| *a += x);
    let attended = layer_norm(&w.attention_norm, attended, hidden);
    let mut inner = w.intermediate.forward(&attended, r);
    gelu(&mut inner);
    let mut out = w.output.forward(&inner, r);
    out.iter_mut().zip(&attended).for_each(|(o, a)| *o += a);
    layer_norm(&w.output_norm, out, hidden)
}

vectorised_fn! {
    /// One sequence's attention (its `len` tokens from packed row `first`), every head, into `out`
    /// [len, hidden].
    fn attend(
        qkv: [&[f32]; 3],
        first: usize,
        len: usize,
        shape: [usize; 3],
        scale: f32,
        out: &mut [f32],
    ) {
        let [hidden, heads, dh] = shape;
        let [q, k, v] = qkv;
        let mut p = vec![0.0f32; len];
        for head in 0..heads {
            // Token j's slice of this head in q, k or v (rows of `hidden`, from packed row `first`).
            let slot = |j: usize| (first + j) * hidden + head * dh;
            let keys: Vec<&[f32]> = (0..len).map(|j| &k[slot(j)..][..dh]).collect();
            let vals: Vec<&[f32]> = (0..len).map(|j| &v[slot(j)..][..dh]).collect();
            for i in 0..len {
                let qi = &q[slot(i)..][..dh];
                p.iter_mut().zip(&keys).for_each(|(p, kj)| *p = dot(qi, kj) * scale);
                let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                p.iter_mut().for_each(|x| *x = exp_nonpositive(*x - max));
                let inverse = 1.0 / sum(&p);
                let o = &mut out[i * hidden + head * dh..][..dh];
                o.iter_mut().for_each(|x| *x = 0.0);
                for (pj, vj) in p.iter().zip(&vals) {
                    let w = pj * inverse;
                    o.iter_mut().zip(vj.iter()).for_each(|(o, v)| *o += w * v);
                }
            }
        }
    }
}

/// Each row normalised to mean 0 and variance 1 (the biased variance, as `var_mean_bias`), then
/// scaled and shifted: `(weight, bias, eps)`.
fn layer_norm((w, b, eps): &(Vec<f32>, Vec<f32>, f32), mut x: Vec<f32>, hidden: usize) -> Vec<f32> {
    x.chunks_mut(hidden.max(1)).for_each(|row| {
        let mean = sum(row) / hidden as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / hidden as f32;
        let inverse = 1.0 / (var + eps).sqrt();
        row.iter_mut().zip(w).zip(b).for_each(|((v, w), b)| *v = (*v - mean) * inverse * w + b);
    });
    x
}

vectorised_fn! {
    /// GELU as burn's `gelu`, x · ½ (1 + erf(x / √2)), with erf from Abramowitz and Stegun 7.1.26
    /// (absolute error ≤ 1.5e-7) over the vectorising exponential: libm's erf, one call per
    /// element, was 15 % of the text path.
    fn gelu(x: &mut [f32]) {
        const P: f32 = 0.327_591_1;
        const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152_1, 1.061_405_4];
        x.iter_mut().for_each(|v| {
            let z = v.abs() * std::f32::consts::FRAC_1_SQRT_2;
            let t = 1.0 / (1.0 + P * z);
            let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
            let erf = 1.0 - poly * exp_nonpositive(-z * z);
            let erf = if *v < 0.0 { -erf } else { erf };
            *v *= 0.5 * (1.0 + erf);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    #[test]
    fn gelu_follows_the_exact_erf() {
        let xs: Vec<f32> = (-800..=800).map(|i| i as f32 / 100.0).collect();
        let mut got = xs.clone();
        gelu(&mut got);
        for (x, g) in xs.iter().zip(&got) {
            let want = x * 0.5 * (1.0 + libm::erf(*x as f64 / std::f64::consts::SQRT_2) as f32);
            assert!((g - want).abs() < 1e-6 * x.abs().max(1.0), "gelu({x}) = {g}, want {want}");
        }
    }

    #[test]
    fn the_host_layer_gives_the_tensor_layers_real_tokens() {
        let device = Device::flex();
        let dense = |out: usize, inp: usize| Dense {
            weight: burn::module::Param::from_tensor(Tensor::random(
                [inp, out],
                Distribution::Normal(0.0, 0.2),
                &device,
            )),
            bias: burn::module::Param::from_tensor(Tensor::random([out], Distribution::Normal(0.0, 0.2), &device)),
        };
        let norm = || Norm {
            weight: burn::module::Param::from_tensor(Tensor::random([16], Distribution::Normal(1.0, 0.1), &device)),
            bias: burn::module::Param::from_tensor(Tensor::random([16], Distribution::Normal(0.0, 0.1), &device)),
            eps: 1e-12,
        };
        let layer = Layer {
            query: dense(16, 16),
            key: dense(16, 16),
            value: dense(16, 16),
            attention_out: dense(16, 16),
            attention_norm: norm(),
            intermediate: dense(64, 16),
            output: dense(16, 64),
            output_norm: norm(),
            heads: 4,
        };
        let (lengths, n) = ([5usize, 2, 3], 5);
        let x = Tensor::<2>::random([15, 16], Distribution::Normal(0.0, 1.0), &device);
        let mask: Vec<f32> = (0..15).map(|i| if i % n < lengths[i / n] { 1.0 } else { 0.0 }).collect();
        let additive = super::super::additive_mask(Tensor::from_data(TensorData::new(mask, [3, n]), &device));
        let want = values(layer.forward(x.clone(), additive, 3));
        let input = values(x);
        let got = forward(&layer, &input, &lengths, n);
        for row in 0..15 {
            let real = row % n < lengths[row / n];
            for c in 0..16 {
                let (g, w, i) = (got[row * 16 + c], want[row * 16 + c], input[row * 16 + c]);
                if real {
                    assert!((g - w).abs() < 1e-4, "row {row}, column {c}: host {g} vs tensors {w}");
                } else {
                    assert_eq!(g, i, "padding row {row} is returned as it came");
                }
            }
        }
    }
}
