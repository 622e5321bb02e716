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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn matching_diagonal_gives_low_loss_and_shuffled_high() {
        let device = Device::flex();
        let good = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], [3, 3]), &device);
        let bad = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], [3, 3]), &device);
        let t = Tensor::<1>::from_floats([0.1f32.ln()], &device);
        let lg = info_nce(good, t.clone()).into_scalar::<f32>();
        let lb = info_nce(bad, t).into_scalar::<f32>();
        // ln(1 + 2e^-10) ≈ 9.1e-5 for the perfect matrix; ≈ 10 for the shuffled one.
        assert!(lg < 1e-3, "{lg}");
        assert!(lb > 9.0, "{lb}");
    }
}
