//! Contrastive losses over a batch's image × caption score matrix (row i, column i = a true pair).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Symmetric InfoNCE: cross-entropy of each image over the batch's captions and of each caption
/// over the images, at temperature exp(`log_temperature`).
pub fn info_nce(scores: Tensor<2>, log_temperature: Tensor<1>) -> Tensor<1> {
    let [b, _] = scores.dims();
    let logits = scores / log_temperature.exp().unsqueeze::<2>();
    let eye = Tensor::<2, Int>::eye(b, &logits.device()).float();
    let i2t = (log_softmax(logits.clone(), 1) * eye.clone()).sum();
    let t2i = (log_softmax(logits, 0) * eye).sum();
    (i2t + t2i) / (-2.0 * b as f64)
}

/// The grounding term's score of every image × caption pair: each word's best region (the
/// largest cosine of its fragment with the image's region fragments), averaged over the
/// caption's words. `regions` [B_i, k, d] and `words` [B_c, n, d] are unit rows; `mask`
/// [B_c, n] is 1 for words. Trained contrastively, it asks every word to find its own image's
/// region better than any region of the other images: attention that points.
pub fn word_region_scores(regions: Tensor<3>, words: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
    let [bi, k, d] = regions.dims();
    let [bc, n, _] = words.dims();
    // [B_i·k, B_c·n] cosines, then the best region per (image, caption word).
    let cos = regions.reshape([bi * k, d]).matmul(words.reshape([bc * n, d]).transpose());
    let best = cos.reshape([bi, k, bc * n]).max_dim(1).reshape([bi, bc, n]);
    let counts = mask.clone().sum_dim(1).clamp_min(1.0).reshape([1, bc]);
    (best * mask.unsqueeze::<3>()).sum_dim(2).reshape([bi, bc]) / counts
}

/// Which contrastive loss trains a network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Loss {
    /// Symmetric InfoNCE with a learned temperature (recipe B).
    #[default]
    InfoNce,
    /// VSE++'s hinge triplet with the hardest negative in the batch, margin 0.2; the first epoch
    /// sums over all negatives (VSE∞'s warm-up).
    Hinge,
}

impl std::str::FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "infonce" => Ok(Self::InfoNce),
            "hinge" => Ok(Self::Hinge),
            other => Err(format!("unknown loss `{other}` (infonce, hinge)")),
        }
    }
}

/// VSE++'s margin.
pub const MARGIN: f64 = 0.2;

/// Hinge triplet loss both ways, [m − S(i,i) + S(i,j)]₊ over captions j and [m − S(j,j) + S(i,j)]₊
/// over images i, the hardest negative of each row and column (or every negative, summed), per pair.
pub fn hinge(scores: Tensor<2>, margin: f64, all_negatives: bool) -> Tensor<1> {
    let [b, _] = scores.dims();
    let eye = Tensor::<2, Int>::eye(b, &scores.device()).float();
    let off_diagonal = eye.clone().neg() + 1.0;
    let positives = scores.clone() * eye;
    // Row i: the true pair's score S(i,i); column j: S(j,j).
    let (row_true, column_true) = (positives.clone().sum_dim(1), positives.sum_dim(0));
    let caption_cost = (scores.clone() - row_true + margin).clamp_min(0.0) * off_diagonal.clone();
    let image_cost = (scores - column_true + margin).clamp_min(0.0) * off_diagonal;
    let total = if all_negatives {
        caption_cost.sum() + image_cost.sum()
    } else {
        caption_cost.max_dim(1).sum() + image_cost.max_dim(0).sum()
    };
    total / b as f64
}

/// A batch's loss under `loss` (the hinge warms up over all negatives in epoch 1).
pub fn contrastive(loss: Loss, scores: Tensor<2>, log_temperature: Tensor<1>, epoch: usize) -> Tensor<1> {
    match loss {
        Loss::InfoNce => info_nce(scores, log_temperature),
        Loss::Hinge => hinge(scores, MARGIN, epoch <= 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn word_region_scores_average_each_words_best_region_over_unmasked_words() {
        let device = Device::flex();
        // Image 0 has regions along x and y; image 1 along z only (d = 3, k = 2).
        let regions = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0], [2, 2, 3]),
            &device,
        );
        // Caption 0: words x, y; caption 1: word x and a padding row (masked).
        let words = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0], [2, 2, 3]),
            &device,
        );
        let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 1.0, 1.0, 0.0], [2, 2]), &device);
        let s = crate::features::values(word_region_scores(regions, words, mask));
        // Image 0: both words of caption 0 find their region (1), caption 1's x too (1; the
        // padding's z is masked). Image 1: no word finds a region (0).
        assert_eq!(s, vec![1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn matching_diagonal_gives_low_loss_and_shuffled_high() {
        let device = Device::flex();
        let good = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], [3, 3]),
            &device,
        );
        let bad = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], [3, 3]),
            &device,
        );
        let t = Tensor::<1>::from_floats([0.1f32.ln()], &device);
        let lg = info_nce(good, t.clone()).into_scalar::<f32>();
        let lb = info_nce(bad, t).into_scalar::<f32>();
        // ln(1 + 2e^-10) ≈ 9.1e-5 for the perfect matrix; ≈ 10 for the shuffled one.
        assert!(lg < 1e-3, "{lg}");
        assert!(lb > 9.0, "{lb}");
    }

    #[test]
    fn hinge_matches_a_hand_computed_batch() {
        let device = Device::flex();
        // S(1,1) = 0.9, S(2,2) = 0.3. Caption costs: row 1 → [0.2 − 0.9 + 0.5]₊ = 0, row 2 →
        // [0.2 − 0.3 + 0.8]₊ = 0.7; image costs: column 1 → [0.2 − 0.9 + 0.8]₊ = 0.1, column 2 →
        // [0.2 − 0.3 + 0.5]₊ = 0.4. Sum 1.2 over 2 pairs.
        let s = Tensor::<2>::from_data(TensorData::new(vec![0.9f32, 0.5, 0.8, 0.3], [2, 2]), &device);
        let hardest = hinge(s.clone(), 0.2, false).into_scalar::<f32>();
        assert!((hardest - 0.6).abs() < 1e-6, "{hardest}");
        // Three pairs: row 1 has two violating negatives; hardest keeps one, all sums both.
        let s = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, 0.4, 0.6, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], [3, 3]),
            &device,
        );
        // Rows: [0.1, 0.3] → 0.3 | 0 | 0. Columns: col 1 → [0.2−0.5+0]₊ twice = 0; col 2 → [0.2−1+0.4]₊ = 0; col 3 → [0.2−1+0.6]₊ = 0.
        let hardest = hinge(s.clone(), 0.2, false).into_scalar::<f32>();
        let all = hinge(s, 0.2, true).into_scalar::<f32>();
        assert!((hardest - 0.3 / 3.0).abs() < 1e-6, "{hardest}");
        assert!((all - 0.4 / 3.0).abs() < 1e-6, "{all}");
    }
}
