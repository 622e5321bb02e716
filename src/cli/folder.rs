//! `index`, `search`, `explain` and `features`: what the CLI does with photos.

use std::path::{Path, PathBuf};

use alignscope::engine::backend::BackendRequest;
use alignscope::engine::inspect;

use super::compute;

pub fn features(
    request: BackendRequest,
    visual: &str,
    image: Option<PathBuf>,
    text: Option<String>,
    objects: bool,
    json: bool,
) -> anyhow::Result<String> {
    match (image, text) {
        (Some(image), None) if objects => inspect::describe_objects(&compute(request)?, &image, json),
        (Some(image), None) => inspect::describe_image(&compute(request)?, &image, visual),
        (None, Some(text)) => inspect::describe_caption(&compute(request)?, &text),
        _ => anyhow::bail!("give either a photo or --text \"CAPTION\""),
    }
}

/// The runtime SHAN's index and search use, with the default weights unless told otherwise,
/// and each photo's best `objects` detected objects as more regions (0: the grid alone).
pub fn shan_runtime(
    request: BackendRequest,
    visual: &str,
    weights: Option<PathBuf>,
    objects: usize,
) -> anyhow::Result<alignscope::engine::runtime::Runtime> {
    let compute = compute(request)?;
    alignscope::engine::runtime::Runtime::load(
        &compute,
        &weights.unwrap_or_else(alignscope::nets::shan::default_path),
        visual,
    )?
    .with_objects(objects)
}

/// The cancel token Ctrl-C trips (set once, read by the signal handler).
static INTERRUPT: std::sync::OnceLock<alignscope::engine::jobs::CancelToken> = std::sync::OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    // Only an atomic store: safe inside a signal handler.
    if let Some(token) = INTERRUPT.get() {
        token.cancel();
    }
}

/// Update `dir`'s index with a progress line (count, rate, ETA); Ctrl-C stops after the batch
/// in flight and keeps everything indexed so far.
fn update_index_cli(
    runtime: &alignscope::engine::runtime::Runtime,
    dir: &Path,
) -> anyhow::Result<(alignscope::engine::index::IndexSummary, alignscope::data::index_file::IndexFile)> {
    use alignscope::engine::index::{IndexMsg, update_index};
    let progress = super::progress::global();
    let cancel = INTERRUPT.get_or_init(Default::default).clone();
    // SAFETY: installs a handler that performs one atomic store.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let result = update_index(runtime, dir, &cancel, &|m| match m {
        IndexMsg::Planned { photos, to_embed, unchanged, removed } => {
            let plan = format!("{photos} photos: {unchanged} unchanged, {to_embed} to embed, {removed} removed");
            progress.info(format!("{plan} from the index"));
            // The bar (and its rate) starts now: the first count arrives after the first batch.
            progress.update("embedding photos", 0, to_embed as u64, "");
        }
        IndexMsg::Embedded { done, total } => progress.update("embedding photos", done as u64, total as u64, ""),
        IndexMsg::Warning(w) => progress.println(format!("warning: {w}")),
        IndexMsg::Waiting(w) => progress.info(w),
    });
    progress.finish();
    result
}

pub fn index_command(
    request: BackendRequest,
    visual: &str,
    dir: &Path,
    weights: Option<PathBuf>,
    objects: usize,
) -> anyhow::Result<(String, bool)> {
    let runtime = shan_runtime(request, visual, weights, objects)?;
    let (s, file) = update_index_cli(&runtime, dir)?;
    let mut out = format!(
        "{}: {} photos indexed ({} embedded, {} unchanged, {} removed) in {:.1} s\n",
        s.index_path.display(),
        file.entries.len(),
        s.embedded,
        s.unchanged,
        s.removed,
        s.seconds
    );
    if !s.failed.is_empty() {
        out.push_str(&format!("{} could not be indexed (see the warnings above)\n", s.failed.len()));
    }
    if s.cancelled {
        out.push_str("interrupted: what was embedded is saved; run again to finish\n");
    }
    Ok((out, !s.failed.is_empty() || s.cancelled))
}

/// How `search` prints its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `SCORE<TAB>PATH` lines.
    Lines,
    /// Paths only, one per line.
    Paths,
    /// One JSON object.
    Json,
}

#[allow(clippy::too_many_arguments)]
pub fn search_command(
    request: BackendRequest,
    visual: &str,
    dir: &Path,
    caption: Option<String>,
    image: Option<PathBuf>,
    options: alignscope::engine::search::SearchOptions,
    output: Output,
    weights: Option<PathBuf>,
    objects: usize,
) -> anyhow::Result<String> {
    use alignscope::engine::search::{LoadedIndex, search_caption, search_image};
    let runtime = shan_runtime(request, visual, weights, objects)?;
    let (_, file) = update_index_cli(&runtime, dir)?;
    let index = LoadedIndex::new(dir, file);
    let started = std::time::Instant::now();
    let (hits, query) = match (caption, image) {
        (Some(caption), None) => {
            let (hits, warning) = search_caption(&runtime, &index, &caption, options)?;
            if let Some(w) = warning {
                eprintln!("warning: {w}");
            }
            (hits, serde_json::json!({ "caption": caption }))
        }
        (None, Some(image)) => {
            let mut query = serde_json::Map::new();
            alignscope::data::path_text::json_fields(&image, "image", &mut query);
            (search_image(&runtime, &index, &image, options.top)?, serde_json::Value::Object(query))
        }
        _ => anyhow::bail!("give either a caption or --image PHOTO"),
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut object = serde_json::json!({ "query": query, "photos": index.len(), "model": options.model.name().to_lowercase(), "seconds": seconds });
    if options.model == alignscope::engine::search::SearchModel::Shan {
        object["search"] = (if options.exhaustive { "exhaustive" } else { "two-stage" }).into();
        object["candidates"] = options.candidates.into();
    }
    Ok(printed(&hits, output, object))
}

/// Hits as `output` asks; `object` is the JSON answer without its results.
fn printed(hits: &[alignscope::engine::search::Hit], output: Output, mut object: serde_json::Value) -> String {
    use alignscope::data::path_text::shown;
    match output {
        Output::Json => {
            object["results"] = serde_json::to_value(hits).unwrap_or_default();
            format!("{object}\n")
        }
        Output::Paths => hits.iter().map(|h| format!("{}\n", shown(&h.path))).collect(),
        Output::Lines => hits.iter().map(|h| format!("{:.4}\t{}\n", h.score, shown(&h.path))).collect(),
    }
}

/// `search --model dsran|racg`: their photo features are not in the index, so the folder's photos
/// are embedded for this search, eight at a time, as the window does once per session.
pub fn search_session(
    request: BackendRequest,
    dir: &Path,
    caption: &str,
    model: alignscope::engine::rank::RankerModel,
    top: usize,
    output: Output,
) -> anyhow::Result<String> {
    use alignscope::engine::rank::{EmbedMsg, Ranker, RankerModel, embed_paths};
    use alignscope::engine::search::{Hit, top_k};
    anyhow::ensure!(dir.is_dir(), "{}: not a folder", dir.display());
    let ranker = Ranker::load(&compute(request)?)?;
    let missing = match model {
        RankerModel::Dsran => ranker.dsran_missing.as_deref(),
        RankerModel::Racg => ranker.racg_missing.as_deref(),
        RankerModel::Global => None,
    };
    if let Some(why) = missing {
        anyhow::bail!("{} cannot rank: {why}", model.name());
    }
    let (query, warning) = ranker.embed_caption(caption)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    let scan = alignscope::data::folder::scan_folder(dir);
    scan.problems.iter().for_each(|p| eprintln!("warning: {p}"));
    let started = std::time::Instant::now();
    let (mut paths, mut embedded) = (Vec::new(), Vec::new());
    embed_paths(&ranker, &scan.images, 8, &Default::default(), &mut |m| {
        match m {
            EmbedMsg::Embedded { index, embedding } => {
                paths.push(scan.images[index].clone());
                embedded.push(embedding);
            }
            EmbedMsg::Failed { error, .. } => eprintln!("warning: {error}"),
        }
        true
    });
    let scores =
        ranker.scores(model, &embedded, &query).ok_or_else(|| anyhow::anyhow!("{} is not loaded", model.name()))?;
    let hits: Vec<Hit> =
        top_k(&scores, top).into_iter().map(|i| Hit { score: scores[i], path: paths[i].clone() }).collect();
    let object = serde_json::json!({ "query": { "caption": caption }, "photos": paths.len(), "model": model.name().to_lowercase(), "seconds": started.elapsed().as_secs_f64() });
    Ok(printed(&hits, output, object))
}

#[allow(clippy::too_many_arguments)]
pub fn explain(
    request: BackendRequest,
    visual: &str,
    image: &Path,
    caption: &str,
    method: alignscope::engine::explain::Method,
    json: bool,
    out: Option<&Path>,
    weights: Option<PathBuf>,
    objects: usize,
) -> anyhow::Result<String> {
    let runtime = shan_runtime(request, visual, weights, objects)?;
    let e = alignscope::engine::explain::explain(&runtime, image, caption, method)?;
    if let Some(w) = &e.warning {
        eprintln!("warning: {w}");
    }
    if let Some(out) = out {
        let decoded = alignscope::data::decode::decode_oriented(image)?;
        let objects = match alignscope::engine::objects::load_detector(&runtime.device) {
            // The objects SHAN saw as regions, where it saw any (no second detector then).
            _ if runtime.objects.is_some() => e.detected(),
            Ok(detector) => alignscope::engine::objects::objects_in(&detector, &decoded, &runtime.device),
            Err(e) => {
                eprintln!("warning: no objects drawn: {e}");
                Vec::new()
            }
        };
        let png = alignscope::render::explanation::render(&decoded.to_rgba8(), &e, &objects, &mut Default::default());
        png.save_with_format(out, image::ImageFormat::Png)
            .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    if json {
        return Ok(format!("{}\n", serde_json::to_string(&e)?));
    }
    let [a, b, c] = e.weights;
    let mut out = format!(
        "{}\n\"{}\"\nscore {:.3} = {a}·L2L {:.3} + {b}·G2L {:.3} + {c}·G2G {:.3}\nheatmaps: {}\n\nword            alignment  most relevant cell (row, col)  its value\n",
        e.image.display(),
        e.caption,
        e.score,
        e.l2l,
        e.g2l,
        e.g2g,
        e.method.meaning(),
    );
    for w in &e.words {
        let best = alignscope::engine::explain::peak(&w.relevance);
        out.push_str(&format!(
            "{:15} {:9.3}  ({}, {}){:22}{:.3}\n",
            w.word,
            w.alignment,
            best / e.grid,
            best % e.grid,
            "",
            w.relevance.get(best).copied().unwrap_or(0.0)
        ));
    }
    if !e.objects.is_empty() {
        out.push_str("\nSHAN's attention on the detected objects (and on the 7×7 grid's cells together)\n");
        for w in &e.words {
            let on: Vec<String> = e
                .objects
                .iter()
                .zip(&w.object_attention)
                .map(|(o, a)| format!("{} {:.0} %", o.label, a * 100.0))
                .collect();
            let cells: f32 = w.attention.iter().sum();
            out.push_str(&format!("{:15} {} · cells {:.0} %\n", w.word, on.join(", "), cells * 100.0));
        }
    }
    Ok(out)
}
