//! `alignscope bench networks`: query latency of the networks the gallery ranks with besides SHAN
//! (global, DSRAN, RACG) over a synthetic folder of photos with their real shapes, caption encoding
//! included, and each network's parameter count. SHAN's latency is `bench search`'s.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;

use super::search::{percentile, unit};
use alignscope::engine::rank::{Ranker, RankerModel, dot};
use alignscope::engine::search::top_k;

pub struct NetworksBench {
    pub photos: usize,
    pub queries: usize,
    pub captions: Vec<String>,
}

impl NetworksBench {
    /// `shan`: SHAN's trained network (its parameters are counted; its latency is `bench search`'s).
    pub fn run(&self, ranker: &Ranker, shan: Option<&alignscope::nets::shan::ShanNet>) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rng = fastrand::Rng::with_seed(2);
        // A real photo's shapes: one embedding per network, RACG's region graph.
        let probe = ranker
            .embed_images(&[image::DynamicImage::new_rgb8(224, 224)])
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no embedding"))?;
        let mut synthetic = |n: usize| (0..self.photos).map(|_| unit(&mut rng, n)).collect::<Vec<_>>();
        let global = synthetic(probe.global.len());
        let dsran = probe.dsran.as_ref().map(|d| synthetic(d.len()));
        // RACG's graphs are unit per head; random values cost the same as real ones.
        let racg: Option<Vec<Arc<[f32]>>> =
            probe.racg.as_ref().map(|g| synthetic(g.len()).into_iter().map(Arc::from).collect());
        writeln!(
            out,
            "query latency over {} synthetic photos (real shapes), caption encoding and top-10 included:",
            self.photos
        )?;
        for model in RankerModel::ALL {
            let params = match model {
                RankerModel::Global => Some(ranker.global.num_params()),
                RankerModel::Dsran => ranker.dsran.as_ref().map(Module::num_params),
                RankerModel::Racg => ranker.racg.as_ref().map(Module::num_params),
            };
            let Some(params) = params else {
                writeln!(out, "  {:7} not loaded", model.name())?;
                continue;
            };
            let mut times = Vec::new();
            for caption in self.captions.iter().cycle().take(self.queries + 1) {
                let started = Instant::now();
                let (q, _) = ranker.embed_caption(caption)?;
                let scores: Vec<f32> = match model {
                    RankerModel::Global => global.iter().map(|p| dot(p, &q.global)).collect(),
                    RankerModel::Dsran => {
                        let (photos, q) = (dsran.as_deref().unwrap_or_default(), q.dsran.unwrap_or_default());
                        photos.iter().map(|p| dot(p, &q)).collect()
                    }
                    RankerModel::Racg => {
                        let photos: Vec<&[f32]> = racg.iter().flatten().map(|g| &g[..]).collect();
                        ranker.racg_scores(&photos, q.racg.as_deref().unwrap_or_default())
                    }
                };
                anyhow::ensure!(top_k(&scores, 10).len() == 10.min(self.photos), "expected 10 results");
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            times.remove(0); // the first query warms caches
            times.sort_by(f64::total_cmp);
            let how = if model == RankerModel::Racg {
                "every photo's graph against the caption's"
            } else {
                "one dot product per photo"
            };
            writeln!(
                out,
                "  {:7} median {:8.1} ms, p95 {:8.1} ms over {} queries ({how}); {:.1} M parameters",
                model.name(),
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                times.len(),
                params as f64 / 1e6
            )?;
        }
        if let Some(net) = shan {
            writeln!(
                out,
                "  SHAN    {:.1} M parameters (the network and the fine-tuned backbone tops); latency: `alignscope bench search`",
                net.num_params() as f64 / 1e6
            )?;
        }
        writeln!(out, "(each query embeds the caption for every loaded network, as the app does)")?;
        Ok(out)
    }
}
