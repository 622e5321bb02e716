//! `grounding`: the pointing game and the deletion test of an explaining network.

use std::path::{Path, PathBuf};
use std::time::Instant;

use alignscope::data::decode::decode_oriented;
use alignscope::data::flickr8k::{Split, load_split};
use alignscope::engine::backend::BackendRequest;
use alignscope::engine::explain::Method;
use alignscope::engine::jobs::CancelToken;
use alignscope::engine::rank::{Ranker, RankerModel};
use alignscope::train::grounding::{self, Explainer, GroundingMsg};

use super::args::ModelKind;

#[allow(clippy::too_many_arguments)]
pub fn run(
    request: BackendRequest,
    visual: &str,
    model: ModelKind,
    method: Method,
    set: Option<PathBuf>,
    flickr8k: &Path,
    pairs: usize,
    json: bool,
    maps: Option<PathBuf>,
    weights: Option<PathBuf>,
) -> anyhow::Result<String> {
    let set = set.unwrap_or_else(grounding::default_set);
    let items = grounding::load_set(&set)?;
    let images = flickr8k.join("images");
    anyhow::ensure!(images.is_dir(), "{}: no Flickr8k photos there (give --flickr8k)", images.display());
    let started = Instant::now();
    let (runtime, ranker);
    let explainer = match model {
        // The default ranker's explanations are SHAN's (the window explains with SHAN).
        ModelKind::Shan | ModelKind::Default => {
            runtime = super::folder::shan_runtime(request, visual, weights, 0)?;
            Explainer::Shan { runtime: &runtime, method }
        }
        other => {
            ranker = Ranker::load(&super::compute(request)?)?;
            let model = match other {
                ModelKind::Global => RankerModel::Global,
                ModelKind::Dsran => RankerModel::Dsran,
                _ => RankerModel::Racg,
            };
            Explainer::Ranker { ranker: &ranker, model, method }
        }
    };
    let cancel = CancelToken::default();
    let maps_file = match &maps {
        Some(p) => Some(std::cell::RefCell::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        ))),
        None => None,
    };
    let progress = super::progress::global();
    let report = |m: GroundingMsg| match m {
        GroundingMsg::Measured { item, words, hit } => {
            if let Some(f) = &maps_file {
                use std::io::Write as _;
                let line = serde_json::json!({
                    "image": item.image, "caption": item.caption, "word": item.word, "bbox": item.bbox,
                    "hit": hit, "words": words,
                });
                // A failed write is reported once the run ends (flush below).
                let _ = writeln!(f.borrow_mut(), "{line}");
            }
        }
        GroundingMsg::Pointing { done, total } => progress.update("pointing", done as u64, total as u64, ""),
        GroundingMsg::Gallery { photos } => progress.info(format!("{photos} test photos embedded")),
        GroundingMsg::Deletion { done, total } => progress.update("deletion", done as u64, total as u64, ""),
        GroundingMsg::Skipped(why) => progress.println(format!("warning: {why}")),
    };
    let pointing = grounding::pointing(&explainer, &items, &images, &cancel, &report)?;
    let deletion = if pairs == 0 {
        None
    } else {
        let test = load_split(flickr8k, Split::Test)?;
        let photos = test
            .images
            .iter()
            .map(|p| decode_oriented(p).map_err(anyhow::Error::from))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut rng = fastrand::Rng::with_seed(8);
        let mut order: Vec<usize> = (0..photos.len()).collect();
        rng.shuffle(&mut order);
        let chosen: Vec<(usize, String)> =
            order.into_iter().take(pairs).map(|i| (i, test.captions[i][rng.usize(0..5)].clone())).collect();
        Some(grounding::deletion(&explainer, &photos, &chosen, &cancel, &report)?)
    };
    eprintln!();
    if let (Some(f), Some(p)) = (maps_file, &maps) {
        use std::io::Write as _;
        f.into_inner().flush().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (model_name, method) = explainer.label();
    if json {
        let object = serde_json::json!({
            "model": model_name, "method": method.name(), "set": set, "pointing": pointing,
            "deletion": deletion, "seconds": (seconds * 10.0).round() / 10.0,
        });
        return Ok(format!("{object}\n"));
    }
    let pct = |n: f64| 100.0 * n / pointing.total.max(1) as f64;
    let mut out = format!(
        "{model_name}, {method}: pointing game on {} words ({}):\n  hits {}/{} = {:.1} %   centre pointer {}/{} = {:.1} %   random cell {:.1} %\n",
        pointing.total,
        set.display(),
        pointing.hits,
        pointing.total,
        pct(pointing.hits as f64),
        pointing.centre,
        pointing.total,
        pct(pointing.centre as f64),
        pct(pointing.chance),
    );
    if let Some(d) = &deletion {
        out.push_str(&format!(
            "deletion on {} Flickr8k test pairs (mean fall when k cells are hidden):\n   k   score: top  random   rank: top  random\n",
            d.pairs
        ));
        for i in 0..d.k.len() {
            out.push_str(&format!(
                "  {:2}   {:10.4} {:7.4}   {:9.1} {:7.1}\n",
                d.k[i], d.score_drop_top[i], d.score_drop_random[i], d.rank_drop_top[i], d.rank_drop_random[i]
            ));
        }
    }
    out.push_str(&format!("{seconds:.0} s\n"));
    Ok(out)
}
