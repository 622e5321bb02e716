//! Gradient × activation on a finer map: per cell of the 28×28 activation entering
//! EfficientNet's fourth stage, how much the activation there moves a word's alignment R_t (the
//! gradient times the activation, summed over channels; only increases kept). Finer than the 7×7
//! regions SHAN aligns, and one forward and backward pass for all the words of a caption (the
//! photo repeated once per word piece, each copy's objective one piece's alignment).
//!
//! Then each word's map is made its own ([`contrast`]): where every word of "a man in a red
//! shirt" lights the man, "shirt" keeps the part the other words light less.
//!
//! Measured on the grounding set (`alignscope grounding --method gradient`): the activation
//! entering block 5 (28×28) pointed best, 53.6 % before the contrast, 56.3 % with it; block 3
//! (56×56) 52.5 %, block 8 and block 11 (14×14) 51.0 % and 52.5 %; blocks 3, 5 and 8 summed
//! 54.8 % (at three times the cost); the photo and its mirror image averaged 52.1 %; any blur of
//! the 28×28 map lowered it (σ = 1 cell: 49.8 %); Grad-CAM's channel-pooled gradient on block
//! 11: 26.4 %.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::features::efficientnet::EfficientNetLite;
use crate::features::values;
use crate::nets::shan::{CaptionBatch, ShanNet};

/// The block whose input is the map (28×28 × 40 channels at 224 px).
pub const BLOCK: usize = 5;

/// The backbone and SHAN again, on an autodiff device.
pub struct Gradient {
    backbone: EfficientNetLite,
    net: ShanNet,
    device: Device,
}

impl Gradient {
    /// The backbone and SHAN from their files (those the runtime loaded) on `device`'s autodiff twin.
    pub fn load(device: &Device, visual_path: &Path, weights_path: &Path, visual_name: &str) -> anyhow::Result<Self> {
        let device = device.clone().autodiff();
        let backbone = EfficientNetLite::load(visual_path, &device)?;
        let net = crate::nets::shan::load(weights_path, visual_name, &device)?;
        anyhow::ensure!(net.visual.first_block > BLOCK, "SHAN's top starts before block {BLOCK}");
        Ok(Self { backbone, net, device })
    }

    /// Per word piece of one caption (`batch`: it through MiniLM's frozen layers) its map,
    /// row-major over the `grid`×`grid` `activation` (one photo's, entering [`BLOCK`], on the
    /// inference device); returns the maps and the grid.
    /// The photo's `objects` regions ([1, k, 1280]), if any, follow its cells as constants.
    pub fn piece_maps(
        &self,
        activation: Tensor<4>,
        batch: &CaptionBatch,
        objects: Option<&Tensor<3>>,
    ) -> anyhow::Result<(Vec<Vec<f32>>, usize)> {
        let pieces = batch.lengths.first().map_or(0, |l| l.saturating_sub(2));
        anyhow::ensure!(batch.lengths.len() == 1 && pieces > 0, "one caption with words is needed");
        // The frozen parts run on the inference device; their outputs enter the autodiff graph.
        let batch = batch.clone();
        let hidden = Tensor::<2>::from_data(batch.hidden.into_data(), &self.device);
        let (words, mask) = self.net.words(CaptionBatch { hidden, lengths: batch.lengths, tokens: batch.tokens });
        let txt = self.net.shan.encode_texts(words, mask);
        let [_, _, h, w] = activation.dims();
        let copies = Tensor::<4>::from_data(activation.into_data(), &self.device).repeat_dim(0, pieces).require_grad();
        let mut entering = copies.clone();
        for block in &self.backbone.blocks[BLOCK..self.net.visual.first_block] {
            entering = block.forward(entering);
        }
        let mut regions = self.net.regions(entering);
        if let Some(o) = objects {
            let o = Tensor::<3>::from_data(o.clone().into_data(), &self.device).repeat_dim(0, pieces);
            regions = Tensor::cat(vec![regions, o], 1);
        }
        let img = self.net.shan.encode_images(regions);
        let (_, attention) = self.net.shan.score_with_attention(&img, &txt);
        let pick: Vec<f32> = (0..pieces).flat_map(|i| (0..pieces).map(move |p| f32::from(u8::from(i == p)))).collect();
        let pick = Tensor::<3>::from_data(TensorData::new(pick, [pieces, 1, pieces]), &self.device);
        let grads = (attention.word_alignment * pick).sum().backward();
        let grad = copies.grad(&grads).ok_or_else(|| anyhow::anyhow!("no gradient reached the activation"))?;
        let map = (copies.inner() * grad).sum_dim(1).clamp_min(0.0).reshape([pieces, h * w]);
        let v = values(map);
        Ok(((0..pieces).map(|p| v[p * h * w..(p + 1) * h * w].to_vec()).collect(), h))
    }
}

/// How much of the other content words' mean map a word's map loses in [`contrast`] (chosen on
/// the grounding set: 0.4–1.0 all gained 1.5–3.5 points over none, 0.5 on both halves of it).
pub const CONTRAST: f32 = 0.5;

/// Each word's map less [`CONTRAST`] × the mean of the other content words' maps, every map first
/// scaled to sum 1 (so a map's values are shares of it), negatives dropped. A caption whose words
/// are all function words, or a single word, keeps its maps as shares.
pub fn contrast(words: &[(String, Vec<f32>)]) -> Vec<Vec<f32>> {
    let shares: Vec<Vec<f32>> = words
        .iter()
        .map(|(_, m)| {
            let total: f32 = m.iter().filter(|v| v.is_finite()).sum();
            m.iter().map(|v| if total > 0.0 { v / total } else { 0.0 }).collect()
        })
        .collect();
    let content = super::words::content_words(words.iter().map(|(w, _)| w.as_str()));
    (0..words.len())
        .map(|j| {
            let others: Vec<usize> = content.iter().copied().filter(|&o| o != j).collect();
            let k = shares[j].len();
            let rest = super::words::piece_mean(&others, k, |o, i| shares[o].get(i).copied().unwrap_or(0.0));
            let keep = if others.is_empty() { 0.0 } else { CONTRAST };
            shares[j].iter().zip(&rest).map(|(v, r)| (v - keep * r).max(0.0)).collect()
        })
        .collect()
}

/// Each word of `tokenized` (as typed) with its map over the `fine`×`fine` grid: its pieces'
/// maps averaged, then [`contrast`]ed with the other words'.
pub fn word_maps(
    tokenized: &crate::features::tokenizer::Tokenized,
    piece_maps: &[Vec<f32>],
    fine: usize,
) -> Vec<(String, Vec<f32>)> {
    use super::words::{piece_mean, word_pieces};
    let words: Vec<(String, Vec<f32>)> = word_pieces(tokenized)
        .into_iter()
        .map(|(w, mine)| {
            (w, piece_mean(&mine, fine * fine, |p, i| piece_maps.get(p).and_then(|m| m.get(i)).copied().unwrap_or(0.0)))
        })
        .collect();
    let contrasted = contrast(&words);
    words.into_iter().zip(contrasted).map(|((w, _), m)| (w, m)).collect()
}

/// A `grid`×`grid` map averaged down to `to`×`to` cells (`grid` a multiple of `to`).
pub fn pool(map: &[f32], grid: usize, to: usize) -> Vec<f32> {
    let f = (grid / to.max(1)).max(1);
    (0..to * to)
        .map(|cell| {
            let (r, c) = (cell / to, cell % to);
            let sum: f32 =
                (0..f).flat_map(|dr| (0..f).map(move |dc| (r * f + dr) * grid + c * f + dc)).map(|i| map[i]).sum();
            sum / (f * f) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn contrast_keeps_what_the_other_words_do_not_light() {
        let w = |s: &str, m: [f32; 4]| (s.to_string(), m.to_vec());
        // "man" lights cells 0 and 1; "shirt" lights cell 1 and a little of 0; "a" is not a content word.
        let words = [w("a", [9.0, 9.0, 9.0, 9.0]), w("man", [2.0, 2.0, 0.0, 0.0]), w("shirt", [1.0, 3.0, 0.0, 0.0])];
        let c = super::contrast(&words);
        assert_eq!(c[1], vec![0.5 - 0.125, 0.5 - 0.375, 0.0, 0.0], "man less half of shirt's shares");
        assert_eq!(c[2], vec![0.0, 0.75 - 0.25, 0.0, 0.0], "shirt keeps cell 1");
        assert_eq!(c[0], vec![0.0625, 0.0, 0.25, 0.25], "a function word loses half the content words' mean");
        let single = super::contrast(&[w("dog", [1.0, 3.0, 0.0, 0.0])]);
        assert_eq!(single[0], vec![0.25, 0.75, 0.0, 0.0], "a lone word keeps its shares");
    }

    #[test]
    fn pools_blocks_of_cells() {
        let map: Vec<f32> = (0..16).map(|i| i as f32).collect();
        assert_eq!(super::pool(&map, 4, 2), vec![2.5, 4.5, 10.5, 12.5]);
    }
}
