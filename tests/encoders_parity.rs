//! The burn backbones reproduce the PyTorch reference (tools/make_fixtures.py) on both backends.

mod common;

use alignscope::engine::backend::{BackendRequest, Compute, probe_adapter};
use alignscope::features::text::TextEncoder;
use alignscope::features::visual::VisualEncoder;
use alignscope::features::weights::WeightFile;
use alignscope::features::{TEXT_WEIGHTS, VISUAL_WEIGHTS, VOCAB, models_dir};
use burn::tensor::Device;

const IMAGES: [&str; 4] = ["chelsea", "coffee", "rocket", "astronaut"];

fn fixture(name: &str) -> WeightFile {
    WeightFile::open(&common::repo_path("tests/fixtures").join(name)).expect("fixture")
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn visual_parity(device: &Device, label: &str) {
    let encoder = VisualEncoder::load(&models_dir().join(VISUAL_WEIGHTS), device).expect("visual weights");
    let reference = fixture("visual.safetensors");
    let images: Vec<_> = IMAGES
        .iter()
        .map(|n| image::open(common::repo_path(&format!("tests/fixtures/visual-{n}.png"))).expect("fixture image"))
        .collect();
    let maps = encoder.feature_maps(&images);
    assert_eq!(maps.dims(), [4, 1280, 7, 7]);
    let values = alignscope::features::values(maps);
    let tops = encoder.top_classes(&images, 1);
    for (i, name) in IMAGES.iter().enumerate() {
        let expected = reference.values(&format!("features.{name}"), &[1280, 7, 7]).unwrap();
        let got = &values[i * expected.len()..(i + 1) * expected.len()];
        let max_diff = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        eprintln!("{label} {name}: max |burn − torch| = {max_diff:.2e}");
        assert!(max_diff <= 1e-3, "{label} {name}: features differ by {max_diff}");
        let logits = reference.values(&format!("logits.{name}"), &[1000]).unwrap();
        assert_eq!(tops[i][0].0, argmax(&logits), "{label} {name}: ImageNet top-1 differs");
    }
}

fn text_parity(device: &Device, label: &str) {
    let dir = models_dir();
    let encoder = TextEncoder::load(&dir.join(TEXT_WEIGHTS), &dir.join(VOCAB), device).expect("text weights");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::repo_path("tests/fixtures/text.json")).unwrap()).unwrap();
    let reference = fixture("text.safetensors");
    let captions: Vec<String> =
        meta["captions"].as_array().unwrap().iter().map(|c| c["caption"].as_str().unwrap().to_string()).collect();
    let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
    let encoded = encoder.encode(&refs);
    for (i, (caption, features)) in meta["captions"].as_array().unwrap().iter().zip(encoded).enumerate() {
        let features = features.expect("encodes");
        let ids: Vec<u32> = caption["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(features.tokenized.ids, ids, "caption {i}: token ids");
        let sentence = reference.values(&format!("sentence.{i}"), &[384]).unwrap();
        let cos = cosine(&features.sentence, &sentence);
        eprintln!("{label} caption {i} ({} pieces): sentence cosine {cos:.6}", ids.len());
        assert!(cos >= 0.999, "{label} caption {i}: cosine {cos}");
        let tokens = reference.values(&format!("tokens.{i}"), &[ids.len(), 384]).unwrap();
        for (j, (a, b)) in features.tokens.chunks(384).zip(tokens.chunks(384)).enumerate() {
            assert!(cosine(a, b) >= 0.999, "{label} caption {i} token {j}: cosine {}", cosine(a, b));
        }
    }
}

#[test]
fn visual_backbone_matches_pytorch_on_flex() {
    visual_parity(&Device::flex(), "flex");
}

#[test]
fn text_backbone_matches_pytorch_on_flex() {
    text_parity(&Device::flex(), "flex");
}

#[test]
fn backbones_match_pytorch_on_wgpu() {
    if probe_adapter().is_none() {
        return common::skip_or_fail("a wgpu adapter (Vulkan: mesa-vulkan-drivers libvulkan1)");
    }
    let compute = Compute::headless(BackendRequest::Wgpu).expect("wgpu device");
    visual_parity(&compute.device, "wgpu");
    text_parity(&compute.device, "wgpu");
}

#[test]
fn tokenizer_matches_hf_tokenizers() {
    let dir = models_dir();
    let tokenizer = alignscope::features::tokenizer::WordPiece::load(&dir.join(VOCAB), 256).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::repo_path("tests/fixtures/text.json")).unwrap()).unwrap();
    for caption in meta["captions"].as_array().unwrap() {
        let text = caption["caption"].as_str().unwrap();
        let t = tokenizer.tokenize(text).unwrap();
        let pieces: Vec<&str> = caption["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(t.pieces, pieces, "{text:?}");
        let offsets: Vec<(usize, usize)> = caption["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize))
            .collect();
        assert_eq!(t.offsets, offsets, "{text:?}");
        // Every piece maps to the typed word that contains its first character.
        let chars: Vec<char> = text.chars().collect();
        for (k, word) in t.piece_word.iter().enumerate() {
            if let Some(w) = word {
                let piece_text: String = chars[t.offsets[k].0..t.offsets[k].1].iter().collect();
                assert!(t.words[*w].contains(&piece_text), "{piece_text:?} not in {:?}", t.words[*w]);
            }
        }
    }
}

#[test]
fn wrong_or_corrupt_weights_name_the_file() {
    let dir = models_dir();
    // The text weights are not an EfficientNet.
    let err = VisualEncoder::load(&dir.join(TEXT_WEIGHTS), &Device::flex()).err().expect("must fail").to_string();
    assert!(err.contains(TEXT_WEIGHTS), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let corrupt = tmp.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json").unwrap();
    let err = VisualEncoder::load(&corrupt, &Device::flex()).err().expect("must fail").to_string();
    assert!(err.contains("corrupt.safetensors") && err.contains("not a safetensors file"), "{err}");
    let missing = tmp.path().join("missing.safetensors");
    let err = VisualEncoder::load(&missing, &Device::flex()).err().expect("must fail").to_string();
    assert!(err.contains("missing.safetensors") && err.contains("cannot read"), "{err}");
}
