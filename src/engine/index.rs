//! Keeping a folder's photo index up to date: unchanged photos (same path, size and mtime) are
//! kept, new and changed ones embedded, deleted ones dropped.
//!
//! Crash safety: every batch of newly embedded photos is written as its own segment file
//! (atomically); at the end the index and the segments are merged into one file (atomically) and
//! the segments removed. A run killed at any moment loses at most the batch in flight; the next
//! run reads the index and the segments, and embeds only what is missing. Photos are embedded one
//! per pass, so a photo's features do not depend on which run or batch embedded it, and an
//! interrupted-then-resumed index is byte-identical to an uninterrupted one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use half::f16;
use rayon::prelude::*;
use sha2::Digest as _;

use super::jobs::CancelToken;
use super::runtime::Runtime;
use crate::data::decode::decode_oriented;
use crate::data::folder::scan_folder;
use crate::data::index_file::{IndexEntry, IndexFile, IndexHeader};
use crate::features::values;

/// Photos per segment file: at most this much work is lost to a crash.
pub const SEGMENT: usize = 16;

const INDEX_FILE: &str = "index.bin";

#[derive(Debug)]
pub enum IndexMsg {
    /// The plan after comparing the folder with the index.
    Planned {
        photos: usize,
        to_embed: usize,
        unchanged: usize,
        removed: usize,
    },
    Embedded {
        done: usize,
        total: usize,
    },
    /// A file or an earlier index that could not be used, and why (the rest goes on).
    Warning(String),
}

#[derive(Debug, Default)]
pub struct IndexSummary {
    pub index_path: PathBuf,
    pub photos: usize,
    pub embedded: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Photos (or folders) that could not be indexed: "path: cause".
    pub failed: Vec<String>,
    pub cancelled: bool,
    pub seconds: f64,
}

/// Where `root`'s index lives: `root/.alignscope/`, or a per-folder directory in the user's cache
/// when `root` cannot be written.
pub fn index_dir(root: &Path) -> PathBuf {
    let local = root.join(".alignscope");
    if std::fs::create_dir_all(&local).is_ok() && writable(&local) {
        return local;
    }
    let absolute = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let key = format!("{:x}", sha2::Sha256::digest(absolute.as_os_str().as_encoded_bytes()));
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("alignscope").join(&key[..16])
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

pub fn index_path(root: &Path) -> PathBuf {
    index_dir(root).join(INDEX_FILE)
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("segment-") && n.ends_with(".bin"))
                })
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    segments
}

/// The index and its segments merged (segments are newer); files from another model or damaged
/// ones are reported and left out. `true` when the index file alone held it all, valid.
pub fn read_index(dir: &Path, header: &IndexHeader, report: &dyn Fn(IndexMsg)) -> (IndexFile, bool) {
    let mut merged = IndexFile::new(header.clone());
    let main = dir.join(INDEX_FILE);
    let segments = segment_paths(dir);
    let mut clean = segments.is_empty() && main.exists();
    for path in std::iter::once(main.clone()).filter(|p| p.exists()).chain(segments) {
        match IndexFile::load(&path) {
            Ok(file) if file.header == *header => merged.entries.extend(file.entries),
            Ok(_) => {
                clean = false;
                report(IndexMsg::Warning(format!(
                    "{}: built with another model; its photos are embedded again",
                    path.display()
                )));
            }
            Err(e) => {
                clean = false;
                report(IndexMsg::Warning(format!("{e}; the photos it held are embedded again")));
            }
        }
    }
    (merged, clean)
}

/// A run killed between writing a temporary file and renaming it leaves `*.tmp<pid>` behind.
fn remove_stranded_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.starts_with("tmp")) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Size and modification time of a file, as the index records them.
fn stamp(path: &Path) -> std::io::Result<(u64, i64)> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta.modified()?.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
    Ok((meta.len(), mtime))
}

impl Runtime {
    /// What an index built by this runtime records about its features.
    pub fn index_header(&self) -> IndexHeader {
        let shan = &self.net.shan;
        let d = shan.region_proj.weight.dims()[1];
        // EfficientNet reduces each side 32-fold, "same" padding rounding up.
        let grid = self.visual.net.image_size.div_ceil(32);
        let k = grid * grid;
        IndexHeader { model: self.model_key.clone(), dim: d, regions: k, region_dim: d }
    }

    /// A photo's index entry features: the pooled embedding, the projected regions, and the
    /// per-region pooling weight and gate terms (3 × regions).
    pub fn index_features(&self, photo: &image::DynamicImage) -> (Vec<f32>, Vec<f16>, Vec<f32>) {
        let side = self.image_side(photo);
        let mut context = values(side.pool);
        context.extend(values(side.gate_self));
        context.extend(values(side.gate_cross));
        (values(side.embedding), values(side.regions).into_iter().map(f16::from_f32).collect(), context)
    }
}

/// Bring `root`'s index up to date; returns what was done and the index itself.
pub fn update_index(
    runtime: &Runtime,
    root: &Path,
    cancel: &CancelToken,
    report: &dyn Fn(IndexMsg),
) -> anyhow::Result<(IndexSummary, IndexFile)> {
    let started = Instant::now();
    anyhow::ensure!(root.is_dir(), "{}: not a folder", root.display());
    let dir = index_dir(root);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the index folder: {e}", dir.display()))?;
    remove_stranded_temporaries(&dir);
    let header = runtime.index_header();
    let (mut index, clean) = read_index(&dir, &header, report);

    let scan = scan_folder(root);
    let mut summary = IndexSummary { index_path: dir.join(INDEX_FILE), ..Default::default() };
    summary.failed.extend(scan.problems.iter().map(|p| p.to_string()));
    scan.problems.iter().for_each(|p| report(IndexMsg::Warning(p.to_string())));
    let mut present: BTreeMap<PathBuf, (PathBuf, u64, i64)> = BTreeMap::new();
    for path in &scan.images {
        let relative = path.strip_prefix(root).unwrap_or(path).to_path_buf();
        match stamp(path) {
            Ok((size, mtime)) => {
                present.insert(relative, (path.clone(), size, mtime));
            }
            Err(e) => {
                let msg = format!("{}: cannot read: {e}", path.display());
                report(IndexMsg::Warning(msg.clone()));
                summary.failed.push(msg);
            }
        }
    }
    let before = index.entries.len();
    index.entries.retain(|rel, _| present.contains_key(rel));
    summary.removed = before - index.entries.len();
    let to_embed: Vec<(&PathBuf, &(PathBuf, u64, i64))> = present
        .iter()
        .filter(|(rel, (_, size, mtime))| {
            !index.entries.get(*rel).is_some_and(|e| e.size == *size && e.mtime_ns == *mtime)
        })
        .collect();
    summary.photos = present.len();
    summary.unchanged = present.len() - to_embed.len();
    report(IndexMsg::Planned {
        photos: present.len(),
        to_embed: to_embed.len(),
        unchanged: summary.unchanged,
        removed: summary.removed,
    });

    let mut next_segment = segment_paths(&dir).len();
    let mut processed = 0;
    for batch in to_embed.chunks(SEGMENT) {
        if cancel.is_cancelled() {
            summary.cancelled = true;
            break;
        }
        let decoded: Vec<_> = batch.par_iter().map(|(_, (path, _, _))| decode_oriented(path)).collect();
        let mut segment = IndexFile::new(header.clone());
        for ((rel, (_, size, mtime)), photo) in batch.iter().zip(decoded) {
            match photo {
                Ok(photo) => {
                    let (embedding, regions, context) = runtime.index_features(&photo);
                    segment.entries.insert(
                        (*rel).clone(),
                        IndexEntry { size: *size, mtime_ns: *mtime, embedding, regions, context },
                    );
                }
                Err(e) => {
                    report(IndexMsg::Warning(e.to_string()));
                    summary.failed.push(e.to_string());
                }
            }
        }
        if !segment.entries.is_empty() {
            segment.save(&dir.join(format!("segment-{next_segment:08}.bin")))?;
            next_segment += 1;
            summary.embedded += segment.entries.len();
            index.entries.extend(segment.entries);
        }
        processed += batch.len();
        report(IndexMsg::Embedded { done: processed, total: to_embed.len() });
    }
    if !clean || summary.embedded > 0 || summary.removed > 0 {
        // Merge everything into one file, then drop the segments it now holds.
        index.save(&dir.join(INDEX_FILE))?;
        for segment in segment_paths(&dir) {
            let _ = std::fs::remove_file(segment);
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok((summary, index))
}
