//! DSRAN's scores and loss for the shared training loop on the frozen backbones.

use burn::tensor::{Device, Tensor};

use super::frozen::{FrozenNet, scatter};
use super::splits::FrozenSplit;
use crate::features::values;
use crate::model::dsran::Dsran;
use crate::model::loss::{Loss, contrastive};
use crate::model::matcher::Matcher;

impl FrozenNet for Dsran {
    fn batch_loss(
        &self,
        data: &FrozenSplit,
        images: &[usize],
        captions: &[usize],
        loss: Loss,
        epoch: usize,
        device: &Device,
    ) -> Tensor<1> {
        let scores = self.score_batch(&data.image_batch(images, device), &data.caption_batch(captions, device)).total;
        contrastive(loss, scores, self.log_temperature.val(), epoch)
    }

    /// Cosines of the pair-independent embeddings (captions in length-sorted groups).
    fn score_split(&self, data: &FrozenSplit, device: &Device) -> Vec<f32> {
        let (n_img, n_cap) = (data.len(), data.len() * 5);
        let images: Vec<usize> = (0..n_img).collect();
        let img =
            Tensor::cat(images.chunks(64).map(|rows| self.embed_images(data.image_batch(rows, device))).collect(), 0);
        let mut order: Vec<usize> = (0..n_cap).collect();
        order.sort_by_key(|&c| data.words[c].len());
        let mut scores = vec![0.0f32; n_img * n_cap];
        for caps in order.chunks(256) {
            let (words, mask) = data.caption_batch(caps, device);
            scatter(
                &mut scores,
                &values(img.clone().matmul(self.embed_texts(words, mask).transpose())),
                0,
                n_img,
                caps,
                n_cap,
            );
        }
        scores
    }
}
