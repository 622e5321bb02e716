//! Feature caches for a (tiny, made-up) Flickr8k: built once, reused, rebuilt when damaged, and
//! the cached block input continues to the same regions as the uncut network.

mod common;

use std::cell::RefCell;

use alignscope::data::feature_cache::FeatureCache;
use alignscope::data::flickr8k::Split;
use alignscope::engine::backend::Compute;
use alignscope::engine::jobs::CancelToken;
use alignscope::features::efficientnet::EfficientNetLite;
use alignscope::features::{TEXT_WEIGHTS, VISUAL_WEIGHTS, models_dir, preprocess, values};
use alignscope::train::extract::{
    ExtractMsg, ExtractOptions, extract, image_cache, image_cache_path, image_key, text_cache_path, text_key,
};
use burn::tensor::{Tensor, TensorData};

fn tiny_flickr8k(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let names = ["chelsea", "coffee", "rocket"];
    let mut tokens = String::new();
    for n in names {
        std::fs::copy(common::repo_path(&format!("assets/demo/{n}.jpg")), dir.join(format!("images/{n}.jpg"))).unwrap();
        for k in 0..5 {
            tokens.push_str(&format!("{n}.jpg#{k}\tA photo of a {n} number {k} .\n"));
        }
    }
    std::fs::write(dir.join("Flickr8k.token.txt"), tokens).unwrap();
    std::fs::write(dir.join("Flickr_8k.testImages.txt"), "chelsea.jpg\ncoffee.jpg\nrocket.jpg\n").unwrap();
}

/// The test split of [`tiny_flickr8k`] under `dir`, its caches in `dir/cache`.
fn tiny_options(dir: &std::path::Path) -> ExtractOptions {
    ExtractOptions {
        flickr8k: dir.join("flickr8k"),
        visual: "efficientnet-lite0".into(),
        split: Split::Test,
        out_dir: dir.join("cache"),
        image_block: 15,
        text_layer: 5,
        batch: 2,
        view: 0,
    }
}

fn run(options: &ExtractOptions) -> Vec<String> {
    let log = RefCell::new(Vec::new());
    extract(&Compute::flex("test"), options, &CancelToken::default(), &|m| {
        let line = match m {
            ExtractMsg::Progress { .. } => return,
            ExtractMsg::Warning(w) => format!("warning {w}"),
            ExtractMsg::UpToDate(p) => format!("up to date {}", p.display()),
            ExtractMsg::Saved(p) => format!("saved {}", p.display()),
        };
        log.borrow_mut().push(line);
    })
    .unwrap();
    log.into_inner()
}

#[test]
fn caches_are_built_reused_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    tiny_flickr8k(&dir.path().join("flickr8k"));
    let options = tiny_options(dir.path());
    let log = run(&options);
    assert_eq!(log.iter().filter(|l| l.starts_with("saved")).count(), 2, "{log:?}");

    let weights = models_dir().join(VISUAL_WEIGHTS);
    let images = FeatureCache::load(&image_cache_path(&options), &image_key(&weights, 224, 15, 0).unwrap()).unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images.entries[0].name, "chelsea.jpg");
    assert_eq!(images.entries[0].shape, vec![192, 7, 7]);
    let captions =
        FeatureCache::load(&text_cache_path(&options), &text_key(&models_dir().join(TEXT_WEIGHTS), 5).unwrap())
            .unwrap();
    assert_eq!(captions.len(), 15);
    assert_eq!(captions.entries[1].name, "chelsea.jpg#1");
    assert_eq!(captions.entries[1].shape[1], 384);

    // The cached activation, run through the rest of the network, gives the regions.
    let device = burn::tensor::Device::flex();
    let net = EfficientNetLite::load(&weights, &device).unwrap();
    let cached = Tensor::<4>::from_data(TensorData::new(images.values(0), [1, 192, 7, 7]), &device);
    let from_cache = values(net.features_from(cached, 15));
    let photo = image::open(dir.path().join("flickr8k/images/chelsea.jpg")).unwrap();
    let direct = values(net.features(preprocess::batch(&[preprocess::resize_square(&photo, 224)], &device)));
    let max_diff = from_cache.iter().zip(&direct).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let max_value = direct.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(max_diff <= 0.01 * max_value, "f16 cache drifts: {max_diff} (values up to {max_value})");

    // A second run reuses both.
    let log = run(&options);
    assert_eq!(log.iter().filter(|l| l.starts_with("up to date")).count(), 2, "{log:?}");

    // A damaged cache is reported and rebuilt.
    let path = text_cache_path(&options);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&path, bytes).unwrap();
    let log = run(&options);
    assert!(log.iter().any(|l| l.contains("corrupt cache")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("saved") && l.contains("captions")), "{log:?}");
    assert!(FeatureCache::load(&path, &text_key(&models_dir().join(TEXT_WEIGHTS), 5).unwrap()).is_ok());
}

#[test]
fn augmented_views_get_their_own_reproducible_caches() {
    let dir = tempfile::tempdir().unwrap();
    tiny_flickr8k(&dir.path().join("flickr8k"));
    let plain = tiny_options(dir.path());
    let photos = alignscope::data::flickr8k::load_split(&plain.flickr8k, Split::Test).unwrap().images;
    let build =
        |o: &ExtractOptions| image_cache(&Compute::flex("test"), o, &photos, &CancelToken::default(), &|_| {}).unwrap();
    let view = ExtractOptions { view: 1, ..plain.clone() };
    assert_ne!(image_cache_path(&view), image_cache_path(&plain));
    let (original, augmented) = (build(&plain), build(&view));
    assert_eq!(
        augmented.entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    );
    for i in 0..3 {
        assert_ne!(original.values(i), augmented.values(i), "photo {i}: the view is not the photo itself");
    }
    let second = ExtractOptions { view: 2, ..plain.clone() };
    assert_ne!(build(&second).values(0), augmented.values(0), "each view is its own draw");
    std::fs::remove_file(image_cache_path(&view)).unwrap();
    assert_eq!(build(&view).values(1), augmented.values(1), "a rebuilt view is the same view");
}

#[test]
fn a_broken_token_file_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Flickr8k.token.txt"), "a.jpg#0\tok\nno tab here\n").unwrap();
    let err = alignscope::data::flickr8k::read_captions(dir.path()).unwrap_err().to_string();
    assert!(err.contains("Flickr8k.token.txt:2"), "{err}");
}
