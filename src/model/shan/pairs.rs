//! SHAN's three level scores for many image × caption pairs on the CPU in one fused pass per
//! photo: the arithmetic of [`Shan::score_with_attention`](super::Shan::score_with_attention)
//! without its [images, captions, regions, words] intermediates (what the 1K test's 108 s went
//! to on flex, beside the region–word cosines themselves).
//!
//! Per photo, for a group of consecutive captions (up to [`WORD_GROUP`] words): one matrix
//! product gives every word's cosine with the photo's regions; exp(λ(cos − 1)) serves both
//! attentions (cosines of unit rows are ≤ 1); the attended vectors' norms come from Gram
//! matrices; the contexts' region parts are matrix products over the group, their word parts
//! sums over each caption's own words. Padding words are left out instead of masked.

use rayon::prelude::*;

use super::{ImageSide, Shan, TextSide};
use crate::features::host::{dot, exp_nonpositive, matmul, sum, vectorised_fn, word_groups};
use crate::features::values;

/// Above this inverse temperature exp(λ(cos − 1)) could underflow for a whole row where the
/// max-shifted softmax of the tensor path still has a value; callers use the tensor path.
pub const MAX_LAMBDA: f64 = 40.0;

/// Words scored against one photo at a time.
const WORD_GROUP: usize = 2048;

/// From this many words on, the norms of the words' attended vectors come from the photo's Gram
/// matrix (k²·d once, then k² per word); below it from the vectors themselves (k·d per word):
/// with k = 49 and d = 512 the two cost the same at 54 words. A search query is one caption.
const GRAM_FROM_WORDS: usize = 54;

/// Whether `net`'s pairs on `device` are scored by this pass: on the CPU backend, for
/// temperatures it serves.
pub fn serves(net: &Shan, device: &burn::tensor::Device) -> bool {
    *device == burn::tensor::Device::flex() && net.lambda_local <= MAX_LAMBDA && net.lambda_context <= MAX_LAMBDA
}

/// Photos' pair-independent sides, host copies: each photo k regions of width d.
#[derive(Default)]
pub struct HostImages<'a> {
    k: usize,
    d: usize,
    regions: Regions<'a>,
    /// [photos, k] each: the gate terms and the pooling weights.
    gate_self: Vec<f32>,
    gate_cross: Vec<f32>,
    pool: Vec<f32>,
}

/// Where the photos' region fragments are read from.
enum Regions<'a> {
    /// [photos, k, d], unit rows.
    F32(Vec<f32>),
    /// A photo index's half-precision store, [stored photos, k, d], and which of its photos are
    /// scored, in order: each photo is widened inside its own task (a 10,000-photo query would
    /// otherwise widen 1 GB first).
    F16 { store: &'a [half::f16], photos: Vec<usize> },
}

impl Default for Regions<'_> {
    fn default() -> Self {
        Regions::F32(Vec::new())
    }
}

impl<'a> HostImages<'a> {
    /// Host copies of image sides, in order.
    pub fn of_sides(sides: &[ImageSide]) -> Self {
        let mut images = Self::default();
        sides.iter().for_each(|side| images.push(side));
        images
    }

    pub fn push(&mut self, side: &ImageSide) {
        let [_, k, d] = side.regions.dims();
        assert!(self.is_empty() || (k, d) == (self.k, self.d), "every photo has the same regions");
        (self.k, self.d) = (k, d);
        let Regions::F32(regions) = &mut self.regions else { panic!("pushing onto an index's photos") };
        regions.extend(values(side.regions.clone()));
        self.gate_self.extend(values(side.gate_self.clone()));
        self.gate_cross.extend(values(side.gate_cross.clone()));
        self.pool.extend(values(side.pool.clone()));
    }

    /// `photos` of a half-precision store of fragments ([stored photos, k, d], unit rows), with
    /// their [photos, k] pooling weights and gate terms (the order `ImageSide::from_parts` takes).
    pub fn from_store(
        [k, d]: [usize; 2],
        store: &'a [half::f16],
        photos: Vec<usize>,
        [pool, gate_self, gate_cross]: [Vec<f32>; 3],
    ) -> Self {
        assert!(photos.iter().all(|&p| (p + 1) * k * d <= store.len()), "photos inside the store");
        assert!([&pool, &gate_self, &gate_cross].iter().all(|x| x.len() == photos.len() * k), "[photos, k] parts");
        HostImages { k, d, regions: Regions::F16 { store, photos }, gate_self, gate_cross, pool }
    }

    /// Photo i's fragments [k, d] as f32.
    fn regions(&self, i: usize) -> std::borrow::Cow<'_, [f32]> {
        let per = self.k * self.d;
        match &self.regions {
            Regions::F32(v) => std::borrow::Cow::Borrowed(&v[i * per..][..per]),
            Regions::F16 { store, photos } => {
                let mut out = vec![0.0f32; per];
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(&store[photos[i] * per..][..per], &mut out);
                std::borrow::Cow::Owned(out)
            }
        }
    }

    pub fn len(&self) -> usize {
        match &self.regions {
            Regions::F32(v) => v.len() / (self.k * self.d).max(1),
            Regions::F16 { photos, .. } => photos.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Captions' pair-independent sides, host copies, padding words left out.
#[derive(Default)]
pub struct HostCaptions {
    d: usize,
    /// [words, d], unit rows, caption after caption.
    words: Vec<f32>,
    /// Caption c holds words `starts[c]..starts[c + 1]`.
    starts: Vec<usize>,
    /// [words] each.
    gate_self: Vec<f32>,
    gate_cross: Vec<f32>,
    pool: Vec<f32>,
}

impl HostCaptions {
    /// Host copies of one batch of captions.
    pub fn of(side: &TextSide) -> Self {
        let mut captions = Self::default();
        captions.push(side);
        captions
    }

    pub fn push(&mut self, side: &TextSide) {
        let [b, n, d] = side.words.dims();
        assert!(self.words.is_empty() || d == self.d, "every caption has the same width");
        self.d = d;
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        let (words, mask) = (values(side.words.clone()), values(side.mask.clone()));
        let (gs, gc, pool) =
            (values(side.gate_self.clone()), values(side.gate_cross.clone()), values(side.pool.clone()));
        for c in 0..b {
            for j in (0..n).filter(|&j| mask[c * n + j] > 0.5) {
                let at = c * n + j;
                self.words.extend_from_slice(&words[at * d..][..d]);
                self.gate_self.push(gs[at]);
                self.gate_cross.push(gc[at]);
                self.pool.push(pool[at]);
            }
            self.starts.push(self.gate_self.len());
        }
    }

    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Consecutive runs of whole captions of at most [`WORD_GROUP`] words (a longer one alone).
    fn groups(&self) -> Vec<std::ops::Range<usize>> {
        word_groups(&self.starts, WORD_GROUP)
    }

    /// Each caption's Gram matrix [n, n], caption after caption, and where each starts.
    fn grams(&self) -> (Vec<f32>, Vec<usize>) {
        let mut starts = vec![0];
        for c in 0..self.len() {
            let n = self.starts[c + 1] - self.starts[c];
            starts.push(starts[c] + n * n);
        }
        let mut out = vec![0.0f32; starts[self.len()]];
        for c in 0..self.len() {
            let (n, d) = (self.starts[c + 1] - self.starts[c], self.d);
            let t = &self.words[self.starts[c] * d..self.starts[c + 1] * d];
            matmul(&mut out[starts[c]..starts[c + 1]], [n, n, d], (t, d, 1), (t, 1, d), false);
        }
        (out, starts)
    }
}

/// The final score of every photo × caption, row-major [photos, captions]: the levels weighed by
/// the network's level weights (as `LevelScores::total`).
pub fn totals(net: &Shan, images: &HostImages, captions: &HostCaptions) -> Vec<f32> {
    let [l2l, g2l, g2g] = levels(net, images, captions);
    let w = net.weights.map(|x| x as f32);
    (0..l2l.len()).map(|i| w[0] * l2l[i] + w[1] * g2l[i] + w[2] * g2g[i]).collect()
}

/// The three levels for every photo × caption, row-major [photos, captions]: L2L, G2L, G2G.
pub fn levels(net: &Shan, images: &HostImages, captions: &HostCaptions) -> [Vec<f32>; 3] {
    assert!(net.lambda_local <= MAX_LAMBDA && net.lambda_context <= MAX_LAMBDA, "temperatures above the fused path's");
    assert!(images.is_empty() || captions.is_empty() || images.d == captions.d, "the two sides' widths");
    let (n_img, n_cap) = (images.len(), captions.len());
    let grams = captions.grams();
    let groups = captions.groups();
    let lambdas = [net.lambda_local as f32, net.lambda_context as f32];
    let mut rows = vec![0.0f32; n_img * 3 * n_cap];
    if n_cap > 0 {
        rows.par_chunks_mut(3 * n_cap).enumerate().for_each(|(i, row)| {
            score_photo(images, i, captions, &grams, &groups, lambdas, row);
        });
    }
    let level = |l: usize| rows.chunks(3 * n_cap.max(1)).flat_map(|r| r[l * n_cap..(l + 1) * n_cap].to_vec()).collect();
    [level(0), level(1), level(2)]
}

/// Scratch for one photo, reused from group to group.
#[derive(Default)]
struct Scratch {
    /// [words, k]: cosines, exp(λ(cos − 1)), the words' attention over regions (β), β · G.
    cos: Vec<f32>,
    e: Vec<f32>,
    beta: Vec<f32>,
    through: Vec<f32>,
    /// [words]: R_t, and each word's coefficients in the caption context (h·u, (1 − h)·u).
    r_t: Vec<f32>,
    p_t: Vec<f32>,
    q_t_coef: Vec<f32>,
    /// [n, k] for one caption: the regions' attention over its words (α).
    alpha: Vec<f32>,
    /// [captions, k]: the region coefficients of the image context (g·w) and caption context.
    p_v: Vec<f32>,
    q_t: Vec<f32>,
    /// [captions, d]: the contexts' word parts, then the whole contexts and the attended vectors.
    v_c: Vec<f32>,
    t_c: Vec<f32>,
    region_part: Vec<f32>,
    t_star: Vec<f32>,
    v_star: Vec<f32>,
    /// [captions, k]: the caption context's attention over regions (δ).
    delta: Vec<f32>,
}

vectorised_fn! {
    /// Photo `i` against every caption: L2L, G2L and G2G per caption into `row` ([3, captions]).
    fn score_photo(
        images: &HostImages,
        i: usize,
        captions: &HostCaptions,
        grams: &(Vec<f32>, Vec<usize>),
        groups: &[std::ops::Range<usize>],
        lambdas: [f32; 2],
        row: &mut [f32],
    ) {
        let (k, d, n_cap) = (images.k, images.d, captions.len());
        let [lambda, lambda_c] = lambdas;
        let v = &*images.regions(i);
        let (gs_v, gc_v, pool_v) =
            (&images.gate_self[i * k..][..k], &images.gate_cross[i * k..][..k], &images.pool[i * k..][..k]);
        let use_gram = captions.starts[n_cap] >= GRAM_FROM_WORDS;
        let mut gram = vec![0.0f32; if use_gram { k * k } else { 0 }];
        if use_gram {
            matmul(&mut gram, [k, k, d], (v, d, 1), (v, 1, d), false);
        }
        let mut s = Scratch::default();
        let [mut column, mut num, mut quad, mut hb, mut qv_r, mut cross_v] = [(); 6].map(|_| vec![0.0f32; k]);
        let (mut q_v, mut gamma, mut left, mut right) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for group in groups {
            let first = captions.starts[group.start];
            let w_count = captions.starts[group.end] - first;
            let n_group = group.len();
            let t = &captions.words[first * d..(first + w_count) * d];
            // A = T Vᵀ: every word's cosine with every region.
            s.cos.resize(w_count * k, 0.0);
            matmul(&mut s.cos, [w_count, k, d], (t, d, 1), (v, 1, d), false);
            s.e.resize(w_count * k, 0.0);
            s.e.iter_mut().zip(&s.cos).for_each(|(e, &a)| *e = exp_nonpositive(lambda * (a - 1.0)));
            // β: each word's attention over the regions; R_t(j) = Σ β A / √(βᵀ G β).
            s.beta.clear();
            s.beta.extend_from_slice(&s.e);
            for b in s.beta.chunks_mut(k) {
                let inverse = 1.0 / sum(b);
                b.iter_mut().for_each(|x| *x *= inverse);
            }
            // ‖v*_j‖² = β_jᵀ G β_j, or the attended vector formed and its squared length.
            let width = if use_gram { k } else { d };
            s.through.resize(w_count * width, 0.0);
            if use_gram {
                matmul(&mut s.through, [w_count, k, k], (&s.beta, k, 1), (&gram, k, 1), false);
            } else {
                matmul(&mut s.through, [w_count, d, k], (&s.beta, k, 1), (v, d, 1), false);
            }
            s.r_t.clear();
            s.p_t.clear();
            s.q_t_coef.clear();
            for w in 0..w_count {
                let (b, a) = (&s.beta[w * k..][..k], &s.cos[w * k..][..k]);
                let through = &s.through[w * width..][..width];
                let norm_sq = if use_gram { dot(b, through) } else { dot(through, through) };
                s.r_t.push(dot(b, a) / norm_sq.max(1e-12).sqrt());
                // The word's gate h = σ(its own term + Σ_i β_i · region i's cross term).
                let h = sigmoid(captions.gate_self[first + w] + dot(b, gc_v));
                let u = captions.pool[first + w];
                s.p_t.push(h * u);
                s.q_t_coef.push((1.0 - h) * u);
            }
            s.p_v.resize(n_group * k, 0.0);
            s.q_t.resize(n_group * k, 0.0);
            s.v_c.resize(n_group * d, 0.0);
            s.t_c.resize(n_group * d, 0.0);
            s.v_c.iter_mut().for_each(|x| *x = 0.0);
            s.t_c.iter_mut().for_each(|x| *x = 0.0);
            for (slot, c) in group.clone().enumerate() {
                let rows = captions.starts[c] - first..captions.starts[c + 1] - first;
                let n = rows.len();
                let out_l2l = &mut row[c];
                if n == 0 {
                    *out_l2l = 0.0;
                    continue;
                }
                let (e, a) = (&s.e[rows.start * k..rows.end * k], &s.cos[rows.start * k..rows.end * k]);
                // α: each region's attention over this caption's words (columns of e normalised).
                column.iter_mut().for_each(|x| *x = 0.0);
                e.chunks(k).for_each(|r| column.iter_mut().zip(r).for_each(|(c, x)| *c += x));
                column.iter_mut().for_each(|x| *x = 1.0 / *x);
                s.alpha.resize(n * k, 0.0);
                for (al, r) in s.alpha.chunks_mut(k).zip(e.chunks(k)) {
                    al.iter_mut().zip(r).zip(&column).for_each(|((al, x), c)| *al = x * c);
                }
                // R_v(i) = Σ_j α A / √(αᵀ H α), H the caption's Gram matrix.
                let h_gram = &grams.0[grams.1[c]..grams.1[c + 1]];
                num.iter_mut().for_each(|x| *x = 0.0);
                quad.iter_mut().for_each(|x| *x = 0.0);
                // cross_v(i) = Σ_j α_ij · word j's cross term.
                cross_v.iter_mut().for_each(|x| *x = 0.0);
                for w in 0..n {
                    let al = &s.alpha[w * k..][..k];
                    num.iter_mut().zip(al).zip(&a[w * k..][..k]).for_each(|((s, x), y)| *s += x * y);
                    let gcw = captions.gate_cross[first + rows.start + w];
                    cross_v.iter_mut().zip(al).for_each(|(c, x)| *c += x * gcw);
                    hb.iter_mut().for_each(|x| *x = 0.0);
                    for u in 0..n {
                        let g = h_gram[w * n + u];
                        hb.iter_mut().zip(&s.alpha[u * k..][..k]).for_each(|(t, x)| *t += g * x);
                    }
                    quad.iter_mut().zip(al).zip(&hb).for_each(|((q, x), t)| *q += x * t);
                }
                let r_v: f32 = num.iter().zip(&quad).map(|(n, q)| n / q.max(1e-12).sqrt()).sum::<f32>() / k as f32;
                let r_t: f32 = s.r_t[rows.clone()].iter().sum::<f32>() / n as f32;
                *out_l2l = r_v + r_t;
                // Image context: region i weighs g_i·w_i, word j Σ_i (1 − g_i)·w_i·α_ij.
                let p_v = &mut s.p_v[slot * k..][..k];
                for r in 0..k {
                    let g = sigmoid(gs_v[r] + cross_v[r]);
                    p_v[r] = g * pool_v[r];
                    qv_r[r] = (1.0 - g) * pool_v[r];
                }
                q_v.clear();
                q_v.extend((0..n).map(|w| dot(&qv_r, &s.alpha[w * k..][..k])));
                // Caption context: region i weighs Σ_j (1 − h_j)·u_j·β_ij, word j h_j·u_j.
                let q_t = &mut s.q_t[slot * k..][..k];
                q_t.iter_mut().for_each(|x| *x = 0.0);
                for w in rows.clone() {
                    let coef = s.q_t_coef[w];
                    q_t.iter_mut().zip(&s.beta[w * k..][..k]).for_each(|(q, b)| *q += coef * b);
                }
                let (v_c, t_c) = (&mut s.v_c[slot * d..][..d], &mut s.t_c[slot * d..][..d]);
                for (j, w) in rows.clone().enumerate() {
                    let tw = &t[w * d..][..d];
                    let (a_v, a_t) = (q_v[j], s.p_t[w]);
                    v_c.iter_mut().zip(tw).for_each(|(x, y)| *x += a_v * y);
                    t_c.iter_mut().zip(tw).for_each(|(x, y)| *x += a_t * y);
                }
            }
            // The contexts' region parts, for the whole group at once.
            s.region_part.resize(n_group * d, 0.0);
            matmul(&mut s.region_part, [n_group, d, k], (&s.p_v, k, 1), (v, d, 1), false);
            s.v_c.iter_mut().zip(&s.region_part).for_each(|(x, y)| *x += y);
            matmul(&mut s.region_part, [n_group, d, k], (&s.q_t, k, 1), (v, d, 1), false);
            s.t_c.iter_mut().zip(&s.region_part).for_each(|(x, y)| *x += y);
            // The caption context attends the regions: δ = softmax(λ_c cos(t_c, v_i)), v* = δ V.
            s.delta.resize(n_group * k, 0.0);
            s.region_part.clear();
            for t_c in s.t_c.chunks(d) {
                let norm = dot(t_c, t_c).sqrt().max(1e-8);
                s.region_part.extend(t_c.iter().map(|x| x / norm));
            }
            matmul(&mut s.delta, [n_group, k, d], (&s.region_part, d, 1), (v, 1, d), false);
            for dl in s.delta.chunks_mut(k) {
                dl.iter_mut().for_each(|x| *x = exp_nonpositive(lambda_c * (*x - 1.0)));
                let inverse = 1.0 / sum(dl);
                dl.iter_mut().for_each(|x| *x *= inverse);
            }
            s.v_star.resize(n_group * d, 0.0);
            matmul(&mut s.v_star, [n_group, d, k], (&s.delta, k, 1), (v, d, 1), false);
            // The image context attends the caption's words: γ = softmax(λ_c cos(v_c, t_j)), t* = γ T.
            s.t_star.resize(n_group * d, 0.0);
            s.t_star.iter_mut().for_each(|x| *x = 0.0);
            for (slot, c) in group.clone().enumerate() {
                let rows = captions.starts[c] - first..captions.starts[c + 1] - first;
                if rows.is_empty() {
                    row[n_cap + c] = 0.0;
                    row[2 * n_cap + c] = 0.0;
                    continue;
                }
                let v_c = &s.v_c[slot * d..][..d];
                let v_norm = dot(v_c, v_c).sqrt().max(1e-8);
                gamma.clear();
                gamma.extend(rows.clone().map(|w| exp_nonpositive(lambda_c * (dot(v_c, &t[w * d..][..d]) / v_norm - 1.0))));
                let inverse = 1.0 / sum(&gamma);
                let t_star = &mut s.t_star[slot * d..][..d];
                for (g, w) in gamma.iter().zip(rows.clone()) {
                    let weight = g * inverse;
                    t_star.iter_mut().zip(&t[w * d..][..d]).for_each(|(x, y)| *x += weight * y);
                }
                let (t_c, v_star) = (&s.t_c[slot * d..][..d], &s.v_star[slot * d..][..d]);
                row[n_cap + c] = cosine(v_c, t_star) + cosine(t_c, v_star);
                left.clear();
                left.extend(v_c.iter().zip(t_star.iter()).map(|(x, y)| x + y));
                right.clear();
                right.extend(t_c.iter().zip(v_star).map(|(x, y)| x + y));
                row[2 * n_cap + c] = cosine(&left, &right);
            }
        }
    }
}

/// 1 / (1 + e^−x) through the vectorising exponential (of −|x|, so it never overflows).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpositive(-x.abs());
    if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) }
}

/// As the tensor path's `cosine`: a·b / √max(‖a‖²‖b‖², 1e-16).
#[inline(always)]
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b) / (dot(a, a) * dot(b, b)).max(1e-16).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::shan::ShanConfig;
    use burn::module::Module;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    /// The fused levels against the tensor path's for `captions` random captions of 2 to 6
    /// words (padded to 6) and three photos of 7 regions.
    fn compare_with_tensors(captions: usize) {
        let device = Device::flex();
        let config = ShanConfig::new().with_image_dim(12).with_text_dim(10).with_joint_dim(24).with_pool_hidden(8);
        let net = config.init(&device).valid();
        let img = net.encode_images(Tensor::random([3, 7, 12], Distribution::Normal(0.0, 1.0), &device));
        let mask: Vec<f32> = (0..captions * 6).map(|i| if i % 6 < 2 + (i / 6) % 5 { 1.0 } else { 0.0 }).collect();
        let txt = net.encode_texts(
            Tensor::random([captions, 6, 10], Distribution::Normal(0.0, 1.0), &device),
            Tensor::from_data(TensorData::new(mask, [captions, 6]), &device),
        );
        let want = net.score(&img, &txt);
        let got = levels(&net, &HostImages::of_sides(&[img]), &HostCaptions::of(&txt));
        for ((name, got), want) in ["l2l", "g2l", "g2g"].iter().zip(got).zip([want.l2l, want.g2l, want.g2g]) {
            let want = values(want);
            assert_eq!(got.len(), 3 * captions, "{name}");
            for (p, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-5, "{name}, pair {p}: fused {g} vs tensors {w}");
            }
        }
    }

    #[test]
    fn the_fused_pass_gives_the_tensor_paths_three_levels_with_padded_captions() {
        compare_with_tensors(4);
    }

    #[test]
    fn photos_read_from_a_half_precision_store_score_as_their_sides_do() {
        let device = Device::flex();
        let config = ShanConfig::new().with_image_dim(12).with_text_dim(10).with_joint_dim(24).with_pool_hidden(8);
        let net = config.init(&device).valid();
        let img = net.encode_images(Tensor::random([3, 7, 12], Distribution::Normal(0.0, 1.0), &device));
        // The store holds the fragments in f16, as a photo index does; the sides are rebuilt
        // from the same rounded values so that both paths see the same photos.
        let store: Vec<half::f16> = values(img.regions.clone()).into_iter().map(half::f16::from_f32).collect();
        let rounded: Vec<f32> = store.iter().map(|x| x.to_f32()).collect();
        let side = ImageSide::from_parts(
            Tensor::from_data(TensorData::new(rounded, [3, 7, 24]), &device),
            img.pool.clone(),
            img.gate_self.clone(),
            img.gate_cross.clone(),
        );
        let txt = net.encode_texts(
            Tensor::random([2, 4, 10], Distribution::Normal(0.0, 1.0), &device),
            Tensor::ones([2, 4], &device),
        );
        // Photos 2 and 0, in that order.
        let order = [2usize, 0];
        let part = |t: &Tensor<2>| {
            let v = values(t.clone());
            order.iter().flat_map(|&p| v[p * 7..(p + 1) * 7].to_vec()).collect::<Vec<f32>>()
        };
        let images = HostImages::from_store(
            [7, 24],
            &store,
            order.to_vec(),
            [part(&side.pool), part(&side.gate_self), part(&side.gate_cross)],
        );
        let got = totals(&net, &images, &HostCaptions::of(&txt));
        let want = values(net.score(&side, &txt).total(net.weights));
        for (row, &p) in order.iter().enumerate() {
            for c in 0..2 {
                let (g, w) = (got[row * 2 + c], want[p * 2 + c]);
                assert!((g - w).abs() < 1e-5, "photo {p}, caption {c}: fused {g} vs tensors {w}");
            }
        }
    }

    #[test]
    fn the_gram_route_for_many_words_gives_the_same_levels() {
        // At least 2 words each: over GRAM_FROM_WORDS.
        const { assert!(30 * 2 > GRAM_FROM_WORDS) };
        compare_with_tensors(30);
    }

    #[test]
    fn captions_split_over_several_word_groups_score_as_in_one() {
        // About 3,000 words: two groups, and a caption's scores must not depend on its group.
        compare_with_tensors(750);
    }
}
