//! Installing the models (and demo photos) a binary carries where it finds them again: each file
//! written atomically, then every file `CHECKSUMS` lists checked.

use std::path::{Path, PathBuf};

use super::checksums;

/// Write `files` (name, bytes) into `to` (created); returns the files written. Nothing
/// half-written is left under its final name, and `CHECKSUMS` is written last: a folder holding
/// it holds every file (it is what marks the models as installed). A file it lists must match it.
pub fn install_files(files: &[(&str, &[u8])], to: &Path) -> anyhow::Result<Vec<PathBuf>> {
    for (name, _) in files {
        anyhow::ensure!(
            !name.contains(['/', '\\']) && !name.starts_with('.') && !name.is_empty(),
            "unexpected file name {name:?}"
        );
    }
    std::fs::create_dir_all(to).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", to.display()))?;
    let mut in_order: Vec<&(&str, &[u8])> = files.iter().collect();
    in_order.sort_by_key(|(name, _)| *name == checksums::FILE);
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes) in in_order {
        let (target, tmp) = (to.join(name), to.join(format!(".{name}.tmp")));
        std::fs::write(&tmp, bytes).map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", tmp.display()))?;
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
    use super::checksums::hex_sha256;

    #[test]
    fn writes_the_files_and_checks_the_listed_ones() {
        let to = tempfile::tempdir().unwrap();
        let target = to.path().join("models");
        let list = format!("{}  a.safetensors\n", hex_sha256(b"aaa"));
        let files: [(&str, &[u8]); 3] = [("CHECKSUMS", list.as_bytes()), ("a.safetensors", b"aaa"), ("b.txt", b"b")];
        let written = super::install_files(&files, &target).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(std::fs::read(target.join("a.safetensors")).unwrap(), b"aaa");
        assert!(
            std::fs::read_dir(&target).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        );
        let damaged: [(&str, &[u8]); 2] = [("CHECKSUMS", list.as_bytes()), ("a.safetensors", b"changed")];
        let err = super::install_files(&damaged, &to.path().join("other")).unwrap_err().to_string();
        assert!(err.contains("a.safetensors") && err.contains("CHECKSUMS"), "{err}");
        let err = super::install_files(&[("../x", b"x")], &target).unwrap_err().to_string();
        assert!(err.contains("unexpected file name"), "{err}");
        // A file that cannot be written (a folder holds its name): CHECKSUMS, listed first, is
        // not written either, so the folder does not pass for an installed one.
        let blocked = to.path().join("blocked");
        std::fs::create_dir_all(blocked.join("a.safetensors/inside")).unwrap();
        assert!(super::install_files(&files, &blocked).is_err());
        assert!(!blocked.join("CHECKSUMS").exists(), "CHECKSUMS only once everything is written");
    }
}
