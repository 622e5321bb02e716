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
use crate::data::index_file::{FailedEntry, IndexEntry, IndexFile, IndexHeader};
use crate::features::values;

/// Photos per segment file: at most this much work is lost to a crash.
pub const SEGMENT: usize = 16;

/// The index of the committed models; other weights (`--weights`) get their own file.
const INDEX_FILE: &str = "index.bin";
/// Held (an advisory lock) while the index is updated.
const LOCK_FILE: &str = "lock";

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
    /// Another process or thread is updating this index: this one waits for it (nothing is wrong).
    Waiting(String),
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

/// The files of one model's index in the index folder: `index.bin` and `segment-NNNNNNNN.bin` for
/// the committed models, `index-KEY.bin` and `segment-KEY-NNNNNNNN.bin` for other weights (KEY:
/// 12 hex digits of the SHA-256 of the header's model key), so indexing with other weights never
/// overwrites the default's index.
#[derive(Clone, Debug)]
pub struct IndexFiles {
    pub index: String,
    segment_prefix: String,
}

impl IndexFiles {
    pub fn new(header: &IndexHeader, committed: bool) -> Self {
        if committed {
            return Self { index: INDEX_FILE.into(), segment_prefix: "segment-".into() };
        }
        let key = format!("{:x}", sha2::Sha256::digest(header.model.as_bytes()));
        Self { index: format!("index-{}.bin", &key[..12]), segment_prefix: format!("segment-{}-", &key[..12]) }
    }

    fn segment(&self, n: usize) -> String {
        format!("{}{n:08}.bin", self.segment_prefix)
    }

    fn is_segment(&self, name: &str) -> bool {
        name.strip_prefix(&self.segment_prefix)
            .and_then(|rest| rest.strip_suffix(".bin"))
            .is_some_and(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()))
    }

    fn segment_paths(&self, dir: &Path) -> Vec<PathBuf> {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| self.is_segment(n)))
                    .collect()
            })
            .unwrap_or_default();
        segments.sort();
        segments
    }
}

/// What an index file read back needs before it can be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadState {
    /// The index file alone held it all, valid, with these models.
    pub clean: bool,
    /// Some photos were indexed with another query bank: their features stand, their normalisers
    /// are to be recomputed.
    pub renormalise: bool,
}

/// The part of an index's model key that the photos' features depend on: the key without the
/// query bank's hash (the bank only sets each photo's normaliser, computed from the features).
fn features_key(model: &str) -> &str {
    model.split(" bank:").next().unwrap_or(model)
}

/// The index and its segments merged (segments are newer); files from another model or damaged
/// ones are reported and left out, files from another query bank kept (see [`ReadState`]).
pub fn read_index(
    dir: &Path,
    files: &IndexFiles,
    header: &IndexHeader,
    report: &dyn Fn(IndexMsg),
) -> (IndexFile, ReadState) {
    let mut merged = IndexFile::new(header.clone());
    let main = dir.join(&files.index);
    let segments = files.segment_paths(dir);
    let mut clean = segments.is_empty() && main.exists();
    let mut renormalise = false;
    let same_features = |h: &IndexHeader| {
        IndexHeader { model: features_key(&h.model).to_string(), ..h.clone() }
            == IndexHeader { model: features_key(&header.model).to_string(), ..header.clone() }
    };
    for path in std::iter::once(main.clone()).filter(|p| p.exists()).chain(segments) {
        match IndexFile::load(&path) {
            Ok(file) if file.header == *header => {
                merged.entries.extend(file.entries);
                merged.failed.extend(file.failed);
            }
            Ok(file) if same_features(&file.header) => {
                (clean, renormalise) = (false, true);
                report(IndexMsg::Warning(format!(
                    "{}: made with another query bank; the photos' normalisers are recomputed (no photo is embedded again)",
                    path.display()
                )));
                merged.entries.extend(file.entries);
                merged.failed.extend(file.failed);
            }
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
    (merged, ReadState { clean, renormalise })
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
        let k = grid * grid + self.objects.as_ref().map_or(0, |o| o.k);
        let global_dim = self.global.head.image_proj.weight.dims()[1];
        IndexHeader { model: self.model_key.clone(), dim: d, regions: k, region_dim: d, global_dim }
    }

    /// A photo's place in the query bank (see [`super::fused::QueryBank::normaliser`]) from its two embeddings;
    /// 0 without a bank.
    pub fn normaliser(&self, embedding: &[f32], global: &[f32]) -> f32 {
        self.bank.as_ref().map_or(0.0, |b| b.normaliser(embedding, global))
    }

    /// A photo's index entry (size and mtime left 0): SHAN's pooled embedding, projected regions
    /// and per-region pooling weight and gate terms (3 × regions), the global embedding and the
    /// default ranker's normaliser.
    pub fn index_features(&self, photo: &image::DynamicImage) -> IndexEntry {
        let (side, global) = self.photo_sides(photo);
        let mut context = values(side.pool);
        context.extend(values(side.gate_self));
        context.extend(values(side.gate_cross));
        let (embedding, global) = (values(side.embedding), values(global));
        let normaliser = self.normaliser(&embedding, &global);
        IndexEntry {
            size: 0,
            mtime_ns: 0,
            regions: values(side.regions).into_iter().map(f16::from_f32).collect(),
            embedding,
            context,
            global,
            normaliser,
        }
    }
}

/// Bring `root`'s index up to date; returns what was done and the index itself.
pub fn update_index(
    runtime: &Runtime,
    root: &Path,
    cancel: &CancelToken,
    report: &dyn Fn(IndexMsg),
) -> anyhow::Result<(IndexSummary, IndexFile)> {
    update(runtime, root, None, cancel, report)
}

/// Bring `root`'s index up to date for the photos `listed` (a dataset split: a list of files
/// under `root`, not all of its photos). Photos indexed before and not listed are kept (another
/// split's), and the returned index holds the listed photos only.
pub fn update_listed(
    runtime: &Runtime,
    root: &Path,
    listed: &[PathBuf],
    cancel: &CancelToken,
    report: &dyn Fn(IndexMsg),
) -> anyhow::Result<(IndexSummary, IndexFile)> {
    update(runtime, root, Some(listed), cancel, report)
}

fn update(
    runtime: &Runtime,
    root: &Path,
    listed: Option<&[PathBuf]>,
    cancel: &CancelToken,
    report: &dyn Fn(IndexMsg),
) -> anyhow::Result<(IndexSummary, IndexFile)> {
    let started = Instant::now();
    anyhow::ensure!(root.is_dir(), "{}: not a folder", root.display());
    let dir = index_dir(root);
    if dir != root.join(".alignscope") {
        report(IndexMsg::Warning(format!(
            "{}: the folder cannot be written; its index is kept in {}",
            root.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the index folder: {e}", dir.display()))?;
    // One writer per index (the window, `index` and `search` may run at once): the others wait.
    let lock_path = dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| anyhow::anyhow!("{}: cannot open the index lock: {e}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        report(IndexMsg::Waiting(format!("{}: another alignscope is updating this index; waiting", dir.display())));
        lock.lock().map_err(|e| anyhow::anyhow!("{}: cannot lock the index: {e}", lock_path.display()))?;
    }
    remove_stranded_temporaries(&dir);
    let header = runtime.index_header();
    // An index with objects is kept apart from the committed models' grid index.
    let files = IndexFiles::new(&header, runtime.is_committed() && runtime.objects.is_none());
    let (mut index, ReadState { clean, renormalise }) = read_index(&dir, &files, &header, report);
    if renormalise {
        let mut entries: Vec<&mut IndexEntry> = index.entries.values_mut().collect();
        entries.par_iter_mut().for_each(|e| {
            e.normaliser = runtime.normaliser(&e.embedding, &e.global);
        });
    }

    let scan = match listed {
        Some(files) => crate::data::folder::FolderScan { images: files.to_vec(), problems: Vec::new() },
        None => scan_folder(root),
    };
    let mut summary = IndexSummary { index_path: dir.join(&files.index), ..Default::default() };
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
    // A folder's index drops photos that are gone; a list keeps what it does not name.
    let kept = |rel: &PathBuf| listed.is_some() || present.contains_key(rel);
    let before = index.entries.len();
    index.entries.retain(|rel, _| kept(rel));
    summary.removed = before - index.entries.len();
    // Files that failed before are retried only once they change (size or mtime).
    let failed_before = index.failed.clone();
    index.failed.retain(|rel, f| match present.get(rel) {
        Some((_, size, mtime)) => f.size == *size && f.mtime_ns == *mtime,
        None => kept(rel),
    });
    for f in index.failed.iter().filter(|(rel, _)| present.contains_key(*rel)).map(|(_, f)| f) {
        let msg = format!("{} (unchanged since it failed: not retried)", f.cause);
        report(IndexMsg::Warning(msg.clone()));
        summary.failed.push(msg);
    }
    let to_embed: Vec<(&PathBuf, &(PathBuf, u64, i64))> = present
        .iter()
        .filter(|(rel, (_, size, mtime))| {
            !index.entries.get(*rel).is_some_and(|e| e.size == *size && e.mtime_ns == *mtime)
                && !index.failed.contains_key(*rel)
        })
        .collect();
    summary.photos = present.len();
    let failed_present = index.failed.keys().filter(|rel| present.contains_key(*rel)).count();
    summary.unchanged = present.len() - to_embed.len() - failed_present;
    report(IndexMsg::Planned {
        photos: present.len(),
        to_embed: to_embed.len(),
        unchanged: summary.unchanged,
        removed: summary.removed,
    });

    let mut next_segment = files.segment_paths(&dir).len();
    let mut processed = 0;
    let mut failures = Vec::new();
    for batch in to_embed.chunks(SEGMENT) {
        if cancel.is_cancelled() {
            summary.cancelled = true;
            break;
        }
        // Each worker keeps only the model-sized input, never a batch of full photos.
        let decoded: Vec<_> = batch
            .par_iter()
            .map(|(_, (path, _, _))| decode_oriented(path).map(|p| image::DynamicImage::ImageRgb8(runtime.input(&p))))
            .collect();
        let mut segment = IndexFile::new(header.clone());
        for ((rel, (_, size, mtime)), photo) in batch.iter().zip(decoded) {
            let entry = photo.map_err(|e| e.to_string()).and_then(|photo| {
                let entry = IndexEntry { size: *size, mtime_ns: *mtime, ..runtime.index_features(&photo) };
                let regions = entry.regions.len() / header.region_dim.max(1);
                if regions != header.regions {
                    // A photo whose objects could not be cut would otherwise misalign the file.
                    Err(format!(
                        "{}: the model gave {regions} regions, the index holds {}; not indexed",
                        root.join(rel).display(),
                        header.regions
                    ))
                } else if entry.is_finite() {
                    Ok(entry)
                } else {
                    Err(format!("{}: the model gave non-finite features; not indexed", root.join(rel).display()))
                }
            });
            match entry {
                Ok(entry) => {
                    segment.entries.insert((*rel).clone(), entry);
                }
                Err(msg) => {
                    report(IndexMsg::Warning(msg.clone()));
                    failures.push(((*rel).clone(), FailedEntry { size: *size, mtime_ns: *mtime, cause: msg.clone() }));
                    summary.failed.push(msg);
                }
            }
        }
        if !segment.entries.is_empty() {
            segment.save(&dir.join(files.segment(next_segment)))?;
            next_segment += 1;
            summary.embedded += segment.entries.len();
            index.entries.extend(segment.entries);
        }
        processed += batch.len();
        report(IndexMsg::Embedded { done: processed, total: to_embed.len() });
    }
    index.failed.extend(failures);
    if !clean || summary.embedded > 0 || summary.removed > 0 || index.failed != failed_before {
        // Merge everything into one file, then drop the segments it now holds.
        index.save(&dir.join(&files.index))?;
        for segment in files.segment_paths(&dir) {
            let _ = std::fs::remove_file(segment);
        }
    }
    if listed.is_some() {
        index.entries.retain(|rel, _| present.contains_key(rel));
        index.failed.retain(|rel, _| present.contains_key(rel));
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok((summary, index))
}
