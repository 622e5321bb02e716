//! The committed models, evaluated like the papers on the Flickr8k 1K test split: the global
//! baseline, SHAN (full score and each level) and DSRAN.

mod common;

use std::path::Path;
use std::process::Command;

fn eval(model: &str, flickr8k: &Path, cache: &Path) -> serde_json::Value {
    eval_images(model, flickr8k, cache, 1000)
}

/// `eval --json` on the first `images` test images.
fn eval_images(model: &str, flickr8k: &Path, cache: &Path, images: usize) -> serde_json::Value {
    eval_with(model, flickr8k, cache, images, &[])
}

/// [`eval_images`] with more arguments.
fn eval_with(model: &str, flickr8k: &Path, cache: &Path, images: usize, more: &[&str]) -> serde_json::Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alignscope"));
    command.args(["--backend", "flex", "eval", "--model", model, "--split", "test", "--json"]).args(more);
    if images < 1000 {
        command.args(["--images", &images.to_string()]);
    }
    let out = command
        .arg("--flickr8k")
        .arg(flickr8k)
        .arg("--cache")
        .arg(cache)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run alignscope eval");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(json["model"], model);
    assert_eq!(json["images"], images);
    json
}

/// rSum of one level, checked to be the sum of its six recalls.
fn rsum(json: &serde_json::Value, level: &str) -> f64 {
    let r = &json[level];
    let rsum = r["rsum"].as_f64().unwrap_or_else(|| panic!("no {level} in {json}"));
    let parts: f64 =
        ["i2t", "t2i"].iter().flat_map(|d| r[d].as_array().unwrap().iter().map(|v| v.as_f64().unwrap())).sum();
    assert!((parts - rsum).abs() < 0.5, "{level}: rSum is the sum of the six recalls");
    rsum
}

/// Flickr8k beside the project, or `None` after saying why the test skips.
fn flickr8k() -> Option<std::path::PathBuf> {
    let flickr8k = common::repo_path("../shared/data/flickr8k");
    if flickr8k.join("Flickr8k.token.txt").is_file() {
        return Some(flickr8k);
    }
    eprintln!("SKIPPED: Flickr8k not found at {} (it lives beside the project in ../shared)", flickr8k.display());
    None
}

#[test]
fn committed_models_recall_on_flickr8k_test() {
    let Some(flickr8k) = flickr8k() else { return };
    let cache = tempfile::tempdir().unwrap();
    let global = rsum(&eval("global", &flickr8k, cache.path()), "full");
    // The committed global fine-tunes the same backbone tops as SHAN, on augmented views:
    // measured 317.1 (without the views 308.0; on frozen features 280.2; the PyTorch reference on
    // frozen features 278.7, MODELS.md). A little slack for summation order on other CPUs.
    assert!(global >= 314.0, "global rSum {global}");

    let shan = eval("shan", &flickr8k, cache.path());
    let full = rsum(&shan, "full");
    for level in ["l2l", "g2l", "g2g"] {
        assert!(rsum(&shan, level) > 100.0, "{level} alone retrieves far above chance: {shan}");
    }
    // Measured 305.1: issue 10's ≥ 300 is met, its "clearly beats the global model" is not — the
    // global with the same lifts scores 308.0 (see README "The bar").
    assert!(full >= 304.0, "SHAN {full} vs global {global}");

    // What the window and `search` rank with: measured 335.7 (issue 24 asks ≥ 330), above both
    // of its parts.
    let default = rsum(&eval("default", &flickr8k, cache.path()), "full");
    assert!(default >= 333.0 && default > global && default > full, "default {default}");
}

#[test]
fn committed_dsran_reaches_its_bar_on_flickr8k_test() {
    let Some(flickr8k) = flickr8k() else { return };
    let cache = tempfile::tempdir().unwrap();
    let dsran = eval("dsran", &flickr8k, cache.path());
    assert!(dsran.get("l2l").is_none(), "levels the network lacks are absent: {dsran}");
    // Issue 7's bar is 250; measured 269.6 for the committed weights (fine-tuned, December 2026).
    let full = rsum(&dsran, "full");
    assert!(full >= 268.0, "DSRAN rSum {full}");
}

#[test]
fn dsran_with_both_visual_streams_beats_the_grid_only_dsran_on_flickr8k_test() {
    let Some(flickr8k) = flickr8k() else { return };
    let cache = tempfile::tempdir().unwrap();
    // The README's figure (issue 27): measured 271.4 with the detector's 4 objects per photo (the
    // object cache is built here: about 4 minutes on 2 cores), against 269.6 for the grid only.
    let weights = ["--objects", "4", "--weights", "assets/experiments/dsran-objects4.safetensors"];
    let dual = rsum(&eval_with("dsran", &flickr8k, cache.path(), 1000, &weights), "full");
    let grid = rsum(&eval("dsran", &flickr8k, cache.path()), "full");
    assert!(dual >= 270.5 && dual > grid, "both streams {dual}, grid {grid}");
}

#[test]
fn committed_racg_holds_its_measured_recall_on_flickr8k_test() {
    let Some(flickr8k) = flickr8k() else { return };
    let cache = tempfile::tempdir().unwrap();
    // RACG scores every pair through its cross-graph attention: the whole 1K test takes ~14 min
    // here (254.8 measured, issue 7's bar is 250; see README), so the suite checks the first 200
    // images (measured 398.1 in 33 s; the weights' graph share is 0, so full = node level).
    let racg = eval_images("racg", &flickr8k, cache.path(), 200);
    assert!(racg.get("l2l").is_none(), "levels the network lacks are absent: {racg}");
    let (full, node, graph) = (rsum(&racg, "full"), rsum(&racg, "node"), rsum(&racg, "graph"));
    assert!(full >= 393.0, "RACG rSum on the first 200 test images {full}");
    assert!((full - node).abs() < 0.05 && graph > 300.0 && graph < full, "levels {racg}");
}

#[test]
fn search_top_10_holds_the_ground_truth_on_flickr8k_test() {
    let Some(flickr8k) = flickr8k() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_alignscope"))
        .args(["--backend", "flex", "bench", "search", "--photos", "2000", "--queries", "5", "--flickr8k"])
        .arg(&flickr8k)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run alignscope bench search");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}");
    let line = stdout.lines().find(|l| l.contains("top-10 holds the ground-truth photo for")).expect("the recall line");
    let percent: f64 = line
        .split("for ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("a percentage");
    // Issue 5's bar: the ground-truth photo in the top 10 for at least half of the captions.
    assert!(percent >= 50.0, "{line}");
}
