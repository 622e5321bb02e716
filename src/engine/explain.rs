//! Why an image and a caption match under SHAN: the three level scores and, per typed word, its
//! attention over the image's regions (the heatmap) and its fragment-level alignment R_t.

use std::path::{Path, PathBuf};

use super::runtime::Runtime;
use crate::data::decode::decode_oriented;
use crate::features::tokenizer::Tokenized;
use crate::features::{preprocess, values};

#[derive(Clone, Debug, serde::Serialize)]
pub struct WordExplanation {
    /// The word as typed.
    pub word: String,
    /// Its WordPiece pieces; the word's attention is the mean of theirs.
    pub pieces: Vec<String>,
    /// R_t averaged over the pieces: the cosine of the word with what it attends in the image.
    pub alignment: f32,
    /// Attention over the regions, row-major over the grid; sums to 1.
    pub attention: Vec<f32>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Explanation {
    pub image: PathBuf,
    pub caption: String,
    /// w₁·L2L + w₂·G2L + w₃·G2G, with the model's `weights`.
    pub score: f32,
    pub weights: [f64; 3],
    pub l2l: f32,
    pub g2l: f32,
    pub g2g: f32,
    pub grid: usize,
    /// Each region's box in the photo's pixels `[x0, y0, x1, y1]`.
    pub boxes: Vec<[f32; 4]>,
    pub words: Vec<WordExplanation>,
    /// Set when the caption was cut to the model's length.
    pub warning: Option<String>,
}

/// Words that carry little to look at in a heatmap.
const FUNCTION_WORDS: &[&str] = &["a", "an", "the", "on", "in", "of", "with", "and", "is", "are", "at", "to", "by", "for", "from", "its", "his", "her", "their", "into", "while", "near"];

impl Explanation {
    /// The word to show first: the best-aligned (R_t) content word, else the best-aligned word.
    pub fn first_word(&self) -> usize {
        let best = |content: bool| {
            self.words
                .iter()
                .enumerate()
                .filter(|(_, w)| !content || !FUNCTION_WORDS.contains(&w.word.to_lowercase().as_str()))
                .max_by(|a, b| a.1.alignment.total_cmp(&b.1.alignment))
                .map(|(j, _)| j)
        };
        best(true).or_else(|| best(false)).unwrap_or(0)
    }
}

/// Explain one pair with the loaded models.
pub fn explain(runtime: &Runtime, image: &Path, caption: &str) -> anyhow::Result<Explanation> {
    let photo = decode_oriented(image)?;
    let (txt, tokenized) = runtime.text_side(caption)?;
    let img = runtime.image_side(&photo);
    let shan = &runtime.net.shan;
    let (scores, attention) = shan.score_with_attention(&img, &txt);
    let [l2l, g2l, g2g] = [scores.l2l.clone(), scores.g2l.clone(), scores.g2g.clone()].map(|t| values(t)[0]);
    let score = values(scores.total(shan.weights))[0];

    let k = img.regions.dims()[1];
    let pieces = tokenized.ids.len() - 2;
    let beta = values(attention.beta); // [1, 1, k, pieces]
    let alignment = values(attention.word_alignment); // [1, 1, pieces]
    let words = word_pieces(&tokenized)
        .into_iter()
        .map(|(word, mine)| {
            let share = 1.0 / mine.len() as f32;
            WordExplanation {
                word,
                pieces: mine.iter().map(|&p| tokenized.pieces[p + 1].clone()).collect(),
                alignment: mine.iter().map(|&p| alignment[p]).sum::<f32>() * share,
                attention: piece_mean(&mine, k, |p, i| beta[i * pieces + p]),
            }
        })
        .collect();
    let grid = (k as f64).sqrt().round() as usize;
    Ok(Explanation {
        image: image.to_path_buf(),
        caption: caption.to_string(),
        score,
        weights: shan.weights,
        l2l,
        g2l,
        g2g,
        grid,
        boxes: preprocess::region_boxes(photo.width(), photo.height(), grid),
        words,
        warning: tokenized.truncation_warning(),
    })
}

/// A word's attention over `k` regions: the mean of its pieces' (`at(piece, region)`).
pub fn piece_mean(pieces: &[usize], k: usize, at: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let share = 1.0 / pieces.len().max(1) as f32;
    (0..k).map(|i| pieces.iter().map(|&p| at(p, i)).sum::<f32>() * share).collect()
}

/// Each word of a caption with the indices of its pieces among the word features (piece p is
/// token p + 1: [CLS] and [SEP] are not word features); words whose pieces were truncated away
/// are left out.
pub fn word_pieces(tokenized: &Tokenized) -> Vec<(String, Vec<usize>)> {
    let pieces = tokenized.ids.len().saturating_sub(2);
    tokenized
        .words
        .iter()
        .enumerate()
        .filter_map(|(w, word)| {
            let mine: Vec<usize> = (0..pieces).filter(|&p| tokenized.piece_word[p + 1] == Some(w)).collect();
            (!mine.is_empty()).then(|| (word.clone(), mine))
        })
        .collect()
}
