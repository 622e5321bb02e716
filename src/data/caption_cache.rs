//! A dataset split's caption embeddings kept beside its photo index, so reopening the split in
//! the dataset browser does not embed its captions again. Values are stored as f32 (the figures
//! computed from them are the same on every opening); the file records the models' key and a
//! hash of the captions, and a hash of its data: a file for other models or captions, or a
//! damaged one, is not used (the captions are embedded again and the file rewritten).

use std::io::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"ALSCAPS1";

/// One caption's embeddings for the default ranker: SHAN's and the global model's.
pub type CaptionEmbedding = (Vec<f32>, Vec<f32>);

/// A caption's embeddings, or None where it could not be embedded.
pub type Embedded = Option<CaptionEmbedding>;

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq, Debug)]
struct Header {
    model: String,
    captions_sha256: String,
    captions: usize,
    shan_dim: usize,
    global_dim: usize,
    data_sha256: String,
}

/// The SHA-256 of the captions, in order.
fn captions_hash(captions: &[String]) -> String {
    let mut h = Sha256::new();
    for c in captions {
        h.update((c.len() as u64).to_le_bytes());
        h.update(c.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// Write `embedded` (one per caption) for `captions` under the models' `model` key, atomically.
pub fn save(path: &Path, model: &str, captions: &[String], embedded: &[Embedded]) -> std::io::Result<()> {
    let dims = embedded.iter().flatten().next().map_or((0, 0), |(s, g)| (s.len(), g.len()));
    let mut data = Vec::new();
    for e in embedded {
        match e {
            Some((s, g)) if (s.len(), g.len()) == dims => {
                data.push(1u8);
                data.extend(s.iter().chain(g).flat_map(|v| v.to_le_bytes()));
            }
            _ => data.push(0u8),
        }
    }
    let header = Header {
        model: model.to_string(),
        captions_sha256: captions_hash(captions),
        captions: captions.len(),
        shan_dim: dims.0,
        global_dim: dims.1,
        data_sha256: format!("{:x}", Sha256::digest(&data)),
    };
    let header = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(MAGIC)?;
    file.write_all(&(header.len() as u64).to_le_bytes())?;
    file.write_all(&header)?;
    file.write_all(&data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The embeddings saved for exactly these `captions` under `model`; None when the file is
/// missing, for other models or captions, or damaged.
pub fn load(path: &Path, model: &str, captions: &[String]) -> Option<Vec<Embedded>> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_at_checked(8)?;
    let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
    let (header, data) = rest.split_at_checked(len)?;
    let header: Header = serde_json::from_slice(header).ok()?;
    if header.model != model
        || header.captions != captions.len()
        || header.captions_sha256 != captions_hash(captions)
        || header.data_sha256 != format!("{:x}", Sha256::digest(data))
    {
        return None;
    }
    let row = 4 * (header.shan_dim + header.global_dim);
    let mut out = Vec::with_capacity(captions.len());
    let mut at = 0;
    for _ in 0..captions.len() {
        let flag = *data.get(at)?;
        at += 1;
        if flag == 0 {
            out.push(None);
            continue;
        }
        let values: Vec<f32> =
            data.get(at..at + row)?.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        at += row;
        let (s, g) = values.split_at(header.shan_dim);
        out.push(Some((s.to_vec(), g.to_vec())));
    }
    (at == data.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_embeddings_load_only_for_the_same_models_and_captions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions-test.bin");
        let captions: Vec<String> = ["a dog", "", "a cat on a mat"].iter().map(|c| c.to_string()).collect();
        let embedded = vec![Some((vec![0.5, -1.25], vec![3.0])), None, Some((vec![1e-7, 2.0], vec![-0.0]))];
        save(&path, "key", &captions, &embedded).unwrap();
        assert_eq!(load(&path, "key", &captions), Some(embedded.clone()), "exact f32 round trip");
        assert_eq!(load(&path, "other key", &captions), None);
        let mut edited = captions.clone();
        edited[2] = "a cat on a hat".into();
        assert_eq!(load(&path, "key", &edited), None);
        assert_eq!(load(&path, "key", &captions[..2]), None);
        // A flipped bit in the data, and a cut file, are refused.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&path, "key", &captions), None);
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(load(&path, "key", &captions), None);
        assert_eq!(load(&dir.path().join("missing.bin"), "key", &captions), None);
    }
}
