//! The on-disk photo index of a folder: per photo its path (relative to the folder), size, mtime,
//! SHAN's pair-independent embedding and projected region features, the global model's
//! embedding and the default ranker's normaliser, under a header naming the models that
//! produced them.
//!
//! One file format serves the compacted index and the per-batch segments written while indexing:
//! magic, header (JSON), entries sorted by path, then the SHA-256 of everything before it. Files
//! are written to a temporary sibling, synced and renamed, so a reader sees a whole file or none;
//! a damaged file fails its checksum and is reported, never half-read.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use half::f16;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 16] = b"ALIGNSCOPE-IDX-3";
/// Every version's magic starts so: an older index is named as such and built again.
const MAGIC_STEM: &[u8] = b"ALIGNSCOPE-IDX-";

/// What produced the features: files from another model or shape are not mixed in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexHeader {
    /// SHA-256 of the weights that embedded the photos (backbone + matching network).
    pub model: String,
    /// Embedding width, regions per photo and region width.
    pub dim: usize,
    pub regions: usize,
    pub region_dim: usize,
    /// The global model's embedding width.
    pub global_dim: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexEntry {
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub embedding: Vec<f32>,
    /// regions × region_dim, row-major.
    pub regions: Vec<f16>,
    /// 3 × regions: the photo's pair-independent per-region terms (pooling weights and the two
    /// gate terms), so a search does not recompute them.
    pub context: Vec<f32>,
    /// The global model's embedding (global_dim).
    pub global: Vec<f32>,
    /// The default ranker's normaliser of this photo (see `engine::fused`); 0 without a bank.
    pub normaliser: f32,
}

impl IndexEntry {
    /// Whether every feature is finite: a NaN or infinite one would rank the photo anywhere,
    /// silently, so such an entry is never written (indexing) nor read (a damaged file).
    pub fn is_finite(&self) -> bool {
        self.embedding.iter().chain(&self.context).chain(&self.global).all(|v| v.is_finite())
            && self.regions.iter().all(|v| v.is_finite())
            && self.normaliser.is_finite()
    }
}

/// A file that could not be indexed, remembered so it is retried only once it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedEntry {
    pub size: u64,
    pub mtime_ns: i64,
    pub cause: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexFile {
    pub header: IndexHeader,
    /// Keyed by the path relative to the indexed folder (sorted: files are byte-identical for
    /// identical contents).
    pub entries: BTreeMap<PathBuf, IndexEntry>,
    /// Files that could not be indexed, by relative path.
    pub failed: BTreeMap<PathBuf, FailedEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: cannot read the index: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot write the index: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: the index file is damaged ({cause})")]
    Damaged { path: PathBuf, cause: String },
}

fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt as _;
    path.as_os_str().as_bytes().to_vec()
}

fn path_from(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

impl IndexFile {
    pub fn new(header: IndexHeader) -> Self {
        Self { header, entries: BTreeMap::new(), failed: BTreeMap::new() }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Sized from what the entries hold, not from the header's widths (a damaged or hostile
        // header must not size an allocation).
        let size: usize = self
            .entries
            .iter()
            .map(|(p, e)| {
                let floats = e.embedding.len() + e.context.len() + e.global.len();
                p.as_os_str().len() + floats * 4 + e.regions.len() * 2 + 32
            })
            .sum();
        let mut out = Vec::with_capacity(64 + size);
        out.extend_from_slice(MAGIC);
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for (path, e) in &self.entries {
            put_stamped_path(&mut out, path, e.size, e.mtime_ns);
            e.embedding.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            e.regions.iter().for_each(|v| out.extend_from_slice(&v.to_bits().to_le_bytes()));
            e.context.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            e.global.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            out.extend_from_slice(&e.normaliser.to_le_bytes());
        }
        out.extend_from_slice(&(self.failed.len() as u64).to_le_bytes());
        for (path, f) in &self.failed {
            put_stamped_path(&mut out, path, f.size, f.mtime_ns);
            out.extend_from_slice(&(f.cause.len() as u32).to_le_bytes());
            out.extend_from_slice(f.cause.as_bytes());
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, IndexError> {
        let damaged = |cause: &str| IndexError::Damaged { path: path.to_path_buf(), cause: cause.to_string() };
        if bytes.len() < MAGIC.len() + 32 || !bytes.starts_with(MAGIC_STEM) {
            return Err(damaged("not an alignscope index"));
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(damaged("written by another version of alignscope"));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(damaged("checksum mismatch: truncated or modified"));
        }
        let mut r = Reader { bytes: body, at: MAGIC.len() };
        let header_len = r.u32().ok_or_else(|| damaged("no header"))? as usize;
        let header: IndexHeader = serde_json::from_slice(r.take(header_len).ok_or_else(|| damaged("no header"))?)
            .map_err(|e| damaged(&format!("header: {e}")))?;
        let count = r.u64().ok_or_else(|| damaged("no entry count"))?;
        // Widths far beyond any network's: a damaged header, not a reason to overflow sizes.
        if [header.dim, header.regions, header.region_dim, header.global_dim].iter().any(|&n| n > 1 << 16) {
            return Err(damaged("header: feature sizes out of range"));
        }
        let mut file = Self::new(header);
        let h = &file.header;
        let (dim, cells, context, global_dim) = (h.dim, h.regions * h.region_dim, 3 * h.regions, h.global_dim);
        for _ in 0..count {
            let entry = (|| {
                let len = r.u32()? as usize;
                let p = path_from(r.take(len)?);
                let size = r.u64()?;
                let mtime_ns = r.u64()? as i64;
                let embedding = floats(r.take(dim * 4)?);
                let regions = r
                    .take(cells * 2)?
                    .chunks_exact(2)
                    .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                    .collect();
                let context = floats(r.take(context * 4)?);
                let global = floats(r.take(global_dim * 4)?);
                let normaliser = floats(r.take(4)?)[0];
                Some((p, IndexEntry { size, mtime_ns, embedding, regions, context, global, normaliser }))
            })()
            .ok_or_else(|| damaged("entries cut short"))?;
            if !entry.1.is_finite() {
                return Err(damaged(&format!("NaN or infinite features for {}", entry.0.display())));
            }
            file.entries.insert(entry.0, entry.1);
        }
        let failed = r.u64().ok_or_else(|| damaged("no count of failed files"))?;
        for _ in 0..failed {
            let (path, entry) = (|| {
                let len = r.u32()? as usize;
                let p = path_from(r.take(len)?);
                let (size, mtime_ns) = (r.u64()?, r.u64()? as i64);
                let len = r.u32()? as usize;
                let cause = String::from_utf8_lossy(r.take(len)?).into_owned();
                Some((p, FailedEntry { size, mtime_ns, cause }))
            })()
            .ok_or_else(|| damaged("failed files cut short"))?;
            file.failed.insert(path, entry);
        }
        if r.at != body.len() {
            return Err(damaged("trailing bytes after the entries"));
        }
        Ok(file)
    }

    pub fn load(path: &Path) -> Result<Self, IndexError> {
        let bytes = std::fs::read(path).map_err(|source| IndexError::Read { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, path)
    }

    /// Write atomically: a temporary sibling, synced, then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), IndexError> {
        let err = |source| IndexError::Write { path: path.to_path_buf(), source };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.to_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(err)
    }
}

/// A path (length-prefixed raw bytes) with the size and mtime it had.
fn put_stamped_path(out: &mut Vec<u8>, path: &Path, size: u64, mtime_ns: i64) {
    let p = path_bytes(path);
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&p);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&mtime_ns.to_le_bytes());
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IndexFile {
        let mut f =
            IndexFile::new(IndexHeader { model: "abc".into(), dim: 3, regions: 2, region_dim: 2, global_dim: 2 });
        for (i, name) in ["b/z.jpg", "a.png"].iter().enumerate() {
            f.entries.insert(
                PathBuf::from(name),
                IndexEntry {
                    size: 10 + i as u64,
                    mtime_ns: -5 + i as i64,
                    embedding: vec![0.5, -1.0, i as f32],
                    regions: [1.0f32, 2.0, 3.0, 4.5].map(f16::from_f32).to_vec(),
                    context: vec![0.25, 0.75, 1.0, -1.0, 2.0, 0.0],
                    global: vec![0.6, -0.8],
                    normaliser: 3.5 + i as f32,
                },
            );
        }
        f.failed
            .insert("bad\nname.jpg".into(), FailedEntry { size: 7, mtime_ns: 9, cause: "not a readable image".into() });
        f
    }

    /// Found by tests/fuzz.rs: a file with a valid checksum holding a NaN feature was read, and
    /// would have ranked as NaN.
    #[test]
    fn non_finite_features_are_refused_even_under_a_valid_checksum() {
        let mut f = sample();
        if let Some(e) = f.entries.get_mut(Path::new("a.png")) {
            e.regions[1] = f16::NAN;
        }
        let err = IndexFile::from_bytes(&f.to_bytes(), Path::new("idx.bin")).unwrap_err().to_string();
        assert!(err.contains("idx.bin") && err.contains("NaN or infinite features for a.png"), "{err}");
        let mut f = sample();
        f.header.dim = usize::MAX / 2;
        let err = IndexFile::from_bytes(&f.to_bytes(), Path::new("idx.bin")).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let f = sample();
        let bytes = f.to_bytes();
        assert_eq!(IndexFile::from_bytes(&bytes, Path::new("x")).unwrap(), f);
        for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
            let e = IndexFile::from_bytes(&bytes[..cut], Path::new("idx.bin")).unwrap_err();
            assert!(e.to_string().contains("idx.bin") && e.to_string().contains("damaged"), "{e}");
        }
        let mut older = bytes.clone();
        older[15] = b'2';
        let e = IndexFile::from_bytes(&older, Path::new("x")).unwrap_err().to_string();
        assert!(e.contains("another version"), "{e}");
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(matches!(IndexFile::from_bytes(&flipped, Path::new("x")), Err(IndexError::Damaged { .. })));
    }

    #[test]
    fn bytes_do_not_depend_on_insertion_order() {
        let f = sample();
        let mut g = IndexFile::new(f.header.clone());
        for (k, v) in f.entries.iter().rev() {
            g.entries.insert(k.clone(), v.clone());
        }
        g.failed = f.failed.clone();
        assert_eq!(f.to_bytes(), g.to_bytes());
    }

    #[test]
    fn save_is_atomic_and_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.bin");
        sample().save(&path).unwrap();
        assert_eq!(IndexFile::load(&path).unwrap(), sample());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
