//! Choosing the default ranker (`alignscope rankers`): the pair-independent embeddings of SHAN
//! and the tuned global model, fused with a weight chosen on dev, with and without the inverted
//! softmax against a bank of training captions (`engine::fused`), and the hubness of each.
//!
//! The default ranks photos by a caption, so the bank normalises the text-to-image direction;
//! image-to-text (ranking captions for a photo) uses the fused cosine. `evaluate` scores exactly
//! that, from the shipped bank file.

use burn::tensor::{Device, Tensor};

use super::splits::FragmentSplit;
use crate::engine::fused::QueryBank;
use crate::engine::recall::{Recalls, recalls};
use crate::engine::split_scores::{Embedded, normalisers};
pub use crate::engine::split_scores::{SplitEmbeddings, SplitScores};
use crate::features::values;
use crate::nets::global_tuned::TunedGlobal;
use crate::nets::shan::ShanNet;

/// Captions in the bank: the first caption of each of the first this-many training photos
/// (measured on dev: 1,000 captions 338.6, 2,000 339.8, 3,000 341.0, 6,000 341.0 at w 1.5, β 7).
pub const BANK_SIZE: usize = 3000;

const CHUNK: usize = 128;

fn rows_of(rows: &[usize], embed: impl Fn(&[usize]) -> Tensor<2>) -> (usize, Vec<f32>) {
    if rows.is_empty() {
        return (0, Vec::new());
    }
    let all = Tensor::cat(rows.chunks(CHUNK).map(embed).collect(), 0);
    (all.dims()[1], values(all))
}

/// Embeddings of `images` (split rows) and `captions` (caption rows, 5 per image).
pub fn embed(
    shan: &ShanNet,
    global: &TunedGlobal,
    data: &FragmentSplit,
    images: &[usize],
    captions: &[usize],
    device: &Device,
) -> SplitEmbeddings {
    let shan_text = |r: &[usize]| {
        let (words, mask) = shan.words(data.caption_batch(r, device));
        shan.shan.encode_texts(words, mask).embedding
    };
    // SHAN sees the split's object crops too, where it has them (the global model: the grid, as in the app).
    let (dim, image_rows) = rows_of(images, |r| shan.image_side(data, r, device).embedding);
    let (text_dim, caption_rows) = rows_of(captions, shan_text);
    let shan_e = Embedded { dim: dim.max(text_dim), images: image_rows, captions: caption_rows };
    let (dim, image_rows) = rows_of(images, |r| global.embed_entering(data.image_batch(r, device)));
    let (text_dim, caption_rows) = rows_of(captions, |r| global.embed_hidden(data.caption_batch(r, device)));
    let global_e = Embedded { dim: dim.max(text_dim), images: image_rows, captions: caption_rows };
    SplitEmbeddings { images: images.len(), shan: shan_e, global: global_e }
}

/// A whole split: every image and its five captions.
pub fn embed_split(shan: &ShanNet, global: &TunedGlobal, data: &FragmentSplit, device: &Device) -> SplitEmbeddings {
    let images: Vec<usize> = (0..data.len()).collect();
    let captions: Vec<usize> = (0..data.len() * 5).collect();
    embed(shan, global, data, &images, &captions, device)
}

/// The bank's captions from the training split (the first caption of its first photos), and the
/// training photos after those (whose normalisers set the floor).
pub fn embed_bank(shan: &ShanNet, global: &TunedGlobal, train: &FragmentSplit, device: &Device) -> SplitEmbeddings {
    let n = BANK_SIZE.min(train.len());
    let captions: Vec<usize> = (0..n).map(|i| i * 5).collect();
    let photos: Vec<usize> = (n..train.len()).collect();
    embed(shan, global, train, &photos, &captions, device)
}

/// The floors tried: these percentiles of the training photos' normalisers.
const FLOOR_PERCENTILES: [f64; 4] = [1.0, 5.0, 10.0, 25.0];
/// The highest floor whose dev rSum is at most this much below no floor's is shipped.
const FLOOR_DEV_COST: f64 = 0.2;

/// How unevenly photos come up when captions rank them: each photo's count of appearances in the
/// captions' top-`k`s, its skewness, and the largest count.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Hubness {
    pub k: usize,
    pub skewness: f64,
    pub max: usize,
    /// Photos that never appear in a top-k.
    pub never: usize,
}

/// Hubness of a score matrix (images × captions, each caption ranking the images).
pub fn hubness(scores: &[f32], images: usize, k: usize) -> Hubness {
    let captions = scores.len() / images.max(1);
    let mut counts = vec![0usize; images];
    let mut column = vec![0.0f32; images];
    for c in 0..captions {
        for (i, v) in column.iter_mut().enumerate() {
            *v = scores[i * captions + c];
        }
        for i in crate::engine::search::top_k(&column, k) {
            counts[i] += 1;
        }
    }
    let n = images as f64;
    let mean = counts.iter().sum::<usize>() as f64 / n;
    let var = counts.iter().map(|&c| (c as f64 - mean).powi(2)).sum::<f64>() / n;
    let third = counts.iter().map(|&c| (c as f64 - mean).powi(3)).sum::<f64>() / n;
    Hubness {
        k,
        skewness: if var > 0.0 { third / var.powf(1.5) } else { 0.0 },
        max: counts.iter().copied().max().unwrap_or(0),
        never: counts.iter().filter(|&&c| c == 0).count(),
    }
}

/// One ranker measured on dev and test.
pub struct Candidate {
    pub label: String,
    pub dev: Recalls,
    pub test: Recalls,
    pub test_hubness: Hubness,
}

/// The fusion weights and temperatures tried (chosen on dev).
const WEIGHTS: [f32; 5] = [0.5, 1.0, 1.5, 2.0, 3.0];
const TEMPERATURES: [f32; 5] = [3.0, 5.0, 7.0, 9.0, 12.0];

/// Every candidate, and the shipped bank: the best normalised one on dev (ties: the earlier), with
/// the highest floor that costs at most `FLOOR_DEV_COST` on dev.
pub fn choose(
    dev: &SplitScores,
    test: &SplitScores,
    bank: &SplitEmbeddings,
    made_with: (String, String),
) -> (Vec<Candidate>, QueryBank) {
    let bank_photos = bank;
    let mut out = Vec::new();
    let plain = |label: &str, f: &dyn Fn(&SplitScores) -> Vec<f32>| {
        let t = f(test);
        Candidate {
            label: label.to_string(),
            dev: recalls(&f(dev), dev.images, 5),
            test: recalls(&t, test.images, 5),
            test_hubness: hubness(&t, test.images, 10),
        }
    };
    out.push(plain("SHAN's embedding", &|s| s.shan.clone()));
    out.push(plain("global", &|s| s.global.clone()));
    let best_fused = WEIGHTS
        .iter()
        .map(|&w| (w, recalls(&dev.fused(w), dev.images, 5).rsum))
        .fold((WEIGHTS[0], f64::MIN), |a, b| if b.1 > a.1 { b } else { a })
        .0;
    out.push(plain(&format!("SHAN's embedding + {best_fused} × global"), &|s| s.fused(best_fused)));
    let mut best: Option<(f64, QueryBank)> = None;
    for &w in &WEIGHTS {
        for &t in &TEMPERATURES {
            let b = QueryBank {
                global_weight: w,
                temperature: t,
                floor: f32::NEG_INFINITY,
                shan_dim: bank.shan.dim,
                global_dim: bank.global.dim,
                shan: bank.shan.captions.clone(),
                global: bank.global.captions.clone(),
                made_with: made_with.clone(),
                weak_below: None,
            };
            let r = dev.default_recalls(&b).rsum;
            if best.as_ref().is_none_or(|(s, _)| r > *s) {
                best = Some((r, b));
            }
        }
    }
    #[allow(clippy::expect_used, reason = "the weight and scale grids are constants, not empty")]
    let (no_floor_dev, bank) = best.expect("the grids are not empty");
    let measured = |bank: &QueryBank, label: String| Candidate {
        label,
        dev: dev.default_recalls(bank),
        test: test.default_recalls(bank),
        test_hubness: hubness(&test.normalised(bank), test.images, 10),
    };
    out.push(measured(
        &bank,
        format!(
            "… normalised against {} bank captions (β {}, w {})",
            bank.captions(),
            bank.temperature,
            bank.global_weight
        ),
    ));
    // The training photos' own normalisers, for the floors.
    let mut norms = normalisers(bank_photos, &bank);
    norms.sort_by(f32::total_cmp);
    let mut shipped = bank.clone();
    for p in FLOOR_PERCENTILES {
        let floor =
            norms.get(((norms.len() - 1) as f64 * p / 100.0).round() as usize).copied().unwrap_or(f32::NEG_INFINITY);
        let floored = QueryBank { floor, ..bank.clone() };
        let c = measured(&floored, format!("… normaliser floored at the training photos' percentile {p} ({floor:.2})"));
        if no_floor_dev - c.dev.rsum <= FLOOR_DEV_COST {
            shipped = floored;
        }
        out.push(c);
    }
    (out, shipped)
}

/// How often each photo of an indexed folder comes first when `captions` (a split's, all
/// unrelated to the folder) rank it, under the default's three ingredients and the default: the
/// photo that comes first most often and its share, per ranker.
pub fn folder_hubs(
    index: &crate::engine::search::LoadedIndex,
    captions: &SplitEmbeddings,
    bank: &QueryBank,
) -> Vec<(&'static str, String, f64)> {
    let m = captions.captions();
    let (ds, dg) = (captions.shan.dim, captions.global.dim);
    let rankers: [(&str, &dyn Fn(f32, f32, f32) -> f32); 4] = [
        ("SHAN's embedding", &|s, _, _| s),
        ("global", &|_, g, _| g),
        ("fused", &|s, g, _| bank.fused(s, g)),
        ("default", &|s, g, n| bank.score(s, g, n)),
    ];
    // Per ranker, how often each photo comes first.
    let mut firsts = vec![vec![0usize; index.len()]; rankers.len()];
    for c in 0..m {
        let (s, g) = (&captions.shan.captions[c * ds..(c + 1) * ds], &captions.global.captions[c * dg..(c + 1) * dg]);
        let (ss, gs) = (index.embedding_scores(s), index.global_scores(g));
        for ((_, score), firsts) in rankers.iter().zip(&mut firsts) {
            let scores: Vec<f32> = (0..index.len()).map(|i| score(ss[i], gs[i], index.normalisers[i])).collect();
            if let Some(&best) = crate::engine::search::top_k(&scores, 1).first() {
                firsts[best] += 1;
            }
        }
    }
    rankers
        .iter()
        .zip(firsts)
        .map(|((name, _), firsts)| {
            let (hub, count) =
                firsts.iter().enumerate().max_by_key(|&(i, c)| (*c, std::cmp::Reverse(i))).unwrap_or((0, &0));
            let name_of = index.paths.get(hub).map(|p| p.display().to_string()).unwrap_or_default();
            (*name, name_of, 100.0 * *count as f64 / m.max(1) as f64)
        })
        .collect()
}
