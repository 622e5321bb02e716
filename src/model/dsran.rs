//! DSRAN (dual semantic relations attention network; Wen, Gu, Cheng, seed 001) on one visual
//! stream: a dual encoder whose fragments exchange information through graph attention before
//! pooling. "GAT" here is one transformer-encoder block on a fully connected graph (MODELS.md:
//! multi-head attention, hidden d, FFN d→d→d, dropout 0.2).
//!
//! Image: the 7×7 grid cells are the region nodes and the pooled feature the global node
//! (regional–global relations; there is no separate detector stream here). Separate relations: a
//! GAT over the cells. Joint relations: [global; cells] through K = 2 parallel GATs, each
//! mean-pooled, fused by a sigmoid gate f = t⊙a + (1−t)⊙b, L2-normalised.
//! Text: word-piece features → linear → GRU → one GAT (padding masked) → masked mean → L2.
//! Score: the cosine of the two vectors, so photos are embedded once (like the global model).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::attention::MhaInput;
use burn::nn::gru::{Gru, GruConfig};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use super::global::l2_normalize;

#[derive(Config, Debug)]
pub struct DsranConfig {
    #[config(default = 1280)]
    pub image_dim: usize,
    #[config(default = 384)]
    pub text_dim: usize,
    /// Node width d (the paper: 1024; 512 keeps a training step affordable on 2 cores).
    #[config(default = 512)]
    pub dim: usize,
    #[config(default = 8)]
    pub heads: usize,
    #[config(default = 0.2)]
    pub dropout: f64,
    #[config(default = 0.05)]
    pub init_temperature: f64,
}

#[derive(Module, Debug)]
pub struct Dsran {
    pub region_proj: Linear,
    pub global_proj: Linear,
    /// Separate relations among the grid cells.
    pub region_gat: TransformerEncoder,
    /// Joint relations among [global; cells]: the two parallel branches.
    pub joint_a: TransformerEncoder,
    pub joint_b: TransformerEncoder,
    /// t = σ(W [a; b]).
    pub gate: Linear,
    pub word_proj: Linear,
    pub gru: Gru,
    pub text_gat: TransformerEncoder,
    /// log τ of InfoNCE.
    pub log_temperature: Param<Tensor<1>>,
}

impl DsranConfig {
    fn gat(&self, device: &Device) -> TransformerEncoder {
        TransformerEncoderConfig::new(self.dim, self.dim, self.heads, 1).with_dropout(self.dropout).init(device)
    }

    pub fn init(&self, device: &Device) -> Dsran {
        Dsran {
            region_proj: LinearConfig::new(self.image_dim, self.dim).init(device),
            global_proj: LinearConfig::new(self.image_dim, self.dim).init(device),
            region_gat: self.gat(device),
            joint_a: self.gat(device),
            joint_b: self.gat(device),
            gate: LinearConfig::new(2 * self.dim, self.dim).init(device),
            word_proj: LinearConfig::new(self.text_dim, self.dim).init(device),
            gru: GruConfig::new(self.dim, self.dim, true).init(device),
            text_gat: self.gat(device),
            log_temperature: Param::from_tensor(Tensor::from_floats([self.init_temperature.ln() as f32], device)),
        }
    }
}

impl Dsran {
    /// Region features [B, k, image_dim] → unit embeddings [B, d].
    pub fn embed_images(&self, regions: Tensor<3>) -> Tensor<2> {
        let [b, _, _] = regions.dims();
        let global = self.global_proj.forward(regions.clone().mean_dim(1)); // [B, 1, d]
        let cells = self.region_gat.forward(TransformerEncoderInput::new(self.region_proj.forward(regions)));
        let nodes = Tensor::cat(vec![global, cells], 1);
        let pool = |gat: &TransformerEncoder| {
            let out = gat.forward(TransformerEncoderInput::new(nodes.clone()));
            let d = out.dims()[2];
            out.mean_dim(1).reshape([b, d])
        };
        let (a, c) = (pool(&self.joint_a), pool(&self.joint_b));
        let t = sigmoid(self.gate.forward(Tensor::cat(vec![a.clone(), c.clone()], 1)));
        l2_normalize(t.clone() * a + (t.neg() + 1.0) * c)
    }

    /// What DSRAN can show of a photo: the graph attention of the global node over the regions in
    /// the joint relation step, averaged over heads and both branches and renormalised over the
    /// regions: [B, k], rows sum to 1. (The global node's own share is left out.)
    pub fn region_attention(&self, regions: Tensor<3>) -> Tensor<2> {
        let [b, k, _] = regions.dims();
        let global = self.global_proj.forward(regions.clone().mean_dim(1));
        let cells = self.region_gat.forward(TransformerEncoderInput::new(self.region_proj.forward(regions)));
        let nodes = Tensor::cat(vec![global, cells], 1);
        let branch = |gat: &TransformerEncoder| {
            // Post-norm blocks: the attention sees the nodes as they are.
            let weights = gat.layers[0].mha.forward(MhaInput::self_attn(nodes.clone())).weights; // [B, H, k+1, k+1]
            let heads = weights.dims()[1];
            weights.slice([0..b, 0..heads, 0..1, 1..k + 1]).mean_dim(1).reshape([b, k])
        };
        let a = branch(&self.joint_a) + branch(&self.joint_b);
        a.clone() / a.sum_dim(1).clamp_min(1e-12)
    }

    /// Word features [B, n, text_dim] with their mask [B, n] (1 = word, 0 = padding; padding at
    /// the end) → unit embeddings [B, d].
    pub fn embed_texts(&self, words: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
        let [b, n, _] = words.dims();
        // Right padding: the forward GRU's outputs at real words never see the padding.
        let x = self.gru.forward(self.word_proj.forward(words), None);
        let x = self.text_gat.forward(TransformerEncoderInput::new(x).mask_pad(mask.clone().equal_elem(0.0)));
        let d = x.dims()[2];
        let m = mask.reshape([b, n, 1]);
        let sum = (x * m.clone()).sum_dim(1).reshape([b, d]);
        let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1.0);
        l2_normalize(sum / count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::values;
    use burn::tensor::{Distribution, TensorData};

    fn small() -> (Dsran, Device) {
        let device = Device::flex();
        let config = DsranConfig::new().with_image_dim(12).with_text_dim(10).with_dim(16).with_heads(4);
        (config.init(&device).valid(), device)
    }

    fn close(a: &Tensor<2>, b: &Tensor<2>) -> bool {
        let (a, b) = (values(a.clone()), values(b.clone()));
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn embeddings_are_unit_rows_of_the_joint_width() {
        let (net, device) = small();
        let img = net.embed_images(Tensor::random([3, 49, 12], Distribution::Normal(0.0, 1.0), &device));
        let txt = net.embed_texts(
            Tensor::random([2, 5, 10], Distribution::Normal(0.0, 1.0), &device),
            Tensor::ones([2, 5], &device),
        );
        assert_eq!(img.dims(), [3, 16]);
        assert_eq!(txt.dims(), [2, 16]);
        for row in values(img.clone().powi_scalar(2).sum_dim(1)) {
            assert!((row - 1.0).abs() < 1e-4, "{row}");
        }
    }

    #[test]
    fn permuting_regions_leaves_the_image_embedding_unchanged() {
        let (net, device) = small();
        let regions = Tensor::<3>::random([2, 49, 12], Distribution::Normal(0.0, 1.0), &device);
        let mut order: Vec<i64> = (0..49).collect();
        fastrand::Rng::with_seed(5).shuffle(&mut order);
        let permuted = regions.clone().select(1, Tensor::from_data(TensorData::new(order, [49]), &device));
        assert!(close(&net.embed_images(regions.clone()), &net.embed_images(permuted)));
        // …while changing one region does change it.
        let changed = regions.clone().slice_assign([0..2, 0..1, 0..12], Tensor::zeros([2, 1, 12], &device));
        assert!(!close(&net.embed_images(regions), &net.embed_images(changed)));
    }

    #[test]
    fn region_attention_is_a_distribution_that_follows_the_regions() {
        let (net, device) = small();
        let regions = Tensor::<3>::random([2, 49, 12], Distribution::Normal(0.0, 1.0), &device);
        let a = net.region_attention(regions.clone());
        assert_eq!(a.dims(), [2, 49]);
        for row in values(a.clone().sum_dim(1)) {
            assert!((row - 1.0).abs() < 1e-4, "{row}");
        }
        // Permuting the regions permutes their weights the same way.
        let order: Vec<i64> = (0..49).rev().collect();
        let index = Tensor::from_data(TensorData::new(order, [49]), &device);
        let permuted = net.region_attention(regions.select(1, index.clone()));
        assert!(close(&permuted, &a.select(1, index)));
    }

    #[test]
    fn padding_does_not_change_a_caption() {
        let (net, device) = small();
        let words = Tensor::<3>::random([1, 4, 10], Distribution::Normal(0.0, 1.0), &device);
        let alone = net.embed_texts(words.clone(), Tensor::ones([1, 4], &device));
        // The same caption padded with 3 garbage slots, masked out.
        let padded = Tensor::cat(vec![words, Tensor::random([1, 3, 10], Distribution::Normal(0.0, 5.0), &device)], 1);
        let mask = Tensor::from_data(TensorData::new(vec![1.0f32, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [1, 7]), &device);
        assert!(close(&alone, &net.embed_texts(padded, mask)));
    }
}
