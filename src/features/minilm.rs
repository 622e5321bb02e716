//! all-MiniLM-L6-v2 (a 6-layer BERT, 384-d) in burn: token features and the mean-pooled sentence
//! vector sentence-transformers computes. Weights use the HF BertModel tensor names.

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::weights::{WeightFile, WeightsError};

mod host;

#[derive(Module, Debug)]
pub struct Dense {
    /// [in, out]: PyTorch's [out, in] transposed once at load, so every forward multiplies by a
    /// contiguous matrix.
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

impl Dense {
    fn load(w: &WeightFile, name: &str, out: usize, inp: usize, device: &Device) -> Result<Self, WeightsError> {
        let stored = w.values(&format!("{name}.weight"), &[out, inp])?;
        let transposed: Vec<f32> = (0..inp * out).map(|k| stored[(k % out) * inp + k / out]).collect();
        Ok(Self {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(transposed, [inp, out]), device)),
            bias: Param::from_tensor(w.tensor(&format!("{name}.bias"), [out], device)?),
        })
    }

    /// [rows, in] → [rows, out]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val()) + self.bias.val().unsqueeze()
    }
}

#[derive(Module, Debug)]
pub struct Norm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl Norm {
    fn load(w: &WeightFile, name: &str, dim: usize, eps: f64, device: &Device) -> Result<Self, WeightsError> {
        Ok(Self {
            weight: Param::from_tensor(w.tensor(&format!("{name}.weight"), [dim], device)?),
            bias: Param::from_tensor(w.tensor(&format!("{name}.bias"), [dim], device)?),
            eps,
        })
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let (var, mean) = x.clone().var_mean_bias(1);
        (x - mean) / (var + self.eps).sqrt() * self.weight.val().unsqueeze() + self.bias.val().unsqueeze()
    }
}

#[derive(Module, Debug)]
pub struct Layer {
    pub query: Dense,
    pub key: Dense,
    pub value: Dense,
    pub attention_out: Dense,
    pub attention_norm: Norm,
    pub intermediate: Dense,
    pub output: Dense,
    pub output_norm: Norm,
    pub heads: usize,
}

impl Layer {
    /// `x`: [B*N, H]; `mask`: [B, 1, 1, N] additive (0 for tokens, very negative for padding).
    pub fn forward(&self, x: Tensor<2>, mask: Tensor<4>, batch: usize) -> Tensor<2> {
        let [rows, hidden] = x.dims();
        let device = x.device();
        // On flex the host layer, where the mask is the usual tokens-then-padding one; not where
        // either the input or the layer's weights are autodiff tensors (training needs their
        // graph; a trained top layer gets inputs from the plain device).
        let weights_device = self.query.weight.val().device();
        if device == Device::flex() && !device.is_autodiff() && !weights_device.is_autodiff() {
            let n = rows / batch.max(1);
            let bias = super::values(mask.clone());
            let lengths: Vec<usize> =
                bias.chunks(n.max(1)).map(|m| m.iter().take_while(|&&v| v == 0.0).count()).collect();
            let prefix = bias.chunks(n.max(1)).zip(&lengths).all(|(m, &len)| m[len..].iter().all(|&v| v < -1.0));
            if prefix && lengths.len() == batch {
                let out = host::forward(self, &super::values(x), &lengths, n);
                return Tensor::from_data(TensorData::new(out, [rows, hidden]), &device);
            }
        }
        let n = rows / batch;
        let dh = hidden / self.heads;
        let split = |t: Tensor<2>| t.reshape([batch, n, self.heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q.matmul(k.transpose()) / (dh as f64).sqrt() + mask;
        let context = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([rows, hidden]);
        let x = self.attention_norm.forward(x + self.attention_out.forward(context));
        let ff = self.output.forward(gelu(self.intermediate.forward(x.clone())));
        self.output_norm.forward(x + ff)
    }
}

#[derive(Module, Debug)]
pub struct MiniLm {
    pub word_embeddings: Param<Tensor<2>>,
    pub position_embeddings: Param<Tensor<2>>,
    pub token_type_embedding: Param<Tensor<1>>,
    pub embedding_norm: Norm,
    pub layers: Vec<Layer>,
    pub hidden: usize,
}

/// A padded batch of token ids.
pub struct TokenBatch {
    pub ids: Tensor<2, Int>,
    /// 1 for real tokens, 0 for padding: [B, N].
    pub mask: Tensor<2>,
    pub lengths: Vec<usize>,
}

impl TokenBatch {
    pub fn new(sequences: &[Vec<u32>], pad: u32, device: &Device) -> Self {
        let n = sequences.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let b = sequences.len();
        let mut ids = vec![pad as i64; b * n];
        let mut mask = vec![0.0f32; b * n];
        for (i, s) in sequences.iter().enumerate() {
            for (j, &t) in s.iter().enumerate() {
                ids[i * n + j] = t as i64;
                mask[i * n + j] = 1.0;
            }
        }
        Self {
            ids: Tensor::from_data(TensorData::new(ids, [b, n]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, n]), device),
            lengths: sequences.iter().map(Vec::len).collect(),
        }
    }
}

impl MiniLm {
    /// The model in `path` (read once per process and device; later calls share its tensors).
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        super::load_once(path, device, || Self::read(path, device))
    }

    fn read(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        let w = WeightFile::open(path)?;
        let hidden: usize = w.metadata_parsed("hidden_size")?;
        let layers: usize = w.metadata_parsed("num_hidden_layers")?;
        let heads: usize = w.metadata_parsed("num_attention_heads")?;
        let inter: usize = w.metadata_parsed("intermediate_size")?;
        let positions: usize = w.metadata_parsed("max_position_embeddings")?;
        let vocab: usize = w.metadata_parsed("vocab_size")?;
        let eps: f64 = w.metadata_parsed("layer_norm_eps")?;
        let token_types = w.values("embeddings.token_type_embeddings.weight", &[2, hidden])?;
        let layers = (0..layers)
            .map(|l| {
                let p = format!("encoder.layer.{l}");
                Ok(Layer {
                    query: Dense::load(&w, &format!("{p}.attention.self.query"), hidden, hidden, device)?,
                    key: Dense::load(&w, &format!("{p}.attention.self.key"), hidden, hidden, device)?,
                    value: Dense::load(&w, &format!("{p}.attention.self.value"), hidden, hidden, device)?,
                    attention_out: Dense::load(&w, &format!("{p}.attention.output.dense"), hidden, hidden, device)?,
                    attention_norm: Norm::load(&w, &format!("{p}.attention.output.LayerNorm"), hidden, eps, device)?,
                    intermediate: Dense::load(&w, &format!("{p}.intermediate.dense"), inter, hidden, device)?,
                    output: Dense::load(&w, &format!("{p}.output.dense"), hidden, inter, device)?,
                    output_norm: Norm::load(&w, &format!("{p}.output.LayerNorm"), hidden, eps, device)?,
                    heads,
                })
            })
            .collect::<Result<Vec<_>, WeightsError>>()?;
        Ok(Self {
            word_embeddings: Param::from_tensor(w.tensor(
                "embeddings.word_embeddings.weight",
                [vocab, hidden],
                device,
            )?),
            position_embeddings: Param::from_tensor(w.tensor(
                "embeddings.position_embeddings.weight",
                [positions, hidden],
                device,
            )?),
            // Single-sentence inputs always use token type 0.
            token_type_embedding: Param::from_tensor(Tensor::from_data(
                TensorData::new(token_types[..hidden].to_vec(), [hidden]),
                device,
            )),
            embedding_norm: Norm::load(&w, "embeddings.LayerNorm", hidden, eps, device)?,
            layers,
            hidden,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.position_embeddings.dims()[0]
    }

    /// Hidden states [B*N, H] entering layer `layer` (all layers: the final token features).
    pub fn hidden_until(&self, batch: &TokenBatch, layer: usize) -> Tensor<2> {
        let [b, n] = batch.ids.dims();
        let words = self.word_embeddings.val().select(0, batch.ids.clone().reshape([b * n]));
        let positions = self.position_embeddings.val().slice([0..n]).repeat_dim(0, b);
        let x = words + positions + self.token_type_embedding.val().unsqueeze();
        let mut x = self.embedding_norm.forward(x);
        let mask = self.additive_mask(batch);
        for l in &self.layers[..layer.min(self.layers.len())] {
            x = l.forward(x, mask.clone(), b);
        }
        x
    }

    /// Layers `layer..` from hidden states [`Self::hidden_until`] returned.
    pub fn hidden_from(&self, mut x: Tensor<2>, batch: &TokenBatch, layer: usize) -> Tensor<2> {
        let b = batch.lengths.len();
        let mask = self.additive_mask(batch);
        for l in &self.layers[layer.min(self.layers.len())..] {
            x = l.forward(x, mask.clone(), b);
        }
        x
    }

    /// Token features [B, N, H] (padding rows are meaningless; use the mask).
    pub fn forward(&self, batch: &TokenBatch) -> Tensor<3> {
        let [b, n] = batch.ids.dims();
        self.hidden_until(batch, self.layers.len()).reshape([b, n, self.hidden])
    }

    /// Attention-masked mean over tokens: [B, H] (sentence-transformers' pooling).
    pub fn mean_pool(tokens: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
        let [b, n, h] = tokens.dims();
        let m = mask.reshape([b, n, 1]);
        let sum = (tokens * m.clone()).sum_dim(1).reshape([b, h]);
        sum / m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9)
    }

    fn additive_mask(&self, batch: &TokenBatch) -> Tensor<4> {
        additive_mask(batch.mask.clone())
    }
}

/// A [B, N] token mask (1 = token, 0 = padding) as the attention bias [`Layer::forward`] adds:
/// [B, 1, 1, N], 0 for tokens and very negative for padding.
pub fn additive_mask(mask: Tensor<2>) -> Tensor<4> {
    let [b, n] = mask.dims();
    ((mask - 1.0) * 1e9).reshape([b, 1, 1, n])
}
