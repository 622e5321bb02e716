//! The SSD-MobileNetV2 detector in burn finds what the TensorFlow frozen graph it was converted
//! from finds (tests/fixtures/detector/tf-detections.json, written by tools/convert_detector.py),
//! on flex and on wgpu; `features --objects --json` names the demo's astronaut and cat.

mod common;

use alignscope::data::decode::decode_oriented;
use alignscope::engine::backend::{BackendRequest, Compute, probe_adapter};
use alignscope::features::detector::{DETECTOR_WEIGHTS, Detector};
use alignscope::features::models_dir;

/// Scores and box corners may differ this much (fp16 weights, JPEG decoders ±1 per pixel).
const TOLERANCE: f32 = 0.01;

fn check_parity(compute: &Compute) {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_path("tests/fixtures/detector/tf-detections.json")).unwrap(),
    )
    .unwrap();
    let min_score = fixture["min_score"].as_f64().unwrap() as f32;
    let detector = Detector::load(&models_dir().join(DETECTOR_WEIGHTS), &compute.device).unwrap();
    let photos = fixture["photos"].as_object().unwrap();
    assert!(photos.len() >= 4);
    let images: Vec<_> =
        photos.keys().map(|p| decode_oriented(&common::repo_path(&format!("assets/demo/{p}"))).unwrap()).collect();
    // One batch: the photos' detections must not leak into each other.
    let found = detector.detect(&images, min_score - TOLERANCE, &compute.device);
    for ((photo, want), got) in photos.iter().zip(&found) {
        let want = want.as_array().unwrap();
        for w in want {
            let (label, score) = (w["label"].as_str().unwrap(), w["score"].as_f64().unwrap() as f32);
            // TF's boxes are [y0, x0, y1, x1]; ours [x0, y0, x1, y1].
            let b: Vec<f32> = w["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let tf_box = [b[1], b[0], b[3], b[2]];
            let m = got.iter().find(|d| {
                d.label == label
                    && (d.score - score).abs() <= TOLERANCE
                    && d.bbox.iter().zip(tf_box).all(|(x, y)| (x - y).abs() <= TOLERANCE)
            });
            assert!(m.is_some(), "{photo}: TF's {label} {score:.3} {tf_box:?} not found in {got:?}");
        }
        // Nothing clearly above the threshold that TF does not report.
        for d in got.iter().filter(|d| d.score >= min_score + TOLERANCE) {
            let reported = want.iter().any(|w| {
                w["label"] == d.label.as_str() && (w["score"].as_f64().unwrap() as f32 - d.score).abs() <= TOLERANCE
            });
            assert!(reported, "{photo}: {d:?} is not among TF's {want:?}");
        }
        assert!(got.len() >= want.len(), "{photo}");
    }
}

#[test]
fn detections_match_tensorflow_on_flex() {
    check_parity(&Compute::flex("test"));
}

#[test]
fn detections_match_tensorflow_on_wgpu() {
    if probe_adapter().is_none() {
        return common::skip_or_fail("a wgpu adapter (Vulkan: mesa-vulkan-drivers libvulkan1)");
    }
    check_parity(&Compute::headless(BackendRequest::Wgpu).expect("wgpu device"));
}

#[test]
fn features_objects_json_finds_the_astronaut_and_the_cat() {
    for (photo, label) in [("assets/demo/astronaut.jpg", "person"), ("assets/demo/chelsea.jpg", "cat")] {
        let (ok, out, err) = common::alignscope(&["-q", "--backend", "flex", "features", photo, "--objects", "--json"]);
        assert!(ok, "{out}\n{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["photo"], photo);
        let best = &v["objects"][0];
        assert_eq!(best["label"], label, "{out}");
        assert!(best["score"].as_f64().unwrap() > 0.5, "{out}");
        let b: Vec<f64> = best["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!(b.len() == 4 && b[0] < b[2] && b[1] < b[3] && b.iter().all(|x| (0.0..=1.0).contains(x)), "{out}");
    }
    // Text form, and a clear error for something that is not a photo.
    let (ok, out, _) =
        common::alignscope(&["-q", "--backend", "flex", "features", "assets/demo/coffee.jpg", "--objects"]);
    assert!(ok && out.contains("cup") && out.contains("objects"), "{out}");
    let (ok, _, err) = common::alignscope(&["-q", "--backend", "flex", "features", "Cargo.toml", "--objects"]);
    assert!(!ok && err.contains("Cargo.toml"), "{err}");
}
