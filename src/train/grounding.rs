//! Whether explanations point at what the words name, and whether they are faithful.
//!
//! - The pointing game on a set of (photo, caption, word, box) items: a hit is the centre of the
//!   most relevant cell inside the word's box, beside the centre pointer (always the middle of the
//!   photo) and chance (a random cell).
//! - Deletion on the Flickr8k test photos: hide the k cells a pair's explanation ranks highest,
//!   or k random cells, and measure how much the pair's score and the true photo's rank among the
//!   test photos fall.
//!
//! Every network that explains something is measured through [`Explainer`]: SHAN (its attention
//! or occlusion of each word's alignment), and the global model, DSRAN and RACG (occlusion of the
//! word used as a query; DSRAN's and RACG's own attention).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use image::{DynamicImage, RgbImage};

use crate::data::decode::decode_oriented;
use crate::engine::explain::{Method, explain_photo, peak};
use crate::engine::jobs::CancelToken;
use crate::engine::occlusion::{WINDOW, drops, gains, hide_cells, occluded_inputs, window_map, window_pass_inputs};
use crate::engine::rank::{Embeddings, Ranker, RankerModel};
use crate::engine::runtime::Runtime;
use crate::engine::words::{content_mean, word_pieces};
use crate::features::{preprocess, values};
use crate::model::shan::ImageSide;

/// The cells of the grid every network explains over (7×7 regions of a 224-px photo).
pub const GRID: usize = 7;
/// Cells hidden in the deletion test.
pub const DELETION_K: [usize; 3] = [1, 3, 5];

/// One grounding item: the word of the caption names what lies in `bbox` (normalised x0 y0 x1 y1).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub image: String,
    pub caption: String,
    pub word: String,
    pub bbox: [f32; 4],
}

/// The grounding set: a TSV with a header line `image caption word x0 y0 x1 y1`.
pub fn load_set(path: &Path) -> anyhow::Result<Vec<Item>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let fields: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(fields.len() == 7, "{}: {} fields, not 7", at(), fields.len());
        let mut bbox = [0.0f32; 4];
        for (b, f) in bbox.iter_mut().zip(&fields[3..]) {
            *b = f.trim().parse().map_err(|e| anyhow::anyhow!("{}: {f:?}: {e}", at()))?;
        }
        let [x0, y0, x1, y1] = bbox;
        anyhow::ensure!((0.0..=1.0).contains(&x0) && x0 < x1 && x1 <= 1.0, "{}: bad x range", at());
        anyhow::ensure!((0.0..=1.0).contains(&y0) && y0 < y1 && y1 <= 1.0, "{}: bad y range", at());
        items.push(Item { image: fields[0].into(), caption: fields[1].into(), word: fields[2].into(), bbox });
    }
    anyhow::ensure!(!items.is_empty(), "{}: no items", path.display());
    Ok(items)
}

/// The centre of `cell` (row-major over a `grid`×`grid` partition), normalised.
pub fn cell_centre(cell: usize, grid: usize) -> (f32, f32) {
    (((cell % grid) as f32 + 0.5) / grid as f32, ((cell / grid) as f32 + 0.5) / grid as f32)
}

pub fn inside((x, y): (f32, f32), [x0, y0, x1, y1]: [f32; 4]) -> bool {
    x >= x0 && x <= x1 && y >= y0 && y <= y1
}

/// The share of a grid's cell centres inside `bbox`: the chance a random cell hits.
pub fn chance(bbox: [f32; 4], grid: usize) -> f64 {
    (0..grid * grid).filter(|&c| inside(cell_centre(c, grid), bbox)).count() as f64 / (grid * grid) as f64
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Pointing {
    pub hits: usize,
    pub total: usize,
    /// Hits of the centre pointer (always the middle of the photo).
    pub centre: usize,
    /// Expected hits of a random cell.
    pub chance: f64,
}

/// Mean falls when the top-k cells of the explanation, or k random cells, are hidden.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Deletion {
    pub pairs: usize,
    pub k: Vec<usize>,
    pub score_drop_top: Vec<f64>,
    pub score_drop_random: Vec<f64>,
    /// Places the true photo falls among the test photos (positive: ranked lower).
    pub rank_drop_top: Vec<f64>,
    pub rank_drop_random: Vec<f64>,
}

/// A network explaining pairs over the 7×7 cells, and scoring model inputs for the deletion test.
pub enum Explainer<'a> {
    Shan { runtime: &'a Runtime, method: Method },
    Ranker { ranker: &'a Ranker, model: RankerModel, method: Method },
}

/// The test photos under one network, for the true photo's rank.
#[allow(clippy::large_enum_variant)] // one per run: boxing buys nothing
pub enum Gallery {
    Shan(ImageSide),
    Ranker(Vec<Embeddings>),
}

impl Explainer<'_> {
    pub fn label(&self) -> (&'static str, Method) {
        match self {
            Self::Shan { method, .. } => ("shan", *method),
            Self::Ranker { model, method, .. } => (
                match model {
                    RankerModel::Global => "global",
                    RankerModel::Dsran => "dsran",
                    RankerModel::Racg => "racg",
                },
                *method,
            ),
        }
    }

    fn input_size(&self) -> u32 {
        match self {
            Self::Shan { runtime, .. } => runtime.visual.image_size(),
            Self::Ranker { ranker, .. } => ranker.visual.image_size(),
        }
    }

    fn embed(ranker: &Ranker, inputs: &[RgbImage]) -> Vec<Embeddings> {
        let photos: Vec<DynamicImage> = inputs.iter().cloned().map(DynamicImage::ImageRgb8).collect();
        photos.chunks(10).flat_map(|c| ranker.embed_images(c)).collect()
    }

    /// The caption's score with each model input (square photos, e.g. occluded copies).
    pub fn score_inputs(&self, inputs: &[RgbImage], caption: &str) -> anyhow::Result<Vec<f32>> {
        match self {
            Self::Shan { runtime, .. } => {
                let (txt, _) = runtime.text_side(caption)?;
                let shan = &runtime.net.shan;
                Ok(values(shan.score(&runtime.image_sides_of(inputs, None), &txt).total(shan.weights)))
            }
            Self::Ranker { ranker, model, .. } => {
                let (query, _) = ranker.embed_caption(caption)?;
                ranker.scores(*model, &Self::embed(ranker, inputs), &query).context("the model is not loaded")
            }
        }
    }

    /// The test photos' side under this network.
    pub fn gallery(&self, photos: &[DynamicImage], cancel: &CancelToken) -> anyhow::Result<Gallery> {
        match self {
            Self::Shan { runtime, .. } => {
                let mut projected = Vec::with_capacity(photos.len());
                for p in photos {
                    anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
                    projected.push(runtime.project_photo(p));
                }
                Ok(Gallery::Shan(runtime.net.shan.encode_projected(burn::tensor::Tensor::cat(projected, 0))))
            }
            Self::Ranker { ranker, .. } => {
                let mut out = Vec::with_capacity(photos.len());
                for chunk in photos.chunks(16) {
                    anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
                    out.extend(ranker.embed_images(chunk));
                }
                Ok(Gallery::Ranker(out))
            }
        }
    }

    /// The caption's score with every gallery photo.
    pub fn gallery_scores(&self, gallery: &Gallery, caption: &str) -> anyhow::Result<Vec<f32>> {
        match (self, gallery) {
            (Self::Shan { runtime, .. }, Gallery::Shan(sides)) => {
                let (txt, _) = runtime.text_side(caption)?;
                let shan = &runtime.net.shan;
                Ok(values(shan.score(sides, &txt).total(shan.weights)))
            }
            (Self::Ranker { ranker, model, .. }, Gallery::Ranker(photos)) => {
                let (query, _) = ranker.embed_caption(caption)?;
                ranker.scores(*model, photos, &query).context("the model is not loaded")
            }
            _ => anyhow::bail!("a gallery of another network"),
        }
    }

    /// Maps over the cells for each word of `caption` (word as typed, map), and the pair's map.
    pub fn explain(&self, photo: &DynamicImage, caption: &str) -> anyhow::Result<(Vec<(String, Vec<f32>)>, Vec<f32>)> {
        match self {
            Self::Shan { runtime, method: Method::Gradient } => {
                // Pointing on the finer 28×28 map itself; the pair's map (deletion) on the cells.
                let tokenized = runtime.text.tokenizer.tokenize(caption)?;
                let batch = runtime.caption_batch(std::slice::from_ref(&tokenized));
                let (maps, fine) = runtime.gradient_maps(photo, &batch, None)?;
                let words = crate::engine::gradient::word_maps(&tokenized, &maps, fine);
                let cells: Vec<Vec<f32>> =
                    words.iter().map(|(_, m)| crate::engine::gradient::pool(m, fine, GRID)).collect();
                let pair =
                    content_mean(words.iter().zip(&cells).map(|((w, _), m)| (w.as_str(), m.as_slice())), GRID * GRID);
                Ok((words, pair))
            }
            Self::Shan { runtime, method } => {
                let e = explain_photo(runtime, photo, Path::new(""), caption, *method)?;
                Ok((e.words.into_iter().map(|w| (w.word, w.relevance)).collect(), e.pair_relevance))
            }
            Self::Ranker { ranker, model, method: method @ (Method::Occlusion | Method::Window) } => {
                // Each word as a query on its own, and the whole caption for the pair.
                let tokenized = ranker.text.tokenizer.tokenize(caption)?;
                let words: Vec<String> = tokenized.words.clone();
                let queries: Vec<&str> = std::iter::once(caption).chain(words.iter().map(String::as_str)).collect();
                let input = preprocess::resize_square(photo, self.input_size());
                let window = WINDOW.min(GRID);
                let (inputs, per_cell): (Vec<RgbImage>, Box<dyn Fn(&[f32]) -> Vec<f32>>) = match method {
                    Method::Occlusion => (occluded_inputs(&input, GRID), Box::new(|s: &[f32]| drops(s))),
                    _ => (
                        window_pass_inputs(&input, GRID, window),
                        Box::new(move |s: &[f32]| window_map(&gains(s), GRID, window)),
                    ),
                };
                let photos = Self::embed(ranker, &inputs);
                let mut maps = Vec::with_capacity(queries.len());
                for (q, embedded) in queries.iter().zip(ranker.embed_captions(&queries)) {
                    let (query, _) = embedded.with_context(|| format!("cannot encode {q:?}"))?;
                    maps.push(per_cell(&ranker.scores(*model, &photos, &query).context("the model is not loaded")?));
                }
                let pair = maps.remove(0);
                Ok((words.into_iter().zip(maps).collect(), pair))
            }
            Self::Ranker { method: Method::Gradient, .. } => anyhow::bail!("gradient maps are built for SHAN only"),
            Self::Ranker { ranker, model, method: Method::Attention } => {
                let regions = ranker.regions(photo);
                let words: Vec<(String, Vec<f32>)> = match model {
                    RankerModel::Racg => ranker.racg_attention(regions, caption).context("RACG is not loaded")??,
                    RankerModel::Dsran => {
                        // DSRAN's global node attends the regions once for every caption.
                        let map = ranker.dsran_attention(regions).context("DSRAN is not loaded")?;
                        let tokenized = ranker.text.tokenizer.tokenize(caption)?;
                        word_pieces(&tokenized).into_iter().map(|(w, _)| (w, map.clone())).collect()
                    }
                    RankerModel::Global => anyhow::bail!("the global model has no attention: use --method occlusion"),
                };
                let pair = content_mean(words.iter().map(|(w, m)| (w.as_str(), m.as_slice())), GRID * GRID);
                Ok((words, pair))
            }
        }
    }
}

/// The word's map among a caption's words: the first whose text matches, ignoring case and
/// punctuation around it.
pub fn word_map<'a>(words: &'a [(String, Vec<f32>)], word: &str) -> Option<&'a [f32]> {
    let clean = |w: &str| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    let want = clean(word);
    words.iter().find(|(w, _)| clean(w) == want).map(|(_, m)| m.as_slice())
}

/// Progress of a grounding run.
pub enum GroundingMsg {
    Pointing {
        done: usize,
        total: usize,
    },
    Gallery {
        photos: usize,
    },
    Deletion {
        done: usize,
        total: usize,
    },
    /// An item that could not be measured (counted as a miss), and why.
    Skipped(String),
    /// An item measured: every word's map of its pair (what `--maps` writes).
    Measured {
        item: Item,
        words: Vec<(String, Vec<f32>)>,
        hit: bool,
    },
}

/// The pointing game over `items` (photos under `images`); items sharing a photo and caption are
/// explained once. A word the explanation does not list counts as a miss and is reported.
pub fn pointing(
    explainer: &Explainer,
    items: &[Item],
    images: &Path,
    cancel: &CancelToken,
    report: &dyn Fn(GroundingMsg),
) -> anyhow::Result<Pointing> {
    let mut result = Pointing { total: items.len(), ..Pointing::default() };
    let mut cached: Option<((String, String), Vec<(String, Vec<f32>)>)> = None;
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| (&items[a].image, &items[a].caption).cmp(&(&items[b].image, &items[b].caption)));
    for (done, &i) in order.iter().enumerate() {
        anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
        let item = &items[i];
        result.chance += chance(item.bbox, GRID);
        if inside((0.5, 0.5), item.bbox) {
            result.centre += 1;
        }
        let key = (item.image.clone(), item.caption.clone());
        if cached.as_ref().is_none_or(|(k, _)| *k != key) {
            let path = images.join(&item.image);
            let photo = decode_oriented(&path)?;
            let (words, _) = explainer.explain(&photo, &item.caption).with_context(|| path.display().to_string())?;
            cached = Some((key, words));
        }
        let Some((_, words)) = cached.as_ref() else { continue };
        match word_map(words, &item.word) {
            Some(map) => {
                // A map finer than the cells (the gradient's 28×28) points with its own grid.
                let grid = (map.len() as f64).sqrt().round() as usize;
                let hit = inside(cell_centre(peak(map), grid), item.bbox);
                result.hits += usize::from(hit);
                report(GroundingMsg::Measured { item: item.clone(), words: words.clone(), hit });
            }
            None => report(GroundingMsg::Skipped(format!(
                "{}: \"{}\" not among the words explained",
                item.image, item.word
            ))),
        }
        report(GroundingMsg::Pointing { done: done + 1, total: items.len() });
    }
    Ok(result)
}

/// Rank (1 = first) of a photo scoring `score` against every other photo of the gallery.
fn rank_of(score: f32, gallery: &[f32], itself: usize) -> usize {
    1 + gallery.iter().enumerate().filter(|&(j, &s)| j != itself && s > score).count()
}

/// The deletion test on `pairs` (photo index among `photos`, caption), against the gallery of all
/// `photos`. Random cells are drawn with a fixed seed.
pub fn deletion(
    explainer: &Explainer,
    photos: &[DynamicImage],
    pairs: &[(usize, String)],
    cancel: &CancelToken,
    report: &dyn Fn(GroundingMsg),
) -> anyhow::Result<Deletion> {
    let gallery = explainer.gallery(photos, cancel)?;
    report(GroundingMsg::Gallery { photos: photos.len() });
    let n = DELETION_K.len();
    let mut sums = [vec![0.0f64; n], vec![0.0f64; n], vec![0.0f64; n], vec![0.0f64; n]];
    let mut rng = fastrand::Rng::with_seed(23);
    for (done, (i, caption)) in pairs.iter().enumerate() {
        anyhow::ensure!(!cancel.is_cancelled(), "cancelled");
        let photo = &photos[*i];
        let (_, map) = explainer.explain(photo, caption)?;
        let mut ranked: Vec<usize> = (0..map.len()).collect();
        ranked.sort_by(|&a, &b| map[b].total_cmp(&map[a]));
        let input = preprocess::resize_square(photo, explainer.input_size());
        let mut inputs = vec![input.clone()];
        for &k in &DELETION_K {
            inputs.push(hide_cells(&input, GRID, &ranked[..k]));
            let mut cells: Vec<usize> = (0..GRID * GRID).collect();
            rng.shuffle(&mut cells);
            inputs.push(hide_cells(&input, GRID, &cells[..k]));
        }
        let scores = explainer.score_inputs(&inputs, caption)?;
        let others = explainer.gallery_scores(&gallery, caption)?;
        let base_rank = rank_of(scores[0], &others, *i) as f64;
        for k in 0..n {
            let (top, random) = (scores[1 + 2 * k], scores[2 + 2 * k]);
            sums[0][k] += (scores[0] - top) as f64;
            sums[1][k] += (scores[0] - random) as f64;
            sums[2][k] += rank_of(top, &others, *i) as f64 - base_rank;
            sums[3][k] += rank_of(random, &others, *i) as f64 - base_rank;
        }
        report(GroundingMsg::Deletion { done: done + 1, total: pairs.len() });
    }
    let mean = |v: &[f64]| v.iter().map(|s| s / pairs.len().max(1) as f64).collect::<Vec<_>>();
    Ok(Deletion {
        pairs: pairs.len(),
        k: DELETION_K.to_vec(),
        score_drop_top: mean(&sums[0]),
        score_drop_random: mean(&sums[1]),
        rank_drop_top: mean(&sums[2]),
        rank_drop_random: mean(&sums[3]),
    })
}

/// Where the grounding set lives in a checkout.
pub fn default_set() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grounding/flickr8k-test.tsv")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_centres_and_boxes() {
        assert_eq!(cell_centre(24, 7), (0.5, 0.5));
        assert_eq!(cell_centre(0, 7), (0.5 / 7.0, 0.5 / 7.0));
        assert!(inside(cell_centre(24, 7), [0.4, 0.4, 0.6, 0.6]));
        assert!(!inside(cell_centre(0, 7), [0.4, 0.4, 0.6, 0.6]));
        assert_eq!(chance([0.0, 0.0, 1.0, 1.0], 7), 1.0);
        assert_eq!(chance([0.0, 0.0, 0.2, 0.2], 7), 1.0 / 49.0);
        assert_eq!(rank_of(0.5, &[0.9, 0.1, 0.6, 0.5], 3), 3);
    }

    #[test]
    fn words_match_ignoring_case_and_punctuation() {
        let words = vec![("A".to_string(), vec![1.0]), ("Dog,".to_string(), vec![2.0])];
        assert_eq!(word_map(&words, "dog"), Some([2.0].as_slice()));
        assert_eq!(word_map(&words, "cat"), None);
    }

    #[test]
    fn the_committed_set_parses_and_bad_rows_are_named() {
        let items = load_set(&default_set()).unwrap();
        assert!(items.len() >= 150, "{}", items.len());
        let photos: std::collections::BTreeSet<&str> = items.iter().map(|i| i.image.as_str()).collect();
        assert!(photos.len() >= 100, "{}", photos.len());
        for i in &items {
            let words: Vec<String> = i
                .caption
                .split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
                .collect();
            assert!(words.contains(&i.word.to_lowercase()), "{i:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.tsv");
        std::fs::write(&bad, "image\tcaption\tword\tx0\ty0\tx1\ty1\na.jpg\ta dog\tdog\t0.5\t0\t0.2\t1\n").unwrap();
        let err = load_set(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.tsv:2") && err.contains("x range"), "{err}");
    }
}
