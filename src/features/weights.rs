//! Reading the committed safetensors files into burn tensors, with errors that name the file.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: cannot read weights: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot write weights: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a safetensors file: {cause}")]
    Format { path: PathBuf, cause: String },
    #[error("{path}: tensor `{name}` is missing (wrong weights file?)")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?} (wrong weights file?)")]
    Shape { path: PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("{path}: tensor `{name}` has dtype {dtype}, expected F32 or F16")]
    Dtype { path: PathBuf, name: String, dtype: String },
    #[error("{path}: metadata `{key}`: {cause}")]
    Metadata { path: PathBuf, key: String, cause: String },
    #[error("{path}: tensor `{name}` holds NaN or infinite values (damaged weights)")]
    NonFinite { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` is all zeros (damaged or blanked weights)")]
    Zeroed { path: PathBuf, name: String },
    #[error("{0}")]
    Checksum(String),
}

/// A weights file held in memory. Tensors are decoded to f32 on request.
pub struct WeightFile {
    pub path: PathBuf,
    bytes: Vec<u8>,
}

impl WeightFile {
    /// Read and check a weights file: its SHA-256 where a `CHECKSUMS` beside it lists it (the
    /// bundled models); a safetensors file whose float tensors are all finite (NaN weights would
    /// give NaN scores, and NaN features in an index, without another sign) and whose matrices are
    /// not all zeros (blanked weights score every photo alike). No trained or converted matrix
    /// here is all zeros; biases may start so, hence matrices only.
    pub fn open(path: &Path) -> Result<Self, WeightsError> {
        let bytes = std::fs::read(path).map_err(|source| WeightsError::Read { path: path.to_path_buf(), source })?;
        super::checksums::verify(path, &bytes).map_err(WeightsError::Checksum)?;
        let file = Self { path: path.to_path_buf(), bytes };
        for (name, view) in file.parse()?.tensors() {
            let Some(values) = floats(view.dtype(), view.data()) else { continue };
            let (mut finite, mut zero) = (true, true);
            for v in values {
                finite &= v.is_finite();
                zero &= v == 0.0;
            }
            if !finite {
                return Err(WeightsError::NonFinite { path: path.to_path_buf(), name });
            }
            if zero && view.shape().len() >= 2 && view.shape().iter().product::<usize>() > 0 {
                return Err(WeightsError::Zeroed { path: path.to_path_buf(), name });
            }
        }
        Ok(file)
    }

    fn parse(&self) -> Result<SafeTensors<'_>, WeightsError> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| WeightsError::Format { path: self.path.clone(), cause: e.to_string() })
    }

    /// A string from the file's `__metadata__`.
    pub fn metadata(&self, key: &str) -> Result<String, WeightsError> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes)
            .map_err(|e| WeightsError::Format { path: self.path.clone(), cause: e.to_string() })?;
        meta.metadata().as_ref().and_then(|m| m.get(key).cloned()).ok_or_else(|| WeightsError::Metadata {
            path: self.path.clone(),
            key: key.into(),
            cause: "missing".into(),
        })
    }

    /// A metadata value parsed as `T` (numbers, JSON).
    pub fn metadata_parsed<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T, WeightsError> {
        let raw = self.metadata(key)?;
        serde_json::from_str(&raw).map_err(|e| WeightsError::Metadata {
            path: self.path.clone(),
            key: key.into(),
            cause: e.to_string(),
        })
    }

    /// The values of tensor `name` as f32, checked against `shape`.
    pub fn values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        let tensors = self.parse()?;
        let view =
            tensors.tensor(name).map_err(|_| WeightsError::Missing { path: self.path.clone(), name: name.into() })?;
        if view.shape() != shape {
            return Err(WeightsError::Shape {
                path: self.path.clone(),
                name: name.into(),
                found: view.shape().to_vec(),
                expected: shape.to_vec(),
            });
        }
        let values = floats(view.dtype(), view.data()).ok_or_else(|| WeightsError::Dtype {
            path: self.path.clone(),
            name: name.into(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        Ok(values.collect())
    }

    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, WeightsError> {
        let values = self.values(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// The shape of a two-dimensional tensor.
    pub fn shape2(&self, name: &str) -> Result<(usize, usize), WeightsError> {
        let tensors = self.parse()?;
        let view =
            tensors.tensor(name).map_err(|_| WeightsError::Missing { path: self.path.clone(), name: name.into() })?;
        match *view.shape() {
            [a, b] => Ok((a, b)),
            ref found => Err(WeightsError::Shape {
                path: self.path.clone(),
                name: name.into(),
                found: found.to_vec(),
                expected: vec![0, 0],
            }),
        }
    }

    /// Whether the file holds a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.parse().is_ok_and(|t| t.tensor(name).is_ok())
    }
}

/// A float tensor's raw little-endian data as f32 values (None: neither F32 nor F16).
fn floats(dtype: Dtype, data: &[u8]) -> Option<Box<dyn Iterator<Item = f32> + '_>> {
    match dtype {
        Dtype::F32 => Some(Box::new(data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])))),
        Dtype::F16 => Some(Box::new(data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()))),
        _ => None,
    }
}

/// Write tensors `(name, shape, values)` (stored as f16 when `half`, else f32) and string metadata
/// as a safetensors file, atomically.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: std::collections::HashMap<String, String>,
    half: bool,
) -> Result<(), WeightsError> {
    let format_err = |cause: String| WeightsError::Format { path: path.to_path_buf(), cause };
    let encode = |x: &f32| -> Vec<u8> {
        if half { half::f16::from_f32(*x).to_le_bytes().to_vec() } else { x.to_le_bytes().to_vec() }
    };
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, v)| v.iter().flat_map(encode).collect()).collect();
    let dtype = if half { Dtype::F16 } else { Dtype::F32 };
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), data)| {
            safetensors::tensor::TensorView::new(dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| format_err(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let serialized = safetensors::serialize(views, Some(metadata)).map_err(|e| format_err(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let write_err = |source| WeightsError::Write { path: path.to_path_buf(), source };
    std::fs::write(&tmp, serialized).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    super::checksums::record(path).map_err(write_err)
}
