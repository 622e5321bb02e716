//! The default ranker: SHAN's pair-independent embedding and the tuned global model's, fused
//! (`shan + w · global`), and each photo's fused score normalised against a bank of training
//! captions (an inverted softmax: `β · fused − log Σ_bank exp(β · fused)`). A photo that scores
//! high with every caption (a hub: a texture, a blurred frame) is pulled down by its own
//! normaliser, which depends only on the photo, so it is computed once and kept in the index.
//!
//! The bank file (`assets/models/query-bank.safetensors`) holds the bank's embeddings and the
//! weight `w` and temperature `β` chosen on dev by `alignscope rankers --write`, with the hashes
//! of the two networks' weights it was built from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::features::weights::{WeightFile, save_safetensors};

pub const BANK_FILE: &str = "query-bank.safetensors";

pub fn default_bank_path() -> PathBuf {
    crate::features::models_dir().join(BANK_FILE)
}

/// Beside the bank: the default score below which a photo is a weak match for a caption.
pub const CALIBRATION_FILE: &str = "query-bank-calibration.json";

/// Where true pairs lie on the default's score: `weak_below` is the score that `percentile` %
/// of the `split` split's captions give their own photo less than (`alignscope eval --model
/// default --split dev --calibrate`); valid for the bank file whose SHA-256 it names.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    pub bank_sha256: String,
    pub weak_below: f32,
    pub percentile: u32,
    pub split: String,
    pub pairs: usize,
}

impl Calibration {
    /// The calibration beside the bank at `bank`, if there is one for this very bank (checked
    /// against CHECKSUMS; one made for another bank is ignored with a log line).
    pub fn load(bank: &Path) -> Option<Self> {
        let path = bank.with_file_name(CALIBRATION_FILE);
        let bytes = std::fs::read(&path).ok()?;
        let problem = |why: String| log::warn!("{}: ignored: {why}", path.display());
        if let Err(e) = crate::features::checksums::verify(&path, &bytes) {
            problem(e);
            return None;
        }
        let c: Self = serde_json::from_slice(&bytes).map_err(|e| problem(e.to_string())).ok()?;
        let bank_sha = crate::features::checksums::sha256_file(bank).ok()?;
        if c.bank_sha256 != bank_sha || !c.weak_below.is_finite() {
            problem(format!("made for another query bank (SHA-256 {})", c.bank_sha256));
            return None;
        }
        Some(c)
    }

    /// Write it beside `bank` and list it in CHECKSUMS.
    pub fn save(&self, bank: &Path) -> anyhow::Result<PathBuf> {
        let path = bank.with_file_name(CALIBRATION_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")?;
        crate::features::checksums::record(&path)?;
        Ok(path)
    }
}

/// The fusion and the bank.
#[derive(Clone, Debug)]
pub struct QueryBank {
    /// Weight of the global model's cosine beside SHAN's.
    pub global_weight: f32,
    /// β of the inverted softmax.
    pub temperature: f32,
    /// The smallest normaliser a photo gets: a photo unlike every caption in the bank (a texture, a
    /// micrograph: far from Flickr8k) is not lifted above a typical training photo
    /// (`f32::NEG_INFINITY`: no floor).
    pub floor: f32,
    pub shan_dim: usize,
    pub global_dim: usize,
    /// [captions, shan_dim] and [captions, global_dim], unit rows.
    pub shan: Vec<f32>,
    pub global: Vec<f32>,
    /// SHA-256 of the SHAN and global weights whose embeddings these are.
    pub made_with: (String, String),
    /// The default score below which a photo is a weak match, and the percentage of dev
    /// captions whose own photo scores below it ([`Calibration`]), when calibrated.
    pub weak_below: Option<(f32, u32)>,
}

impl QueryBank {
    pub fn captions(&self) -> usize {
        self.shan.len() / self.shan_dim.max(1)
    }

    /// The fused cosine.
    pub fn fused(&self, shan: f32, global: f32) -> f32 {
        shan + self.global_weight * global
    }

    /// A photo's normaliser: `log Σ_bank exp(β · fused(bank caption, photo))`.
    pub fn normaliser(&self, shan: &[f32], global: &[f32]) -> f32 {
        let logits: Vec<f32> = self
            .shan
            .chunks_exact(self.shan_dim)
            .zip(self.global.chunks_exact(self.global_dim))
            .map(|(s, g)| self.temperature * self.fused(dot(s, shan), dot(g, global)))
            .collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln()).max(self.floor)
    }

    /// The default score of a photo for a caption (the cosines of the two embeddings, and the
    /// photo's normaliser): a log-ratio, 0 where the caption matches the photo as well as the
    /// whole bank together does.
    pub fn score(&self, shan: f32, global: f32, normaliser: f32) -> f32 {
        self.temperature * self.fused(shan, global) - normaliser
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let n = self.captions();
        let meta: HashMap<String, String> = [
            ("model", "query-bank".to_string()),
            ("global_weight", self.global_weight.to_string()),
            ("temperature", self.temperature.to_string()),
            ("normaliser_floor", self.floor.to_string()),
            ("shan_sha256", self.made_with.0.clone()),
            ("global_sha256", self.made_with.1.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let tensors = [
            ("shan".to_string(), vec![n, self.shan_dim], self.shan.clone()),
            ("global".to_string(), vec![n, self.global_dim], self.global.clone()),
        ];
        Ok(save_safetensors(path, &tensors, meta, true)?)
    }

    /// The bank at `path`, checked against the hashes of the SHAN and global weights in use
    /// (another network's bank would normalise with the wrong embeddings).
    pub fn load(path: &Path, shan_sha256: &str, global_sha256: &str) -> anyhow::Result<Self> {
        let file = WeightFile::open(path)?;
        let kind = file.metadata("model")?;
        anyhow::ensure!(kind == "query-bank", "{}: the weights of a {kind} model, not a query bank", path.display());
        let made_with = (file.metadata("shan_sha256")?, file.metadata("global_sha256")?);
        anyhow::ensure!(
            made_with.0 == shan_sha256 && made_with.1 == global_sha256,
            "{}: built for other SHAN or global weights; build it again with `alignscope rankers --write`",
            path.display()
        );
        let global_weight: f32 = file.metadata_parsed("global_weight")?;
        let temperature: f32 = file.metadata_parsed("temperature")?;
        // "-inf" (no floor) is not JSON: parsed as a float.
        let floor: f32 = file
            .metadata("normaliser_floor")?
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: metadata normaliser_floor: {e}", path.display()))?;
        anyhow::ensure!(
            global_weight.is_finite() && temperature.is_finite() && temperature > 0.0,
            "{}: the fusion weight or temperature is not a positive number",
            path.display()
        );
        let (n, shan_dim) = file.shape2("shan")?;
        let (_, global_dim) = file.shape2("global")?;
        anyhow::ensure!(
            !floor.is_nan() && floor < f32::INFINITY,
            "{}: the normaliser floor is not a number",
            path.display()
        );
        let bank = Self {
            global_weight,
            temperature,
            floor,
            shan_dim,
            global_dim,
            shan: file.values("shan", &[n, shan_dim])?,
            global: file.values("global", &[n, global_dim])?,
            made_with,
            weak_below: Calibration::load(path).map(|c| (c.weak_below, c.percentile)),
        };
        anyhow::ensure!(
            n > 0 && bank.shan.iter().chain(&bank.global).all(|v| v.is_finite()),
            "{}: the bank is empty or holds values that are not finite",
            path.display()
        );
        Ok(bank)
    }
}

/// The default ranker's networks and bank, from the committed files, checked against each other.
pub struct DefaultRanker {
    pub shan: crate::nets::shan::ShanNet,
    pub global: crate::nets::global_tuned::TunedGlobal,
    pub bank: QueryBank,
    /// SHA-256 of the SHAN and global weights.
    pub hashes: (String, String),
}

impl DefaultRanker {
    /// With SHAN's weights from `shan_path` (the global model and the bank are the committed ones).
    pub fn load_with(shan_path: &Path, visual: &str, device: &burn::tensor::Device) -> anyhow::Result<Self> {
        use crate::features::checksums::sha256_file;
        let global_path = crate::nets::global::default_path();
        let (shan, global) = crate::nets::shan_and_global(shan_path, &global_path, visual, device)?;
        let hash = |p: &Path| sha256_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
        let hashes = (hash(shan_path)?, hash(&global_path)?);
        let bank = QueryBank::load(&default_bank_path(), &hashes.0, &hashes.1)?;
        Ok(Self { shan, global, bank, hashes })
    }

    pub fn load(visual: &str, device: &burn::tensor::Device) -> anyhow::Result<Self> {
        Self::load_with(&crate::nets::shan::default_path(), visual, device)
    }
}

/// A dot product in eight lanes, so the compiler can vectorise it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank(temperature: f32) -> QueryBank {
        QueryBank {
            global_weight: 2.0,
            temperature,
            floor: f32::NEG_INFINITY,
            shan_dim: 2,
            global_dim: 1,
            shan: vec![1.0, 0.0, 0.0, 1.0],
            global: vec![1.0, -1.0],
            made_with: ("a".into(), "b".into()),
            weak_below: None,
        }
    }

    #[test]
    fn a_calibration_counts_only_for_the_bank_it_was_made_for() {
        let dir = tempfile::tempdir().unwrap();
        let bank_path = dir.path().join(BANK_FILE);
        std::fs::write(&bank_path, b"bank bytes").unwrap();
        let sha = crate::features::checksums::sha256_file(&bank_path).unwrap();
        let c = Calibration { bank_sha256: sha, weak_below: -7.0, percentile: 10, split: "dev".into(), pairs: 5 };
        c.save(&bank_path).unwrap();
        assert_eq!(Calibration::load(&bank_path), Some(c.clone()));
        let other = Calibration { bank_sha256: "0".repeat(64), ..c };
        other.save(&bank_path).unwrap();
        assert_eq!(Calibration::load(&bank_path), None);
    }

    #[test]
    fn normaliser_is_the_log_sum_of_the_bank_scores() {
        let b = bank(3.0);
        // fused with caption 0: 1 + 2·1 = 3; with caption 1: 0 + 2·(−1) = −2.
        let expected = ((3.0f32 * 3.0).exp() + (3.0f32 * -2.0).exp()).ln();
        assert!((b.normaliser(&[1.0, 0.0], &[1.0]) - expected).abs() < 1e-4);
        // A large temperature does not overflow.
        assert!(bank(500.0).normaliser(&[1.0, 0.0], &[1.0]).is_finite());
        // A photo far from the bank captions gets the floor (its own normaliser is about 6).
        let floored = QueryBank { floor: 7.0, ..bank(3.0) };
        assert_eq!(floored.normaliser(&[0.0, 0.0], &[-1.0]), 7.0);
        assert!((floored.normaliser(&[1.0, 0.0], &[1.0]) - expected).abs() < 1e-4);
    }

    #[test]
    fn a_hub_loses_to_a_photo_with_the_same_cosines_and_a_smaller_normaliser() {
        let b = bank(5.0);
        let (hub, plain) = (b.normaliser(&[0.7, 0.7], &[1.0]), b.normaliser(&[1.0, 0.0], &[0.0]));
        assert!(hub > plain);
        assert!(b.score(0.5, 0.5, hub) < b.score(0.5, 0.5, plain));
    }

    #[test]
    fn saved_bank_loads_only_for_its_weights() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.safetensors");
        bank(7.0).save(&path).unwrap();
        let loaded = QueryBank::load(&path, "a", "b").unwrap();
        assert_eq!(loaded.captions(), 2);
        assert_eq!((loaded.global_weight, loaded.temperature, loaded.floor), (2.0, 7.0, f32::NEG_INFINITY));
        QueryBank { floor: 11.5, ..bank(7.0) }.save(&path).unwrap();
        assert_eq!(QueryBank::load(&path, "a", "b").unwrap().floor, 11.5);
        let err = QueryBank::load(&path, "a", "other").unwrap_err().to_string();
        assert!(err.contains("other SHAN or global weights"), "{err}");
    }
}
