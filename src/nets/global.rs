//! The global model on frozen pooled features (heads only) as saved: save, load, the committed
//! file (which now holds the tuned kind: see [`super::global_tuned`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::Device;

use crate::features::values;
use crate::features::weights::{WeightFile, WeightsError, save_safetensors};
use crate::model::global::{GlobalConfig, GlobalModel};

fn linear_tensors(name: &str, l: &Linear) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = vec![(format!("{name}.weight"), l.weight.dims().to_vec(), values(l.weight.val()))];
    if let Some(b) = &l.bias {
        out.push((format!("{name}.bias"), b.dims().to_vec(), values(b.val())));
    }
    out
}

pub fn save(model: &GlobalModel, path: &Path, metadata: HashMap<String, String>) -> Result<(), WeightsError> {
    let mut tensors = linear_tensors("image_proj", &model.image_proj);
    tensors.extend(linear_tensors("text_proj", &model.text_proj));
    tensors.push(("log_temperature".into(), vec![1], values(model.log_temperature.val())));
    save_safetensors(path, &tensors, metadata, false)
}

pub fn load(path: &Path, device: &Device) -> Result<GlobalModel, WeightsError> {
    let w = WeightFile::open(path)?;
    let c = GlobalConfig::new();
    let linear = |name: &str, i: usize, o: usize| -> Result<Linear, WeightsError> {
        Ok(Linear {
            weight: Param::from_tensor(w.tensor(&format!("{name}.weight"), [i, o], device)?),
            bias: Some(Param::from_tensor(w.tensor(&format!("{name}.bias"), [o], device)?)),
        })
    };
    Ok(GlobalModel {
        image_proj: linear("image_proj", c.image_dim, c.joint_dim)?,
        text_proj: linear("text_proj", c.text_dim, c.joint_dim)?,
        log_temperature: Param::from_tensor(w.tensor::<1>("log_temperature", [1], device)?),
    })
}

/// Where the committed global model lives.
pub fn default_path() -> PathBuf {
    crate::features::models_dir().join("global.safetensors")
}
