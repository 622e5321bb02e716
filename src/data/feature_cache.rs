//! A file of named feature arrays (stored as f16) computed once from frozen backbone layers.
//!
//! The file records what produced it (weights checksum, preprocessing, which activation), so a
//! cache made by other weights or another preprocessing is refused as stale, and a checksum over
//! the data, so a truncated or corrupt file is refused as corrupt; either way the caller rebuilds.
//! Writes go to a temporary file renamed into place: a crash never leaves half a cache.

use std::io::Write;
use std::path::{Path, PathBuf};

use half::f16;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"ALSFEAT1";

/// What produced the features; a cache is only valid for an identical key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheKey {
    pub weights_sha256: String,
    pub preprocessing: String,
    pub activation: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    /// Start in the data, in elements.
    pub offset: usize,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    key: CacheKey,
    entries: Vec<Entry>,
    data_sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: no cache yet")]
    Missing { path: PathBuf },
    #[error("{path}: made by other weights or preprocessing ({found}), rebuilding")]
    Stale { path: PathBuf, found: String },
    #[error("{path}: corrupt cache ({cause}), rebuilding")]
    Corrupt { path: PathBuf, cause: String },
    #[error("{path}: cannot write cache: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

pub struct FeatureCache {
    pub key: CacheKey,
    pub entries: Vec<Entry>,
    data: Vec<f16>,
}

impl FeatureCache {
    pub fn new(key: CacheKey) -> Self {
        Self { key, entries: Vec::new(), data: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn push(&mut self, name: impl Into<String>, shape: &[usize], values: &[f32]) {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        self.entries.push(Entry { name: name.into(), shape: shape.to_vec(), offset: self.data.len() });
        self.data.extend(values.iter().map(|&v| f16::from_f32(v)));
    }

    /// Each entry's index by its name (a later duplicate wins).
    pub fn rows_by_name(&self) -> std::collections::HashMap<&str, usize> {
        self.entries.iter().enumerate().map(|(i, e)| (e.name.as_str(), i)).collect()
    }

    /// The values of entry `index` as f32.
    pub fn values(&self, index: usize) -> Vec<f32> {
        let e = &self.entries[index];
        let n: usize = e.shape.iter().product();
        self.data[e.offset..e.offset + n].iter().map(|v| v.to_f32()).collect()
    }

    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        let write_err = |source| CacheError::Write { path: path.to_path_buf(), source };
        let mut hasher = Sha256::new();
        for chunk in self.byte_chunks() {
            hasher.update(&chunk);
        }
        let header =
            Header { key: self.key.clone(), entries: self.entries.clone(), data_sha256: hex(&hasher.finalize()) };
        let header = serde_json::to_vec(&header).map_err(|e| write_err(std::io::Error::other(e)))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let tmp = path.with_extension("tmp");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(write_err)?);
        file.write_all(MAGIC).map_err(write_err)?;
        file.write_all(&(header.len() as u64).to_le_bytes()).map_err(write_err)?;
        file.write_all(&header).map_err(write_err)?;
        for chunk in self.byte_chunks() {
            file.write_all(&chunk).map_err(write_err)?;
        }
        let file = file.into_inner().map_err(|e| write_err(e.into_error()))?;
        file.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// The data as little-endian bytes, a block at a time.
    fn byte_chunks(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.data.chunks(1 << 16).map(|c| c.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// Load a cache made with exactly `expected`.
    pub fn load(path: &Path, expected: &CacheKey) -> Result<Self, CacheError> {
        let corrupt = |cause: &str| CacheError::Corrupt { path: path.to_path_buf(), cause: cause.into() };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CacheError::Missing { path: path.to_path_buf() });
            }
            Err(e) => return Err(corrupt(&e.to_string())),
        };
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(corrupt("not a feature cache"));
        }
        let header_len = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| corrupt("short header"))?) as usize;
        let header_end =
            16usize.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or_else(|| corrupt("truncated header"))?;
        let header: Header = serde_json::from_slice(&bytes[16..header_end]).map_err(|e| corrupt(&e.to_string()))?;
        if &header.key != expected {
            let found = format!(
                "{}, {}, {}",
                short(&header.key.weights_sha256),
                header.key.preprocessing,
                header.key.activation
            );
            return Err(CacheError::Stale { path: path.to_path_buf(), found });
        }
        let data_bytes = &bytes[header_end..];
        if hex(&Sha256::digest(data_bytes)) != header.data_sha256 {
            return Err(corrupt("checksum mismatch: truncated or damaged"));
        }
        if data_bytes.len() % 2 != 0 {
            return Err(corrupt("odd data length"));
        }
        let data: Vec<f16> = data_bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect();
        for e in &header.entries {
            if e.offset + e.shape.iter().product::<usize>() > data.len() {
                return Err(corrupt(&format!("entry {} runs past the data", e.name)));
            }
        }
        Ok(Self { key: header.key, entries: header.entries, data })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(8)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(w: &str) -> CacheKey {
        CacheKey { weights_sha256: w.into(), preprocessing: "squash-224".into(), activation: "block 15 input".into() }
    }

    fn sample() -> FeatureCache {
        let mut c = FeatureCache::new(key("abc"));
        c.push("a.jpg", &[2, 3], &[0.0, 1.0, -2.0, 0.5, 3.25, -0.125]);
        c.push("b.jpg", &[1], &[7.0]);
        c
    }

    #[test]
    fn round_trip_keeps_names_shapes_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.feat");
        sample().save(&path).unwrap();
        let c = FeatureCache::load(&path, &key("abc")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.entries[0].shape, vec![2, 3]);
        assert_eq!(c.values(0), vec![0.0, 1.0, -2.0, 0.5, 3.25, -0.125]);
        assert_eq!(c.values(1), vec![7.0]);
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn other_weights_make_it_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.feat");
        sample().save(&path).unwrap();
        assert!(matches!(FeatureCache::load(&path, &key("other")), Err(CacheError::Stale { .. })));
    }

    #[test]
    fn damage_and_truncation_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.feat");
        sample().save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(FeatureCache::load(&path, &key("abc")), Err(CacheError::Corrupt { .. })));
        for cut in [3, 20, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(matches!(FeatureCache::load(&path, &key("abc")), Err(CacheError::Corrupt { .. })), "cut at {cut}");
        }
        assert!(matches!(FeatureCache::load(&dir.path().join("none"), &key("abc")), Err(CacheError::Missing { .. })));
    }
}
