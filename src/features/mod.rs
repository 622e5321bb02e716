//! The pretrained backbones: EfficientNet-Lite (regions) and MiniLM (words), their tokenizer,
//! preprocessing and weight loading; and the SSD object detector. `host`: the arithmetic of the
//! CPU passes that skip flex's tensors.

pub mod checksums;
pub mod detections;
pub mod detector;
pub mod efficientnet;
pub mod host;
pub mod install;
pub mod minilm;
pub mod object_crops;
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
/// the installed copy ([`installed_models_dir`]: the binary carries its models and writes them
/// there on first run, or `alignscope install-models`). Never the working directory (an
/// `assets/models/` folder wherever alignscope happens to run must not replace its models), and
/// never the path the crate was built at (a copied binary must not depend on the source tree).
pub fn models_dir() -> PathBuf {
    models_location().0
}

/// Why [`models_location`] found no models: the installed folder (where the first run of the
/// binary writes them) is returned with this reason.
pub const MODELS_MISSING: &str = "not found: run `alignscope install-models`";

/// [`models_dir`] and why it is that one (for `doctor` and error messages).
pub fn models_location() -> (PathBuf, &'static str) {
    if let Some(dir) = std::env::var_os("ALIGNSCOPE_MODELS") {
        return (PathBuf::from(dir), "$ALIGNSCOPE_MODELS");
    }
    let beside_binary = std::env::current_exe().ok().and_then(|exe| {
        // The binary's folder and up to three above it (target/release/deps/ for test binaries).
        exe.ancestors().skip(1).take(4).map(|dir| dir.join("assets/models")).find(|d| d.is_dir())
    });
    if let Some(dir) = beside_binary {
        return (dir, "beside the binary");
    }
    match installed_models_dir() {
        Some(dir) if dir.join(checksums::FILE).is_file() => (dir, "installed"),
        Some(dir) => (dir, MODELS_MISSING),
        None => (PathBuf::from("assets/models"), MODELS_MISSING),
    }
}

/// The demo photos: the `demo` folder beside the models folder (`assets/demo` in a checkout,
/// `alignscope/demo` beside the installed models).
pub fn demo_dir() -> PathBuf {
    models_dir().with_file_name("demo")
}

/// Where `alignscope install-models` puts the models: `$XDG_DATA_HOME/alignscope/models`, by
/// default `~/.local/share/alignscope/models`.
pub fn installed_models_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("alignscope/models"))
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

type Loaded = std::collections::HashMap<(crate::data::FileVersion, String), Box<dyn std::any::Any + Send>>;

/// Backbones loaded in this process, by file version and device: each network builds its tops
/// from the backbone files, so start-up read and converted MiniLM and EfficientNet three times
/// each. A clone shares the tensors; loading a network's own weights over it replaces them in
/// the clone only.
static LOADED: std::sync::LazyLock<std::sync::Mutex<Loaded>> = std::sync::LazyLock::new(Default::default);

/// `load()` of the file at `path` onto `device`, once per file version and device ({:?} tells
/// an autodiff device from its inner one).
pub(crate) fn load_once<T: Clone + Send + 'static, E>(
    path: &Path,
    device: &burn::tensor::Device,
    load: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let Some(version) = crate::data::file_version(path) else { return load() };
    let key = (version, format!("{device:?}"));
    if let Some(hit) = LOADED.lock().ok().and_then(|m| m.get(&key).and_then(|v| v.downcast_ref::<T>().cloned())) {
        return Ok(hit);
    }
    let value = load()?;
    if let Ok(mut m) = LOADED.lock() {
        m.insert(key, Box::new(value.clone()));
    }
    Ok(value)
}
