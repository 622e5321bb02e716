//! Why an image and a caption match under SHAN: the three level scores and, per typed word, its
//! fragment-level alignment R_t and a relevance map over the image's cells (the heatmap), by one
//! of the [`Method`]s `alignscope grounding` measures: gradient × activation (the default),
//! occlusion, windows, or SHAN's own word→region attention.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::occlusion;
use super::runtime::{PhotoRegions, Runtime};
use super::scale::HeatScale;
use super::words::{content_mean, is_content_word, piece_mean, word_pieces};
use crate::data::decode::decode_oriented;
use crate::features::detections::Detection;
use crate::features::{preprocess, values};

/// How a word's heatmap is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// SHAN's word→region attention β (a distribution over the cells; one pass).
    Attention,
    /// The drop of the word's alignment R_t when each cell is hidden (one pass per cell).
    Occlusion,
    /// The rise of the word's alignment R_t over a grey canvas when only a 3×3-cell window of the
    /// photo is shown, averaged over the windows showing each cell (one pass per window).
    Window,
    /// Gradient × activation of the word's alignment R_t on the 28×28 activation entering
    /// EfficientNet's fourth stage, less half the other content words' (each map as shares of
    /// itself), averaged to the 7×7 cells (one forward and backward pass).
    #[default]
    Gradient,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Attention, Method::Occlusion, Method::Window, Method::Gradient];

    pub fn name(self) -> &'static str {
        match self {
            Self::Attention => "attention",
            Self::Occlusion => "occlusion",
            Self::Window => "window",
            Self::Gradient => "gradient",
        }
    }

    /// What the colours of a word's map mean.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Attention => "SHAN's attention of the word over the cells (sums to 1)",
            Self::Occlusion => "drop of the word's alignment R_t when the cell is hidden",
            Self::Window => "rise of the word's alignment R_t when windows showing the cell are shown alone",
            Self::Gradient => "gradient × activation of R_t less half the other words' (shares, cell means)",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method `{s}` (attention, occlusion, window, gradient)"))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct WordExplanation {
    /// The word as typed.
    pub word: String,
    /// Its WordPiece pieces; the word's attention is the mean of theirs.
    pub pieces: Vec<String>,
    /// R_t averaged over the pieces: the cosine of the word with what it attends in the image.
    pub alignment: f32,
    /// SHAN's attention over the grid cells, row-major; with `objects`, the rest of the word's
    /// attention went to them (`object_attention`), else this sums to 1.
    pub attention: Vec<f32>,
    /// SHAN's attention on each of the explanation's `objects` (empty without).
    pub object_attention: Vec<f32>,
    /// The explanation's map for this word (its `method`), row-major over the grid: what the
    /// heatmap shows.
    pub relevance: Vec<f32>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Explanation {
    pub image: PathBuf,
    pub caption: String,
    /// How the words' `relevance` maps were computed.
    pub method: Method,
    /// w₁·L2L + w₂·G2L + w₃·G2G, with the model's `weights`.
    pub score: f32,
    pub weights: [f64; 3],
    pub l2l: f32,
    pub g2l: f32,
    pub g2g: f32,
    pub grid: usize,
    /// Each region's box in the photo's pixels `[x0, y0, x1, y1]`.
    pub boxes: Vec<[f32; 4]>,
    /// The detected objects SHAN saw as regions after the grid (a runtime `with_objects`; boxes
    /// normalised to the photo), empty otherwise.
    pub objects: Vec<Detection>,
    pub words: Vec<WordExplanation>,
    /// The pair's map by the same method: the drop (occlusion) or rise (windows) of the pair's
    /// score per cell, else the mean of the content words' maps.
    pub pair_relevance: Vec<f32>,
    /// Set when the caption was cut to the model's length.
    pub warning: Option<String>,
}

impl Explanation {
    /// The scale every word's map is painted on, with what its colours mean.
    pub fn scale(&self) -> HeatScale {
        let maps = self.words.iter().map(|w| w.relevance.as_slice());
        match self.method {
            Method::Attention => HeatScale::attention(maps, self.boxes.len(), self.method.meaning()),
            Method::Occlusion | Method::Window => HeatScale::occlusion(maps, self.method.meaning()),
            Method::Gradient => HeatScale::gradient(maps, self.method.meaning()),
        }
    }

    /// The objects SHAN saw that the detector found (its whole-photo slots left out), in order:
    /// each word's `object_attention` starts with theirs.
    pub fn detected(&self) -> Vec<Detection> {
        self.objects.iter().filter(|o| o.score > 0.0).cloned().collect()
    }

    /// The word to show first: the best-aligned (R_t) content word, else the best-aligned word.
    pub fn first_word(&self) -> usize {
        let best = |content: bool| {
            self.words
                .iter()
                .enumerate()
                .filter(|(_, w)| !content || is_content_word(&w.word))
                .max_by(|a, b| a.1.alignment.total_cmp(&b.1.alignment))
                .map(|(j, _)| j)
        };
        best(true).or_else(|| best(false)).unwrap_or(0)
    }
}

/// Explain one pair with the loaded models.
pub fn explain(runtime: &Runtime, image: &Path, caption: &str, method: Method) -> anyhow::Result<Explanation> {
    explain_photo(runtime, &decode_oriented(image)?, image, caption, method)
}

/// Explain a decoded photo (`image` names it) and a caption.
pub fn explain_photo(
    runtime: &Runtime,
    photo: &DynamicImage,
    image: &Path,
    caption: &str,
    method: Method,
) -> anyhow::Result<Explanation> {
    let tokenized = runtime.text.tokenizer.tokenize(caption)?;
    let batch = runtime.caption_batch(std::slice::from_ref(&tokenized));
    let txt = runtime.text_side_of(batch.clone());
    let PhotoRegions { regions, object_regions, objects, .. } = runtime.photo_regions(photo);
    let img = runtime.side_of(regions);
    let shan = &runtime.net.shan;
    let (scores, attention) = shan.score_with_attention(&img, &txt);
    let [l2l, g2l, g2g] = [scores.l2l.clone(), scores.g2l.clone(), scores.g2g.clone()].map(|t| values(t)[0]);
    let score = values(scores.total(shan.weights))[0];

    // Every region SHAN attends over; the maps cover the grid's cells (the first `k`).
    let all = img.regions.dims()[1];
    let k = all.saturating_sub(objects.len());
    let grid = (k as f64).sqrt().round() as usize;
    let pieces = tokenized.ids.len() - 2;
    let beta = values(attention.beta); // [1, 1, k, pieces]
    let alignment = values(attention.word_alignment); // [1, 1, pieces]
    let word_list = word_pieces(&tokenized);
    // A map per piece made a map per word: its pieces' mean.
    let per_word = |per_piece: &[Vec<f32>]| -> Vec<Vec<f32>> {
        word_list.iter().map(|(_, mine)| piece_mean(mine, k, |p, i| per_piece[p][i])).collect()
    };
    // Occlusion and windows: the photo with cells hidden (or shown alone) in turn, scored in one
    // batch against the caption; the pair's and each piece's score per input, then per cell.
    // Each method gives a map per word, and occlusion and windows one for the pair too.
    let perturbed = |inputs: Vec<image::RgbImage>, per_cell: &dyn Fn(&[f32]) -> Vec<f32>| {
        let n = inputs.len();
        let sides = runtime.image_sides_of(&inputs, object_regions.as_ref());
        let (scores, attention) = shan.score_with_attention(&sides, &txt);
        let total = values(scores.total(shan.weights)); // [n]
        let r_t = values(attention.word_alignment); // [n, 1, pieces]
        let pieces: Vec<Vec<f32>> =
            (0..pieces).map(|p| per_cell(&(0..n).map(|i| r_t[i * pieces + p]).collect::<Vec<_>>())).collect();
        (Some(per_cell(&total)), per_word(&pieces))
    };
    let maps: Option<(Option<Vec<f32>>, Vec<Vec<f32>>)> = match method {
        Method::Attention => None,
        Method::Gradient => {
            // Word maps contrasted on the fine grid, then pooled to the cells.
            let (maps, fine) = runtime.gradient_maps(photo, &batch, object_regions.as_ref())?;
            let words = super::gradient::word_maps(&tokenized, &maps, fine);
            Some((None, words.iter().map(|(_, map)| super::gradient::pool(map, fine, grid)).collect()))
        }
        Method::Occlusion => {
            Some(perturbed(occlusion::occluded_inputs(&runtime.input(photo), grid), &occlusion::drops))
        }
        Method::Window => {
            let window = occlusion::WINDOW.min(grid);
            let per_cell = |s: &[f32]| occlusion::window_map(&occlusion::gains(s), grid, window);
            Some(perturbed(occlusion::window_pass_inputs(&runtime.input(photo), grid, window), &per_cell))
        }
    };
    let words: Vec<WordExplanation> = word_list
        .iter()
        .enumerate()
        .map(|(j, (word, mine))| {
            let share = 1.0 / mine.len() as f32;
            let mut attention = piece_mean(mine, all, |p, i| beta[i * pieces + p]);
            let object_attention = attention.split_off(k);
            let relevance = match maps.as_ref().and_then(|(_, per_word)| per_word.get(j)) {
                Some(map) => map.clone(),
                None => attention.clone(),
            };
            WordExplanation {
                word: word.clone(),
                pieces: mine.iter().map(|&p| tokenized.pieces[p + 1].clone()).collect(),
                alignment: mine.iter().map(|&p| alignment[p]).sum::<f32>() * share,
                attention,
                object_attention,
                relevance,
            }
        })
        .collect();
    let pair_relevance = match maps {
        Some((Some(pair), _)) => pair,
        _ => content_mean(words.iter().map(|w| (w.word.as_str(), w.relevance.as_slice())), k),
    };
    Ok(Explanation {
        image: image.to_path_buf(),
        caption: caption.to_string(),
        method,
        score,
        weights: shan.weights,
        l2l,
        g2l,
        g2g,
        grid,
        boxes: preprocess::region_boxes(photo.width(), photo.height(), grid),
        objects,
        words,
        pair_relevance,
        warning: tokenized.warning(),
    })
}

/// The cell a map points at: its largest finite value (the first of ties; 0 for an empty map).
pub fn peak(map: &[f32]) -> usize {
    map.iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
        .0
}
