//! The global baseline: a dual encoder over pooled backbone features. Each modality is linearly
//! projected to the joint space and L2-normalised; the score is the cosine. It is also the first
//! stage of two-stage search (pair-independent, so photos are embedded once).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

#[derive(Config, Debug)]
pub struct GlobalConfig {
    #[config(default = 1280)]
    pub image_dim: usize,
    #[config(default = 384)]
    pub text_dim: usize,
    #[config(default = 1024)]
    pub joint_dim: usize,
    /// InfoNCE temperature at the start; learned (as its log) afterwards.
    #[config(default = 0.05)]
    pub init_temperature: f64,
}

#[derive(Module, Debug)]
pub struct GlobalModel {
    pub image_proj: Linear,
    pub text_proj: Linear,
    /// log τ, a one-element tensor.
    pub log_temperature: Param<Tensor<1>>,
}

impl GlobalConfig {
    pub fn init(&self, device: &Device) -> GlobalModel {
        GlobalModel {
            image_proj: LinearConfig::new(self.image_dim, self.joint_dim).init(device),
            text_proj: LinearConfig::new(self.text_dim, self.joint_dim).init(device),
            log_temperature: Param::from_tensor(Tensor::from_floats([self.init_temperature.ln() as f32], device)),
        }
    }
}

/// Rows scaled to unit L2 norm.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-8);
    x / norm
}

impl GlobalModel {
    /// Pooled image features [B, image_dim] → joint embeddings [B, joint_dim], unit norm.
    pub fn embed_images(&self, pooled: Tensor<2>) -> Tensor<2> {
        l2_normalize(self.image_proj.forward(pooled))
    }

    /// Mean-pooled token features [B, text_dim] → joint embeddings, unit norm.
    pub fn embed_texts(&self, sentences: Tensor<2>) -> Tensor<2> {
        l2_normalize(self.text_proj.forward(sentences))
    }
}
