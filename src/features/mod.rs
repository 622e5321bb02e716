//! The pretrained backbones: EfficientNet-Lite (regions) and MiniLM (words), their tokenizer,
//! preprocessing and weight loading.

pub mod efficientnet;
pub mod minilm;
pub mod preprocess;
pub mod text;
pub mod tokenizer;
pub mod visual;
pub mod weights;

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;

/// A float tensor's values, read back to the host as f32.
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().expect("float data converted to f32 reads back as f32")
}

/// `assets/models`: next to the working directory in a checkout, else where the crate was built.
pub fn models_dir() -> PathBuf {
    let local = PathBuf::from("assets/models");
    if local.is_dir() { local } else { Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models") }
}

/// The visual backbone the app runs (its weights file is [`VISUAL_WEIGHTS`]).
pub const VISUAL: &str = "efficientnet-lite0";
pub const VISUAL_WEIGHTS: &str = "efficientnet-lite0.safetensors";
pub const TEXT_WEIGHTS: &str = "minilm-l6.safetensors";
pub const VOCAB: &str = "minilm-vocab.txt";
pub const IMAGENET_CLASSES: &str = "imagenet-classes.txt";

/// ImageNet class names, index-aligned with the classifier.
pub fn imagenet_classes() -> Vec<String> {
    std::fs::read_to_string(models_dir().join(IMAGENET_CLASSES))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}
