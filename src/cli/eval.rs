//! `eval`: Recall@K on a Flickr8k split, the papers' protocol.

use std::path::{Path, PathBuf};

use alignscope::data::flickr8k::Split;
use alignscope::engine::backend::BackendRequest;
use alignscope::train::source::Source;

use super::args::ModelKind;
use super::{compute, progress};

/// The weak-match line: the score this percentage of dev captions give their own photo less than
/// (at 10 %, the demo's coffee photo, the right answer to "a cup of coffee on a wooden table",
/// was marked weak; 5 % keeps it).
const WEAK_PERCENTILE: u32 = 5;

#[allow(clippy::too_many_arguments)]
pub fn eval(
    request: BackendRequest,
    visual: &str,
    flickr8k: &Path,
    model: ModelKind,
    split: Split,
    cache: &Path,
    json: bool,
    weights: Option<PathBuf>,
    first: usize,
    objects: usize,
    calibrate: bool,
) -> anyhow::Result<String> {
    use alignscope::engine::recall::Recalls;
    use alignscope::nets;
    use alignscope::train::{global, shan};
    anyhow::ensure!(
        objects == 0 || model != ModelKind::Default || !calibrate,
        "--calibrate is for the grid (the window's weak-match line)"
    );
    anyhow::ensure!(
        !calibrate || (model == ModelKind::Default && split == Split::Dev),
        "--calibrate is for --model default --split dev (the weak-match line is chosen on dev)"
    );
    let compute = compute(request)?;
    let cancel = alignscope::engine::jobs::CancelToken::default();
    let source = Source { compute: &compute, flickr8k, cache_dir: cache, visual, cancel: &cancel, report: &progress };
    let scoring =
        |done: usize, total: usize| super::progress::global().update("scoring captions", done as u64, total as u64, "");
    // The default ranker's score of each caption's own photo: (percentile, score).
    let mut true_pairs: Option<Vec<(u32, f32)>> = None;
    // (level name, recalls) in the order they are reported; "full" first.
    let (levels, images, seconds): (Vec<(&str, Recalls)>, usize, f64) = match model {
        ModelKind::Default => {
            use alignscope::train::default_ranker::{SplitScores, embed_split};
            anyhow::ensure!(
                weights.is_none() && first == usize::MAX,
                "--weights and --images are not for the default ranker"
            );
            let ranker = alignscope::engine::fused::DefaultRanker::load(visual, &compute.device)?;
            let data =
                alignscope::train::objects::fragment_split(&source, split, ranker.shan.visual.first_block, objects)?;
            let started = std::time::Instant::now();
            let scores = SplitScores::new(embed_split(&ranker.shan, &ranker.global, &data, &compute.device));
            // The normalised scores once: both the recalls and the calibration read them.
            let normalised = scores.normalised(&ranker.bank);
            let r = scores.default_recalls_from(&ranker.bank, &normalised);
            let percentiles = scores.true_pair_percentiles(&normalised);
            if calibrate {
                use alignscope::engine::fused::{Calibration, default_bank_path};
                let bank = default_bank_path();
                let weak_below = percentiles.iter().find(|(q, _)| *q == WEAK_PERCENTILE).map_or(0.0, |p| p.1);
                let written = Calibration {
                    bank_sha256: alignscope::features::checksums::sha256_file(&bank)?,
                    weak_below,
                    percentile: WEAK_PERCENTILE,
                    split: split.name().to_string(),
                    pairs: data.len() * 5,
                }
                .save(&bank)?;
                eprintln!("wrote {}: weak match below {weak_below:.2}", written.display());
            }
            true_pairs = Some(percentiles);
            (vec![("full", r)], data.len(), started.elapsed().as_secs_f64())
        }
        ModelKind::Global => {
            anyhow::ensure!(first == usize::MAX, "--images is for shan, dsran and racg");
            use alignscope::nets::global_tuned;
            let path = weights.unwrap_or_else(nets::global::default_path);
            // Timed from the cached activations: the frozen layers' pass is the pooled model's input.
            let timed = |evaluate: &dyn Fn() -> Recalls| {
                let started = std::time::Instant::now();
                (evaluate(), started.elapsed().as_secs_f64())
            };
            let ((r, seconds), images) = match global_tuned::load_any(&path, visual, &compute.device)? {
                global_tuned::AnyGlobal::Tuned(net) => {
                    let data =
                        alignscope::train::objects::fragment_split(&source, split, net.visual.first_block, objects)?;
                    (timed(&|| global::evaluate(&net, &data, &compute.device)), data.len())
                }
                global_tuned::AnyGlobal::Frozen(net) => {
                    anyhow::ensure!(objects == 0, "{}: --objects needs a tuned global model", path.display());
                    let data = source.pooled(split)?;
                    (timed(&|| global::evaluate(&net, &data, &compute.device)), data.len())
                }
            };
            (vec![("full", r)], images, seconds)
        }
        ModelKind::Shan => {
            let net = nets::shan::load(&weights.unwrap_or_else(nets::shan::default_path), visual, &compute.device)?;
            let data = alignscope::train::objects::fragment_split(&source, split, net.visual.first_block, objects)?
                .truncated(first);
            let started = std::time::Instant::now();
            let r = shan::evaluate(&net, &data, &compute.device, &cancel, &scoring)?;
            (
                vec![("full", r.full), ("l2l", r.l2l), ("g2l", r.g2l), ("g2g", r.g2g), ("embedding", r.embedding)],
                data.len(),
                started.elapsed().as_secs_f64(),
            )
        }
        ModelKind::Dsran | ModelKind::Racg => {
            use alignscope::nets::dsran;
            use alignscope::train::frozen::evaluate;
            use alignscope::train::racg;
            use alignscope::train::splits::FrozenSplit;
            type Scorer<'a> = Box<dyn FnOnce(&FrozenSplit) -> Vec<(&'static str, Recalls)> + 'a>;
            let device = &compute.device;
            // The weights first: a wrong file is named before minutes of data preparation.
            let score: Scorer = if model == ModelKind::Dsran {
                let path = weights.unwrap_or_else(dsran::default_path);
                let net = dsran::load(&path, device)?;
                dsran::ensure_objects(&net, objects, &path)?;
                Box::new(move |data| vec![("full", evaluate(&net, data, device))])
            } else {
                let net = nets::racg::load(&weights.unwrap_or_else(nets::racg::default_path), device)?;
                Box::new(move |data| racg::evaluate_levels(&net, data, device, &scoring).to_vec())
            };
            let data = alignscope::train::objects::frozen_split(&source, split, first, objects)?;
            let started = std::time::Instant::now();
            let levels = score(&data);
            (levels, data.len(), started.elapsed().as_secs_f64())
        }
    };
    if json {
        let round = |v: f64| (v * 10.0).round() / 10.0;
        let mut object = serde_json::json!({ "model": model.name(), "split": split.name(), "images": images, "seconds": (seconds * 100.0).round() / 100.0 });
        for (name, r) in &levels {
            object[*name] =
                serde_json::json!({ "i2t": r.i2t.map(round), "t2i": r.t2i.map(round), "rsum": round(r.rsum) });
        }
        if let Some(p) = &true_pairs {
            object["true_pair_score"] = p.iter().map(|(q, v)| (format!("p{q}"), serde_json::json!(v))).collect();
        }
        return Ok(format!("{object}\n"));
    }
    let mut out =
        format!("{model} on Flickr8k {} ({images} images × 5 captions, scored in {seconds:.1} s):\n", split.name());
    for (name, r) in &levels {
        out.push_str(&format!(
            "  {name:9} i2t R@1/5/10 {:.1}/{:.1}/{:.1}, t2i {:.1}/{:.1}/{:.1}, rSum {:.1}\n",
            r.i2t[0], r.i2t[1], r.i2t[2], r.t2i[0], r.t2i[1], r.t2i[2], r.rsum
        ));
    }
    if let Some(p) = &true_pairs {
        let shown: Vec<String> = p.iter().map(|(q, v)| format!("p{q} {v:.2}")).collect();
        out.push_str(&format!("  score of each caption's own photo: {}\n", shown.join(", ")));
    }
    Ok(out)
}
