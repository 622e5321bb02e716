//! A captioned split's scores under the default ranker, from both models' pair-independent
//! embeddings: Recall@K as `eval --model default` reports it (image to text by the fused cosine,
//! text to image normalised against the query bank), and each pair's ranks both ways, as the
//! dataset browser shows them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::fused::QueryBank;
use super::jobs::{Job, Waker};
use super::recall::{Recalls, recalls};
use super::runtime::Runtime;
use super::search::LoadedIndex;
use crate::data::caption_cache;
pub use crate::data::caption_cache::CaptionEmbedding;

/// Unit embeddings of images [n, dim] and captions [m, dim], row-major.
pub struct Embedded {
    pub dim: usize,
    pub images: Vec<f32>,
    pub captions: Vec<f32>,
}

impl Embedded {
    fn empty(dim: usize) -> Self {
        Self { dim, images: Vec::new(), captions: Vec::new() }
    }
}

/// Both pair-independent embeddings of a split (or of the bank's captions, with no images).
pub struct SplitEmbeddings {
    pub images: usize,
    pub shan: Embedded,
    pub global: Embedded,
}

impl SplitEmbeddings {
    pub fn captions(&self) -> usize {
        self.shan.captions.len() / self.shan.dim.max(1)
    }
}

/// Every image × caption cosine of one model.
fn cosines(e: &Embedded) -> Vec<f32> {
    let n = e.images.len() / e.dim;
    let m = e.captions.len() / e.dim;
    let mut out = vec![0.0f32; n * m];
    use rayon::prelude::*;
    out.par_chunks_mut(m).zip(e.images.par_chunks(e.dim)).for_each(|(row, img)| {
        for (o, cap) in row.iter_mut().zip(e.captions.chunks_exact(e.dim)) {
            *o = super::fused::dot(img, cap);
        }
    });
    out
}

/// A split's cosines under both models, and each photo's place in the bank for normalising.
pub struct SplitScores {
    pub images: usize,
    pub shan: Vec<f32>,
    pub global: Vec<f32>,
    e: SplitEmbeddings,
}

impl SplitScores {
    pub fn new(e: SplitEmbeddings) -> Self {
        Self { images: e.images, shan: cosines(&e.shan), global: cosines(&e.global), e }
    }

    /// The embeddings the scores come from.
    pub fn embeddings(&self) -> &SplitEmbeddings {
        &self.e
    }

    pub fn fused(&self, w: f32) -> Vec<f32> {
        self.shan.iter().zip(&self.global).map(|(s, g)| s + w * g).collect()
    }

    /// The default ranker's scores for ranking photos by caption (images × captions).
    pub fn normalised(&self, bank: &QueryBank) -> Vec<f32> {
        let m = self.images * 5;
        let norms = normalisers(&self.e, bank);
        (0..self.images * m).map(|k| bank.score(self.shan[k], self.global[k], norms[k / m])).collect()
    }

    /// Percentiles (1, 5, 10, 25, 50) of the default's score of each caption's own photo, from
    /// [`Self::normalised`]'s scores: where true pairs lie on the score the app shows (its
    /// "weak match" line comes from here).
    pub fn true_pair_percentiles(&self, normalised: &[f32]) -> Vec<(u32, f32)> {
        let m = self.images * 5;
        let mut own: Vec<f32> = (0..m).filter_map(|c| normalised.get((c / 5) * m + c).copied()).collect();
        own.sort_by(f32::total_cmp);
        [1u32, 5, 10, 25, 50]
            .iter()
            .map(|&q| (q, crate::engine::recall::percentile(&own, q as f64 / 100.0).unwrap_or(0.0)))
            .collect()
    }

    /// Recall@K of the default: i2t from the fused cosine, t2i normalised.
    pub fn default_recalls(&self, bank: &QueryBank) -> Recalls {
        self.default_recalls_from(bank, &self.normalised(bank))
    }

    /// [`Self::default_recalls`] with [`Self::normalised`]'s scores already computed.
    pub fn default_recalls_from(&self, bank: &QueryBank, normalised: &[f32]) -> Recalls {
        let raw = recalls(&self.fused(bank.global_weight), self.images, 5);
        let normalised = recalls(normalised, self.images, 5);
        Recalls { i2t: raw.i2t, t2i: normalised.t2i, rsum: raw.i2t.iter().chain(&normalised.t2i).sum() }
    }

    /// Image `image`'s five pairs as 1-based ranks (ties count against the pair): the image among
    /// all images for each of its captions by `normalised` (the default's text-to-image score),
    /// and each caption among all the split's captions for the image by the fused cosine (the
    /// scores [`Self::default_recalls_from`] ranks by).
    pub fn pair_ranks(&self, image: usize, normalised: &[f32], global_weight: f32) -> Vec<(usize, usize)> {
        let m = self.images * 5;
        let row = |i: usize| i * m..(i + 1) * m;
        let fused: Vec<f32> =
            self.shan[row(image)].iter().zip(&self.global[row(image)]).map(|(s, g)| s + global_weight * g).collect();
        (image * 5..image * 5 + 5)
            .map(|c| {
                let gt = normalised[image * m + c];
                let t2i = 1 + (0..self.images).filter(|&i| i != image && normalised[i * m + c] >= gt).count();
                let i2t = 1 + fused.iter().enumerate().filter(|&(k, &s)| k != c && s >= fused[c]).count();
                (t2i, i2t)
            })
            .collect()
    }
}

/// Each photo's normaliser under `bank`.
pub fn normalisers(e: &SplitEmbeddings, bank: &QueryBank) -> Vec<f32> {
    let (ds, dg) = (e.shan.dim, e.global.dim);
    (0..e.images)
        .map(|i| bank.normaliser(&e.shan.images[i * ds..(i + 1) * ds], &e.global.images[i * dg..(i + 1) * dg]))
        .collect()
}

/// Splits above this many images get no Recall@K in the window: three images × captions score
/// matrices (about 240 MB at this size) are held for the pair ranks.
pub const MOST_IMAGES: usize = 2000;

/// A split's scores under the default ranker, from its photos' index rows and its captions'
/// embeddings: what the dataset browser shows.
pub struct DefaultSplit {
    scores: SplitScores,
    normalised: Vec<f32>,
    global_weight: f32,
    /// Per split image, its row in `scores` (None: not indexed, or a caption not embedded).
    rows: Vec<Option<usize>>,
    pub recalls: Recalls,
}

impl DefaultSplit {
    /// `images` in split order (absolute paths) with their five captions' embeddings each
    /// (image i's at 5i..5i+5), scored from `index`'s rows for them. Images the index does not hold
    /// or with a caption not embedded are left out (`images_scored` says how many count).
    pub fn new(
        index: &LoadedIndex,
        images: &[PathBuf],
        captions: &[Option<CaptionEmbedding>],
        bank: &QueryBank,
    ) -> Result<Self, String> {
        let by_path: HashMap<PathBuf, usize> =
            index.paths.iter().enumerate().map(|(r, p)| (index.root.join(p), r)).collect();
        let held: Vec<(usize, usize)> = images
            .iter()
            .enumerate()
            .filter(|(i, _)| (i * 5..i * 5 + 5).all(|c| captions.get(c).is_some_and(Option::is_some)))
            .filter_map(|(i, p)| Some((i, *by_path.get(p)?)))
            .collect();
        if held.is_empty() {
            return Err("no photo of the split is indexed with its five captions embedded".into());
        }
        if held.len() > MOST_IMAGES {
            return Err(format!("{} images: Recall@K is computed here for splits of up to {MOST_IMAGES}", held.len()));
        }
        let mut rows = vec![None; images.len()];
        let (mut shan, mut global) = (Embedded::empty(index.dim), Embedded::empty(index.global_dim));
        for (row, &(i, r)) in held.iter().enumerate() {
            rows[i] = Some(row);
            shan.images.extend_from_slice(&index.embeddings[r * index.dim..(r + 1) * index.dim]);
            global.images.extend_from_slice(&index.globals[r * index.global_dim..(r + 1) * index.global_dim]);
            for (s, g) in captions[i * 5..i * 5 + 5].iter().flatten() {
                if s.len() != index.dim || g.len() != index.global_dim {
                    return Err("the captions were embedded by other models than the index's".into());
                }
                shan.captions.extend_from_slice(s);
                global.captions.extend_from_slice(g);
            }
        }
        let scores = SplitScores::new(SplitEmbeddings { images: held.len(), shan, global });
        let normalised = scores.normalised(bank);
        let recalls = scores.default_recalls_from(bank, &normalised);
        Ok(Self { scores, normalised, global_weight: bank.global_weight, rows, recalls })
    }

    /// How many of the split's images the figures count.
    pub fn images_scored(&self) -> usize {
        self.scores.images
    }

    /// Split image `image`'s five pairs' ranks (see [`SplitScores::pair_ranks`]); None when it
    /// is not scored.
    pub fn pair_ranks(&self, image: usize) -> Option<Vec<(usize, usize)>> {
        let row = (*self.rows.get(image)?)?;
        Some(self.scores.pair_ranks(row, &self.normalised, self.global_weight))
    }
}

/// Embed `captions` for the default ranker in the background, 32 at a time: messages are
/// (caption index, its embeddings or why not). With `cache` (a folder and a file name: the file
/// goes in that folder's index folder), embeddings saved there for the same models and captions
/// are read instead, and a complete run is saved there.
pub fn spawn_caption_embeddings(
    runtime: Arc<Runtime>,
    captions: Vec<String>,
    cache: Option<(PathBuf, String)>,
    waker: Waker,
) -> Job<(usize, Result<CaptionEmbedding, String>)> {
    const CHUNK: usize = 32;
    let (job, reporter, cancel) = Job::new("embed captions", waker);
    std::thread::spawn(move || {
        let cache = cache.map(|(folder, name)| super::index::index_dir(&folder).join(name));
        if let Some(saved) = cache.as_deref().and_then(|p| caption_cache::load(p, &runtime.model_key, &captions)) {
            for (index, e) in saved.into_iter().enumerate() {
                if !reporter.send((index, e.ok_or_else(|| "not embedded".to_string()))) {
                    return;
                }
            }
            return;
        }
        let mut all = Vec::with_capacity(captions.len());
        for (c, chunk) in captions.chunks(CHUNK).enumerate() {
            if cancel.is_cancelled() {
                return;
            }
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            for (k, result) in runtime.caption_embeddings(&texts).into_iter().enumerate() {
                all.push(result.as_ref().ok().cloned());
                if !reporter.send((c * CHUNK + k, result.map_err(|e| format!("{e:#}")))) {
                    return;
                }
            }
        }
        // Only a run where every caption was embedded is kept: one that failed says why again.
        if let Some(path) = cache.filter(|_| all.iter().all(Option::is_some)) {
            // A cache that cannot be written costs the next opening its time, nothing else.
            let _ = caption_cache::save(&path, &runtime.model_key, &captions, &all);
        }
    });
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic unit vector of `dim` values from `seed`.
    fn unit(seed: usize, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|k| ((seed * 7919 + k * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn bank() -> QueryBank {
        QueryBank {
            global_weight: 2.0,
            temperature: 5.0,
            floor: f32::NEG_INFINITY,
            shan_dim: 4,
            global_dim: 3,
            shan: (0..8).flat_map(|c| unit(100 + c, 4)).collect(),
            global: (0..8).flat_map(|c| unit(200 + c, 3)).collect(),
            made_with: ("a".into(), "b".into()),
            weak_below: None,
        }
    }

    /// Seven split images, the index holding six of them (not image 3); captions are noisy copies
    /// of their image's embedding, so ranks vary.
    fn split() -> (LoadedIndex, Vec<PathBuf>, Vec<Option<CaptionEmbedding>>) {
        let root = PathBuf::from("/data");
        let header = crate::data::index_file::IndexHeader {
            model: "test".into(),
            dim: 4,
            regions: 0,
            region_dim: 0,
            global_dim: 3,
        };
        let mut index = LoadedIndex::empty(&root, &header);
        let images: Vec<PathBuf> = (0..7).map(|i| root.join(format!("images/{i}.jpg"))).collect();
        for i in (0..7).filter(|&i| i != 3) {
            index.paths.push(format!("images/{i}.jpg").into());
            index.embeddings.extend(unit(i, 4));
            index.globals.extend(unit(50 + i, 3));
        }
        let noisy = |a: Vec<f32>, b: Vec<f32>| {
            let v: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + 0.9 * y).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let captions = (0..35)
            .map(|c| Some((noisy(unit(c / 5, 4), unit(300 + c, 4)), noisy(unit(50 + c / 5, 3), unit(400 + c, 3)))))
            .collect();
        (index, images, captions)
    }

    #[test]
    fn pair_ranks_agree_with_the_recalls_and_unindexed_images_are_left_out() {
        let (index, images, captions) = split();
        let s = DefaultSplit::new(&index, &images, &captions, &bank()).unwrap();
        assert_eq!(s.images_scored(), 6);
        assert!(s.pair_ranks(3).is_none(), "image 3 is not indexed");
        let ranks: Vec<Vec<(usize, usize)>> = (0..7).filter_map(|i| s.pair_ranks(i)).collect();
        assert_eq!(ranks.len(), 6);
        for (k, at) in [1usize, 5].into_iter().enumerate() {
            let t2i = ranks.iter().flatten().filter(|(t, _)| *t <= at).count() as f64 / 30.0 * 100.0;
            // i2t counts the best of an image's five captions.
            let i2t = ranks.iter().filter(|r| r.iter().map(|p| p.1).min().unwrap() <= at).count() as f64 / 6.0 * 100.0;
            assert!((t2i - s.recalls.t2i[k]).abs() < 1e-9, "t2i R@{at}: {t2i} vs {:?}", s.recalls);
            // A pair's i2t rank also counts the image's own other captions, so it is at least as
            // high: equal at R@1, possibly fewer hits at R@5.
            if at == 1 {
                assert!((i2t - s.recalls.i2t[0]).abs() < 1e-9, "i2t R@1: {i2t} vs {:?}", s.recalls);
            }
        }
        assert!(s.recalls.t2i[0] < 100.0 && s.recalls.t2i[2] > 0.0, "ranks vary: {:?}", s.recalls);
    }

    #[test]
    fn captions_from_other_models_are_refused() {
        let (index, images, mut captions) = split();
        captions[0] = Some((vec![1.0; 8], vec![1.0; 3]));
        assert!(DefaultSplit::new(&index, &images, &captions, &bank()).is_err());
        let none = vec![None; 35];
        assert!(DefaultSplit::new(&index, &images, &none, &bank()).is_err(), "nothing embedded");
    }
}
