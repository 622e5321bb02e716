//! The text path: caption → WordPiece pieces → MiniLM token features + sentence vector.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use super::minilm::{Layer, MiniLm, TokenBatch, additive_mask};
use super::tokenizer::{TokenizeError, Tokenized, WordPiece};
use super::weights::WeightsError;

/// Longest caption in pieces, `[CLS]`/`[SEP]` included (sentence-transformers' max_seq_length).
pub const MAX_TOKENS: usize = 256;

/// Captions per padded forward pass after sorting by length (measured: `bench encoders`).
const LENGTH_GROUP: usize = 16;

#[derive(Clone, Debug)]
pub struct TextFeatures {
    pub tokenized: Tokenized,
    /// One row of `dim` per piece, `[CLS]`/`[SEP]` included.
    pub tokens: Vec<f32>,
    /// Attention-masked mean of the token features.
    pub sentence: Vec<f32>,
    /// The same mean under a fine-tuned replacement of the last layer, when one was given
    /// ([`TextEncoder::encode_with_top`]).
    pub top_sentence: Option<Vec<f32>>,
    pub dim: usize,
}

/// One caption's outputs of a padded pass: tokens, sentence, sentence under the replacement top.
type Encoded = (Vec<f32>, Vec<f32>, Option<Vec<f32>>);

impl TextFeatures {
    /// A warning to show with the caption's results (see [`Tokenized::warning`]).
    pub fn warning(&self) -> Option<String> {
        self.tokenized.warning()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TextLoadError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("{path}: cannot read the vocabulary: {source}")]
    Vocab { path: String, source: std::io::Error },
}

pub struct TextEncoder {
    pub model: MiniLm,
    pub tokenizer: WordPiece,
    pub device: Device,
}

impl TextEncoder {
    pub fn load(weights: &Path, vocab: &Path, device: &Device) -> Result<Self, TextLoadError> {
        let model = MiniLm::load(weights, device)?;
        let max = MAX_TOKENS.min(model.max_positions());
        let tokenizer = WordPiece::load(vocab, max)
            .map_err(|source| TextLoadError::Vocab { path: vocab.display().to_string(), source })?;
        Ok(Self { model, tokenizer, device: device.clone() })
    }

    /// Encode captions in one padded batch; a caption that cannot be tokenized gets its error.
    pub fn encode(&self, captions: &[&str]) -> Vec<Result<TextFeatures, TokenizeError>> {
        self.encode_with_top(captions, None)
    }

    /// [`Self::encode`], and where `top` is given (a fine-tuned copy of MiniLM's last layer) each
    /// caption's mean-pooled features under it as well, from the same pass through the layers below.
    pub fn encode_with_top(&self, captions: &[&str], top: Option<&Layer>) -> Vec<Result<TextFeatures, TokenizeError>> {
        let tokenized: Vec<_> = captions.iter().map(|c| self.tokenizer.tokenize(c)).collect();
        let ok: Vec<&Tokenized> = tokenized.iter().filter_map(|t| t.as_ref().ok()).collect();
        let mut encoded = self.encode_tokenized(&ok, top).into_iter();
        tokenized
            .into_iter()
            .map(|t| {
                t.map(|t| {
                    let (tokens, sentence, top_sentence) = encoded.next().unwrap_or_default();
                    TextFeatures { tokenized: t, tokens, sentence, top_sentence, dim: self.model.hidden }
                })
            })
            .collect()
    }

    /// Captions of similar length are run together so little of the work is padding.
    fn encode_tokenized(&self, batch: &[&Tokenized], top: Option<&Layer>) -> Vec<Encoded> {
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&i| batch[i].ids.len());
        let mut out = vec![Encoded::default(); batch.len()];
        for group in order.chunks(LENGTH_GROUP) {
            let members: Vec<&Tokenized> = group.iter().map(|&i| batch[i]).collect();
            for (&i, encoded) in group.iter().zip(self.encode_padded(&members, top)) {
                out[i] = encoded;
            }
        }
        out
    }

    fn encode_padded(&self, batch: &[&Tokenized], top: Option<&Layer>) -> Vec<Encoded> {
        if batch.is_empty() {
            return Vec::new();
        }
        let ids: Vec<Vec<u32>> = batch.iter().map(|t| t.ids.clone()).collect();
        let tb = TokenBatch::new(&ids, self.tokenizer.pad_id(), &self.device);
        let [b, n] = tb.ids.dims();
        let h = self.model.hidden;
        let last = self.model.layers.len().saturating_sub(1);
        let entering = self.model.hidden_until(&tb, last);
        let pooled = |x: Tensor<2>| super::values(MiniLm::mean_pool(x.reshape([b, n, h]), tb.mask.clone()));
        let top_sentences = top.map(|layer| pooled(layer.forward(entering.clone(), additive_mask(tb.mask.clone()), b)));
        let tokens = self.model.hidden_from(entering, &tb, last);
        let sentences = pooled(tokens.clone());
        let tokens = super::values(tokens);
        tb.lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let top = top_sentences.as_ref().map(|s| s[i * h..(i + 1) * h].to_vec());
                (tokens[i * n * h..(i * n + len) * h].to_vec(), sentences[i * h..(i + 1) * h].to_vec(), top)
            })
            .collect()
    }
}
