//! The real binary opens a real window under Xvfb and draws real thumbnails.

mod common;

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// `xvfb-run -a` picks a free display by looking, so two started at once can pick the same one:
/// the tests in this file take turns.
static DISPLAY: Mutex<()> = Mutex::new(());

/// This test's turn on a virtual display, or `None` (skipped) without xvfb-run.
fn take_display() -> Option<MutexGuard<'static, ()>> {
    if !common::has_program("xvfb-run") {
        common::skip_or_fail("xvfb-run (apt-get install xvfb)");
        return None;
    }
    Some(DISPLAY.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// A few demo photos in a temporary folder: the window indexes what it opens, and on a software
/// wgpu adapter the whole demo folder would take minutes.
fn few_demo_photos(dir: &std::path::Path) -> std::path::PathBuf {
    let folder = dir.join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    for name in ["chelsea.jpg", "coffee.jpg", "astronaut.jpg", "german_shepherd_dog.jpg", "pepperoni_pizza.jpg"] {
        std::fs::copy(common::repo_path("assets/demo").join(name), folder.join(name)).unwrap();
    }
    folder
}

#[test]
fn window_opens_and_draws_the_demo_folder() {
    let Some(_turn) = take_display() else { return };
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("window.png");
    let output = Command::new("timeout")
        .arg("300")
        .arg("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_alignscope"))
        .arg("gui")
        .arg("--folder")
        .arg(few_demo_photos(dir.path()))
        .arg("--screenshot")
        .arg(&shot)
        .env("HOME", dir.path()) // settings of this run stay in the temp dir
        .output()
        .expect("run xvfb-run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "app failed: {:?}\n{stderr}", output.status);
    let image =
        image::open(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}\n{stderr}", shot.display())).to_rgb8();
    assert!(image.width() >= 640 && image.height() >= 400, "{:?}", image.dimensions());
    // A blank or single-colour frame has a handful of colours; photos have thousands.
    let mut colours: Vec<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 2000, "only {} distinct colours: is the window blank?", colours.len());
}

#[test]
fn forced_wgpu_shares_the_window_device_with_the_model() {
    let Some(_turn) = take_display() else { return };
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .args(["300", "xvfb-run", "-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_alignscope"))
        .args(["--backend", "wgpu", "gui", "--folder"])
        .arg(few_demo_photos(dir.path()))
        .arg("--screenshot")
        .arg(dir.path().join("wgpu.png"))
        .env("HOME", dir.path())
        .output()
        .expect("run xvfb-run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The model ran an op on the device eframe created for the window.
    assert!(stderr.contains("message: check: 64×64 matmul + softmax on wgpu ok"), "{stderr}");
}
