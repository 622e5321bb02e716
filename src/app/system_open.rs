//! Handing a photo or folder to the desktop: the system's viewer or file manager. The opener is
//! started and left to run (a thread reaps it), so the UI never waits on it.

use std::path::Path;

/// The desktop's "open this" command.
const OPENER: &str = if cfg!(target_os = "macos") {
    "open"
} else if cfg!(target_os = "windows") {
    "explorer"
} else {
    "xdg-open"
};

/// Open `path` with the system's default application (a folder: the file manager).
pub fn open(path: &Path) -> Result<(), String> {
    let mut child = std::process::Command::new(OPENER)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("{}: cannot open: `{OPENER}` was not found (on Linux it comes with xdg-utils)", path.display())
            }
            _ => format!("{}: cannot open with `{OPENER}`: {e}", path.display()),
        })?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

/// Show `path` in the file manager: its folder opened (selecting the file itself needs a
/// desktop-specific protocol; the folder is what every file manager takes).
pub fn reveal(path: &Path) -> Result<(), String> {
    open(path.parent().unwrap_or(path))
}
