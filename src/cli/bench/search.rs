//! `alignscope bench search`: query latency over a synthetic index of real shapes (two-stage
//! and exhaustive), indexing throughput on real photos, and on the Flickr8k 1K test as a folder
//! the recall two-stage search keeps against exhaustive SHAN scoring.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use half::f16;

use alignscope::data::flickr8k::{Split, load_split};
use alignscope::engine::index::update_index;
use alignscope::engine::jobs::CancelToken;
use alignscope::engine::runtime::Runtime;
use alignscope::engine::search::{LoadedIndex, SearchModel, SearchOptions, search_caption, top_k};
use alignscope::features::values;

pub struct SearchBench {
    /// Photos in the synthetic index.
    pub photos: usize,
    /// Timed queries per mode.
    pub queries: usize,
    pub candidates: usize,
    pub flickr8k: std::path::PathBuf,
}

/// A latency percentile of sorted times (NaN when there are none).
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    alignscope::engine::recall::percentile(sorted, q).unwrap_or(f64::NAN)
}

/// A synthetic index with the real shapes: unit fragments and embeddings, `photos` of them.
pub(crate) fn synthetic(runtime: &Runtime, photos: usize) -> LoadedIndex {
    let h = runtime.index_header();
    let mut rng = fastrand::Rng::with_seed(1);
    let mut index = LoadedIndex::empty(std::path::Path::new("synthetic"), &h);
    for i in 0..photos {
        index.paths.push(format!("photo-{i:05}.jpg").into());
        index.embeddings.extend(unit(&mut rng, h.dim));
        index.globals.extend(unit(&mut rng, h.global_dim));
        index.normalisers.push(rng.f32() * 10.0);
        for _ in 0..h.regions {
            index.fragments.extend(unit(&mut rng, h.region_dim).into_iter().map(f16::from_f32));
        }
        let pool: Vec<f32> = (0..h.regions).map(|_| rng.f32()).collect();
        let total: f32 = pool.iter().sum();
        index.context.extend(pool.iter().map(|w| w / total));
        index.context.extend((0..2 * h.regions).map(|_| rng.f32() * 2.0 - 1.0));
    }
    index
}

pub(crate) fn unit(rng: &mut fastrand::Rng, n: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-8);
    v.into_iter().map(|x| x / norm).collect()
}

impl SearchBench {
    pub fn run(&self, runtime: &Runtime) -> anyhow::Result<String> {
        let mut out = String::new();
        let captions = self.captions();
        self.latency(runtime, &captions, &mut out)?;
        if self.flickr8k.join("Flickr8k.token.txt").is_file() {
            self.flickr8k_recall(runtime, &mut out)?;
        } else {
            writeln!(out, "Flickr8k not found at {}: no throughput or recall figures", self.flickr8k.display())?;
        }
        Ok(out)
    }

    fn captions(&self) -> Vec<String> {
        let from_data: Vec<String> = load_split(&self.flickr8k, Split::Test)
            .map(|d| d.captions.into_iter().map(|c| c[0].clone()).collect())
            .unwrap_or_default();
        if from_data.is_empty() {
            vec!["a dog runs through the grass".to_string(), "two children play on the beach".to_string()]
        } else {
            from_data
        }
    }

    fn synthetic(&self, runtime: &Runtime) -> LoadedIndex {
        synthetic(runtime, self.photos)
    }

    fn latency(&self, runtime: &Runtime, captions: &[String], out: &mut String) -> anyhow::Result<()> {
        let index = self.synthetic(runtime);
        writeln!(
            out,
            "query latency over a synthetic index of {} photos ({} regions × {} each), caption encoding included:",
            index.len(),
            index.regions,
            index.region_dim
        )?;
        let mut medians = Vec::new();
        let few = self.queries.div_ceil(5).max(3);
        for (name, model, exhaustive, n) in [
            ("default", SearchModel::Default, false, self.queries),
            ("SHAN two-stage", SearchModel::Shan, false, self.queries),
            ("SHAN exhaustive", SearchModel::Shan, true, few),
        ] {
            let options = SearchOptions { model, top: 10, candidates: self.candidates, exhaustive };
            let mut times: Vec<f64> = Vec::new();
            for caption in captions.iter().cycle().take(n + 1) {
                let started = Instant::now();
                let (hits, _) = search_caption(runtime, &index, caption, options)?;
                anyhow::ensure!(hits.len() == 10, "expected 10 results");
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            times.remove(0); // the first query warms caches
            times.sort_by(f64::total_cmp);
            let (median, p95) = (percentile(&times, 0.5), percentile(&times, 0.95));
            medians.push(median);
            let detail = match (model, exhaustive) {
                (SearchModel::Shan, false) => format!(", SHAN on the best {}", self.candidates),
                _ => String::new(),
            };
            writeln!(out, "  {name:15} median {median:7.1} ms, p95 {p95:7.1} ms over {} queries{detail}", times.len())?;
        }
        writeln!(out, "  SHAN two-stage is {:.1}× faster than exhaustive", medians[2] / medians[1])?;
        Ok(())
    }

    fn flickr8k_recall(&self, runtime: &Runtime, out: &mut String) -> anyhow::Result<()> {
        let data = load_split(&self.flickr8k, Split::Test)?;
        // A folder of copies, so the index is written beside them and not into the dataset.
        let folder = ScratchDir::new("flickr8k-test")?;
        for photo in &data.images {
            let name = photo.file_name().context("photo without a name")?;
            std::fs::copy(photo, folder.0.join(name)).with_context(|| format!("copy {}", photo.display()))?;
        }
        let (summary, _) = update_index(runtime, &folder.0, &CancelToken::default(), &|_| {})?;
        writeln!(
            out,
            "indexing {} Flickr8k test photos: {:.1} photos/s ({:.1} s)",
            summary.embedded,
            summary.embedded as f64 / summary.seconds,
            summary.seconds
        )?;
        let bytes = std::fs::metadata(&summary.index_path).map(|m| m.len()).unwrap_or(0);
        writeln!(
            out,
            "index file: {:.1} KB per photo ({} regions each)",
            bytes as f64 / 1024.0 / summary.embedded.max(1) as f64,
            runtime.index_header().regions
        )?;
        // Reopening the indexed folder, as the window and `search` do: the folder scanned and the
        // index read and checked, then the first query ranked with the default.
        let reopened = Instant::now();
        let (again, file) = update_index(runtime, &folder.0, &CancelToken::default(), &|_| {})?;
        anyhow::ensure!(again.embedded == 0, "the second run embedded {} photos", again.embedded);
        let index = LoadedIndex::new(&folder.0, file);
        let caption = data.captions.first().and_then(|c| c.first()).context("no caption")?;
        search_caption(runtime, &index, caption, SearchOptions::default())?;
        writeln!(
            out,
            "reopening the indexed folder of {} photos: first default query answered in {:.2} s",
            index.len(),
            reopened.elapsed().as_secs_f64()
        )?;
        let position: std::collections::HashMap<&std::ffi::OsStr, usize> =
            index.paths.iter().enumerate().map(|(i, p)| (p.as_os_str(), i)).collect();

        // Every caption against every photo: SHAN's exhaustive scores and the embedding scores.
        let started = Instant::now();
        let mut queries: Vec<(usize, alignscope::features::tokenizer::Tokenized)> = Vec::new();
        for (photo, five) in data.images.iter().zip(&data.captions) {
            let gt =
                *position.get(photo.file_name().unwrap_or_default()).context("a test photo missing from the index")?;
            for c in five {
                queries.push((gt, runtime.text.tokenizer.tokenize(c)?));
            }
        }
        queries.sort_by_key(|(_, t)| t.ids.len());
        // Every photo's side is built once and scored against each group of captions.
        let all: Vec<usize> = (0..index.len()).collect();
        let sides = index.image_sides(&all, &runtime.device);
        let (mut exhaustive, mut two_stage, mut default) = ([0usize; 3], [0usize; 3], [0usize; 3]);
        let bank = runtime.bank.as_ref().map_err(|e| anyhow::anyhow!("the default ranker: {e}"))?;
        // The default's scores, photos × captions in query order, for its hubness.
        let mut default_scores = vec![0.0f32; index.len() * queries.len()];
        let mut done = 0;
        for group in queries.chunks(64) {
            let tokenized: Vec<_> = group.iter().map(|(_, t)| t.clone()).collect();
            let txt = runtime.text_sides(&tokenized);
            let shan = alignscope::engine::search::score_sides(runtime, &sides, &txt); // [photos, group]
            let emb = values(txt.embedding.clone());
            let global = values(runtime.global.embed_hidden(runtime.caption_batch(&tokenized)));
            let gd = index.global_dim;
            for (q, (gt, _)) in group.iter().enumerate() {
                let d =
                    index.default_scores(bank, &emb[q * index.dim..(q + 1) * index.dim], &global[q * gd..(q + 1) * gd]);
                let rank = d.iter().enumerate().filter(|&(p, &s)| p != *gt && s >= d[*gt]).count();
                count(&mut default, Some(rank));
                for (p, s) in d.iter().enumerate() {
                    default_scores[p * queries.len() + done + q] = *s;
                }
                let column: Vec<f32> = (0..index.len()).map(|p| shan[p * group.len() + q]).collect();
                let rank = column.iter().enumerate().filter(|&(p, &s)| p != *gt && s >= column[*gt]).count();
                count(&mut exhaustive, Some(rank));
                let query = &emb[q * index.dim..(q + 1) * index.dim];
                let candidates = top_k(&index.embedding_scores(query), self.candidates);
                let rank = candidates
                    .contains(gt)
                    .then(|| candidates.iter().filter(|&&p| p != *gt && column[p] >= column[*gt]).count());
                count(&mut two_stage, rank);
            }
            done += group.len();
        }
        let pct = |h: [usize; 3]| h.map(|x| 100.0 * x as f64 / queries.len() as f64);
        let (e, t, d) = (pct(exhaustive), pct(two_stage), pct(default));
        writeln!(
            out,
            "Flickr8k 1K test as a folder, {} captions as queries ({:.0} s):",
            queries.len(),
            started.elapsed().as_secs_f64()
        )?;
        writeln!(out, "  default           t2i R@1/5/10 {:.1}/{:.1}/{:.1}", d[0], d[1], d[2])?;
        writeln!(out, "  exhaustive SHAN   t2i R@1/5/10 {:.1}/{:.1}/{:.1}", e[0], e[1], e[2])?;
        writeln!(out, "  two-stage (K={})  t2i R@1/5/10 {:.1}/{:.1}/{:.1}", self.candidates, t[0], t[1], t[2])?;
        writeln!(
            out,
            "  two-stage top-10 holds the ground-truth photo for {:.1}% of the captions ({:+.1} vs exhaustive)",
            t[2],
            t[2] - e[2]
        )?;
        let h = alignscope::train::default_ranker::hubness(&default_scores, index.len(), 10);
        writeln!(
            out,
            "  default's hubness: photos' appearances in the captions' top-{} have skewness {:.2}, the most {} (mean {:.0}), {} never",
            h.k,
            h.skewness,
            h.max,
            (queries.len() * h.k) as f64 / index.len() as f64,
            h.never
        )?;
        Ok(())
    }
}

fn count(hits: &mut [usize; 3], rank: Option<usize>) {
    for (h, k) in hits.iter_mut().zip([1, 5, 10]) {
        if rank.is_some_and(|r| r < k) {
            *h += 1;
        }
    }
}

/// A folder under the system's temporary directory, removed when dropped.
pub(crate) struct ScratchDir(pub(crate) PathBuf);

impl ScratchDir {
    pub(crate) fn new(what: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("alignscope-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
