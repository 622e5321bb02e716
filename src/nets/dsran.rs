//! DSRAN as shipped: save, load, the committed file.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::model::dsran::{Dsran, DsranConfig};

/// Weights + the config that built them (metadata `dsran_config`), written atomically.
pub fn save(net: &Dsran, path: &Path, config: &DsranConfig, notes: &[(String, String)]) -> anyhow::Result<()> {
    super::store::save(net, path, "dsran", "dsran_config", config.to_string(), notes)
}

/// A saved DSRAN: its config from the file, then every tensor (missing or misshapen: an error
/// naming the file).
pub fn load(path: &Path, device: &Device) -> anyhow::Result<Dsran> {
    super::store::load(path, "dsran_config", |c: &DsranConfig| c.init(device))
}

/// Where the committed DSRAN lives.
pub fn default_path() -> PathBuf {
    crate::features::models_dir().join("dsran.safetensors")
}

/// A net with an object stream reads exactly its number of objects per photo (`--objects`);
/// a grid-only net reads any (extra rows join its cells).
pub fn ensure_objects(net: &Dsran, objects: usize, path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        net.objects == 0 || net.objects == objects,
        "{}: this DSRAN has an object stream for {} objects per photo; pass --objects {}",
        path.display(),
        net.objects,
        net.objects
    );
    Ok(())
}
