//! One face for every matching network (SHAN, DSRAN, RACG, the global dual encoder): score a
//! batch of images × captions, report per-level scores and word × region attention where the
//! network has them, and declare what it can explain. Inputs differ per network (SHAN's fine-tuned
//! sides, DSRAN's frozen regions, RACG's graphs, pooled vectors), so they are associated types.

use burn::tensor::Tensor;

use super::dsran::Dsran;
use super::global::GlobalModel;
use super::racg::{Graph, Racg};
use super::shan::{ImageSide, Shan, TextSide};

/// What a network can show of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Explains {
    /// Each word's attention over the regions (depends on the pair).
    WordRegions,
    /// Its global node's graph attention over the regions (depends on the photo only).
    GlobalNodeRegions,
    /// Its score per level, beside the final one.
    Levels,
}

/// Every image × caption of a batch under one network.
pub struct Scored {
    /// The final score [Bi, Bc].
    pub total: Tensor<2>,
    /// Each level's score [Bi, Bc] by name, for networks with levels (SHAN: l2l, g2l, g2g).
    pub levels: Vec<(&'static str, Tensor<2>)>,
    /// Each word's attention over the regions [Bi, Bc, n, k] (rows sum to 1), where it has one.
    pub word_regions: Option<Tensor<4>>,
}

impl Scored {
    fn total(total: Tensor<2>) -> Self {
        Self { total, levels: Vec::new(), word_regions: None }
    }
}

pub trait Matcher {
    type Images;
    type Captions;
    /// Its name in the app, the CLI and eval's JSON.
    const NAME: &'static str;
    /// What its explanation shows (empty: nothing beyond the score).
    const EXPLAINS: &'static [Explains];
    fn score_batch(&self, images: &Self::Images, captions: &Self::Captions) -> Scored;
}

impl Matcher for Shan {
    type Images = ImageSide;
    type Captions = TextSide;
    const NAME: &'static str = "shan";
    const EXPLAINS: &'static [Explains] = &[Explains::WordRegions, Explains::Levels];
    fn score_batch(&self, images: &ImageSide, captions: &TextSide) -> Scored {
        let (levels, attention) = self.score_with_attention(images, captions);
        Scored {
            total: levels.total(self.weights),
            levels: vec![("l2l", levels.l2l), ("g2l", levels.g2l), ("g2g", levels.g2g)],
            word_regions: Some(attention.beta.swap_dims(2, 3)),
        }
    }
}

impl Matcher for Racg {
    type Images = Graph;
    type Captions = Graph;
    const NAME: &'static str = "racg";
    const EXPLAINS: &'static [Explains] = &[Explains::WordRegions, Explains::Levels];
    fn score_batch(&self, images: &Graph, captions: &Graph) -> Scored {
        let (levels, attention) =
            self.levels((images.heads.clone(), images.mask.clone()), (captions.heads.clone(), captions.mask.clone()));
        Scored {
            total: levels.total(self.graph_share),
            levels: vec![("node", levels.node), ("graph", levels.graph)],
            word_regions: Some(attention),
        }
    }
}

impl Matcher for Dsran {
    /// Region features [B, k, image_dim].
    type Images = Tensor<3>;
    /// Word features [B, n, text_dim] and their mask [B, n].
    type Captions = (Tensor<3>, Tensor<2>);
    const NAME: &'static str = "dsran";
    const EXPLAINS: &'static [Explains] = &[Explains::GlobalNodeRegions];
    fn score_batch(&self, images: &Tensor<3>, (words, mask): &(Tensor<3>, Tensor<2>)) -> Scored {
        Scored::total(
            self.embed_images(images.clone()).matmul(self.embed_texts(words.clone(), mask.clone()).transpose()),
        )
    }
}

impl Matcher for GlobalModel {
    /// Pooled image features [B, image_dim].
    type Images = Tensor<2>;
    /// Mean-pooled token features [B, text_dim].
    type Captions = Tensor<2>;
    const NAME: &'static str = "global";
    const EXPLAINS: &'static [Explains] = &[];
    fn score_batch(&self, images: &Tensor<2>, captions: &Tensor<2>) -> Scored {
        Scored::total(self.embed_images(images.clone()).matmul(self.embed_texts(captions.clone()).transpose()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::values;
    use burn::module::Module as _;
    use burn::tensor::{Device, Distribution, TensorData};

    /// The trait's contract on one batch: totals [Bi, Bc] and finite, levels named and shaped like
    /// the total, word × region attention present exactly when declared, each row a distribution
    /// over the regions. Returns the total.
    fn contract<M: Matcher>(
        net: &M,
        images: &M::Images,
        captions: &M::Captions,
        [bi, bc, n, k]: [usize; 4],
    ) -> Vec<f32> {
        let scored = net.score_batch(images, captions);
        assert_eq!(scored.total.dims(), [bi, bc], "{}", M::NAME);
        assert_eq!(!scored.levels.is_empty(), M::EXPLAINS.contains(&Explains::Levels), "{}", M::NAME);
        for (name, level) in &scored.levels {
            assert_eq!(level.dims(), [bi, bc], "{} {name}", M::NAME);
        }
        assert_eq!(scored.word_regions.is_some(), M::EXPLAINS.contains(&Explains::WordRegions), "{}", M::NAME);
        if let Some(a) = scored.word_regions {
            assert_eq!(a.dims(), [bi, bc, n, k], "{}", M::NAME);
            // Padded words have no attention to check; the first word of every caption is real.
            let sums = values(a.sum_dim(3));
            assert!(sums.chunks(n).all(|words| (words[0] - 1.0).abs() < 1e-4), "{}: {sums:?}", M::NAME);
        }
        let total = values(scored.total);
        assert!(total.iter().all(|s| s.is_finite()), "{}: {total:?}", M::NAME);
        total
    }

    #[test]
    fn every_network_keeps_the_matcher_contract() {
        let device = Device::flex();
        let regions = Tensor::<3>::random([3, 4, 12], Distribution::Normal(0.0, 1.0), &device);
        let words = Tensor::<3>::random([2, 5, 10], Distribution::Normal(0.0, 1.0), &device);
        let mask = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0], [2, 5]),
            &device,
        );
        let shape = [3, 2, 5, 4];

        let shan = crate::model::shan::ShanConfig::new()
            .with_image_dim(12)
            .with_text_dim(10)
            .with_joint_dim(8)
            .with_pool_hidden(4)
            .init(&device);
        contract(&shan, &shan.encode_images(regions.clone()), &shan.encode_texts(words.clone(), mask.clone()), shape);

        let racg = crate::model::racg::RacgConfig::new()
            .with_image_dim(12)
            .with_text_dim(10)
            .with_dim(16)
            .with_heads(4)
            .init(&device)
            .valid();
        let (img, txt) = (racg.encode_images(regions.clone()), racg.encode_texts(words.clone(), mask.clone()));
        let total = contract(&racg, &img, &txt, shape);
        assert_eq!(total, values(racg.score(&img, &txt).0), "the trait scores as the network does");

        let dsran = crate::model::dsran::DsranConfig::new()
            .with_image_dim(12)
            .with_text_dim(10)
            .with_dim(16)
            .with_heads(4)
            .init(&device)
            .valid();
        contract(&dsran, &regions, &(words.clone(), mask.clone()), shape);

        let global = crate::model::global::GlobalConfig::new()
            .with_image_dim(12)
            .with_text_dim(10)
            .with_joint_dim(8)
            .init(&device);
        let sentences = words.mean_dim(1).reshape([2, 10]);
        contract(&global, &regions.mean_dim(1).reshape([3, 12]), &sentences, shape);
    }
}
