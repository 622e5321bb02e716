//! SHAN's levels on tiny inputs, against a slow per-pair loop that follows MODELS.md literally
//! (attended vectors materialised, vector gates' linear maps applied to them, padding absent).

use super::*;
use burn::tensor::TensorData;

use crate::features::values;

fn rows(t: Tensor<3>) -> Vec<Vec<Vec<f32>>> {
    let [a, b, c] = t.dims();
    let v = values(t);
    (0..a).map(|i| (0..b).map(|j| v[(i * b + j) * c..(i * b + j + 1) * c].to_vec()).collect()).collect()
}

fn mat(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [a, b] = t.dims();
    let v = values(t);
    (0..a).map(|i| v[i * b..(i + 1) * b].to_vec()).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

fn softmax_vec(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn weighted(w: &[f32], x: &[Vec<f32>]) -> Vec<f32> {
    let mut out = vec![0.0; x[0].len()];
    for (wi, xi) in w.iter().zip(x) {
        for (o, v) in out.iter_mut().zip(xi) {
            *o += wi * v;
        }
    }
    out
}

fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn sigmoid1(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

struct Reference {
    l2l: f32,
    g2l: f32,
    g2g: f32,
    /// β[j][i]: word j's attention over regions.
    beta: Vec<Vec<f32>>,
}

/// One pair, per the spec. `v`: regions; `t`: the caption's real words only.
#[allow(clippy::too_many_arguments)]
fn reference(
    model: &Shan,
    v: &[Vec<f32>],
    t: &[Vec<f32>],
    gs_v: &[f32],
    pool_v: &[f32],
    gs_t: &[f32],
    pool_t: &[f32],
) -> Reference {
    let (lam, lam_c) = (model.lambda_local as f32, model.lambda_context as f32);
    let wc_word = values(model.word_gate_cross.weight.val()); // applied to t*_i in a region's gate
    let wc_region = values(model.region_gate_cross.weight.val()); // applied to v*_j in a word's gate
    let a: Vec<Vec<f32>> = v.iter().map(|vi| t.iter().map(|tj| dot(vi, tj)).collect()).collect();
    let alpha: Vec<Vec<f32>> =
        a.iter().map(|row| softmax_vec(&row.iter().map(|x| lam * x).collect::<Vec<_>>())).collect();
    let beta: Vec<Vec<f32>> =
        (0..t.len()).map(|j| softmax_vec(&a.iter().map(|row| lam * row[j]).collect::<Vec<_>>())).collect();
    let t_star: Vec<Vec<f32>> = alpha.iter().map(|w| weighted(w, t)).collect();
    let v_star: Vec<Vec<f32>> = beta.iter().map(|w| weighted(w, v)).collect();
    let r_v: f32 = v.iter().zip(&t_star).map(|(x, y)| cos(x, y)).sum::<f32>() / v.len() as f32;
    let r_t: f32 = t.iter().zip(&v_star).map(|(x, y)| cos(x, y)).sum::<f32>() / t.len() as f32;
    // Gated fusion with vector inputs, then self-attention pooling.
    let fused_v: Vec<Vec<f32>> = (0..v.len())
        .map(|i| {
            let g = sigmoid1(gs_v[i] + dot(&wc_word, &t_star[i]));
            v[i].iter().zip(&t_star[i]).map(|(x, y)| g * x + (1.0 - g) * y).collect()
        })
        .collect();
    let fused_t: Vec<Vec<f32>> = (0..t.len())
        .map(|j| {
            let h = sigmoid1(gs_t[j] + dot(&wc_region, &v_star[j]));
            t[j].iter().zip(&v_star[j]).map(|(x, y)| h * x + (1.0 - h) * y).collect()
        })
        .collect();
    let v_c = weighted(pool_v, &fused_v);
    let t_c = weighted(&pool_t[..t.len()], &fused_t);
    let gamma = softmax_vec(&t.iter().map(|tj| lam_c * cos(&v_c, tj)).collect::<Vec<_>>());
    let delta = softmax_vec(&v.iter().map(|vi| lam_c * cos(&t_c, vi)).collect::<Vec<_>>());
    let tc_star = weighted(&gamma, t);
    let vc_star = weighted(&delta, v);
    Reference {
        l2l: r_v + r_t,
        g2l: cos(&v_c, &tc_star) + cos(&t_c, &vc_star),
        g2g: cos(&add(&v_c, &tc_star), &add(&t_c, &vc_star)),
        beta,
    }
}

fn random(shape: [usize; 3], seed: u64, device: &Device) -> Tensor<3> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let v: Vec<f32> = (0..shape.iter().product()).map(|_| rng.f32() * 2.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn tiny() -> ShanConfig {
    ShanConfig::new()
        .with_image_dim(6)
        .with_text_dim(5)
        .with_joint_dim(8)
        .with_pool_hidden(4)
        .with_lambda_local(4.0)
        .with_lambda_context(3.0)
}

/// 3 images × 4 regions; 4 captions of 3, 1, 2 and 3 words (padded to 3).
fn batch(model: &Shan, device: &Device) -> (ImageSide, TextSide, Vec<usize>) {
    let lengths = vec![3, 1, 2, 3];
    let mask: Vec<f32> = lengths.iter().flat_map(|&l| (0..3).map(move |j| if j < l { 1.0 } else { 0.0 })).collect();
    let img = model.encode_images(random([3, 4, 6], 1, device));
    let txt =
        model.encode_texts(random([4, 3, 5], 2, device), Tensor::from_data(TensorData::new(mask, [4, 3]), device));
    (img, txt, lengths)
}

#[test]
fn batched_scores_equal_the_per_pair_reference() {
    let device = Device::flex();
    let model = tiny().init(&device);
    let (img, txt, lengths) = batch(&model, &device);
    let (scores, attention) = model.score_with_attention(&img, &txt);
    let (l2l, g2l, g2g) = (mat(scores.l2l), mat(scores.g2l), mat(scores.g2g));
    let beta = values(attention.beta); // [3, 4, 4 regions, 3 words]
    let (v, t) = (rows(img.regions.clone()), rows(txt.words.clone()));
    let (gs_v, pool_v) = (mat(img.gate_self.clone()), mat(img.pool.clone()));
    let (gs_t, pool_t) = (mat(txt.gate_self.clone()), mat(txt.pool.clone()));
    for b in 0..3 {
        for (c, &len) in lengths.iter().enumerate() {
            let r = reference(&model, &v[b], &t[c][..len], &gs_v[b], &pool_v[b], &gs_t[c], &pool_t[c]);
            for (got, want, level) in [(l2l[b][c], r.l2l, "L2L"), (g2l[b][c], r.g2l, "G2L"), (g2g[b][c], r.g2g, "G2G")]
            {
                assert!(
                    (got - want).abs() < 1e-4,
                    "{level} of image {b}, caption {c}: batched {got} vs reference {want}"
                );
            }
            for j in 0..len {
                for i in 0..4 {
                    let got = beta[((b * 4 + c) * 4 + i) * 3 + j];
                    assert!((got - r.beta[j][i]).abs() < 1e-5, "β[{b},{c},{i},{j}] {got} vs {}", r.beta[j][i]);
                }
            }
        }
    }
}

#[test]
fn attention_and_pooling_weights_are_distributions_and_padding_gets_none() {
    let device = Device::flex();
    let model = tiny().init(&device);
    let (img, txt, lengths) = batch(&model, &device);
    let (_, attention) = model.score_with_attention(&img, &txt);
    // Every word's attention over the 4 regions sums to 1.
    let sums = values(attention.beta.sum_dim(2));
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    for (c, row) in mat(txt.pool.clone()).iter().enumerate() {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(row[lengths[c]..].iter().all(|&w| w < 1e-6), "caption {c} pools padding: {row:?}");
    }
    for row in mat(img.pool.clone()) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn padding_does_not_change_a_captions_scores() {
    let device = Device::flex();
    let model = tiny().init(&device);
    let (img, txt, _) = batch(&model, &device);
    let padded = model.score(&img, &txt);
    // Caption 1 (one word) alone, unpadded.
    let alone_words = random([4, 3, 5], 2, &device).slice([1..2, 0..1]);
    let alone = model.score(&img, &model.encode_texts(alone_words, Tensor::ones([1, 1], &device)));
    for (p, a) in [(padded.l2l, alone.l2l), (padded.g2l, alone.g2l), (padded.g2g, alone.g2g)] {
        let p = mat(p);
        let a = mat(a);
        for b in 0..3 {
            assert!((p[b][1] - a[b][0]).abs() < 1e-5, "padded {} vs alone {}", p[b][1], a[b][0]);
        }
    }
}

#[test]
fn a_caption_made_of_the_images_regions_scores_highest() {
    let device = Device::flex();
    let config = ShanConfig::new()
        .with_image_dim(8)
        .with_text_dim(8)
        .with_joint_dim(8)
        .with_pool_hidden(4)
        .with_lambda_local(20.0);
    let mut model = config.init(&device);
    // The same projection on both sides, so a word equal to a region lands on the same point.
    model.word_proj = model.region_proj.clone();
    let regions = random([1, 5, 8], 3, &device);
    let img = model.encode_images(regions.clone());
    let other = random([3, 5, 8], 4, &device);
    let words = Tensor::cat(vec![regions, other], 0);
    let txt = model.encode_texts(words, Tensor::ones([4, 5], &device));
    let scores = model.score(&img, &txt);
    for (name, s) in [("L2L", scores.l2l.clone()), ("total", scores.total(model.weights))] {
        let s = values(s);
        assert!(
            s[1..].iter().all(|&x| x < s[0]),
            "{name}: the image's own regions as words {} vs others {:?}",
            s[0],
            &s[1..]
        );
    }
    assert!(values(scores.l2l)[0] > 1.9, "near-identical fragments align almost perfectly");
}
