//! DSRAN (dual semantic relations attention network; Wen, Gu, Cheng, seed 001): a dual encoder
//! whose fragments exchange information through graph attention before pooling. "GAT" here is one
//! transformer-encoder block on a fully connected graph (MODELS.md: multi-head attention, hidden d,
//! FFN d→d→d, dropout 0.2).
//!
//! Image, two visual streams as in the paper: the 7×7 grid cells, and (with `objects` > 0) the
//! detector's object regions, the last `objects` rows of the region input. The pooled grid is the
//! global node. Separate relations: a GAT over the cells and one over the objects. Joint relations:
//! [global; cells; objects] through K = 2 parallel GATs, each mean-pooled, fused by a sigmoid gate
//! f = t⊙a + (1−t)⊙b, L2-normalised. With `objects` = 0 (the committed net) the grid is the one
//! stream and any extra region rows join the cells' GAT.
//! Text: word-piece features → linear → GRU → one GAT (padding masked) → masked mean → L2.
//! Score: the cosine of the two vectors, so photos are embedded once (like the global model).

use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param};
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
    /// Object regions at the end of each photo's region rows, with their own stream (None or 0:
    /// grid only; an Option so that configs saved before it still read).
    pub objects: Option<usize>,
}

#[derive(Module, Debug)]
pub struct Dsran {
    pub region_proj: Linear,
    pub global_proj: Linear,
    /// Separate relations among the grid cells.
    pub region_gat: TransformerEncoder,
    /// Separate relations among the detected objects (None: grid only).
    pub object_proj: Option<Linear>,
    pub object_gat: Option<TransformerEncoder>,
    /// How many region rows, at the end, are objects for `object_gat` (0: none).
    pub objects: usize,
    /// Joint relations among [global; cells; objects]: the two parallel branches.
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
        let objects = self.objects.unwrap_or(0);
        Dsran {
            region_proj: LinearConfig::new(self.image_dim, self.dim).init(device),
            global_proj: LinearConfig::new(self.image_dim, self.dim).init(device),
            region_gat: self.gat(device),
            object_proj: (objects > 0).then(|| LinearConfig::new(self.image_dim, self.dim).init(device)),
            object_gat: (objects > 0).then(|| self.gat(device)),
            objects,
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

/// Gives every parameter a new id (a copied stream must train apart from its original).
struct FreshIds;

impl ModuleMapper for FreshIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        Param::from_tensor(param.val().detach())
    }
}

impl Dsran {
    /// This grid-only net with an object stream for the last `objects` region rows, started as a
    /// copy of the grid stream (the objects are pooled features of the same backbone), so the
    /// dual net begins where the grid net is and fine-tunes from there.
    pub fn with_object_stream(mut self, objects: usize) -> Self {
        self.object_proj = Some(self.region_proj.clone().map(&mut FreshIds));
        self.object_gat = Some(self.region_gat.clone().map(&mut FreshIds));
        self.objects = objects;
        self
    }

    /// The graph's nodes [B, 1 + k, d]: the global node, the cells after their relations, the
    /// objects after theirs.
    fn nodes(&self, regions: Tensor<3>) -> Tensor<3> {
        let [b, k, f] = regions.dims();
        let (grid, objects) = match (&self.object_proj, &self.object_gat) {
            (Some(proj), Some(gat)) if self.objects > 0 && self.objects < k => {
                let cells = k - self.objects;
                let objects = regions.clone().slice([0..b, cells..k, 0..f]);
                (
                    regions.slice([0..b, 0..cells, 0..f]),
                    Some(gat.forward(TransformerEncoderInput::new(proj.forward(objects)))),
                )
            }
            _ => (regions, None),
        };
        let global = self.global_proj.forward(grid.clone().mean_dim(1)); // [B, 1, d]
        let cells = self.region_gat.forward(TransformerEncoderInput::new(self.region_proj.forward(grid)));
        Tensor::cat([vec![global, cells], objects.into_iter().collect()].concat(), 1)
    }

    /// Region features [B, k, image_dim] → unit embeddings [B, d].
    pub fn embed_images(&self, regions: Tensor<3>) -> Tensor<2> {
        let b = regions.dims()[0];
        let nodes = self.nodes(regions);
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
        let nodes = self.nodes(regions);
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
    fn the_object_stream_starts_as_a_copy_of_the_grid_stream_and_trains_apart() {
        let (net, device) = small();
        let dual = net.clone().with_object_stream(4);
        assert_eq!(dual.objects, 4);
        let (proj, gat) = (dual.object_proj.as_ref().unwrap(), dual.object_gat.as_ref().unwrap());
        // Same values, new parameter ids (else the optimiser would update them as one).
        assert_ne!(proj.weight.id, dual.region_proj.weight.id);
        assert_eq!(values(proj.weight.val()), values(dual.region_proj.weight.val()));
        assert_eq!(gat.num_params(), dual.region_gat.num_params());
        let regions = Tensor::<3>::random([2, 53, 12], Distribution::Normal(0.0, 1.0), &device);
        let e = dual.embed_images(regions.clone());
        for row in values(e.clone().powi_scalar(2).sum_dim(1)) {
            assert!((row - 1.0).abs() < 1e-4, "{row}");
        }
        // Objects are a set: their order does not matter…
        let mut order: Vec<i64> = (0..53).collect();
        order[49..].reverse();
        let reordered = regions.clone().select(1, Tensor::from_data(TensorData::new(order, [53]), &device));
        assert!(close(&e, &dual.embed_images(reordered)));
        // …but which stream a row is in does: the grid net, given the same rows, sees them as cells
        // (the global node then pools 53 rows, not 49).
        assert!(!close(&e, &net.embed_images(regions.clone())));
        assert_eq!(dual.region_attention(regions).dims(), [2, 53]);
    }

    #[test]
    fn a_config_saved_before_the_object_stream_reads_as_grid_only() {
        let old =
            r#"{"image_dim": 1280, "text_dim": 384, "dim": 512, "heads": 8, "dropout": 0.2, "init_temperature": 0.05}"#;
        let config = DsranConfig::load_binary(old.as_bytes()).unwrap();
        assert_eq!(config.objects, None);
        assert_eq!(config.init(&Device::flex()).objects, 0);
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
