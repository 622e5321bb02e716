//! Weights files of the trained networks: the tensors with the config that built them and notes,
//! written atomically and readable by everyone.

use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};

/// Weights + metadata (`model`, the config under `config_key`, notes), written atomically, 0644
/// (every trained network here: SHAN, DSRAN, RACG).
pub fn save<N: Module>(
    net: &N,
    path: &Path,
    model: &str,
    config_key: &str,
    config_json: String,
    notes: &[(String, String)],
) -> anyhow::Result<()> {
    let mut store =
        SafetensorsStore::from_file(path).overwrite(true).metadata("model", model).metadata(config_key, config_json);
    for (k, v) in notes {
        store = store.metadata(k.clone(), v.clone());
    }
    net.save_into(&mut store).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    // The store writes through a private (0600) temporary file; weights are meant to be shared.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .and_then(|()| crate::features::checksums::record(path))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A saved network: its config from the file's `config_key` metadata, the network built from it,
/// then every tensor (a missing or misshapen one is an error naming the file).
pub fn load<C: burn::config::Config, N: Module>(
    path: &Path,
    config_key: &str,
    init: impl FnOnce(&C) -> N,
) -> anyhow::Result<N> {
    let mut net = init(&saved_config(&crate::features::weights::WeightFile::open(path)?, path, config_key)?);
    net.load_from(&mut SafetensorsStore::from_file(path)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(net)
}

/// The config a saved network was built from (the `config_key` metadata of `file`, opened from `path`).
pub fn saved_config<C: burn::config::Config>(
    file: &crate::features::weights::WeightFile,
    path: &Path,
    config_key: &str,
) -> anyhow::Result<C> {
    let json = file.metadata(config_key)?;
    C::load_binary(json.as_bytes()).map_err(|e| anyhow::anyhow!("{}: {config_key} metadata: {e}", path.display()))
}
