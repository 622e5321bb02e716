//! Installing the bundled models where an installed or copied binary finds them: every file
//! `CHECKSUMS` lists, plus the list and the licences, each copied atomically and checked.

use std::path::{Path, PathBuf};

use super::checksums;

/// Copy the models in `from` to `to` (created); returns the files written. Each copy is checked
/// against `from`'s `CHECKSUMS`; nothing half-written is left under its final name.
pub fn install_models(from: &Path, to: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let list = from.join(checksums::FILE);
    let text = std::fs::read_to_string(&list)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the list of models: {e}", list.display()))?;
    std::fs::create_dir_all(to).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", to.display()))?;
    let mut names: Vec<&str> = text.lines().filter_map(|l| l.split_once("  ").map(|(_, n)| n)).collect();
    names.extend([checksums::FILE, "LICENSES.md"]);
    let mut written = Vec::new();
    for name in names {
        anyhow::ensure!(!name.contains('/') && !name.starts_with('.'), "{}: unexpected name {name:?}", list.display());
        let (source, target) = (from.join(name), to.join(name));
        let tmp = to.join(format!(".{name}.tmp"));
        std::fs::copy(&source, &tmp).map_err(|e| anyhow::anyhow!("{} → {}: {e}", source.display(), tmp.display()))?;
        std::fs::rename(&tmp, &target).map_err(|e| anyhow::anyhow!("{}: {e}", target.display()))?;
        written.push(target);
    }
    for target in &written {
        let bytes = std::fs::read(target).map_err(|e| anyhow::anyhow!("{}: {e}", target.display()))?;
        checksums::verify(target, &bytes).map_err(anyhow::Error::msg)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn installs_what_the_list_names_and_checks_it() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(from.path().join("a.safetensors"), b"aaa").unwrap();
        std::fs::write(from.path().join("LICENSES.md"), b"licences").unwrap();
        std::fs::write(from.path().join("stray.bin"), b"not listed").unwrap();
        std::fs::write(from.path().join("CHECKSUMS"), "").unwrap();
        super::checksums::record(&from.path().join("a.safetensors")).unwrap();
        let target = to.path().join("models");
        let written = super::install_models(from.path(), &target).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(std::fs::read(target.join("a.safetensors")).unwrap(), b"aaa");
        assert!(!target.join("stray.bin").exists());
        std::fs::write(from.path().join("a.safetensors"), b"changed").unwrap();
        let err = super::install_models(from.path(), &target).unwrap_err().to_string();
        assert!(err.contains("a.safetensors") && err.contains("CHECKSUMS"), "{err}");
    }
}
