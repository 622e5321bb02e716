//! RACG's scores and loss for the shared training loop on the frozen backbones, its two levels'
//! recalls, and the graph level's share chosen on dev.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use super::frozen::{FrozenNet, scatter};
use super::splits::FrozenSplit;
use crate::engine::recall::{Recalls, recalls};
use crate::features::values;
use crate::model::loss::{Loss, contrastive};
use crate::model::matcher::Matcher;
use crate::model::racg::pairs::{self, HostGraphs};
use crate::model::racg::{Graph, Racg};
use crate::nets::racg::{CONFIG_KEY, save};

/// Captions scored together (the per-pair attention is [images, captions, words, regions]).
const CAPTION_GROUP: usize = 32;

impl FrozenNet for Racg {
    fn batch_loss(
        &self,
        data: &FrozenSplit,
        images: &[usize],
        captions: &[usize],
        loss: Loss,
        epoch: usize,
        device: &Device,
    ) -> Tensor<1> {
        let regions = data.image_batch(images, device);
        let img = self.encode_images(regions.clone());
        // Captions in groups of similar length, so the per-pair tensors pad little; the columns
        // are put back in the batch's order so the diagonal stays the true pairs.
        let mut order: Vec<usize> = (0..captions.len()).collect();
        order.sort_by_key(|&j| data.words[captions[j]].len());
        let mut columns = Vec::new();
        let mut reconstruction = Tensor::<1>::zeros([1], device);
        for group in order.chunks(CAPTION_GROUP) {
            let rows: Vec<usize> = group.iter().map(|&j| captions[j]).collect();
            let (words, mask) = data.caption_batch(&rows, device);
            let txt = self.encode_texts(words.clone(), mask);
            reconstruction = reconstruction
                + self.reconstruction(&img, regions.clone(), &txt, words)
                    * (group.len() as f64 / captions.len() as f64);
            columns.push(self.score_batch(&img, &txt).total);
        }
        let scores = Tensor::cat(columns, 1);
        // Column k of `scores` is caption order[k]: invert the permutation.
        let mut inverse = vec![0i64; order.len()];
        for (k, &j) in order.iter().enumerate() {
            inverse[j] = k as i64;
        }
        let scores = scores.select(1, Tensor::from_data(burn::tensor::TensorData::new(inverse, [order.len()]), device));
        contrastive(loss, scores, self.log_temperature.val(), epoch) + reconstruction * self.reconstruction_weight
    }

    fn score_split(&self, data: &FrozenSplit, device: &Device) -> Vec<f32> {
        let [node, graph] = score_levels(self, data, device, &|_, _| {});
        pairs::mix(&node, &graph, self.graph_share)
    }
}

/// Every image × caption score of a split at each level, row-major [images, captions]: node, graph.
/// On the CPU (flex) through the fused pass of [`crate::model::racg::pairs`], elsewhere through
/// the network's tensors.
pub fn score_levels(net: &Racg, data: &FrozenSplit, device: &Device, progress: &dyn Fn(usize, usize)) -> [Vec<f32>; 2] {
    if pairs::serves(device, net.lambda) {
        score_levels_fused(net, data, device, progress)
    } else {
        score_levels_tensors(net, data, device, progress)
    }
}

/// The graphs of every image and caption are built by the network on `device` (in batches), then
/// scored pair by pair on the host.
fn score_levels_fused(
    net: &Racg,
    data: &FrozenSplit,
    device: &Device,
    progress: &dyn Fn(usize, usize),
) -> [Vec<f32>; 2] {
    let (n_img, n_cap) = (data.len(), data.len() * 5);
    let host = |graph: Graph, into: &mut Option<HostGraphs>| {
        let dims = graph.heads.dims();
        into.get_or_insert_with(|| HostGraphs::new(dims[2], dims[3])).push(
            &values(graph.heads),
            &values(graph.mask),
            dims,
        );
    };
    let (mut images, mut captions) = (None, None);
    let rows: Vec<usize> = (0..n_img).collect();
    for chunk in rows.chunks(64) {
        host(net.encode_images(data.image_batch(chunk, device)), &mut images);
    }
    let caps: Vec<usize> = (0..n_cap).collect();
    for chunk in caps.chunks(256) {
        progress(chunk[0], n_cap);
        let (words, mask) = data.caption_batch(chunk, device);
        host(net.encode_texts(words, mask), &mut captions);
    }
    let levels = match (images, captions) {
        (Some(images), Some(captions)) => pairs::levels(&images, &captions, net.lambda),
        _ => [Vec::new(), Vec::new()],
    };
    progress(n_cap, n_cap);
    levels
}

fn score_levels_tensors(
    net: &Racg,
    data: &FrozenSplit,
    device: &Device,
    progress: &dyn Fn(usize, usize),
) -> [Vec<f32>; 2] {
    let (n_img, n_cap) = (data.len(), data.len() * 5);
    let images: Vec<usize> = (0..n_img).collect();
    let graphs: Vec<Graph> = images.chunks(16).map(|rows| net.encode_images(data.image_batch(rows, device))).collect();
    let mut order: Vec<usize> = (0..n_cap).collect();
    order.sort_by_key(|&c| data.words[c].len());
    let mut levels = [vec![0.0f32; n_img * n_cap], vec![0.0f32; n_img * n_cap]];
    for (done, caps) in order.chunks(64).enumerate() {
        progress(done * 64, n_cap);
        let (words, mask) = data.caption_batch(caps, device);
        let txt = net.encode_texts(words, mask);
        for (chunk, img) in graphs.iter().enumerate() {
            let rows = img.mask.dims()[0];
            let scored = net.score_batch(img, &txt);
            for (level, (_, s)) in levels.iter_mut().zip(scored.levels) {
                scatter(level, &values(s), chunk * 16, rows, caps, n_cap);
            }
        }
    }
    progress(n_cap, n_cap);
    levels
}

/// Recall@K of a split: the final score, then each level alone.
pub fn evaluate_levels(
    net: &Racg,
    data: &FrozenSplit,
    device: &Device,
    progress: &dyn Fn(usize, usize),
) -> [(&'static str, Recalls); 3] {
    let [node, graph] = score_levels(net, data, device, progress);
    let full = pairs::mix(&node, &graph, net.graph_share);
    [
        ("full", recalls(&full, data.len(), 5)),
        ("node", recalls(&node, data.len(), 5)),
        ("graph", recalls(&graph, data.len(), 5)),
    ]
}

/// The graph level's share of the final score that maximises rSum on `data` (a dev split), on a
/// grid from 0 (node level alone) to 1 (graph level alone): every share with its recalls, in
/// order, and the index of the chosen one.
pub fn choose_graph_share(net: &Racg, data: &FrozenSplit, device: &Device) -> (usize, Vec<(f64, Recalls)>) {
    let [node, graph] = score_levels(net, data, device, &|_, _| {});
    let grid: Vec<(f64, Recalls)> = (0..=10)
        .map(|i| i as f64 / 10.0)
        .map(|share| (share, recalls(&pairs::mix(&node, &graph, share), data.len(), 5)))
        .collect();
    // Ties go to the training mix (share 0.5, index 5), then to the lower share.
    let chosen = (0..grid.len()).fold(5, |best, i| if grid[i].1.rsum > grid[best].1.rsum { i } else { best });
    (chosen, grid)
}

/// Choose the graph level's share of `net` (loaded from `path`) on `dev` and write it into the
/// weights file's config (its training notes kept, its dev rSum replaced by the one with the
/// chosen share). Returns `choose_graph_share`'s answer.
pub fn tune_graph_share(
    mut net: Racg,
    path: &Path,
    dev: &FrozenSplit,
    device: &Device,
) -> anyhow::Result<(usize, Vec<(f64, Recalls)>)> {
    let file = crate::features::weights::WeightFile::open(path)?;
    let mut config: crate::model::racg::RacgConfig = crate::nets::store::saved_config(&file, path, CONFIG_KEY)?;
    let (chosen, grid) = choose_graph_share(&net, dev, device);
    let (share, r) = grid[chosen];
    config.graph_share = Some(share);
    net.graph_share = share;
    let kept = ["best_epoch", "recipe"].iter().filter_map(|k| file.metadata(k).ok().map(|v| (k.to_string(), v)));
    let notes: Vec<(String, String)> = kept
        .chain([(
            "dev_rsum".to_string(),
            format!("{:.1} (first {} dev images, graph share {share} chosen there)", r.rsum, dev.len()),
        )])
        .collect();
    drop(file);
    save(&net, path, &config, &notes)?;
    Ok((chosen, grid))
}
