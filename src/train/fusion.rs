//! Late fusion of SHAN's scores with a tuned global dual encoder's, weights chosen on dev and
//! applied to test: does the hierarchy carry information that a second pooled embedding does
//! not? The control is SHAN's own pair-independent embedding fused with the same global model.

use burn::tensor::Device;

use super::shan::score_split;
use super::splits::FragmentSplit;
use crate::engine::jobs::CancelToken;
use crate::engine::recall::{Recalls, recalls};
use crate::nets::global_tuned::TunedGlobal;
use crate::nets::shan::ShanNet;

/// Every score matrix of a split the fusions draw on: SHAN's L2L, G2L, G2G and embedding, then
/// the global model's.
pub struct SplitScores {
    pub images: usize,
    pub scores: [Vec<f32>; 5],
}

pub const SCORE_NAMES: [&str; 5] = ["L2L", "G2L", "G2G", "SHAN embedding", "global"];
const L2L: usize = 0;
const EMBEDDING: usize = 3;
const GLOBAL: usize = 4;

pub fn split_scores(
    shan: &ShanNet,
    global: &TunedGlobal,
    data: &FragmentSplit,
    device: &Device,
    cancel: &CancelToken,
) -> anyhow::Result<SplitScores> {
    let [l2l, g2l, g2g, embedding] = score_split(shan, data, device, cancel, &|_, _| {})?;
    let global = super::global::scores(global, data, device);
    Ok(SplitScores { images: data.len(), scores: [l2l, g2l, g2g, embedding, global] })
}

/// One fusion: `base + a · add[0] + b · add[1]` (score indices), `a` and `b` chosen on dev.
pub struct Fused {
    pub label: String,
    pub weights: Vec<f32>,
    pub dev: Recalls,
    pub test: Recalls,
}

/// The weights tried for each added score (the base's weight is 1).
const GRID: [f32; 9] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0];

/// The fusions worth comparing: the fragment level with SHAN's embedding, with the global model,
/// with both, and the control (SHAN's embedding with the global model).
pub fn fusions(dev: &SplitScores, test: &SplitScores) -> Vec<Fused> {
    [(L2L, vec![EMBEDDING]), (L2L, vec![GLOBAL]), (EMBEDDING, vec![GLOBAL]), (L2L, vec![EMBEDDING, GLOBAL])]
        .into_iter()
        .map(|(base, added)| fuse(dev, test, base, &added))
        .collect()
}

fn combine(split: &SplitScores, base: usize, added: &[usize], weights: &[f32]) -> Recalls {
    let s = &split.scores;
    let fused: Vec<f32> = (0..s[base].len())
        .map(|i| s[base][i] + added.iter().zip(weights).map(|(&k, w)| w * s[k][i]).sum::<f32>())
        .collect();
    recalls(&fused, split.images, 5)
}

fn fuse(dev: &SplitScores, test: &SplitScores, base: usize, added: &[usize]) -> Fused {
    // Every point of the grid over the added scores' weights (odometer order; point 0 is the
    // base alone), the first with the highest dev rSum kept.
    let point =
        |p: usize| -> Vec<f32> { (0..added.len()).map(|d| GRID[p / GRID.len().pow(d as u32) % GRID.len()]).collect() };
    let (mut weights, mut dev_recalls) = (point(0), combine(dev, base, added, &point(0)));
    for p in 1..GRID.len().pow(added.len() as u32) {
        let r = combine(dev, base, added, &point(p));
        if r.rsum > dev_recalls.rsum {
            (weights, dev_recalls) = (point(p), r);
        }
    }
    let label = std::iter::once(SCORE_NAMES[base].to_string())
        .chain(added.iter().zip(&weights).map(|(&k, w)| format!("{w} × {}", SCORE_NAMES[k])))
        .collect::<Vec<_>>()
        .join(" + ");
    Fused { label, test: combine(test, base, added, &weights), dev: dev_recalls, weights }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 images × 10 captions where the base score ranks everything wrong and the added score
    /// right: the dev-chosen weight must be positive and lift recall on test.
    #[test]
    fn a_helpful_score_gets_weight_and_lifts_recall() {
        let n = 2;
        let truth = |i: usize, c: usize| if c / 5 == i { 1.0 } else { 0.0 };
        let mut scores: [Vec<f32>; 5] = Default::default();
        for (k, s) in scores.iter_mut().enumerate() {
            *s = (0..n * n * 5)
                .map(|x| (x / (n * 5), x % (n * 5)))
                .map(|(i, c)| if k == GLOBAL { truth(i, c) } else { 0.5 * (1.0 - truth(i, c)) })
                .collect();
        }
        let split = SplitScores { images: n, scores };
        let fused = fuse(&split, &split, L2L, &[GLOBAL]);
        assert!(fused.weights[0] > 0.5, "weights {:?}", fused.weights);
        assert_eq!(fused.test.rsum, 600.0);
        assert!(combine(&split, L2L, &[GLOBAL], &[0.0]).rsum < 600.0);
        assert!(fused.label.starts_with("L2L + "), "{}", fused.label);
    }
}
