//! SHA-256 sums of bundled weights: a `CHECKSUMS` file (`sha256sum` format) beside them lists
//! every committed model. A listed file whose bytes differ (damaged, truncated, flipped bytes,
//! replaced) is refused on load; writing a listed file (`train --overwrite`, `rankers --write`)
//! records its new sum, so the list always describes what ships.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::{FileVersion, file_version};

pub const FILE: &str = "CHECKSUMS";

/// The `CHECKSUMS` beside `path` and the sum it lists for `path`'s name (None: no such file or
/// not listed; unlisted files, e.g. weights trained elsewhere, are not checked).
fn listed(path: &Path) -> Option<(PathBuf, String)> {
    let sums = path.parent()?.join(FILE);
    let name = path.file_name()?.to_str()?;
    let text = std::fs::read_to_string(&sums).ok()?;
    let sum = text.lines().find_map(|line| line.split_once("  ").filter(|(_, n)| *n == name).map(|(s, _)| s.into()))?;
    Some((sums, sum))
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// SHA-256s computed in this process, by file version: start-up opens the same backbone files
/// several times (each network loads its backbone top) and keys indexes by their sums; each
/// version is hashed once.
static SUMS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<FileVersion, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The SHA-256 of `bytes`, just read from `path` (remembered for this version of the file).
pub fn sha256_of(path: &Path, bytes: &[u8]) -> String {
    let version = file_version(path);
    if let Some(sum) = version.as_ref().and_then(|s| SUMS.lock().ok()?.get(s).cloned()) {
        return sum;
    }
    let sum = hex_sha256(bytes);
    if let (Some(version), Ok(mut sums)) = (version, SUMS.lock()) {
        sums.insert(version, sum.clone());
    }
    sum
}

/// The SHA-256 of the file at `path`, hex (remembered for this version of the file).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    if let Some(sum) = file_version(path).and_then(|s| SUMS.lock().ok()?.get(&s).cloned()) {
        return Ok(sum);
    }
    Ok(sha256_of(path, &std::fs::read(path)?))
}

/// Check `bytes`, read from `path`, against the sum listed beside it. The error names the file
/// and the list.
pub fn verify(path: &Path, bytes: &[u8]) -> Result<(), String> {
    match listed(path) {
        Some((sums, expected)) if sha256_of(path, bytes) != expected => Err(format!(
            "{}: its SHA-256 differs from the one listed in {} (the file is damaged or was replaced; \
             restore it from the repository, e.g. `git checkout -- assets/models`)",
            path.display(),
            sums.display()
        )),
        _ => Ok(()),
    }
}

/// After writing `path`: where a `CHECKSUMS` beside it exists, list `path`'s new sum in it (added
/// or replaced), written atomically.
pub fn record(path: &Path) -> std::io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    let sums = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&sums) else { return Ok(()) };
    let sum = hex_sha256(&std::fs::read(path)?);
    let mut lines: Vec<String> =
        text.lines().filter(|l| l.split_once("  ").is_none_or(|(_, n)| n != name)).map(str::to_string).collect();
    lines.push(format!("{sum}  {name}"));
    lines.sort_by(|a, b| a.split_once("  ").map(|p| p.1).cmp(&b.split_once("  ").map(|p| p.1)));
    let tmp = sums.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n")?;
    std::fs::rename(&tmp, &sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_file_that_changed_is_refused_and_recording_lists_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net.safetensors");
        // Write `content` and verify what reading the file gives, as loading does. The pause
        // gives each version its own mtime (sums are remembered per version of a file).
        let check = |content: &[u8]| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::fs::write(&path, content).unwrap();
            verify(&path, &std::fs::read(&path).unwrap())
        };
        std::fs::write(dir.path().join("other.bin"), b"x").unwrap();
        assert!(check(b"anything").is_ok(), "no CHECKSUMS: nothing to check");
        std::fs::write(dir.path().join(FILE), format!("{}  other.bin\n", hex_sha256(b"x"))).unwrap();
        assert!(check(b"anything").is_ok(), "not listed: not checked");
        check(b"weights").unwrap();
        record(&path).unwrap();
        assert!(check(b"weights").is_ok());
        let err = check(b"weightz").unwrap_err();
        assert!(err.contains("net.safetensors") && err.contains("CHECKSUMS"), "{err}");
        check(b"retrained").unwrap_err();
        record(&path).unwrap();
        assert!(check(b"retrained").is_ok() && check(b"weights").is_err());
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.lines().count(), 2, "one line per file, the other kept: {text}");
        assert!(verify(&dir.path().join("other.bin"), b"x").is_ok());
        assert_eq!(sha256_file(&dir.path().join("other.bin")).unwrap(), hex_sha256(b"x"));
    }
}
