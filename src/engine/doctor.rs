//! `alignscope doctor`: which backend and adapter the model runs on, proven by running an op.

use std::fmt::Write as _;
use std::time::Instant;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

use super::backend::{BackendRequest, Compute, all_adapters};

/// A deterministic matmul + softmax over `n`×`n` inputs: the smallest op that exercises the
/// backend's matmul, reductions and exp. Returns the flattened result.
pub fn smoke_op(device: &Device, n: usize) -> Vec<f32> {
    let values = |seed: f32| -> Vec<f32> { (0..n * n).map(|i| (i as f32 * 0.618 + seed).sin() * 0.5).collect() };
    let a = Tensor::<2>::from_data(TensorData::new(values(0.0), [n, n]), device);
    let b = Tensor::<2>::from_data(TensorData::new(values(1.7), [n, n]), device);
    let out = softmax(a.matmul(b), 1);
    crate::features::values(out)
}

/// Run [`smoke_op`] on the compute device: one line saying it works and how long it took.
pub fn check(compute: &Compute) -> Result<String, String> {
    let started = Instant::now();
    let result = smoke_op(&compute.device, 64);
    let ok = result.len() == 64 * 64 && result.iter().all(|v| v.is_finite());
    let line = format!(
        "check: 64×64 matmul + softmax on {} {} in {:.1} ms",
        compute.decision.backend,
        if ok { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64() * 1e3
    );
    if ok { Ok(line) } else { Err(line) }
}

/// The report `doctor` prints.
pub fn report(request: BackendRequest) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(out, "alignscope {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "requested backend: {request}");
    let (models, why) = crate::features::models_location();
    let _ = writeln!(out, "models: {} ({why})", models.display());
    let adapters = all_adapters();
    if adapters.is_empty() {
        let _ = writeln!(out, "wgpu adapters: none");
    }
    for a in &adapters {
        let _ = writeln!(out, "wgpu adapter: {a}");
    }
    match Compute::headless(request) {
        Ok(compute) => {
            if let Some(a) = &compute.adapter {
                let _ = writeln!(
                    out,
                    "chosen adapter: {} · type {} · api {:?} · driver {} {}",
                    a.name,
                    a.kind_label(),
                    a.graphics_api,
                    a.driver,
                    a.driver_info
                );
            }
            let _ = writeln!(out, "backend: {} ({})", compute.decision.backend, compute.decision.reason);
            let result = check(&compute);
            let _ = writeln!(out, "{}", result.as_ref().unwrap_or_else(|e| e));
            (out, result.is_ok())
        }
        Err(e) => {
            let _ = writeln!(out, "backend: unavailable: {e}");
            (out, false)
        }
    }
}
