//! BERT uncased WordPiece tokenization, exactly as all-MiniLM-L6-v2's tokenizer.json does it
//! (BertNormalizer: clean text, space out CJK ideographs, strip accents, lowercase;
//! BertPreTokenizer: split on whitespace and punctuation; WordPiece with `##` continuations),
//! plus the map from each piece back to the caption's own words.

use std::collections::HashMap;
use std::path::Path;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenizeError {
    #[error("the caption is empty")]
    Empty,
    #[error("the caption has no words the model can read")]
    NothingToEncode,
}

/// A tokenized caption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokenized {
    /// Vocabulary ids, `[CLS] … [SEP]`.
    pub ids: Vec<u32>,
    /// The WordPiece pieces, same length as `ids`.
    pub pieces: Vec<String>,
    /// Character span of each piece in the caption (`(0, 0)` for `[CLS]`/`[SEP]`).
    pub offsets: Vec<(usize, usize)>,
    /// The caption's words as typed (split on whitespace).
    pub words: Vec<String>,
    /// For each piece, the index into `words` it came from (`None` for `[CLS]`/`[SEP]`).
    pub piece_word: Vec<Option<usize>>,
    /// Pieces dropped because the caption exceeded the model's length limit.
    pub truncated_pieces: usize,
}

impl Tokenized {
    /// A warning to show with a caption's results: no word the model knows (emoji, another
    /// script: the ranking then follows nothing the caption says), or the caption was cut.
    pub fn warning(&self) -> Option<String> {
        let words = self.pieces.iter().zip(&self.piece_word).filter(|(_, w)| w.is_some());
        let mut known = words.clone().filter(|(p, _)| p.as_str() != "[UNK]");
        if words.count() > 0 && known.next().is_none() {
            return Some(
                "no word of the caption is in the model's vocabulary (emoji or another script?): the ranking follows nothing it says"
                    .to_string(),
            );
        }
        self.truncation_warning()
    }

    /// A warning to show when the caption was cut to fit the model.
    pub fn truncation_warning(&self) -> Option<String> {
        (self.truncated_pieces > 0).then(|| {
            format!(
                "caption too long: the last {} word pieces were dropped (the model reads at most {} pieces)",
                self.truncated_pieces,
                self.ids.len()
            )
        })
    }
}

pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    /// Longest sequence the model accepts, special tokens included.
    pub max_tokens: usize,
}

const MAX_WORD_CHARS: usize = 100;

impl WordPiece {
    pub fn load(path: &Path, max_tokens: usize) -> Result<Self, std::io::Error> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let text = std::fs::read_to_string(path)?;
        super::checksums::verify(path, text.as_bytes()).map_err(invalid)?;
        Self::from_vocab(&text, max_tokens).map_err(|e| invalid(format!("{}: {e}", path.display())))
    }

    pub fn from_vocab(text: &str, max_tokens: usize) -> Result<Self, String> {
        let vocab: HashMap<String, u32> = text.lines().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let id = |t: &str| vocab.get(t).copied().ok_or_else(|| format!("vocabulary has no {t}"));
        Ok(Self { unk: id("[UNK]")?, cls: id("[CLS]")?, sep: id("[SEP]")?, vocab, max_tokens: max_tokens.max(3) })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    pub fn pad_id(&self) -> u32 {
        self.vocab.get("[PAD]").copied().unwrap_or(0)
    }

    pub fn tokenize(&self, caption: &str) -> Result<Tokenized, TokenizeError> {
        if caption.trim().is_empty() {
            return Err(TokenizeError::Empty);
        }
        let (words, word_of_char) = user_words(caption);
        let mut ids = vec![self.cls];
        let mut pieces = vec!["[CLS]".to_string()];
        let mut offsets = vec![(0, 0)];
        let mut piece_word = vec![None];
        for (word, origins) in pre_tokenize(&normalize(caption)) {
            for (piece, (start, end)) in self.word_pieces(&word, &origins) {
                ids.push(self.vocab.get(&piece).copied().unwrap_or(self.unk));
                pieces.push(piece);
                offsets.push((start, end));
                piece_word.push(word_of_char.get(start).copied().flatten());
            }
        }
        if ids.len() == 1 {
            return Err(TokenizeError::NothingToEncode);
        }
        let keep = self.max_tokens - 1;
        let truncated_pieces = ids.len().saturating_sub(keep);
        ids.truncate(keep);
        offsets.truncate(keep);
        pieces.truncate(keep);
        piece_word.truncate(keep);
        ids.push(self.sep);
        pieces.push("[SEP]".into());
        offsets.push((0, 0));
        piece_word.push(None);
        Ok(Tokenized { ids, pieces, offsets, words, piece_word, truncated_pieces })
    }

    /// Greedy longest-match-first WordPiece; a word that cannot be covered becomes `[UNK]`.
    fn word_pieces(&self, word: &[char], origins: &[usize]) -> Vec<(String, (usize, usize))> {
        let span = |a: usize, b: usize| (origins[a], origins[b - 1] + 1);
        let unk = || vec![("[UNK]".to_string(), span(0, word.len()))];
        if word.len() > MAX_WORD_CHARS {
            return unk();
        }
        let mut out = Vec::new();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                let mut candidate: String = word[start..end].iter().collect();
                if start > 0 {
                    candidate.insert_str(0, "##");
                }
                if self.vocab.contains_key(&candidate) {
                    found = Some(candidate);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(piece) => out.push((piece, span(start, end))),
                None => return unk(),
            }
            start = end;
        }
        out
    }
}

/// The caption's whitespace-separated words, and for each character the word it belongs to.
fn user_words(caption: &str) -> (Vec<String>, Vec<Option<usize>>) {
    let mut words: Vec<String> = Vec::new();
    let mut of_char = Vec::new();
    let mut in_word = false;
    for c in caption.chars() {
        if is_whitespace(c) {
            in_word = false;
            of_char.push(None);
        } else {
            if !in_word {
                words.push(String::new());
                in_word = true;
            }
            if let Some(w) = words.last_mut() {
                w.push(c);
            }
            of_char.push(Some(words.len() - 1));
        }
    }
    (words, of_char)
}

/// BertNormalizer; every output char remembers the index of the caption char it came from.
fn normalize(caption: &str) -> Vec<(char, usize)> {
    let mut out = Vec::with_capacity(caption.len());
    for (i, c) in caption.chars().enumerate() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        let c = if is_whitespace(c) { ' ' } else { c };
        if is_cjk(c) {
            out.extend([(' ', i), (c, i), (' ', i)]);
            continue;
        }
        for d in std::iter::once(c).nfd() {
            if get_general_category(d) == GeneralCategory::NonspacingMark {
                continue;
            }
            out.extend(d.to_lowercase().map(|l| (l, i)));
        }
    }
    out
}

/// BertPreTokenizer: words split on whitespace, each punctuation char a word of its own.
fn pre_tokenize(chars: &[(char, usize)]) -> Vec<(Vec<char>, Vec<usize>)> {
    let mut words = Vec::new();
    let mut current: (Vec<char>, Vec<usize>) = (Vec::new(), Vec::new());
    let flush = |current: &mut (Vec<char>, Vec<usize>), words: &mut Vec<(Vec<char>, Vec<usize>)>| {
        if !current.0.is_empty() {
            words.push(std::mem::take(current));
        }
    };
    for &(c, origin) in chars {
        if c.is_whitespace() {
            flush(&mut current, &mut words);
        } else if is_punctuation(c) {
            flush(&mut current, &mut words);
            words.push((vec![c], vec![origin]));
        } else {
            current.0.push(c);
            current.1.push(origin);
        }
    }
    flush(&mut current, &mut words);
    words
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    )
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            GeneralCategory::ConnectorPunctuation
                | GeneralCategory::DashPunctuation
                | GeneralCategory::OpenPunctuation
                | GeneralCategory::ClosePunctuation
                | GeneralCategory::InitialPunctuation
                | GeneralCategory::FinalPunctuation
                | GeneralCategory::OtherPunctuation
        )
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\ndog\nrun\n##s\n.\ncafe\n";
        WordPiece::from_vocab(vocab, 8).unwrap()
    }

    #[test]
    fn pieces_map_back_to_typed_words() {
        let t = tiny().tokenize("A dog  runs.").unwrap();
        assert_eq!(t.pieces, ["[CLS]", "a", "dog", "run", "##s", ".", "[SEP]"]);
        assert_eq!(t.words, ["A", "dog", "runs."]);
        assert_eq!(t.piece_word, [None, Some(0), Some(1), Some(2), Some(2), Some(2), None]);
        assert_eq!(t.offsets[3], (7, 10));
        assert_eq!(t.truncated_pieces, 0);
    }

    #[test]
    fn accents_are_stripped_and_unknown_words_become_unk() {
        let t = tiny().tokenize("Café xyz").unwrap();
        assert_eq!(t.pieces, ["[CLS]", "cafe", "[UNK]", "[SEP]"]);
        assert_eq!(t.warning(), None, "one known word is enough");
        let unknown = tiny().tokenize("🐈 xyz").unwrap();
        assert!(unknown.warning().is_some_and(|w| w.contains("no word of the caption")), "{unknown:?}");
        assert_eq!(t.offsets[1], (0, 4));
    }

    #[test]
    fn long_captions_are_truncated_and_counted() {
        let t = tiny().tokenize("a a a a a a a a a a").unwrap();
        assert_eq!(t.ids.len(), 8);
        assert_eq!(t.pieces.last().map(String::as_str), Some("[SEP]"));
        assert_eq!(t.truncated_pieces, 4);
    }

    #[test]
    fn empty_captions_are_an_error() {
        assert_eq!(tiny().tokenize("  \t\n"), Err(TokenizeError::Empty));
        assert_eq!(tiny().tokenize("\u{200b}"), Err(TokenizeError::NothingToEncode));
    }
}
