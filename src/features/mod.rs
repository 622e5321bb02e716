//! The pretrained backbones: EfficientNet-Lite (regions) and MiniLM (words), their tokenizer,
//! preprocessing and weight loading.

pub mod checksums;
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
#[allow(clippy::expect_used, reason = "converted to f32 above, so the read cannot fail")]
pub fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().expect("float data converted to f32 reads back as f32")
}

/// The committed models: `$ALIGNSCOPE_MODELS` when set; else `assets/models` beside the binary
/// (`target/release/alignscope` in a checkout, or a tree with `assets/` next to `bin/`); else
/// where the crate was built. Never the working directory: an `assets/models/` folder wherever
/// alignscope happens to run must not replace its models.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ALIGNSCOPE_MODELS") {
        return PathBuf::from(dir);
    }
    let beside_binary = std::env::current_exe().ok().and_then(|exe| {
        // The binary's folder and up to three above it (target/release/deps/ for test binaries).
        exe.ancestors().skip(1).take(4).map(|dir| dir.join("assets/models")).find(|d| d.is_dir())
    });
    beside_binary.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models"))
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
