//! Recall@K as the image–text matching papers report it (1K test: 1,000 images × 5 captions).
//!
//! i2t: for each image, rank every caption; the rank counted is that of the best of its ground-
//! truth captions. t2i: for each caption, rank every image. R@1/5/10 both ways, in percent, and
//! rSum, their sum. Also the nearest-rank percentile the benches and the calibration report.

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Recalls {
    pub i2t: [f64; 3],
    pub t2i: [f64; 3],
    pub rsum: f64,
}

pub const KS: [usize; 3] = [1, 5, 10];

/// `scores[i * n_captions + c]` is the score of image `i` with caption `c`; caption `c` belongs to
/// image `c / per_image`. Ties count against the ground truth (a pessimistic rank).
pub fn recalls(scores: &[f32], n_images: usize, per_image: usize) -> Recalls {
    let n_captions = n_images * per_image;
    assert_eq!(scores.len(), n_images * n_captions, "score matrix is not images × captions");
    let mut i2t = [0usize; 3];
    for i in 0..n_images {
        let row = &scores[i * n_captions..(i + 1) * n_captions];
        let best_gt = (i * per_image..(i + 1) * per_image).map(|c| row[c]).fold(f32::NEG_INFINITY, f32::max);
        // Rank of the best ground-truth caption: captions of other images scoring at least as high.
        let rank = row.iter().enumerate().filter(|&(c, &s)| c / per_image != i && s >= best_gt).count();
        count_hits(&mut i2t, rank);
    }
    let mut t2i = [0usize; 3];
    for c in 0..n_captions {
        let gt = c / per_image;
        let s_gt = scores[gt * n_captions + c];
        let rank = (0..n_images).filter(|&i| i != gt && scores[i * n_captions + c] >= s_gt).count();
        count_hits(&mut t2i, rank);
    }
    let pct = |hits: [usize; 3], n: usize| hits.map(|h| 100.0 * h as f64 / n as f64);
    let (i2t, t2i) = (pct(i2t, n_images), pct(t2i, n_captions));
    Recalls { i2t, t2i, rsum: i2t.iter().chain(&t2i).sum() }
}

/// The value at quantile `q` (0–1) of `sorted` (ascending), by nearest rank: index
/// `(n − 1)·q` rounded; None when `sorted` is empty.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last as f64 * q).round() as usize).copied()
}

fn count_hits(hits: &mut [usize; 3], rank: usize) {
    for (h, k) in hits.iter_mut().zip(KS) {
        if rank < k {
            *h += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_scores_give_full_recall() {
        // 12 images × 2 captions each; a caption scores 1 with its image, 0 elsewhere.
        let (n, per) = (12, 2);
        let scores: Vec<f32> =
            (0..n * n * per).map(|k| if (k % (n * per)) / per == k / (n * per) { 1.0 } else { 0.0 }).collect();
        let r = recalls(&scores, n, per);
        assert_eq!(r.i2t, [100.0; 3]);
        assert_eq!(r.t2i, [100.0; 3]);
        assert_eq!(r.rsum, 600.0);
    }

    #[test]
    fn best_of_the_ground_truth_captions_counts_for_i2t() {
        // 2 images × 2 captions. Image 0: its caption 1 is the top caption, its caption 0 the worst.
        let scores = vec![
            0.0, 0.9, 0.5, 0.4, // image 0 vs captions 0..3
            0.1, 0.2, 0.8, 0.3, // image 1
        ];
        let r = recalls(&scores, 2, 2);
        assert_eq!(r.i2t[0], 100.0);
        // t2i: caption 0 prefers image 1 (0.1 > 0.0) and caption 3 image 0 (0.4 > 0.3): misses at R@1.
        assert_eq!(r.t2i[0], 50.0);
        assert_eq!(r.t2i[1], 100.0);
    }

    #[test]
    fn ties_are_counted_pessimistically() {
        let scores = vec![0.5; 2 * 2];
        let r = recalls(&scores, 2, 1);
        assert_eq!(r.i2t[0], 0.0);
        assert_eq!(r.t2i[0], 0.0);
    }
}
