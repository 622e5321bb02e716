//! RACG's two levels for many image × caption pairs on the CPU in one fused pass per photo, the
//! same arithmetic as [`Racg::levels`](super::Racg::levels) without its [images, captions, heads,
//! words, regions] intermediates: the tensor path writes and reads each of those ~15 times, and
//! on flex that, not the multiplications, is where the 1K test's 900 s went.
//!
//! Per photo and head: the cosines of every word of a group of captions with the photo's
//! regions come from one matrix product; exp(λ(cos − 1)) is taken once and serves both
//! directions' softmax (cosines of unit vectors are ≤ 1, so it cannot overflow and, for λ ≤
//! [`MAX_LAMBDA`], not underflow either: the tensor path's masking bias removes padding, here
//! padding nodes are simply left out); each message's norm comes from the sender's Gram matrix
//! (‖Σ a·k‖² = aᵀGa), the words' side through a second matrix product.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::features::host::{dot, exp_nonpositive, matmul, sum, vectorised_fn, word_groups};

/// Above this attention temperature exp(λ(cos − 1)) could underflow to 0 for a whole row, where
/// the max-shifted softmax of the tensor path still has a value; callers use the tensor path.
pub const MAX_LAMBDA: f64 = 40.0;

/// Words scored against one photo at a time (the cosine block is this × regions).
const WORD_GROUP: usize = 2048;

/// Below this many words in a group a message's norm is taken from the message itself (words ×
/// regions × width per head); from it on, from the photo's Gram matrix (regions² × width once,
/// then words × regions²), which is cheaper for many words.
const GRAM_FROM_WORDS: usize = 200;

/// Many graphs' kept nodes: graph g is `graphs[g]`, [nodes, heads · width] row-major, each head
/// a unit vector (what `Graph::heads` holds, padding nodes left out). Borrowed where the caller
/// keeps them in this layout already (the app's per-photo graphs).
pub struct HostGraphs<'a> {
    heads: usize,
    width: usize,
    graphs: Vec<Cow<'a, [f32]>>,
}

impl<'a> HostGraphs<'a> {
    pub fn new(heads: usize, width: usize) -> Self {
        HostGraphs { heads, width, graphs: Vec::new() }
    }

    /// Graphs kept as [nodes, heads · width] slices, every node a real one.
    pub fn borrowed(heads: usize, width: usize, graphs: &[&'a [f32]]) -> Self {
        let graphs = graphs.iter().map(|g| Cow::Borrowed(&g[..g.len() / (heads * width) * heads * width])).collect();
        HostGraphs { heads, width, graphs }
    }

    pub fn len(&self) -> usize {
        self.graphs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.graphs.is_empty()
    }

    fn row(&self) -> usize {
        self.heads * self.width
    }

    fn nodes(&self, g: usize) -> usize {
        self.graphs[g].len() / self.row()
    }

    /// Append a batch of graphs: unit heads [B, n, H, h] row-major and the node mask [B, n]
    /// (masked nodes are left out).
    pub fn push(&mut self, heads: &[f32], mask: &[f32], [b, n, hh, h]: [usize; 4]) {
        assert_eq!((hh, h), (self.heads, self.width), "head layout");
        assert_eq!(heads.len(), b * n * hh * h, "heads [B, n, H, h]");
        assert_eq!(mask.len(), b * n, "mask [B, n]");
        let d = hh * h;
        for g in 0..b {
            let kept = (0..n).filter(|&node| mask[g * n + node] > 0.5);
            let nodes: Vec<f32> = kept.flat_map(|node| heads[(g * n + node) * d..][..d].iter().copied()).collect();
            self.graphs.push(Cow::Owned(nodes));
        }
    }

    /// Each graph's pooled vector, as `pooled` in the tensor path: the mean of its nodes, at unit
    /// length (norm floored at 1e-8): [graphs, heads · width].
    fn pooled(&self) -> Vec<f32> {
        let d = self.row();
        let mut out = vec![0.0f32; self.len() * d];
        out.par_chunks_mut(d.max(1)).zip(&self.graphs).for_each(|(mean, nodes)| {
            nodes.chunks(d).for_each(|v| mean.iter_mut().zip(v).for_each(|(s, x)| *s += x));
            let count = (nodes.len() / d).max(1) as f32;
            mean.iter_mut().for_each(|x| *x /= count);
            let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-8);
            mean.iter_mut().for_each(|x| *x /= norm);
        });
        out
    }
}

/// Whether scoring on `device` goes through this pass: on the CPU backend, for an attention
/// temperature it serves.
pub fn serves(device: &burn::tensor::Device, lambda: f64) -> bool {
    *device == burn::tensor::Device::flex() && lambda <= MAX_LAMBDA
}

/// The final score of every image × caption, row-major [images, captions]: the node level with
/// `1 − graph_share`, the graph level with `graph_share` (as `RacgLevels::total`).
pub fn totals(images: &HostGraphs, captions: &HostGraphs, lambda: f64, graph_share: f64) -> Vec<f32> {
    let [node, graph] = levels(images, captions, lambda);
    mix(&node, &graph, graph_share)
}

/// `node · (1 − share) + graph · share`, element by element.
pub fn mix(node: &[f32], graph: &[f32], share: f64) -> Vec<f32> {
    let w = share as f32;
    node.iter().zip(graph).map(|(n, g)| n * (1.0 - w) + g * w).collect()
}

/// Both levels for every image × caption, row-major [images, captions]: node, graph.
pub fn levels(images: &HostGraphs, captions: &HostGraphs, lambda: f64) -> [Vec<f32>; 2] {
    assert!(lambda <= MAX_LAMBDA, "λ {lambda} is above the fused path's {MAX_LAMBDA}");
    assert_eq!((images.heads, images.width), (captions.heads, captions.width), "the two sides' head layouts");
    let (n_img, n_cap) = (images.len(), captions.len());
    let words = Words::of(captions);
    let mut node = vec![0.0f32; n_img * n_cap];
    if n_cap > 0 {
        node.par_chunks_mut(n_cap).enumerate().for_each(|(i, row)| {
            score_photo(&images.graphs[i], images.heads, images.width, &words, lambda as f32, row);
        });
    }
    let d = images.row();
    let mut graph = vec![0.0f32; n_img * n_cap];
    let (pi, pc) = (images.pooled(), captions.pooled());
    matmul(&mut graph, [n_img, n_cap, d], (&pi, d, 1), (&pc, 1, d), true);
    [node, graph]
}

/// The caption side, laid out for the pass: per head every word's unit vector, caption after
/// caption ([words, width]), and per caption and head the Gram matrix of its words ([n, n]).
struct Words {
    heads: usize,
    width: usize,
    by_head: Vec<Vec<f32>>,
    /// Caption c holds words `starts[c]..starts[c + 1]`.
    starts: Vec<usize>,
    grams: Vec<Vec<f32>>,
    gram_starts: Vec<usize>,
}

impl Words {
    fn of(captions: &HostGraphs) -> Self {
        let (heads, width, d) = (captions.heads, captions.width, captions.row());
        let (mut starts, mut gram_starts) = (vec![0], vec![0]);
        for c in 0..captions.len() {
            let n = captions.nodes(c);
            starts.push(starts[c] + n);
            gram_starts.push(gram_starts[c] + n * n);
        }
        let by_head: Vec<Vec<f32>> = (0..heads)
            .map(|head| {
                captions
                    .graphs
                    .iter()
                    .flat_map(|g| g.chunks(d).flat_map(move |v| &v[head * width..][..width]))
                    .copied()
                    .collect()
            })
            .collect();
        let grams = (0..heads)
            .map(|head| {
                let mut out = vec![0.0f32; gram_starts[captions.len()]];
                for c in 0..captions.len() {
                    let n = starts[c + 1] - starts[c];
                    let q = &by_head[head][starts[c] * width..starts[c + 1] * width];
                    matmul(
                        &mut out[gram_starts[c]..gram_starts[c + 1]],
                        [n, n, width],
                        (q, width, 1),
                        (q, 1, width),
                        false,
                    );
                }
                out
            })
            .collect();
        Words { heads, width, by_head, starts, grams, gram_starts }
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Consecutive runs of whole captions of at most [`WORD_GROUP`] words (a longer caption alone).
    fn groups(&self) -> Vec<std::ops::Range<usize>> {
        word_groups(&self.starts, WORD_GROUP)
    }
}

vectorised_fn! {
/// One photo (its nodes [m, heads · width]) against every caption: its node-level score per
/// caption into `row`.
fn score_photo(photo: &[f32], heads: usize, width: usize, words: &Words, lambda: f32, row: &mut [f32]) {
    debug_assert_eq!((heads, width), (words.heads, words.width));
    let d = heads * width;
    let m = photo.len() / d;
    let n_cap = words.len();
    let use_gram = words.starts[n_cap] >= GRAM_FROM_WORDS;
    // Sums over heads of each word's, and each (caption, region)'s, cosine with its message.
    let mut word_cos = vec![0.0f32; words.starts[n_cap]];
    let mut region_cos = vec![0.0f32; n_cap * m];
    // Scratch, reused: the group's cosines, e = exp(λ(cos − 1)), the words' attention and their
    // messages (or the attention through the Gram matrix); per caption the regions' attention
    // (as columns), their numerators, quadratic forms and G·b rows.
    let (mut cos, mut e, mut attention, mut through) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let [mut column_sum, mut numerator, mut quad, mut gb] = [(); 4].map(|_| vec![0.0f32; m]);
    let mut spread = Vec::new();
    let mut gram = vec![0.0f32; if use_gram { m * m } else { 0 }];
    let groups = words.groups();
    for head in 0..heads {
        // The photo's regions in this head: rows of `width` at stride d from `head · width`.
        let k = &photo[(head * width).min(photo.len())..];
        if use_gram {
            matmul(&mut gram, [m, m, width], (k, d, 1), (k, 1, d), false);
        }
        for group in &groups {
            let first_word = words.starts[group.start];
            let n_words = words.starts[group.end] - first_word;
            let q = &words.by_head[head][first_word * width..(first_word + n_words) * width];
            cos.resize(n_words * m, 0.0);
            matmul(&mut cos, [n_words, m, width], (q, width, 1), (k, 1, d), false);
            e.resize(n_words * m, 0.0);
            e.iter_mut().zip(&cos).for_each(|(e, &c)| *e = exp_nonpositive(lambda * (c - 1.0)));
            // Words receive from the regions: a = e / Σ_regions e, row by row.
            attention.clear();
            attention.extend_from_slice(&e);
            for a in attention.chunks_mut(m.max(1)) {
                let inverse = 1.0 / sum(a);
                a.iter_mut().for_each(|x| *x *= inverse);
            }
            // ‖Σ a·k‖² per word: aᵀGa, or the message formed and its squared length.
            let norms_sq: Vec<f32> = if use_gram {
                through.resize(n_words * m, 0.0);
                matmul(&mut through, [n_words, m, m], (&attention, m, 1), (&gram, m, 1), false);
                attention.chunks(m.max(1)).zip(through.chunks(m.max(1))).map(|(a, t)| dot(a, t)).collect()
            } else {
                through.resize(n_words * width, 0.0);
                matmul(&mut through, [n_words, width, m], (&attention, m, 1), (k, d, 1), false);
                through.chunks(width.max(1)).map(|v| dot(v, v)).collect()
            };
            for w in 0..n_words {
                let num = dot(&attention[w * m..][..m], &cos[w * m..][..m]);
                word_cos[first_word + w] += num / norms_sq[w].max(1e-12).sqrt();
            }
            // Regions receive from each caption's words: b = e / Σ_words e, column by column.
            for c in group.clone() {
                let rows = words.starts[c] - first_word..words.starts[c + 1] - first_word;
                let n = rows.len();
                if n == 0 || m == 0 {
                    continue;
                }
                let (e, cs) = (&e[rows.start * m..rows.end * m], &cos[rows.start * m..rows.end * m]);
                column_sum.iter_mut().for_each(|s| *s = 0.0);
                e.chunks(m).for_each(|r| column_sum.iter_mut().zip(r).for_each(|(s, x)| *s += x));
                column_sum.iter_mut().for_each(|s| *s = 1.0 / *s);
                spread.resize(n * m, 0.0);
                for (b, r) in spread.chunks_mut(m).zip(e.chunks(m)) {
                    b.iter_mut().zip(r).zip(&column_sum).for_each(|((b, x), s)| *b = x * s);
                }
                let g = &words.grams[head][words.gram_starts[c]..words.gram_starts[c + 1]];
                numerator.iter_mut().for_each(|x| *x = 0.0);
                quad.iter_mut().for_each(|x| *x = 0.0);
                for w in 0..n {
                    let bw = &spread[w * m..][..m];
                    numerator.iter_mut().zip(bw).zip(&cs[w * m..][..m]).for_each(|((s, b), c)| *s += b * c);
                    // bᵀGb = Σ_w b_w (Σ_v G[w, v] b_v), every region at once.
                    gb.iter_mut().for_each(|x| *x = 0.0);
                    for v in 0..n {
                        let gwv = g[w * n + v];
                        gb.iter_mut().zip(&spread[v * m..][..m]).for_each(|(t, b)| *t += gwv * b);
                    }
                    quad.iter_mut().zip(bw).zip(&gb).for_each(|((q, b), t)| *q += b * t);
                }
                let out = &mut region_cos[c * m..][..m];
                out.iter_mut().zip(&numerator).zip(&quad).for_each(|((o, num), q)| *o += num / q.max(1e-12).sqrt());
            }
        }
    }
    let hh = heads as f32;
    for (c, score) in row.iter_mut().enumerate() {
        let n = words.starts[c + 1] - words.starts[c];
        let word_score = word_cos[words.starts[c]..words.starts[c + 1]].iter().sum::<f32>() / hh / n.max(1) as f32;
        let region_score = region_cos[c * m..][..m].iter().sum::<f32>() / hh / m.max(1) as f32;
        *score = (word_score + region_score) / 2.0;
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::values;
    use crate::model::racg::{Graph, RacgConfig};
    use burn::module::Module;
    use burn::tensor::{Device, Distribution, Tensor, TensorData};

    fn host(graph: &Graph) -> HostGraphs<'static> {
        let dims = graph.heads.dims();
        let mut out = HostGraphs::new(dims[2], dims[3]);
        out.push(&values(graph.heads.clone()), &values(graph.mask.clone()), dims);
        out
    }

    /// The fused levels against the tensor path's for `captions` random captions of up to 5
    /// words (some padded) and three photos of 7 regions, one with two regions masked off.
    fn compare_with_tensors(captions: usize) {
        let device = Device::flex();
        let net =
            RacgConfig::new().with_image_dim(12).with_text_dim(10).with_dim(16).with_heads(4).init(&device).valid();
        let mut img = net.encode_images(Tensor::random([3, 7, 12], Distribution::Normal(0.0, 1.0), &device));
        let mut image_mask = vec![1.0f32; 21];
        image_mask[19] = 0.0;
        image_mask[20] = 0.0;
        img.mask = Tensor::from_data(TensorData::new(image_mask, [3, 7]), &device);
        let caption_mask: Vec<f32> =
            (0..captions * 5).map(|i| if i % 5 < 2 + (i / 5) % 4 { 1.0 } else { 0.0 }).collect();
        let txt = net.encode_texts(
            Tensor::random([captions, 5, 10], Distribution::Normal(0.0, 1.0), &device),
            Tensor::from_data(TensorData::new(caption_mask, [captions, 5]), &device),
        );
        let (want, _) = net.levels((img.heads.clone(), img.mask.clone()), (txt.heads.clone(), txt.mask.clone()));
        let [node, graph] = levels(&host(&img), &host(&txt), net.lambda);
        for (name, got, want) in [("node", node, values(want.node)), ("graph", graph, values(want.graph))] {
            assert_eq!(got.len(), 3 * captions, "{name}");
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-5, "{name} level, pair {k}: fused {g} vs tensors {w}");
            }
        }
    }

    #[test]
    fn the_fused_pass_gives_the_tensor_paths_levels_with_padding_on_both_sides() {
        // Few words: each message's norm from the message itself.
        compare_with_tensors(3);
    }

    #[test]
    fn the_fused_pass_gives_the_tensor_paths_levels_through_the_gram_matrix_for_many_words() {
        let captions = 120; // at least 2 words each: over GRAM_FROM_WORDS
        assert!(captions * 2 > GRAM_FROM_WORDS);
        compare_with_tensors(captions);
    }

    #[test]
    fn caption_groups_cover_every_caption_once_in_order() {
        let mut captions = HostGraphs::new(1, 1);
        // 5 captions of 1,000 words: groups of two (2,000 ≤ 2,048), the last alone.
        captions.push(&vec![1.0; 5000], &vec![1.0; 5000], [5, 1000, 1, 1]);
        assert_eq!(Words::of(&captions).groups(), vec![0..2, 2..4, 4..5]);
    }
}
