//! `alignscope bench scale`: how cost grows with the folder — per size (synthetic photos with the
//! real shapes), the index file's size per photo, writing it and reopening it (read, checksum,
//! load), and the median query latency of the default ranker and of SHAN two-stage.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use alignscope::data::index_file::{IndexEntry, IndexFile};
use alignscope::engine::runtime::Runtime;
use alignscope::engine::search::{LoadedIndex, SearchModel, SearchOptions, search_caption};

use super::search::{percentile, synthetic};

pub struct ScaleBench {
    pub sizes: Vec<usize>,
    pub queries: usize,
    /// Write and reopen the index file only up to this many photos (it is ~55 KB per photo).
    pub write_up_to: usize,
}

/// The index file of a synthetic loaded index (what `index` would have written for it).
fn index_file(runtime: &Runtime, index: &LoadedIndex) -> IndexFile {
    let mut file = IndexFile::new(runtime.index_header());
    let cells = index.regions * index.region_dim;
    for (i, path) in index.paths.iter().enumerate() {
        file.entries.insert(
            path.clone(),
            IndexEntry {
                size: 100_000,
                mtime_ns: i as i64,
                embedding: index.embeddings[i * index.dim..(i + 1) * index.dim].to_vec(),
                regions: index.fragments[i * cells..(i + 1) * cells].to_vec(),
                context: index.context[i * 3 * index.regions..(i + 1) * 3 * index.regions].to_vec(),
                global: index.globals[i * index.global_dim..(i + 1) * index.global_dim].to_vec(),
                normaliser: index.normalisers[i],
            },
        );
    }
    file
}

impl ScaleBench {
    pub fn run(&self, runtime: &Runtime) -> anyhow::Result<String> {
        let captions = ["a dog runs through the grass", "two children play on the beach", "a man rides a bike"];
        let mut out = String::from(
            "photos | index file | write | reopen (read, check, load) | default query | SHAN two-stage query\n",
        );
        let scratch = std::env::temp_dir().join(format!("alignscope-bench-scale-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        for &n in &self.sizes {
            let index = synthetic(runtime, n);
            let (size, write, reopen) = if n <= self.write_up_to {
                let file = index_file(runtime, &index);
                let path: PathBuf = scratch.join("index.bin");
                let started = Instant::now();
                file.save(&path)?;
                let write = started.elapsed().as_secs_f64();
                drop(file);
                let started = Instant::now();
                let loaded = LoadedIndex::new(&scratch, IndexFile::load(&path)?);
                let reopen = started.elapsed().as_secs_f64();
                anyhow::ensure!(loaded.len() == n, "reopened {} of {n} photos", loaded.len());
                let bytes = std::fs::metadata(&path)?.len();
                std::fs::remove_file(&path)?;
                (
                    format!("{:.1} MB ({:.1} KB/photo)", bytes as f64 / 1e6, bytes as f64 / n as f64 / 1e3),
                    format!("{write:.2} s"),
                    format!("{reopen:.2} s"),
                )
            } else {
                ("not written".to_string(), "—".to_string(), "—".to_string())
            };
            let mut medians = Vec::new();
            for model in [SearchModel::Default, SearchModel::Shan] {
                let options = SearchOptions { model, top: 10, ..SearchOptions::default() };
                let mut times = Vec::new();
                for caption in captions.iter().cycle().take(self.queries + 1) {
                    let started = Instant::now();
                    search_caption(runtime, &index, caption, options)?;
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                times.remove(0); // the first query warms caches
                times.sort_by(f64::total_cmp);
                medians.push(percentile(&times, 0.5));
            }
            writeln!(out, "{n} | {size} | {write} | {reopen} | {:.1} ms | {:.1} ms", medians[0], medians[1])?;
        }
        std::fs::remove_dir_all(&scratch).ok();
        Ok(out)
    }
}
