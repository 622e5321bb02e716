//! `alignscope explain`: SHAN's level scores and each word's attention over the regions, from
//! the committed model, on the demo photos.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_alignscope")).args(["--backend", "flex"]).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("run alignscope");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn explain(image: &str, caption: &str) -> serde_json::Value {
    let (ok, out, err) = run(&["explain", image, caption, "--json"]);
    assert!(ok, "{out}\n{err}");
    serde_json::from_str(out.trim()).expect("one JSON object")
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn explanation_has_levels_and_a_distribution_per_word() {
    let e = explain("assets/demo/chelsea.jpg", "A cat lying on a blanket");
    let w: Vec<f64> = e["weights"].as_array().unwrap().iter().map(f).collect();
    let levels = w[0] * f(&e["l2l"]) + w[1] * f(&e["g2l"]) + w[2] * f(&e["g2g"]);
    assert!((f(&e["score"]) - levels).abs() < 1e-4, "the score is the weighted sum of the levels: {e}");
    assert_eq!(e["grid"], 7);
    assert_eq!(e["boxes"].as_array().unwrap().len(), 49);
    let words: Vec<&str> = e["words"].as_array().unwrap().iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert_eq!(words, ["A", "cat", "lying", "on", "a", "blanket"], "words as typed");
    for w in e["words"].as_array().unwrap() {
        let attention: Vec<f64> = w["attention"].as_array().unwrap().iter().map(f).collect();
        assert_eq!(attention.len(), 49);
        assert!((attention.iter().sum::<f64>() - 1.0).abs() < 1e-3, "{w}");
        assert!(attention.iter().all(|&a| a >= 0.0));
        assert!((-1.0..=1.0).contains(&f(&w["alignment"])), "{w}");
    }
}

#[test]
fn the_model_prefers_the_photo_the_caption_describes() {
    let caption = "a cat looking at the camera";
    let cat = f(&explain("assets/demo/chelsea.jpg", caption)["score"]);
    let cup = f(&explain("assets/demo/coffee.jpg", caption)["score"]);
    assert!(cat > cup, "cat photo {cat} vs coffee photo {cup}");
}

#[test]
fn odd_captions_work_and_bad_input_is_named() {
    let long = "a dog runs across the grass ".repeat(360); // 10,080 characters
    let (ok, out, err) = run(&["explain", "assets/demo/chelsea.jpg", &long]);
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("caption too long"), "{err}");
    let e = explain("assets/demo/chelsea.jpg", "猫 🐱 on a sofa");
    assert!(!e["words"].as_array().unwrap().is_empty());

    let (ok, _, err) = run(&["explain", "assets/demo/chelsea.jpg", "   "]);
    assert!(!ok && err.contains("caption"), "{err}");
    let (ok, _, err) = run(&["explain", "no/such/photo.jpg", "a cat"]);
    assert!(!ok && err.contains("no/such/photo.jpg"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("shan.safetensors");
    std::fs::write(&bad, b"not weights").unwrap();
    let (ok, _, err) = run(&["explain", "assets/demo/chelsea.jpg", "a cat", "--weights", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("shan.safetensors"), "{err}");
}

#[test]
fn out_png_shows_each_words_attention_as_json_prints_it() {
    use alignscope::render::{colormap::viridis, explanation};
    let dir = tempfile::tempdir().unwrap();
    // A flat grey photo: every cell centre of a panel is then the heatmap colour over grey.
    let photo = dir.path().join("grey photo.png");
    let grey = [120u8, 120, 120];
    image::RgbImage::from_pixel(448, 448, image::Rgb(grey)).save(&photo).unwrap();
    let png = dir.path().join("why.png");
    let (ok, out, err) = run(&["explain", photo.to_str().unwrap(), "a dog on the grass", "--json", "--out", png.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    let e: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let img = image::open(&png).unwrap_or_else(|err| panic!("{}: {err}", png.display())).to_rgba8();
    let words = e["words"].as_array().unwrap();
    let hi = words.iter().flat_map(|w| w["attention"].as_array().unwrap().iter().map(f)).fold(0.0, f64::max);
    for (j, w) in words.iter().enumerate() {
        let (px, py) = explanation::panel_origin(j, explanation::PANEL);
        for (cell, a) in w["attention"].as_array().unwrap().iter().map(f).enumerate() {
            let (cx, cy) = (px + (cell % 7) as u32 * 32 + 16, py + (cell / 7) as u32 * 32 + 16);
            let heat = viridis((a / hi) as f32);
            let want = [0, 1, 2].map(|c| heat[c] as f32 * explanation::HEAT_ALPHA + grey[c] as f32 * (1.0 - explanation::HEAT_ALPHA));
            let got = img.get_pixel(cx, cy);
            // JSON rounds the weights; allow one colour step.
            assert!((0..3).all(|c| (got[c] as f32 - want[c]).abs() <= 1.5), "word {j} cell {cell}: {got:?} vs {want:?}");
        }
    }
    let (ok, _, err) = run(&["explain", photo.to_str().unwrap(), "a dog", "--out", dir.path().join("no/such/dir/x.png").to_str().unwrap()]);
    assert!(!ok && err.contains("no/such/dir/x.png"), "{err}");
}
