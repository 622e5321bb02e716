//! SHAN as shipped: the matching network with the backbone layers it fine-tunes (EfficientNet's
//! last MBConv block + head, MiniLM's last layer), built from the committed backbones, saved and
//! loaded with its config.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::config::Config as _;
use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};

use super::TEXT_TOP_LAYER;
use crate::features::efficientnet::{EfficientNetLite, Top};
use crate::features::minilm::{Layer, MiniLm, additive_mask};
use crate::features::weights::WeightFile;
use crate::features::{TEXT_WEIGHTS, models_dir};
use crate::model::shan::{Shan, ShanConfig};

/// The matching network with the backbone layers it owns.
#[derive(Module, Debug)]
pub struct ShanNet {
    pub visual: Top,
    pub text: Layer,
    pub shan: Shan,
}

/// Captions padded to `tokens`, as the hidden states entering MiniLM's last layer [B·tokens, H]
/// (`tokens` ≥ 3 so every row has room for [CLS], a piece and [SEP]).
#[derive(Clone)]
pub struct CaptionBatch {
    pub hidden: Tensor<2>,
    pub lengths: Vec<usize>,
    pub tokens: usize,
}

/// 1 where a row has a token, 0 for padding: [rows, n], row r real for its first `len(r)` slots.
pub fn length_mask(lengths: &[usize], n: usize, device: &Device) -> Tensor<2> {
    let m: Vec<f32> = lengths.iter().flat_map(|&l| (0..n).map(move |j| if j < l { 1.0 } else { 0.0 })).collect();
    Tensor::from_data(TensorData::new(m, [lengths.len(), n]), device)
}

/// Every token's features after MiniLM's last layer [B, n, 384] ([CLS] and [SEP] included) and
/// the mask of real tokens [B, n].
pub fn tokens(layer: &Layer, batch: CaptionBatch) -> (Tensor<3>, Tensor<2>) {
    let CaptionBatch { hidden, lengths, tokens: n } = batch;
    let b = lengths.len();
    let mask = length_mask(&lengths, n, &hidden.device());
    let out = layer.forward(hidden, additive_mask(mask.clone()), b);
    let h = out.dims()[1];
    (out.reshape([b, n, h]), mask)
}

impl ShanNet {
    /// Region features [B, k, 1280] from cached activations.
    pub fn regions(&self, x: Tensor<4>) -> Tensor<3> {
        self.visual.regions(x)
    }

    /// Word (piece) features [B, n−2, 384] and their mask, without [CLS] and [SEP].
    pub fn words(&self, batch: CaptionBatch) -> (Tensor<3>, Tensor<2>) {
        let pieces: Vec<usize> = batch.lengths.iter().map(|l| l.saturating_sub(2)).collect();
        let (tokens, _) = tokens(&self.text, batch);
        let [b, n, _] = tokens.dims();
        let device = tokens.device();
        (tokens.slice([0..b, 1..n - 1]), length_mask(&pieces, n - 2, &device))
    }
}

/// The network at its starting point: the backbone tops (EfficientNet from `first_block`) from
/// the committed backbone weights.
pub fn init(config: &ShanConfig, visual: &str, first_block: usize, device: &Device) -> anyhow::Result<ShanNet> {
    let net = EfficientNetLite::load(&models_dir().join(format!("{visual}.safetensors")), device)?;
    let text = MiniLm::load(&models_dir().join(TEXT_WEIGHTS), device)?;
    let layer = text.layers.into_iter().nth(TEXT_TOP_LAYER).context("MiniLM has fewer layers than expected")?;
    anyhow::ensure!(
        first_block < net.blocks.len(),
        "{visual} has {} blocks; cannot fine-tune from block {first_block}",
        net.blocks.len()
    );
    Ok(ShanNet { visual: net.top(first_block), text: layer, shan: config.init(device) })
}

/// The config a saved SHAN was built with (its `shan_config` metadata).
pub fn saved_config(file: &WeightFile, path: &Path) -> anyhow::Result<ShanConfig> {
    let json = file.metadata("shan_config")?;
    ShanConfig::load_binary(json.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: shan_config metadata: {e}", path.display()))
}

/// Weights + the config that built them (metadata `shan_config`), written atomically.
pub fn save(net: &ShanNet, path: &Path, config: &ShanConfig, notes: &[(String, String)]) -> anyhow::Result<()> {
    // The level weights live in the network (chosen on dev after training); the file's config
    // carries them so a loaded network scores the same.
    let [w1, w2, w3] = net.shan.weights;
    let config = config.clone().with_weight_l2l(w1).with_weight_g2l(w2).with_weight_g2g(w3);
    let mut notes = notes.to_vec();
    notes.push(("visual_first_block".into(), net.visual.first_block.to_string()));
    super::store::save(net, path, "shan", "shan_config", config.to_string(), &notes)
}

/// A saved SHAN: its config from the file's metadata, the backbone tops rebuilt, then every
/// tensor from the file (a missing or misshapen tensor is an error naming the file).
pub fn load(path: &Path, visual: &str, device: &Device) -> anyhow::Result<ShanNet> {
    let file = WeightFile::open(path)?;
    let config = saved_config(&file, path)?;
    let first: usize = file.metadata_parsed("visual_first_block")?;
    let mut net = init(&config, visual, first, device)?;
    net.load_from(&mut SafetensorsStore::from_file(path)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(net)
}

/// Where the committed SHAN lives.
pub fn default_path() -> PathBuf {
    models_dir().join("shan.safetensors")
}
