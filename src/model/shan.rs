//! SHAN, the step-wise hierarchical alignment network (MODELS.md), written so that every per-pair
//! operation is an elementwise op or an attention-weighted sum ("What SHAN costs"):
//!
//! - fragments are projected and normalised once per image / caption ([`Shan::encode_images`],
//!   [`Shan::encode_texts`]); a batch of images × captions is then scored by [`Shan::score`];
//! - fragment level (L2L): region↔word cosine affinities A, attention both ways at inverse
//!   temperature λ; R_v(i) = cos(v_i, t*_i) and R_t(j) = cos(t_j, v*_j) are computed without the
//!   attended vectors (numerator Σ α A, norm² αᵀ·Gram·α);
//! - context level (G2L): the gated fusion uses a *scalar* gate per fragment,
//!   g_i = σ(w_sᵀv_i + w_cᵀt*_i + b) — the linear map distributes over the attention sum, so
//!   w_cᵀt*_i = Σ_j α_ij (w_cᵀt_j) — and the self-attention pooling weights come from the
//!   pair-independent fragments (SGRAF's VisualSA/TextSA), so the pooled fused context
//!   v_c = Σ_i w_i g_i v_i + Σ_j (Σ_i w_i (1−g_i) α_ij) t_j is two small matrix products per pair;
//!   each context then attends the other modality's fragments (λ_c), S_G2L = cos(v_c, t*_c) +
//!   cos(t_c, v*_c);
//! - global level (G2G): S_G2G = cos(v_c + t*_c, t_c + v*_c).
//!
//! The word→region attention β (softmax over regions for each word) is the heatmap the app shows.
//! Besides the pair scores, every image and caption gets a pair-independent embedding (the
//! self-attention pooled fragments before fusion): the first stage of two-stage search.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor};

pub mod pairs;

#[derive(Config, Debug)]
pub struct ShanConfig {
    #[config(default = 1280)]
    pub image_dim: usize,
    #[config(default = 384)]
    pub text_dim: usize,
    /// Joint dimension of the fragments (MODELS.md: 512–1024; 512 halves the per-pair cost).
    #[config(default = 512)]
    pub joint_dim: usize,
    /// Hidden width of the self-attention pooling.
    #[config(default = 256)]
    pub pool_hidden: usize,
    /// Inverse temperature of the fragment attention (SCAN's Flickr λ for t→i).
    #[config(default = 9.0)]
    pub lambda_local: f64,
    /// Inverse temperature of the global contexts' attention over fragments.
    #[config(default = 9.0)]
    pub lambda_context: f64,
    /// Weights of L2L, G2L and G2G in the final score.
    #[config(default = 1.0)]
    pub weight_l2l: f64,
    #[config(default = 1.0)]
    pub weight_g2l: f64,
    #[config(default = 1.0)]
    pub weight_g2g: f64,
    /// InfoNCE temperature at the start (one learned temperature per trained score).
    #[config(default = 0.05)]
    pub init_temperature: f64,
}

/// SGRAF-style self-attention pooling weights: w_i = softmax_i(uᵀ(tanh(W_l x_i) ⊙ tanh(W_g x̄))),
/// with x̄ the masked mean of the fragments.
#[derive(Module, Debug)]
pub struct AttentionPool {
    pub local: Linear,
    pub global: Linear,
    pub score: Linear,
}

impl AttentionPool {
    fn new(dim: usize, hidden: usize, device: &Device) -> Self {
        Self {
            local: LinearConfig::new(dim, hidden).init(device),
            global: LinearConfig::new(dim, hidden).init(device),
            score: LinearConfig::new(hidden, 1).init(device),
        }
    }

    /// `x`: [B, n, d]; `mask`: [B, n] (1 = fragment, 0 = padding) → weights [B, n], 0 on padding.
    pub fn weights(&self, x: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
        let [b, n, _] = x.dims();
        let m = mask.clone().reshape([b, n, 1]);
        let mean = (x.clone() * m.clone()).sum_dim(1) / m.sum_dim(1).clamp_min(1.0); // [B, 1, d]
        let h = self.local.forward(x).tanh() * self.global.forward(mean).tanh();
        let s = self.score.forward(h).reshape([b, n]);
        softmax(s + padding_bias(mask), 1)
    }
}

/// 0 where the mask is 1, a large negative number where it is 0 (added before a softmax).
fn padding_bias<const D: usize>(mask: Tensor<D>) -> Tensor<D> {
    (mask - 1.0) * 1e4
}

/// Unit L2 norm along the last axis.
pub fn normalize_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = x.clone().powi_scalar(2).sum_dim(D - 1).sqrt().clamp_min(1e-8);
    x / norm
}

/// Cosine along the last axis of two [.., d] tensors: [..] with the last axis kept (size 1).
fn cosine<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let dot = (a.clone() * b.clone()).sum_dim(D - 1);
    let na = a.powi_scalar(2).sum_dim(D - 1);
    let nb = b.powi_scalar(2).sum_dim(D - 1);
    dot / (na * nb).clamp_min(1e-16).sqrt()
}

#[derive(Module, Debug)]
pub struct Shan {
    pub region_proj: Linear,
    pub word_proj: Linear,
    /// w_sᵀv_i + b of a region's gate, and w_cᵀt_j of a word entering a region's gate.
    pub region_gate: Linear,
    pub word_gate_cross: Linear,
    /// The same for words' gates.
    pub word_gate: Linear,
    pub region_gate_cross: Linear,
    pub region_pool: AttentionPool,
    pub word_pool: AttentionPool,
    /// log τ of the InfoNCE terms: final score, L2L, G2L, G2G, pair-independent embeddings.
    pub log_temperature: Param<Tensor<1>>,
    pub lambda_local: f64,
    pub lambda_context: f64,
    pub weights: [f64; 3],
}

/// The pair-independent part of an image batch.
#[derive(Clone, Debug)]
pub struct ImageSide {
    /// [B, k, d], unit rows.
    pub regions: Tensor<3>,
    /// [B, k, k]: regions · regionsᵀ.
    pub gram: Tensor<3>,
    /// [B, k]: a region's own gate term, and its term in the words' gates.
    pub gate_self: Tensor<2>,
    pub gate_cross: Tensor<2>,
    /// [B, k]: self-attention pooling weights.
    pub pool: Tensor<2>,
    /// [B, d]: the pooled embedding (unit norm), for the first stage of search.
    pub embedding: Tensor<2>,
}

impl ImageSide {
    /// The side from stored fragments and per-region terms (what a photo index holds); the Gram
    /// matrix and the pooled embedding are derived.
    pub fn from_parts(regions: Tensor<3>, pool: Tensor<2>, gate_self: Tensor<2>, gate_cross: Tensor<2>) -> Self {
        Self {
            gram: regions.clone().matmul(regions.clone().swap_dims(1, 2)),
            embedding: pooled(pool.clone(), regions.clone()),
            pool,
            gate_self,
            gate_cross,
            regions,
        }
    }
}

/// The pair-independent part of a caption batch (padded to the longest).
#[derive(Clone, Debug)]
pub struct TextSide {
    /// [B, n, d], unit rows (padding rows are arbitrary: always masked).
    pub words: Tensor<3>,
    /// [B, n]: 1 for words, 0 for padding.
    pub mask: Tensor<2>,
    pub gram: Tensor<3>,
    pub gate_self: Tensor<2>,
    pub gate_cross: Tensor<2>,
    pub pool: Tensor<2>,
    pub embedding: Tensor<2>,
}

/// Scores of every image × caption pair of a batch: [B_images, B_captions] each.
#[derive(Clone, Debug)]
pub struct LevelScores {
    pub l2l: Tensor<2>,
    pub g2l: Tensor<2>,
    pub g2g: Tensor<2>,
}

/// Why a pair scores what it does, per word.
#[derive(Clone, Debug)]
pub struct Attention {
    /// [B_i, B_c, k, n]: word j's attention over the regions (the heatmap).
    pub beta: Tensor<4>,
    /// [B_i, B_c, n]: R_t(j) = cos(t_j, v*_j), how well word j finds itself in the image.
    pub word_alignment: Tensor<3>,
}

impl ShanConfig {
    pub fn init(&self, device: &Device) -> Shan {
        let d = self.joint_dim;
        let gate = |bias: bool| LinearConfig::new(d, 1).with_bias(bias).init(device);
        let temperatures = vec![self.init_temperature.ln() as f32; 5];
        Shan {
            region_proj: LinearConfig::new(self.image_dim, d).init(device),
            word_proj: LinearConfig::new(self.text_dim, d).init(device),
            region_gate: gate(true),
            word_gate_cross: gate(false),
            word_gate: gate(true),
            region_gate_cross: gate(false),
            region_pool: AttentionPool::new(d, self.pool_hidden, device),
            word_pool: AttentionPool::new(d, self.pool_hidden, device),
            log_temperature: Param::from_tensor(Tensor::from_floats(temperatures.as_slice(), device)),
            lambda_local: self.lambda_local,
            lambda_context: self.lambda_context,
            weights: [self.weight_l2l, self.weight_g2l, self.weight_g2g],
        }
    }
}

impl LevelScores {
    /// Scores of the same images against consecutive groups of captions, side by side.
    pub fn cat_captions(parts: Vec<LevelScores>) -> Self {
        let cat = |f: fn(&LevelScores) -> &Tensor<2>| Tensor::cat(parts.iter().map(|p| f(p).clone()).collect(), 1);
        Self { l2l: cat(|p| &p.l2l), g2l: cat(|p| &p.g2l), g2g: cat(|p| &p.g2g) }
    }

    /// The weighted sum S = w₁·L2L + w₂·G2L + w₃·G2G.
    pub fn total(&self, weights: [f64; 3]) -> Tensor<2> {
        self.l2l.clone() * weights[0] + self.g2l.clone() * weights[1] + self.g2g.clone() * weights[2]
    }
}

impl Shan {
    /// Region features [B, k, image_dim] → the image side.
    pub fn encode_images(&self, regions: Tensor<3>) -> ImageSide {
        self.encode_projected(self.project_regions(regions))
    }

    /// Region features [B, k, image_dim] → joint-space fragments [B, k, d], unit rows (what the
    /// photo index stores).
    pub fn project_regions(&self, regions: Tensor<3>) -> Tensor<3> {
        normalize_last(self.region_proj.forward(regions))
    }

    /// The image side from fragments [`Self::project_regions`] returned.
    pub fn encode_projected(&self, v: Tensor<3>) -> ImageSide {
        let [b, k, _] = v.dims();
        let mask = Tensor::ones([b, k], &v.device());
        let pool = self.region_pool.weights(v.clone(), mask);
        let gate_self = self.region_gate.forward(v.clone()).reshape([b, k]);
        let gate_cross = self.region_gate_cross.forward(v.clone()).reshape([b, k]);
        ImageSide::from_parts(v, pool, gate_self, gate_cross)
    }

    /// Word features [B, n, text_dim] and their mask [B, n] → the caption side.
    pub fn encode_texts(&self, words: Tensor<3>, mask: Tensor<2>) -> TextSide {
        let [b, n, _] = words.dims();
        let t = normalize_last(self.word_proj.forward(words));
        let pool = self.word_pool.weights(t.clone(), mask.clone());
        TextSide {
            gram: t.clone().matmul(t.clone().swap_dims(1, 2)),
            gate_self: self.word_gate.forward(t.clone()).reshape([b, n]),
            gate_cross: self.word_gate_cross.forward(t.clone()).reshape([b, n]),
            embedding: pooled(pool.clone(), t.clone()),
            pool,
            mask,
            words: t,
        }
    }

    /// Every image × caption pair: the three level scores.
    pub fn score(&self, img: &ImageSide, txt: &TextSide) -> LevelScores {
        self.score_with_attention(img, txt).0
    }

    /// The level scores and what explains them: the word→region attention β [B_i, B_c, k, n]
    /// (each word's column a distribution over the k regions) and each word's fragment-level
    /// alignment R_t(j) [B_i, B_c, n]. Padding words' entries are meaningless.
    pub fn score_with_attention(&self, img: &ImageSide, txt: &TextSide) -> (LevelScores, Attention) {
        let [bi, k, d] = img.regions.dims();
        let [bc, n, _] = txt.words.dims();
        let v = img.regions.clone();
        let t = txt.words.clone();
        // A[b, c, i, j] = cos(v_i, t_j)
        let a = v
            .clone()
            .reshape([bi * k, d])
            .matmul(t.clone().reshape([bc * n, d]).transpose())
            .reshape([bi, k, bc, n])
            .swap_dims(1, 2);
        // Both attentions share one exponential: cosines are ≤ 1, so exp(λ(A − 1)) ∈ (0, 1]
        // needs no max subtraction, and the two softmaxes are its two normalisations.
        let word_mask4 = txt.mask.clone().reshape([1, bc, 1, n]);
        let e = ((a.clone() - 1.0) * self.lambda_local).exp();
        let e_words = e.clone() * word_mask4;
        let alpha = e_words.clone() / e_words.sum_dim(3).clamp_min(1e-30); // regions attend words
        let beta = e.clone() / e.sum_dim(2); // words attend regions

        // Fragment level. R_v(i) = Σ_j α_ij A_ij / ‖t*_i‖, ‖t*_i‖² = α_iᵀ H α_i (H: caption Gram).
        let num_v = (alpha.clone() * a.clone()).sum_dim(3).reshape([bi, bc, k]);
        let alpha_c = alpha.clone().swap_dims(0, 1).reshape([bc, bi * k, n]);
        let norm_v =
            (alpha_c.clone().matmul(txt.gram.clone()) * alpha_c).sum_dim(2).reshape([bc, bi, k]).swap_dims(0, 1);
        let r_v = num_v / norm_v.clamp_min(1e-12).sqrt();
        // R_t(j) = Σ_i β_ij A_ij / ‖v*_j‖, ‖v*_j‖² = β_jᵀ G β_j (G: image Gram).
        let num_t = (beta.clone() * a).sum_dim(2).reshape([bi, bc, n]);
        let beta_i = beta.clone().swap_dims(2, 3).reshape([bi, bc * n, k]);
        let norm_t = (beta_i.clone().matmul(img.gram.clone()) * beta_i).sum_dim(2).reshape([bi, bc, n]);
        let r_t = num_t / norm_t.clamp_min(1e-12).sqrt();
        let word_mask = txt.mask.clone().reshape([1, bc, n]);
        let lengths = txt.mask.clone().sum_dim(1).reshape([1, bc]).clamp_min(1.0);
        let l2l = r_v.mean_dim(2).reshape([bi, bc])
            + (r_t.clone() * word_mask.clone()).sum_dim(2).reshape([bi, bc]) / lengths;

        // Context level: gated fusion, pooled with pair-independent weights.
        // Image context v_c = Σ_i w_i g_i v_i + Σ_j (Σ_i w_i (1−g_i) α_ij) t_j.
        let cross_v = (alpha.clone() * txt.gate_cross.clone().reshape([1, bc, 1, n])).sum_dim(3).reshape([bi, bc, k]);
        let g = sigmoid(img.gate_self.clone().reshape([bi, 1, k]) + cross_v);
        let w = img.pool.clone().reshape([bi, 1, k]);
        let p_v = g.clone() * w.clone();
        let q_v = ((g.neg() + 1.0) * w).reshape([bi, bc, k, 1]) * alpha;
        let q_v = q_v.sum_dim(2).reshape([bi, bc, n]);
        let v_c = p_v.matmul(v.clone()) + q_v.swap_dims(0, 1).matmul(t.clone()).swap_dims(0, 1); // [bi, bc, d]
        // Caption context t_c = Σ_j u_j h_j t_j + Σ_i (Σ_j u_j (1−h_j) β_ij) v_i.
        let cross_t = (beta.clone() * img.gate_cross.clone().reshape([bi, 1, k, 1])).sum_dim(2).reshape([bi, bc, n]);
        let h = sigmoid(txt.gate_self.clone().reshape([1, bc, n]) + cross_t);
        let u = txt.pool.clone().reshape([1, bc, n]);
        let p_t = h.clone() * u.clone();
        let q_t = ((h.neg() + 1.0) * u).reshape([bi, bc, 1, n]) * beta.clone();
        let q_t = q_t.sum_dim(3).reshape([bi, bc, k]);
        let t_c = p_t.swap_dims(0, 1).matmul(t.clone()).swap_dims(0, 1) + q_t.matmul(v.clone());

        // Each context attends the other modality's fragments.
        let s_vt = normalize_last(v_c.clone()).swap_dims(0, 1).matmul(t.clone().swap_dims(1, 2)).swap_dims(0, 1); // [bi, bc, n]
        let gamma = softmax(s_vt * self.lambda_context + padding_bias(word_mask), 2);
        let t_star = gamma.swap_dims(0, 1).matmul(t).swap_dims(0, 1); // [bi, bc, d]
        let s_tv = normalize_last(t_c.clone()).matmul(v.clone().swap_dims(1, 2)); // [bi, bc, k]
        let delta = softmax(s_tv * self.lambda_context, 2);
        let v_star = delta.matmul(v); // [bi, bc, d]
        let g2l = (cosine(v_c.clone(), t_star.clone()) + cosine(t_c.clone(), v_star.clone())).reshape([bi, bc]);
        let g2g = cosine(v_c + t_star, t_c + v_star).reshape([bi, bc]);
        (LevelScores { l2l, g2l, g2g }, Attention { beta, word_alignment: r_t })
    }
}

/// Σ_i w_i x_i, unit norm: weights [B, n] and fragments [B, n, d] → [B, d].
fn pooled(weights: Tensor<2>, x: Tensor<3>) -> Tensor<2> {
    let [b, n] = weights.dims();
    let d = x.dims()[2];
    normalize_last(weights.reshape([b, 1, n]).matmul(x).reshape([b, d]))
}

#[cfg(test)]
mod tests;
