//! RACG (relation-aggregated cross-graph; Peng et al., IEEE TNNLS 2024, seed 002), built from its
//! abstract with this crate's building blocks; every choice is ours and written here.
//!
//! - **Semantic graphs (intra-modal).** Regions (the 7×7 grid cells) and words (MiniLM pieces) are
//!   projected to d and each modality's nodes aggregate their relations through one graph-attention
//!   block on the fully connected graph (a transformer-encoder block, as DSRAN's "GAT"; padding
//!   masked).
//! - **Cross-graph relation encoder (inter-modal).** For a pair, every word node receives a message
//!   from the region graph (attention over the regions) and every region node one from the word
//!   graph, with H heads: nodes are mapped by one shared linear layer into the alignment space,
//!   split into heads and normalised per head; attention is softmax(λ · cosine) as in SCAN.
//! - **Multi-head similarity at node level.** Each node's similarity is the cosine between it and
//!   its message, per head, averaged over heads; the node-level score is the mean over words plus
//!   the mean over regions, halved. The message is never formed: its cosine comes from Σ a·cos
//!   over the attention and the sending graph's Gram matrix (SHAN's trick), so a batch of pairs
//!   stays affordable.
//! - **Graph-level similarity.** The cosine of the two graphs' pooled nodes (masked mean of the
//!   unit heads, concatenated, normalised) is averaged with the node-level score. Node level alone
//!   learned slowly here (Flickr8k dev rSum 153.8 after the first epoch, DSRAN 193.8); the pooled
//!   term is a dual-encoder path that trains fast while the cross-graph term refines it.
//!   Training weighs the two levels equally; the final score's share of the graph level
//!   (`graph_share`) is then chosen on dev (`alignscope tune-levels --model racg`), as SHAN's
//!   level weights are.
//! - **Feature reconstruction.** Linear decoders map each graph node back to the backbone feature
//!   it came from; their mean squared error is an auxiliary loss, so relation aggregation keeps
//!   each node's own content.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::shan::normalize_last;

pub mod pairs;

#[derive(Config, Debug)]
pub struct RacgConfig {
    #[config(default = 1280)]
    pub image_dim: usize,
    #[config(default = 384)]
    pub text_dim: usize,
    #[config(default = 256)]
    pub dim: usize,
    #[config(default = 4)]
    pub heads: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Inverse temperature of the cross-graph attention (SCAN's λ).
    #[config(default = 9.0)]
    pub lambda: f64,
    /// Weight of the reconstruction loss beside the matching loss.
    #[config(default = 0.1)]
    pub reconstruction_weight: f64,
    #[config(default = 0.05)]
    pub init_temperature: f64,
    /// Share of the graph-level cosine in the final score, the node level having the rest (None:
    /// 0.5, the equal mix training uses; configs written before it existed have none).
    pub graph_share: Option<f64>,
}

/// The graph level's share while training (loss and dev selection); tuned on dev afterwards.
pub const TRAINING_GRAPH_SHARE: f64 = 0.5;

#[derive(Module, Debug)]
pub struct Racg {
    pub region_proj: Linear,
    pub word_proj: Linear,
    pub region_graph: TransformerEncoder,
    pub word_graph: TransformerEncoder,
    /// Into the shared alignment space (both modalities).
    pub align: Linear,
    pub region_decoder: Linear,
    pub word_decoder: Linear,
    pub heads: usize,
    pub lambda: f64,
    pub reconstruction_weight: f64,
    pub graph_share: f64,
    pub log_temperature: Param<Tensor<1>>,
}

/// One side's graph nodes after relation aggregation: [B, n, d] in the alignment space, split
/// into unit heads [B, n, H, d/H], with the node mask [B, n] (1 = node).
pub struct Graph {
    pub nodes: Tensor<3>,
    pub heads: Tensor<4>,
    pub mask: Tensor<2>,
}

impl RacgConfig {
    pub fn init(&self, device: &Device) -> Racg {
        let gat =
            || TransformerEncoderConfig::new(self.dim, self.dim, self.heads, 1).with_dropout(self.dropout).init(device);
        Racg {
            region_proj: LinearConfig::new(self.image_dim, self.dim).init(device),
            word_proj: LinearConfig::new(self.text_dim, self.dim).init(device),
            region_graph: gat(),
            word_graph: gat(),
            align: LinearConfig::new(self.dim, self.dim).init(device),
            region_decoder: LinearConfig::new(self.dim, self.image_dim).init(device),
            word_decoder: LinearConfig::new(self.dim, self.text_dim).init(device),
            heads: self.heads,
            lambda: self.lambda,
            reconstruction_weight: self.reconstruction_weight,
            graph_share: self.graph_share.unwrap_or(TRAINING_GRAPH_SHARE),
            log_temperature: Param::from_tensor(Tensor::from_floats([self.init_temperature.ln() as f32], device)),
        }
    }
}

impl Racg {
    fn graph(&self, nodes: Tensor<3>, mask: Tensor<2>) -> Graph {
        let [b, n, d] = nodes.dims();
        let aligned = self.align.forward(nodes.clone());
        let heads = normalize_last(aligned.reshape([b, n, self.heads, d / self.heads]));
        Graph { nodes, heads, mask }
    }

    /// Regions [B, k, image_dim] → the image graph.
    pub fn encode_images(&self, regions: Tensor<3>) -> Graph {
        let [b, k, _] = regions.dims();
        let nodes = self.region_graph.forward(TransformerEncoderInput::new(self.region_proj.forward(regions)));
        self.graph(nodes, Tensor::ones([b, k], &self.log_temperature.device()))
    }

    /// Word features [B, n, text_dim] with their mask [B, n] → the caption graph.
    pub fn encode_texts(&self, words: Tensor<3>, mask: Tensor<2>) -> Graph {
        let x = self.word_proj.forward(words);
        let nodes = self.word_graph.forward(TransformerEncoderInput::new(x).mask_pad(mask.clone().equal_elem(0.0)));
        self.graph(nodes, mask)
    }

    /// Mean squared error of decoding each node back to its backbone feature (padding excluded).
    pub fn reconstruction(&self, img: &Graph, regions: Tensor<3>, txt: &Graph, words: Tensor<3>) -> Tensor<1> {
        let err = |decoded: Tensor<3>, target: Tensor<3>, mask: Tensor<2>| {
            let [b, n, _] = target.dims();
            let per_node = (decoded - target).powi_scalar(2).mean_dim(2).reshape([b, n]);
            (per_node * mask.clone()).sum() / mask.sum().clamp_min(1.0)
        };
        err(self.region_decoder.forward(img.nodes.clone()), regions, img.mask.clone())
            + err(self.word_decoder.forward(txt.nodes.clone()), words, txt.mask.clone())
    }

    /// Every image × caption score [Bi, Bc], and the head-averaged attention of each word over
    /// the regions [Bi, Bc, n, k].
    pub fn score(&self, img: &Graph, txt: &Graph) -> (Tensor<2>, Tensor<4>) {
        self.score_heads((img.heads.clone(), img.mask.clone()), (txt.heads.clone(), txt.mask.clone()))
    }

    /// `score` from the graphs' unit heads [B, n, H, d/H] and node masks [B, n] alone (what the
    /// app keeps per photo and per caption).
    pub fn score_heads(&self, img: (Tensor<4>, Tensor<2>), txt: (Tensor<4>, Tensor<2>)) -> (Tensor<2>, Tensor<4>) {
        let (levels, attention) = self.levels(img, txt);
        (levels.total(self.graph_share), attention)
    }

    /// Both levels' scores [Bi, Bc] and the head-averaged word attention [Bi, Bc, n, k].
    pub fn levels(
        &self,
        (img, img_mask): (Tensor<4>, Tensor<2>),
        (txt, txt_mask): (Tensor<4>, Tensor<2>),
    ) -> (RacgLevels, Tensor<4>) {
        let (words, attention) = cross(txt.clone(), img.clone(), img_mask.clone(), txt_mask.clone(), self.lambda);
        let (regions, _) = cross(img.clone(), txt.clone(), txt_mask.clone(), img_mask.clone(), self.lambda);
        let graph = pooled(img, img_mask).matmul(pooled(txt, txt_mask).transpose());
        (RacgLevels { node: (words.swap_dims(0, 1) + regions) / 2.0, graph }, attention.swap_dims(0, 1))
    }
}

/// RACG's two levels for every image × caption [Bi, Bc].
pub struct RacgLevels {
    /// Multi-head node-level similarity (cross-graph messages), both directions averaged.
    pub node: Tensor<2>,
    /// Cosine of the pooled graphs.
    pub graph: Tensor<2>,
}

impl RacgLevels {
    pub fn total(&self, graph_share: f64) -> Tensor<2> {
        self.node.clone() * (1.0 - graph_share) + self.graph.clone() * graph_share
    }
}

/// Each graph's masked mean of its unit heads [B, n, H, h], concatenated and L2-normalised: [B, H·h].
fn pooled(heads: Tensor<4>, mask: Tensor<2>) -> Tensor<2> {
    let [b, n, hh, h] = heads.dims();
    let mask = mask.reshape([b, n, 1]);
    let sum = (heads.reshape([b, n, hh * h]) * mask.clone()).sum_dim(1).reshape([b, hh * h]);
    normalize_last(sum / mask.sum_dim(1).reshape([b, 1]).clamp_min(1.0))
}

/// Receiving nodes `q` [R, n, H, h] (R graphs) get messages from sending nodes `k` [S, m, H, h]
/// (S graphs), for every receiving × sending pair. Returns the masked mean over receiving nodes of
/// each node's head-averaged cosine with its message [R, S], and the head-averaged attention
/// [R, S, n, m]. Heads are unit vectors, so attention logits are cosines.
fn cross(
    q: Tensor<4>,
    k: Tensor<4>,
    send_mask: Tensor<2>,
    recv_mask: Tensor<2>,
    lambda: f64,
) -> (Tensor<2>, Tensor<4>) {
    let [r, n, heads, h] = q.dims();
    let [s, m, _, _] = k.dims();
    // Cosines of every receiving node with every sending node, per head: [R, S, H, n, m].
    let qh = q.permute([2, 0, 1, 3]).reshape([heads, r * n, h]);
    let kh = k.clone().permute([2, 0, 1, 3]).reshape([heads, s * m, h]);
    let cos = qh.matmul(kh.transpose()).reshape([heads, r, n, s, m]).permute([1, 3, 0, 2, 4]);
    let bias = (send_mask.reshape([1, s, 1, 1, m]) - 1.0) * 1e4;
    let a = softmax(cos.clone() * lambda + bias, 4);
    // cos(node, Σ a·k) = Σ a·cos / ‖Σ a·k‖, with ‖Σ a·k‖² = aᵀ G a (G: the sender's Gram matrix).
    let numerator = (a.clone() * cos).sum_dim(4).reshape([r, s, heads, n]);
    let kk = k.permute([0, 2, 1, 3]); // [S, H, m, h]
    let gram = kk.clone().matmul(kk.transpose()); // [S, H, m, m]
    let a_by_sender = a.clone().permute([1, 2, 0, 3, 4]).reshape([s, heads, r * n, m]);
    let quad =
        (a_by_sender.clone().matmul(gram) * a_by_sender).sum_dim(3).reshape([s, heads, r, n]).permute([2, 0, 1, 3]);
    let node_cos = numerator / quad.clamp_min(1e-12).sqrt(); // [R, S, H, n]
    let per_node = node_cos.mean_dim(2).reshape([r, s, n]);
    let mask = recv_mask.reshape([r, 1, n]);
    let score = (per_node * mask.clone()).sum_dim(2).reshape([r, s]) / mask.sum_dim(2).reshape([r, 1]).clamp_min(1.0);
    (score, a.mean_dim(2).reshape([r, s, n, m]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::values;
    use burn::tensor::{Distribution, TensorData};

    fn small() -> (Racg, Device) {
        let device = Device::flex();
        let config = RacgConfig::new().with_image_dim(12).with_text_dim(10).with_dim(16).with_heads(4);
        (config.init(&device).valid(), device)
    }

    /// The score of one image graph and one caption graph the slow way: per head, per word, the
    /// attended message formed explicitly.
    fn reference(net: &Racg, img: &Graph, txt: &Graph, i: usize, c: usize) -> f32 {
        let heads = |g: &Graph, row: usize| -> Vec<Vec<Vec<f32>>> {
            let [_, n, hh, h] = g.heads.dims();
            let v = values(g.heads.clone());
            let base = row * n * hh * h;
            (0..n)
                .map(|j| (0..hh).map(|x| v[base + (j * hh + x) * h..base + (j * hh + x + 1) * h].to_vec()).collect())
                .collect()
        };
        let mask = |g: &Graph, row: usize| -> Vec<f32> {
            let n = g.mask.dims()[1];
            values(g.mask.clone())[row * n..(row + 1) * n].to_vec()
        };
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let direction = |recv: &[Vec<Vec<f32>>], recv_mask: &[f32], send: &[Vec<Vec<f32>>], send_mask: &[f32]| -> f32 {
            let (mut total, mut count) = (0.0, 0.0);
            for (_, node) in recv.iter().enumerate().filter(|&(j, _)| recv_mask[j] > 0.5) {
                let mut per_head = 0.0;
                for x in 0..node.len() {
                    let logits: Vec<f32> =
                        send.iter()
                            .enumerate()
                            .map(|(i, s)| {
                                if send_mask[i] > 0.5 { (net.lambda as f32 * dot(&node[x], &s[x])).exp() } else { 0.0 }
                            })
                            .collect();
                    let z: f32 = logits.iter().sum();
                    let message: Vec<f32> = (0..node[x].len())
                        .map(|d| send.iter().zip(&logits).map(|(s, l)| l / z * s[x][d]).sum())
                        .collect();
                    per_head += dot(&node[x], &message) / dot(&message, &message).sqrt();
                }
                total += per_head / node.len() as f32;
                count += 1.0;
            }
            total / count
        };
        let (iv, tv) = (heads(img, i), heads(txt, c));
        let (im, tm) = (mask(img, i), mask(txt, c));
        let pool = |g: &[Vec<Vec<f32>>], m: &[f32]| -> Vec<f32> {
            let flat: Vec<Vec<f32>> = g.iter().map(|node| node.concat()).collect();
            let v: Vec<f32> = (0..flat[0].len())
                .map(|d| flat.iter().zip(m).filter(|(_, m)| **m > 0.5).map(|(f, _)| f[d]).sum())
                .collect();
            let norm = dot(&v, &v).sqrt();
            v.iter().map(|x| x / norm).collect()
        };
        let graph = dot(&pool(&iv, &im), &pool(&tv, &tm));
        ((direction(&tv, &tm, &iv, &im) + direction(&iv, &im, &tv, &tm)) / 2.0 + graph) / 2.0
    }

    #[test]
    fn batched_scores_equal_a_per_pair_reference_and_attention_rows_sum_to_one() {
        let (net, device) = small();
        let img = net.encode_images(Tensor::random([3, 49, 12], Distribution::Normal(0.0, 1.0), &device));
        let mask = Tensor::from_data(
            TensorData::new(vec![1.0f32, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0], [2, 5]),
            &device,
        );
        let txt = net.encode_texts(Tensor::random([2, 5, 10], Distribution::Normal(0.0, 1.0), &device), mask);
        let (scores, attention) = net.score(&img, &txt);
        assert_eq!(scores.dims(), [3, 2]);
        assert_eq!(attention.dims(), [3, 2, 5, 49]);
        let s = values(scores);
        for i in 0..3 {
            for c in 0..2 {
                let want = reference(&net, &img, &txt, i, c);
                assert!((s[i * 2 + c] - want).abs() < 1e-4, "pair ({i}, {c}): {} vs {want}", s[i * 2 + c]);
            }
        }
        for row in values(attention.sum_dim(3)) {
            assert!((row - 1.0).abs() < 1e-4, "{row}");
        }
    }

    #[test]
    fn padding_leaves_a_captions_scores_unchanged() {
        let (net, device) = small();
        let img = net.encode_images(Tensor::random([2, 49, 12], Distribution::Normal(0.0, 1.0), &device));
        let words = Tensor::<3>::random([1, 3, 10], Distribution::Normal(0.0, 1.0), &device);
        let alone = net.encode_texts(words.clone(), Tensor::ones([1, 3], &device));
        let padded_words =
            Tensor::cat(vec![words, Tensor::random([1, 2, 10], Distribution::Normal(0.0, 5.0), &device)], 1);
        let padded = net.encode_texts(
            padded_words,
            Tensor::from_data(TensorData::new(vec![1.0f32, 1.0, 1.0, 0.0, 0.0], [1, 5]), &device),
        );
        let (a, b) = (values(net.score(&img, &alone).0), values(net.score(&img, &padded).0));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5), "{a:?} vs {b:?}");
    }

    #[test]
    fn graph_share_mixes_the_levels_and_old_configs_get_the_training_mix() {
        let (mut net, device) = small();
        let img = net.encode_images(Tensor::random([2, 49, 12], Distribution::Normal(0.0, 1.0), &device));
        let txt = net.encode_texts(
            Tensor::random([3, 4, 10], Distribution::Normal(0.0, 1.0), &device),
            Tensor::ones([3, 4], &device),
        );
        let (levels, _) = net.levels((img.heads.clone(), img.mask.clone()), (txt.heads.clone(), txt.mask.clone()));
        let (node, graph) = (values(levels.node.clone()), values(levels.graph.clone()));
        assert_ne!(node, graph);
        for (share, want) in [(0.0, node.clone()), (1.0, graph.clone())] {
            net.graph_share = share;
            let got = values(net.score(&img, &txt).0);
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "share {share}: {got:?} vs {want:?}");
        }
        let mut json: serde_json::Value = serde_json::from_str(&RacgConfig::new().to_string()).unwrap();
        json.as_object_mut().unwrap().remove("graph_share");
        let old: RacgConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old.init(&device).graph_share, 0.5);
    }

    #[test]
    fn reconstruction_is_zero_only_for_a_perfect_decoder_target() {
        let (net, device) = small();
        let regions = Tensor::<3>::random([1, 49, 12], Distribution::Normal(0.0, 1.0), &device);
        let words = Tensor::<3>::random([1, 4, 10], Distribution::Normal(0.0, 1.0), &device);
        let img = net.encode_images(regions.clone());
        let txt = net.encode_texts(words.clone(), Tensor::ones([1, 4], &device));
        let decoded_regions = net.region_decoder.forward(img.nodes.clone());
        let decoded_words = net.word_decoder.forward(txt.nodes.clone());
        assert!(values(net.reconstruction(&img, decoded_regions, &txt, decoded_words))[0].abs() < 1e-10);
        assert!(values(net.reconstruction(&img, regions, &txt, words))[0] > 1e-3);
    }
}
