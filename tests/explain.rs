//! `alignscope explain`: SHAN's level scores and each word's attention and heatmap over the
//! regions, from the committed model, on the demo photos.

mod common;

/// `alignscope --backend flex ARGS…`: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    common::alignscope(&[&["--backend", "flex"], args].concat())
}

fn explain(image: &str, caption: &str) -> serde_json::Value {
    explain_by(image, caption, "gradient")
}

fn explain_by(image: &str, caption: &str, method: &str) -> serde_json::Value {
    let (ok, out, err) = run(&["explain", image, caption, "--json", "--method", method]);
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
        assert_eq!(w["relevance"].as_array().unwrap().len(), 49);
    }
    assert_eq!(e["method"], "gradient", "gradient × activation is the default heatmap");
    assert_eq!(e["pair_relevance"].as_array().unwrap().len(), 49);
}

#[test]
fn occlusion_points_at_the_cat_and_attention_maps_are_the_attention() {
    let caption = "A cat lying on a blanket";
    let by_attention = explain_by("assets/demo/chelsea.jpg", caption, "attention");
    assert_eq!(by_attention["method"], "attention");
    for w in by_attention["words"].as_array().unwrap() {
        assert_eq!(w["relevance"], w["attention"], "{w}");
    }
    // Occlusion: hiding the cat's cells costs "cat" more than hiding a cell elsewhere.
    let e = explain_by("assets/demo/chelsea.jpg", caption, "occlusion");
    let cat = e["words"].as_array().unwrap().iter().find(|w| w["word"] == "cat").unwrap();
    let map: Vec<f64> = cat["relevance"].as_array().unwrap().iter().map(f).collect();
    let peak = map.iter().copied().fold(f64::MIN, f64::max);
    let mean = map.iter().sum::<f64>() / 49.0;
    assert!(peak > 0.0 && peak > 3.0 * mean.abs(), "a peaked map: {map:?}");
    // The pair's score is higher with nothing hidden than with its most relevant cell hidden.
    let pair: Vec<f64> = e["pair_relevance"].as_array().unwrap().iter().map(f).collect();
    assert!(pair.iter().copied().fold(f64::MIN, f64::max) > 0.0, "{pair:?}");
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
fn out_png_shows_each_content_words_map_as_json_prints_it() {
    use alignscope::render::{colormap::viridis, explanation};
    let dir = tempfile::tempdir().unwrap();
    // A flat grey photo: every cell centre of a panel is then the heatmap colour over grey.
    let photo = dir.path().join("grey photo.png");
    let grey = [120u8, 120, 120];
    image::RgbImage::from_pixel(448, 448, image::Rgb(grey)).save(&photo).unwrap();
    let png = dir.path().join("why.png");
    let (ok, out, err) =
        run(&["explain", photo.to_str().unwrap(), "a dog on the grass", "--json", "--out", png.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    let e: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let img = image::open(&png).unwrap_or_else(|err| panic!("{}: {err}", png.display())).to_rgba8();
    let words = e["words"].as_array().unwrap();
    // One scale for every word: 0 … the largest value of any word's map.
    let hi =
        words.iter().flat_map(|w| w["relevance"].as_array().unwrap().iter().map(f)).fold(f32::EPSILON as f64, f64::max);
    // Panels for the content words only, in order.
    let shown: Vec<&serde_json::Value> =
        words.iter().filter(|w| !["a", "on", "the"].contains(&w["word"].as_str().unwrap())).collect();
    assert_eq!(shown.len(), 2, "dog, grass");
    for (j, w) in shown.iter().enumerate() {
        let (px, py) = explanation::panel_origin(j, explanation::PANEL);
        for (cell, a) in w["relevance"].as_array().unwrap().iter().map(f).enumerate() {
            let (cx, cy) = (px + (cell % 7) as u32 * 32 + 16, py + (cell / 7) as u32 * 32 + 16);
            let heat = viridis((a / hi).clamp(0.0, 1.0) as f32);
            let want = [0, 1, 2]
                .map(|c| heat[c] as f32 * explanation::HEAT_ALPHA + grey[c] as f32 * (1.0 - explanation::HEAT_ALPHA));
            let got = img.get_pixel(cx, cy);
            // JSON rounds the values; allow one colour step.
            assert!(
                (0..3).all(|c| (got[c] as f32 - want[c]).abs() <= 1.5),
                "word {j} cell {cell}: {got:?} vs {want:?}"
            );
        }
    }
    let (ok, _, err) = run(&[
        "explain",
        photo.to_str().unwrap(),
        "a dog",
        "--out",
        dir.path().join("no/such/dir/x.png").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("no/such/dir/x.png"), "{err}");
}
