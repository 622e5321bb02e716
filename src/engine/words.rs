//! A caption's words as the explanations see them: which ones name something to look at, and
//! which word pieces (the network's word features) make each word.

use crate::features::tokenizer::Tokenized;

/// Words that carry little to look at in a heatmap.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "on", "in", "of", "with", "and", "is", "are", "at", "to", "by", "for", "from", "its", "his",
    "her", "their", "into", "while", "near",
];

/// Whether a word names something to look at (not "a", "of", "the"…).
pub fn is_content_word(word: &str) -> bool {
    !FUNCTION_WORDS.contains(&word.to_lowercase().as_str())
}

/// The indices of the content words among `words`, or of every word where none is one: the
/// words a heatmap is drawn for, and whose maps make a pair's.
pub fn content_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
    let words: Vec<&str> = words.into_iter().collect();
    let content: Vec<usize> = (0..words.len()).filter(|&j| is_content_word(words[j])).collect();
    if content.is_empty() { (0..words.len()).collect() } else { content }
}

/// The mean of the content words' maps over `k` cells ([`content_words`]).
pub fn content_mean<'a>(words: impl IntoIterator<Item = (&'a str, &'a [f32])>, k: usize) -> Vec<f32> {
    let words: Vec<(&str, &[f32])> = words.into_iter().collect();
    let chosen = content_words(words.iter().map(|(w, _)| *w));
    piece_mean(&chosen, k, |j, i| words[j].1[i])
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
