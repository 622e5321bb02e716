//! Ranking an indexed folder by a caption with the networks whose photo features the index holds:
//! the default ranker (SHAN's and the global model's embeddings fused and normalised against a
//! query bank: a dot product per photo and model), the global model alone, or SHAN in two
//! stages (its pair-independent embedding, then full SHAN on the best `candidates`; `exhaustive`
//! scores every photo with SHAN). Search by example photo compares SHAN's embeddings.

use crate::model::matcher::Matcher;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use half::slice::HalfFloatSliceExt as _;

use super::fused::{QueryBank, dot};
use super::runtime::Runtime;
use crate::data::index_file::{IndexFile, IndexHeader};
use crate::features::values;
use crate::model::shan::{ImageSide, TextSide, pairs};

/// Photos re-scored by SHAN after the embedding pre-rank (chosen with `bench search`: the recall
/// two-stage keeps against exhaustive scoring on the Flickr8k 1K test, at this many).
pub const DEFAULT_CANDIDATES: usize = 100;

/// Photos SHAN scores per pass when scoring many.
const SCORE_CHUNK: usize = 16;

/// An index held in memory as matrices.
pub struct LoadedIndex {
    pub root: PathBuf,
    /// Relative to `root`.
    pub paths: Vec<PathBuf>,
    pub dim: usize,
    /// [N, dim]
    pub embeddings: Vec<f32>,
    pub regions: usize,
    pub region_dim: usize,
    /// [N, regions, region_dim]
    pub fragments: Vec<half::f16>,
    /// [N, 3, regions]: pooling weights, gate terms (see `IndexEntry::context`).
    pub context: Vec<f32>,
    pub global_dim: usize,
    /// [N, global_dim]
    pub globals: Vec<f32>,
    /// [N]: the default ranker's per-photo normaliser.
    pub normalisers: Vec<f32>,
}

/// The networks an index can rank with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SearchModel {
    /// SHAN's and the global model's embeddings fused, normalised against the query bank.
    #[default]
    Default,
    /// The tuned global dual encoder.
    Global,
    /// SHAN: its embedding first, then its full score on the best candidates.
    Shan,
}

impl SearchModel {
    pub const ALL: [SearchModel; 3] = [SearchModel::Default, SearchModel::Global, SearchModel::Shan];

    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Global => "global",
            Self::Shan => "SHAN",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub score: f32,
    pub path: PathBuf,
}

/// `{"score": …, "path": …}`, with `path_bytes` where the path is not UTF-8 (never a panic).
impl serde::Serialize for Hit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut object = serde_json::Map::new();
        object.insert("score".into(), serde_json::Value::from(self.score));
        crate::data::path_text::json_fields(&self.path, "path", &mut object);
        object.serialize(s)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SearchOptions {
    pub model: SearchModel,
    pub top: usize,
    pub candidates: usize,
    pub exhaustive: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self { model: SearchModel::Default, top: 10, candidates: DEFAULT_CANDIDATES, exhaustive: false }
    }
}

impl LoadedIndex {
    /// No photos yet, with the shapes `header` gives.
    pub fn empty(root: &Path, header: &IndexHeader) -> Self {
        Self {
            root: root.to_path_buf(),
            paths: Vec::new(),
            dim: header.dim,
            embeddings: Vec::new(),
            regions: header.regions,
            region_dim: header.region_dim,
            fragments: Vec::new(),
            context: Vec::new(),
            global_dim: header.global_dim,
            globals: Vec::new(),
            normalisers: Vec::new(),
        }
    }

    pub fn new(root: &Path, file: IndexFile) -> Self {
        let mut index = Self::empty(root, &file.header);
        for (path, e) in file.entries {
            index.paths.push(path);
            index.embeddings.extend(e.embedding);
            index.fragments.extend(e.regions);
            index.context.extend(e.context);
            index.globals.extend(e.global);
            index.normalisers.push(e.normaliser);
        }
        index
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Dot product of every photo's SHAN embedding with `query`.
    pub fn embedding_scores(&self, query: &[f32]) -> Vec<f32> {
        self.embeddings.chunks_exact(self.dim).map(|e| dot(e, query)).collect()
    }

    /// Dot product of every photo's global embedding with `query`.
    pub fn global_scores(&self, query: &[f32]) -> Vec<f32> {
        self.globals.chunks_exact(self.global_dim).map(|e| dot(e, query)).collect()
    }

    /// The default ranker's score of every photo for a caption's two embeddings.
    pub fn default_scores(&self, bank: &QueryBank, shan: &[f32], global: &[f32]) -> Vec<f32> {
        let (s, g) = (self.embedding_scores(shan), self.global_scores(global));
        s.iter().zip(&g).zip(&self.normalisers).map(|((s, g), n)| bank.score(*s, *g, *n)).collect()
    }

    /// The image sides of `photos`, a few photos per side (the size SHAN scores at once).
    pub fn image_sides(&self, photos: &[usize], device: &burn::tensor::Device) -> Vec<ImageSide> {
        photos.chunks(SCORE_CHUNK).map(|chunk| self.image_side(chunk, device)).collect()
    }

    /// SHAN's image side of some photos, from the stored features.
    pub fn image_side(&self, photos: &[usize], device: &burn::tensor::Device) -> ImageSide {
        let (k, per) = (self.regions, self.regions * self.region_dim);
        let mut v = vec![0.0f32; photos.len() * per];
        for (out, &p) in v.chunks_exact_mut(per).zip(photos) {
            self.fragments[p * per..(p + 1) * per].convert_to_f32_slice(out);
        }
        let regions = Tensor::from_data(TensorData::new(v, [photos.len(), k, self.region_dim]), device);
        let part = |which: usize| {
            let v: Vec<f32> = photos
                .iter()
                .flat_map(|&p| self.context[p * 3 * k + which * k..p * 3 * k + (which + 1) * k].iter().copied())
                .collect();
            Tensor::<2>::from_data(TensorData::new(v, [photos.len(), k]), device)
        };
        ImageSide::from_parts(regions, part(0), part(1), part(2))
    }

    /// The same parts for SHAN's fused CPU pass (the fragments read from the store as scored).
    pub fn host_images(&self, photos: &[usize]) -> pairs::HostImages<'_> {
        let k = self.regions;
        let part = |which: usize| {
            photos.iter().flat_map(|&p| self.context[p * 3 * k + which * k..][..k].iter().copied()).collect()
        };
        let parts = [part(0), part(1), part(2)];
        pairs::HostImages::from_store([k, self.region_dim], &self.fragments, photos.to_vec(), parts)
    }

    fn hit(&self, photo: usize, score: f32) -> Hit {
        Hit { score, path: self.root.join(&self.paths[photo]) }
    }
}

/// Indices of the `k` largest scores, best first (ties by index, so results are reproducible).
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let by_score = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    let k = k.min(order.len());
    if k < order.len() {
        order.select_nth_unstable_by(k, by_score);
        order.truncate(k);
    }
    order.sort_by(by_score);
    order
}

/// SHAN's final score of `photos` with the caption(s): [photos, captions], row-major.
pub fn shan_scores(runtime: &Runtime, index: &LoadedIndex, photos: &[usize], caption: &TextSide) -> Vec<f32> {
    if pairs::serves(&runtime.net.shan, &runtime.device) {
        return pairs::totals(&runtime.net.shan, &index.host_images(photos), &pairs::HostCaptions::of(caption));
    }
    score_sides(runtime, &index.image_sides(photos, &runtime.device), caption)
}

/// SHAN's final score of already built image sides with the caption(s), in their order.
pub fn score_sides(runtime: &Runtime, sides: &[ImageSide], caption: &TextSide) -> Vec<f32> {
    let net = &runtime.net.shan;
    if pairs::serves(net, &runtime.device) {
        return pairs::totals(net, &pairs::HostImages::of_sides(sides), &pairs::HostCaptions::of(caption));
    }
    sides.iter().flat_map(|img| values(net.score_batch(img, caption).total)).collect()
}

/// A caption encoded once for every network the index can rank with.
pub struct Query {
    /// SHAN's text side (its embedding is the pair-independent one).
    pub txt: TextSide,
    pub shan: Vec<f32>,
    pub global: Vec<f32>,
    /// A warning for the caption's results (cut, or no known word).
    pub warning: Option<String>,
}

/// Encode a caption: MiniLM's frozen layers once, then SHAN's text side and the global top.
pub fn encode_caption(runtime: &Runtime, caption: &str) -> anyhow::Result<Query> {
    let (txt, global, tokenized) = runtime.caption_sides(caption)?;
    Ok(Query { shan: values(txt.embedding.clone()), global: values(global), txt, warning: tokenized.warning() })
}

/// Rank the index by a caption with `options.model`; also the caption's warning, if any.
pub fn search_caption(
    runtime: &Runtime,
    index: &LoadedIndex,
    caption: &str,
    options: SearchOptions,
) -> anyhow::Result<(Vec<Hit>, Option<String>)> {
    let query = encode_caption(runtime, caption)?;
    Ok((rank_query(runtime, index, &query, options)?, query.warning))
}

/// Rank the index by an encoded caption with `options.model`.
pub fn rank_query(
    runtime: &Runtime,
    index: &LoadedIndex,
    query: &Query,
    options: SearchOptions,
) -> anyhow::Result<Vec<Hit>> {
    let scores = match options.model {
        SearchModel::Shan => return Ok(rank_by_text(runtime, index, &query.txt, options)),
        SearchModel::Global => index.global_scores(&query.global),
        SearchModel::Default => {
            let bank = runtime.bank.as_ref().map_err(|e| anyhow::anyhow!("the default ranker is unavailable: {e}"))?;
            index.default_scores(bank, &query.shan, &query.global)
        }
    };
    Ok(top_k(&scores, options.top).into_iter().map(|i| index.hit(i, scores[i])).collect())
}

/// SHAN's two stages (or the exhaustive one) for an encoded caption.
pub fn rank_by_text(runtime: &Runtime, index: &LoadedIndex, txt: &TextSide, options: SearchOptions) -> Vec<Hit> {
    let candidates: Vec<usize> = if options.exhaustive {
        (0..index.len()).collect()
    } else {
        top_k(&index.embedding_scores(&values(txt.embedding.clone())), options.candidates.max(options.top))
    };
    let scores = shan_scores(runtime, index, &candidates, txt);
    top_k(&scores, options.top).into_iter().map(|i| index.hit(candidates[i], scores[i])).collect()
}

/// Photos most like an example photo (cosine of the pooled embeddings).
pub fn search_image(runtime: &Runtime, index: &LoadedIndex, photo: &Path, top: usize) -> anyhow::Result<Vec<Hit>> {
    let decoded = crate::data::decode::decode_oriented(photo)?;
    let scores = index.embedding_scores(&runtime.index_features(&decoded).embedding);
    Ok(top_k(&scores, top).into_iter().map(|i| index.hit(i, scores[i])).collect())
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn top_k_is_best_first_with_stable_ties() {
        let s = [0.1, 0.9, 0.5, 0.9, -1.0];
        assert_eq!(top_k(&s, 3), vec![1, 3, 2]);
        assert_eq!(top_k(&s, 10), vec![1, 3, 2, 0, 4]);
        assert!(top_k(&[], 3).is_empty());
    }
}
