//! `bench`: benchmarks that print figures and ratios.

mod duplicates;
mod encoders;
mod networks;
mod scale;
mod search;

use alignscope::engine::backend::BackendRequest;

use super::BenchWhat;

pub fn run(what: BenchWhat, backend: Option<BackendRequest>, visual: &str) -> anyhow::Result<String> {
    match what {
        BenchWhat::Encoders { flickr8k, images, captions, batch, text_batch, python } => {
            let (images, captions) =
                encoders::EncoderBench::inputs(&flickr8k, &alignscope::app::demo_folder(), images, captions);
            encoders::EncoderBench {
                images,
                captions,
                batch: batch.max(1),
                text_batch: text_batch.max(1),
                python,
                only: backend,
            }
            .run()
        }
        BenchWhat::Search { flickr8k, photos, queries, candidates, weights, objects } => {
            let bench = search::SearchBench { photos, queries: queries.max(1), candidates, flickr8k };
            let compute = super::compute(backend.unwrap_or_default())?;
            let started = std::time::Instant::now();
            let weights = weights.unwrap_or_else(alignscope::nets::shan::default_path);
            let runtime =
                alignscope::engine::runtime::Runtime::load(&compute, &weights, visual)?.with_objects(objects)?;
            let load = format!(
                "loading the models (backbones, SHAN, global, bank{}; what every `search` pays first): {:.2} s\n",
                if objects > 0 { format!(", detector: {objects} objects per photo") } else { String::new() },
                started.elapsed().as_secs_f64()
            );
            Ok(load + &bench.run(&runtime)?)
        }
        BenchWhat::Duplicates { flickr8k, photos, altered } => {
            let runtime = super::folder::shan_runtime(backend.unwrap_or_default(), visual, None, 0)?;
            duplicates::DuplicatesBench { flickr8k, photos, altered }.run(&runtime)
        }
        BenchWhat::Scale { sizes, queries, write_up_to } => {
            let runtime = super::folder::shan_runtime(backend.unwrap_or_default(), visual, None, 0)?;
            scale::ScaleBench { sizes, queries: queries.max(1), write_up_to }.run(&runtime)
        }
        BenchWhat::Networks { flickr8k, photos, queries } => {
            use alignscope::data::flickr8k::{Split, load_split};
            let captions = load_split(&flickr8k, Split::Test)
                .map(|d| d.captions.into_iter().map(|c| c[0].clone()).collect())
                .unwrap_or_else(|_| vec!["a dog runs through the grass".to_string()]);
            let bench = networks::NetworksBench { photos: photos.max(1), queries: queries.max(1), captions };
            let compute = super::compute(backend.unwrap_or_default())?;
            let ranker = alignscope::engine::rank::Ranker::load(&compute)?;
            let shan =
                alignscope::nets::shan::load(&alignscope::nets::shan::default_path(), visual, &compute.device).ok();
            bench.run(&ranker, shan.as_ref())
        }
    }
}
