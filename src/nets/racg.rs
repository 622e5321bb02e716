//! RACG as shipped: save, load, the committed file.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::model::racg::{Racg, RacgConfig};

/// The metadata key of the config that built a saved RACG.
pub const CONFIG_KEY: &str = "racg_config";

/// Weights + the config that built them (metadata `racg_config`), written atomically.
pub fn save(net: &Racg, path: &Path, config: &RacgConfig, notes: &[(String, String)]) -> anyhow::Result<()> {
    super::store::save(net, path, "racg", CONFIG_KEY, config.to_string(), notes)
}

pub fn load(path: &Path, device: &Device) -> anyhow::Result<Racg> {
    super::store::load(path, CONFIG_KEY, |c: &RacgConfig| c.init(device))
}

/// Where the committed RACG lives.
pub fn default_path() -> PathBuf {
    crate::features::models_dir().join("racg.safetensors")
}
