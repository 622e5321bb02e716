//! The global dual encoder with SHAN's backbone lifts (issue 10's baseline "same features, same
//! recipe and same lifts"): EfficientNet's last MBConv block + head and MiniLM's last layer are
//! fine-tuned with the linear heads, from the same caches SHAN trains on. The image vector is the
//! mean of the 49 regions (= the frozen model's average pool), the sentence vector the masked
//! mean of every token ([CLS] and [SEP] included, as sentence-transformers pools), so with the
//! tops frozen this is exactly the frozen-feature global model.

use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor};

use super::TEXT_TOP_LAYER;
use super::shan::{CaptionBatch, tokens};
use crate::features::efficientnet::{EfficientNetLite, Top};
use crate::features::minilm::{Layer, MiniLm};
use crate::features::weights::WeightFile;
use crate::features::{TEXT_WEIGHTS, models_dir};
use crate::model::global::{GlobalConfig, GlobalModel};

#[derive(Module, Debug)]
pub struct TunedGlobal {
    pub visual: Top,
    pub text: Layer,
    pub head: GlobalModel,
}

/// Which backbone layers train (a frozen one keeps its pretrained weights).
#[derive(Clone, Copy, Debug)]
pub struct Lifts {
    pub visual: bool,
    pub text: bool,
}

/// The starting point: the backbone tops (EfficientNet from `first_block`) from the committed
/// backbone weights, fresh heads.
pub fn init(visual: &str, first_block: usize, lifts: Lifts, device: &Device) -> anyhow::Result<TunedGlobal> {
    let backbone = EfficientNetLite::load(&models_dir().join(format!("{visual}.safetensors")), device)?;
    anyhow::ensure!(
        first_block < backbone.blocks.len(),
        "{visual} has {} blocks; cannot fine-tune from block {first_block}",
        backbone.blocks.len()
    );
    let text = MiniLm::load(&models_dir().join(TEXT_WEIGHTS), device)?;
    let layer = text
        .layers
        .into_iter()
        .nth(TEXT_TOP_LAYER)
        .ok_or_else(|| anyhow::anyhow!("MiniLM has fewer layers than expected"))?;
    let net = TunedGlobal { visual: backbone.top(first_block), text: layer, head: GlobalConfig::new().init(device) };
    Ok(with_lifts(net, lifts))
}

/// `net` with the backbone layers `lifts` does not train frozen.
pub fn with_lifts(mut net: TunedGlobal, lifts: Lifts) -> TunedGlobal {
    if !lifts.visual {
        net.visual = net.visual.no_grad();
    }
    if !lifts.text {
        net.text = net.text.no_grad();
    }
    net
}

impl TunedGlobal {
    /// Unit joint embeddings of photos from the activation entering the first fine-tuned block.
    pub fn embed_entering(&self, entering: Tensor<4>) -> Tensor<2> {
        self.embed_regions(self.visual.regions(entering))
    }

    /// Unit joint embeddings of photos from their region features [B, k, 1280] (the 49 cells, and
    /// any detected objects after them): their mean through the image head.
    pub fn embed_regions(&self, regions: Tensor<3>) -> Tensor<2> {
        let [b, _, d] = regions.dims();
        self.head.embed_images(regions.mean_dim(1).reshape([b, d]))
    }

    /// Unit joint embeddings of captions from the hidden states entering MiniLM's last layer.
    pub fn embed_hidden(&self, batch: CaptionBatch) -> Tensor<2> {
        let (tokens, mask) = tokens(&self.text, batch);
        self.head.embed_texts(MiniLm::mean_pool(tokens, mask))
    }
}

/// Weights + metadata (the heads' config, the first fine-tuned block, notes), written atomically.
pub fn save(net: &TunedGlobal, path: &Path, notes: &[(String, String)]) -> anyhow::Result<()> {
    let mut notes = notes.to_vec();
    notes.push(("visual_first_block".into(), net.visual.first_block.to_string()));
    super::store::save(net, path, "global", "global_config", GlobalConfig::new().to_string(), &notes)
}

/// Whether a global model's file holds fine-tuned backbone layers (else: heads only).
pub fn is_tuned(file: &WeightFile) -> bool {
    file.metadata("visual_first_block").is_ok()
}

/// A saved tuned global model (every tensor from the file; a missing or misshapen one is an
/// error naming the file).
pub fn load(path: &Path, visual: &str, device: &Device) -> anyhow::Result<TunedGlobal> {
    let file = WeightFile::open(path)?;
    // Another network's file (SHAN's also records a fine-tuned block) is named as such.
    if let Ok(kind) = file.metadata("model") {
        anyhow::ensure!(kind == "global", "{}: the weights of a {kind} model, not of the global model", path.display());
    }
    anyhow::ensure!(
        is_tuned(&file),
        "{}: not a tuned global model (train it with `train --model global --tuned`)",
        path.display()
    );
    let first: usize = file.metadata_parsed("visual_first_block")?;
    let mut net = init(visual, first, Lifts { visual: true, text: true }, device)?;
    net.load_from(&mut SafetensorsStore::from_file(path)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(net)
}

/// A global model's weights file, of either kind.
#[allow(clippy::large_enum_variant)] // one per ranker: boxing buys nothing
pub enum AnyGlobal {
    /// Heads over the frozen backbones' pooled features (`train --model global`).
    Frozen(GlobalModel),
    /// Heads over fine-tuned backbone tops (`train --model global --tuned`; the committed default).
    Tuned(TunedGlobal),
}

impl AnyGlobal {
    /// The linear heads into the joint space.
    pub fn head(&self) -> &GlobalModel {
        match self {
            Self::Frozen(head) => head,
            Self::Tuned(net) => &net.head,
        }
    }

    pub fn num_params(&self) -> usize {
        match self {
            Self::Frozen(head) => head.num_params(),
            Self::Tuned(net) => net.num_params(),
        }
    }

    /// The fine-tuned copy of MiniLM's last layer the sentence vectors come from, if any.
    pub fn text_top(&self) -> Option<&Layer> {
        match self {
            Self::Frozen(_) => None,
            Self::Tuned(net) => Some(&net.text),
        }
    }
}

/// A global model of whichever kind `path` holds.
pub fn load_any(path: &Path, visual: &str, device: &Device) -> anyhow::Result<AnyGlobal> {
    if is_tuned(&WeightFile::open(path)?) {
        Ok(AnyGlobal::Tuned(load(path, visual, device)?))
    } else {
        Ok(AnyGlobal::Frozen(super::global::load(path, device)?))
    }
}
