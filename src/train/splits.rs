//! A Flickr8k split as the networks' inputs, from feature caches: pooled vectors (the global
//! model on frozen features), the activations entering the fine-tuned tops (SHAN, the tuned
//! global model) and the frozen tops' region and word features (DSRAN, RACG).

use anyhow::Context as _;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::feature_cache::FeatureCache;
use crate::features::efficientnet::{EfficientNetLite, Top};
use crate::features::minilm::{MiniLm, TokenBatch};
use crate::features::values;
use crate::nets::DEFAULT_FIRST_BLOCK;
use crate::nets::shan::CaptionBatch;

/// One split as matrices: a pooled vector per image, five sentence vectors per image.
pub struct PooledSplit {
    pub names: Vec<String>,
    /// [n, image_dim]
    pub images: Vec<f32>,
    pub image_dim: usize,
    /// [n * 5, text_dim]; captions of image i are rows 5i..5i+5.
    pub captions: Vec<f32>,
    pub text_dim: usize,
}

impl PooledSplit {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn image_rows(&self, rows: &[usize], device: &Device) -> Tensor<2> {
        gather(&self.images, self.image_dim, rows, device)
    }

    pub fn caption_rows(&self, rows: &[usize], device: &Device) -> Tensor<2> {
        gather(&self.captions, self.text_dim, rows, device)
    }
}

fn gather(data: &[f32], dim: usize, rows: &[usize], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = rows.iter().flat_map(|&r| data[r * dim..(r + 1) * dim].iter().copied()).collect();
    Tensor::from_data(TensorData::new(v, [rows.len(), dim]), device)
}

/// Pooled image vectors from a cache of the input of `block`.
pub fn pooled_images(net: &EfficientNetLite, cache: &FeatureCache, block: usize, device: &Device) -> Vec<f32> {
    let mut out = Vec::with_capacity(cache.len() * crate::features::efficientnet::FEATURE_DIM);
    let indices: Vec<usize> = (0..cache.len()).collect();
    for chunk in indices.chunks(64) {
        let shape = &cache.entries[chunk[0]].shape;
        let v: Vec<f32> = chunk.iter().flat_map(|&i| cache.values(i)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v, [chunk.len(), shape[0], shape[1], shape[2]]), device);
        out.extend(values(EfficientNetLite::pool(net.features_from(x, block))));
    }
    out
}

/// Mean-pooled sentence vectors from a cache of the hidden states entering `layer`.
pub fn pooled_captions(model: &MiniLm, cache: &FeatureCache, layer: usize, device: &Device) -> Vec<f32> {
    let mut order: Vec<usize> = (0..cache.len()).collect();
    order.sort_by_key(|&i| cache.entries[i].shape[0]);
    let h = model.hidden;
    let mut out = vec![0.0f32; cache.len() * h];
    for chunk in order.chunks(64) {
        let lengths: Vec<usize> = chunk.iter().map(|&i| cache.entries[i].shape[0]).collect();
        let n = lengths.iter().copied().max().unwrap_or(1);
        let mut x = vec![0.0f32; chunk.len() * n * h];
        let mut mask = vec![0.0f32; chunk.len() * n];
        for (k, &i) in chunk.iter().enumerate() {
            let v = cache.values(i);
            x[k * n * h..k * n * h + v.len()].copy_from_slice(&v);
            mask[k * n..k * n + lengths[k]].fill(1.0);
        }
        let batch = TokenBatch {
            ids: Tensor::<2, Int>::zeros([chunk.len(), n], device),
            mask: Tensor::from_data(TensorData::new(mask, [chunk.len(), n]), device),
            lengths,
        };
        let hidden =
            model.hidden_from(Tensor::from_data(TensorData::new(x, [chunk.len() * n, h]), device), &batch, layer);
        let pooled = values(MiniLm::mean_pool(hidden.reshape([chunk.len(), n, h]), batch.mask));
        for (k, &i) in chunk.iter().enumerate() {
            out[i * h..(i + 1) * h].copy_from_slice(&pooled[k * h..(k + 1) * h]);
        }
    }
    out
}

/// The images whose five captions are all cached: (image index, caption cache rows).
pub fn with_five_captions(image_names: &[String], captions: &FeatureCache) -> Vec<(usize, [usize; 5])> {
    let by_name = captions.rows_by_name();
    let row = |name: &str, k: usize| by_name.get(format!("{name}#{k}").as_str()).copied();
    image_names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| Some((i, [row(name, 0)?, row(name, 1)?, row(name, 2)?, row(name, 3)?, row(name, 4)?])))
        .collect()
}

/// Align the two caches by image name: images whose five captions are all cached.
pub fn join(
    image_names: &[String],
    images: Vec<f32>,
    image_dim: usize,
    captions: &FeatureCache,
    caption_vectors: Vec<f32>,
    text_dim: usize,
) -> anyhow::Result<PooledSplit> {
    let mut split = PooledSplit { names: Vec::new(), images: Vec::new(), image_dim, captions: Vec::new(), text_dim };
    for (i, rows) in with_five_captions(image_names, captions) {
        let name = &image_names[i];
        split.names.push(name.clone());
        split.images.extend_from_slice(&images[i * image_dim..(i + 1) * image_dim]);
        for r in rows {
            split.captions.extend_from_slice(&caption_vectors[r * text_dim..(r + 1) * text_dim]);
        }
    }
    (!split.is_empty()).then_some(split).context("no image has all five captions cached")
}

/// A split as the network's inputs: the activation entering the visual top per image, the
/// hidden states entering MiniLM's last layer per caption (five per image, rows 5i..5i+5).
pub struct FragmentSplit {
    pub names: Vec<String>,
    pub images: Vec<f32>,
    pub image_shape: [usize; 3],
    pub captions: Vec<Vec<f32>>,
    pub text_dim: usize,
    /// Augmented views of the images, laid out as `images` (training only; usually none).
    pub views: Vec<Vec<f32>>,
    /// The detector's objects of each photo as crops' activations entering the same block as
    /// `images` (evaluation of SHAN over objects; usually none).
    pub objects: Option<ObjectCrops>,
}

/// Per photo `k` object crops, each an activation of `shape` ([C, h, w]); photo i's at
/// `values[i·k·|shape|..]`.
#[derive(Clone, Debug)]
pub struct ObjectCrops {
    pub k: usize,
    pub shape: [usize; 3],
    pub values: Vec<f32>,
}

impl FragmentSplit {
    /// Align the two caches by image name (images with all five captions cached).
    pub fn from_caches(images: &FeatureCache, captions: &FeatureCache) -> anyhow::Result<Self> {
        let names: Vec<String> = images.entries.iter().map(|e| e.name.clone()).collect();
        let first = images.entries.first().context("the image cache is empty")?;
        let image_shape: [usize; 3] =
            first.shape.as_slice().try_into().context("cached image activations are not C×H×W")?;
        let text_dim = *captions.entries.first().context("the caption cache is empty")?.shape.last().unwrap_or(&0);
        anyhow::ensure!(text_dim > 0, "cached caption features have no width");
        let mut split = Self {
            names: Vec::new(),
            images: Vec::new(),
            image_shape,
            captions: Vec::new(),
            text_dim,
            views: Vec::new(),
            objects: None,
        };
        for (i, rows) in with_five_captions(&names, captions) {
            anyhow::ensure!(
                images.entries[i].shape == first.shape,
                "cached image {} has shape {:?}, not {:?}",
                names[i],
                images.entries[i].shape,
                first.shape
            );
            split.names.push(names[i].clone());
            split.images.extend(images.values(i));
            split.captions.extend(rows.iter().map(|&r| captions.values(r)));
        }
        anyhow::ensure!(!split.names.is_empty(), "no image has all five captions cached");
        Ok(split)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The first `n` images and their captions.
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        let per = self.image_shape.iter().product::<usize>();
        self.names.truncate(n);
        self.images.truncate(n * per);
        self.captions.truncate(n * 5);
        self.views.iter_mut().for_each(|v| v.truncate(n * per));
        if let Some(o) = &mut self.objects {
            o.values.truncate(n * o.k * o.shape.iter().product::<usize>());
        }
        self
    }

    /// The split with each photo's object crops from `cache` (entries `NAME`, [k, C, h, w], the
    /// photos' own activation shape; matched by name, every photo must have its entry).
    pub fn with_object_crops(mut self, cache: &FeatureCache) -> anyhow::Result<Self> {
        let rows = cache.rows_by_name();
        let (mut k, mut values) = (None, Vec::new());
        for name in &self.names {
            let &row = rows.get(name.as_str()).with_context(|| format!("{name} is not in the object cache"))?;
            let shape = &cache.entries[row].shape;
            anyhow::ensure!(
                shape.len() == 4 && shape[1..] == self.image_shape && k.is_none_or(|k| k == shape[0]),
                "{name}: object crops of shape {shape:?}, the photos' activations are {:?}",
                self.image_shape
            );
            k = Some(shape[0]);
            values.extend(cache.values(row));
        }
        self.objects = k.map(|k| ObjectCrops { k, shape: self.image_shape, values });
        Ok(self)
    }

    /// The region features of `rows` from their activations `entering` (the photos or, in
    /// training, views of them) through `top`, followed by the split's object crops of the same
    /// rows through it, each mean-pooled to one region (see [`Top::with_objects`]).
    pub fn regions(&self, top: &Top, entering: Tensor<4>, rows: &[usize], device: &Device) -> Tensor<3> {
        let cells = top.regions(entering);
        match self.object_batch(rows, device) {
            Some(crops) => top.with_objects(cells, crops),
            None => cells,
        }
    }

    /// The object crops of `rows`, photo by photo: [rows · k, C, h, w] (None without objects).
    pub fn object_batch(&self, rows: &[usize], device: &Device) -> Option<Tensor<4>> {
        let o = self.objects.as_ref()?;
        let per = o.k * o.shape.iter().product::<usize>();
        let v: Vec<f32> = rows.iter().flat_map(|&r| o.values[r * per..(r + 1) * per].iter().copied()).collect();
        let [c, h, w] = o.shape;
        Some(Tensor::from_data(TensorData::new(v, [rows.len() * o.k, c, h, w]), device))
    }

    /// The split with augmented views of its images beside them, from caches of those views
    /// (matched by name; every image must have each view).
    pub fn with_views(mut self, caches: &[FeatureCache]) -> anyhow::Result<Self> {
        for cache in caches {
            let rows = cache.rows_by_name();
            let mut view = Vec::with_capacity(self.images.len());
            for name in &self.names {
                let row = *rows
                    .get(name.as_str())
                    .with_context(|| format!("{name} is missing from an augmented view's cache"))?;
                anyhow::ensure!(
                    cache.entries[row].shape == self.image_shape,
                    "{name}: augmented view of shape {:?}, not {:?}",
                    cache.entries[row].shape,
                    self.image_shape
                );
                view.extend(cache.values(row));
            }
            self.views.push(view);
        }
        Ok(self)
    }

    /// A training batch: each image as itself or one of its augmented views, drawn uniformly
    /// (the photo itself, and no draw from `rng`, when there are no views).
    pub fn image_batch_sampled(&self, rows: &[usize], rng: &mut fastrand::Rng, device: &Device) -> Tensor<4> {
        if self.views.is_empty() {
            return self.image_batch(rows, device);
        }
        let picks: Vec<(&[f32], usize)> = rows
            .iter()
            .map(|&r| match rng.usize(0..=self.views.len()) {
                0 => (self.images.as_slice(), r),
                k => (self.views[k - 1].as_slice(), r),
            })
            .collect();
        self.stack(picks.into_iter(), device)
    }

    pub fn image_batch(&self, rows: &[usize], device: &Device) -> Tensor<4> {
        self.stack(rows.iter().map(|&r| (self.images.as_slice(), r)), device)
    }

    /// Image `r` of each `(source, r)` (the images or one of their views) as one batch.
    fn stack<'a>(&self, picks: impl ExactSizeIterator<Item = (&'a [f32], usize)>, device: &Device) -> Tensor<4> {
        let per = self.image_shape.iter().product::<usize>();
        let n = picks.len();
        let v: Vec<f32> = picks.flat_map(|(source, r)| source[r * per..(r + 1) * per].iter().copied()).collect();
        let [c, h, w] = self.image_shape;
        Tensor::from_data(TensorData::new(v, [n, c, h, w]), device)
    }

    /// Token counts (with [CLS] and [SEP]) of captions.
    pub fn length(&self, caption: usize) -> usize {
        self.captions[caption].len() / self.text_dim
    }

    pub fn caption_batch(&self, rows: &[usize], device: &Device) -> CaptionBatch {
        let lengths: Vec<usize> = rows.iter().map(|&r| self.length(r)).collect();
        let n = lengths.iter().copied().max().unwrap_or(1).max(3);
        let h = self.text_dim;
        let mut x = vec![0.0f32; rows.len() * n * h];
        for (k, &r) in rows.iter().enumerate() {
            x[k * n * h..k * n * h + self.captions[r].len()].copy_from_slice(&self.captions[r]);
        }
        CaptionBatch { hidden: Tensor::from_data(TensorData::new(x, [rows.len() * n, h]), device), lengths, tokens: n }
    }
}

/// A split as the frozen-backbone networks' inputs: per image its region features, per caption its word features.
pub struct FrozenSplit {
    pub regions: Vec<f32>,
    pub k: usize,
    pub image_dim: usize,
    /// Caption c (five per image, 5i..5i+5): [pieces × text_dim], [CLS] and [SEP] left out.
    pub words: Vec<Vec<f32>>,
    pub text_dim: usize,
}

impl FrozenSplit {
    /// Run the frozen tops once over a split's cached activations (entering the last block).
    pub fn from_fragments(data: &FragmentSplit, visual: &str, device: &Device) -> anyhow::Result<Self> {
        // SHAN's network owns the backbone tops; only they are used here (frozen, as loaded).
        let tops =
            crate::nets::shan::init(&crate::model::shan::ShanConfig::new(), visual, DEFAULT_FIRST_BLOCK, device)?;
        let images: Vec<usize> = (0..data.len()).collect();
        let (mut regions, mut k, mut image_dim) = (Vec::new(), 0, 0);
        for rows in images.chunks(32) {
            let r = tops.regions(data.image_batch(rows, device));
            [_, k, image_dim] = r.dims();
            regions.extend(values(r));
        }
        let captions: Vec<usize> = (0..data.len() * 5).collect();
        let mut words = Vec::with_capacity(captions.len());
        let mut text_dim = 0;
        for rows in captions.chunks(64) {
            let (w, _) = tops.words(data.caption_batch(rows, device));
            let [b, n, h] = w.dims();
            text_dim = h;
            let v = values(w);
            for (i, &c) in rows.iter().enumerate().take(b) {
                let pieces = data.length(c).saturating_sub(2).min(n);
                words.push(v[i * n * h..(i * n + pieces) * h].to_vec());
            }
        }
        Ok(Self { regions, k, image_dim, words, text_dim })
    }

    pub fn len(&self) -> usize {
        self.words.len() / 5
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Each image's object features from `objects` (its entry `NAME`, [k, image_dim]) appended
    /// to its grid regions as k more nodes; `names` are the images in this split's order.
    pub fn with_objects(mut self, names: &[String], objects: &FeatureCache) -> anyhow::Result<Self> {
        let index = objects.rows_by_name();
        let per = self.k * self.image_dim;
        let mut extra_k = None;
        let mut regions = Vec::with_capacity(self.regions.len() * 2);
        for (i, name) in names.iter().enumerate().take(self.len()) {
            let &j = index.get(name.as_str()).with_context(|| format!("{name} is not in the object cache"))?;
            let shape = &objects.entries[j].shape;
            anyhow::ensure!(
                shape.len() == 2 && shape[1] == self.image_dim && extra_k.is_none_or(|k| k == shape[0]),
                "{name}: object features of shape {shape:?}"
            );
            extra_k = Some(shape[0]);
            regions.extend_from_slice(&self.regions[i * per..(i + 1) * per]);
            regions.extend(objects.values(j));
        }
        self.k += extra_k.unwrap_or(0);
        self.regions = regions;
        Ok(self)
    }

    /// The first `n` images and their captions.
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.regions.truncate(n * self.k * self.image_dim);
        self.words.truncate(n * 5);
        self
    }

    pub fn image_batch(&self, rows: &[usize], device: &Device) -> Tensor<3> {
        let per = self.k * self.image_dim;
        let v: Vec<f32> = rows.iter().flat_map(|&r| self.regions[r * per..(r + 1) * per].iter().copied()).collect();
        Tensor::from_data(TensorData::new(v, [rows.len(), self.k, self.image_dim]), device)
    }

    /// Word features padded to the longest caption of `rows`, and their mask.
    pub fn caption_batch(&self, rows: &[usize], device: &Device) -> (Tensor<3>, Tensor<2>) {
        let h = self.text_dim;
        let n = rows.iter().map(|&r| self.words[r].len() / h).max().unwrap_or(1).max(1);
        let (mut x, mut mask) = (vec![0.0f32; rows.len() * n * h], vec![0.0f32; rows.len() * n]);
        for (i, &r) in rows.iter().enumerate() {
            x[i * n * h..i * n * h + self.words[r].len()].copy_from_slice(&self.words[r]);
            mask[i * n..i * n + self.words[r].len() / h].fill(1.0);
        }
        (
            Tensor::from_data(TensorData::new(x, [rows.len(), n, h]), device),
            Tensor::from_data(TensorData::new(mask, [rows.len(), n]), device),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::feature_cache::CacheKey;

    #[test]
    fn object_nodes_follow_each_image_s_grid_by_name() {
        // Two images of two 3-d grid cells each; the object cache lists them in the other order.
        let split = FrozenSplit {
            regions: vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0],
            k: 2,
            image_dim: 3,
            words: vec![vec![0.0]; 10],
            text_dim: 1,
        };
        let mut objects = FeatureCache::new(CacheKey {
            weights_sha256: String::new(),
            preprocessing: String::new(),
            activation: String::new(),
        });
        objects.push("b.jpg", &[1, 3], &[8.0, 8.0, 8.0]);
        objects.push("b.jpg/boxes", &[1, 6], &[0.0; 6]);
        objects.push("a.jpg", &[1, 3], &[9.0, 9.0, 9.0]);
        let names = ["a.jpg".to_string(), "b.jpg".to_string()];
        let with = split.with_objects(&names, &objects).unwrap();
        assert_eq!(with.k, 3);
        assert_eq!(
            with.regions,
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 9.0, 9.0, 9.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 8.0, 8.0, 8.0]
        );
        let missing = ["a.jpg".to_string(), "c.jpg".to_string()];
        let split = FrozenSplit { regions: vec![0.0; 12], k: 2, image_dim: 3, words: vec![vec![0.0]; 10], text_dim: 1 };
        let err = split.with_objects(&missing, &objects).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("c.jpg")));
    }

    #[test]
    fn object_crops_follow_each_photo_by_name_and_are_cut_with_it() {
        // Two photos of [1, 1, 2] activations; two crops each, cached in the other order.
        let split = || FragmentSplit {
            names: vec!["a.jpg".into(), "b.jpg".into()],
            images: vec![0.0; 4],
            image_shape: [1, 1, 2],
            captions: vec![vec![0.0]; 10],
            text_dim: 1,
            views: Vec::new(),
            objects: None,
        };
        let mut cache = FeatureCache::new(CacheKey {
            weights_sha256: String::new(),
            preprocessing: String::new(),
            activation: String::new(),
        });
        cache.push("b.jpg", &[2, 1, 1, 2], &[5.0, 6.0, 7.0, 8.0]);
        cache.push("b.jpg/boxes", &[2, 6], &[0.0; 12]);
        cache.push("a.jpg", &[2, 1, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        let with = split().with_object_crops(&cache).unwrap();
        let device = Device::flex();
        let batch = with.object_batch(&[1, 0], &device).unwrap();
        assert_eq!(batch.dims(), [4, 1, 1, 2]);
        assert_eq!(values(batch), vec![5.0, 6.0, 7.0, 8.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(with.truncated(1).objects.unwrap().values, vec![1.0, 2.0, 3.0, 4.0]);
        assert!(split().object_batch(&[0], &device).is_none());
        // Crops of another shape than the photos' activations are refused, naming the photo.
        let mut other = FeatureCache::new(cache.key.clone());
        other.push("a.jpg", &[2, 2, 1, 1], &[0.0; 4]);
        other.push("b.jpg", &[2, 1, 1, 2], &[0.0; 4]);
        let err = split().with_object_crops(&other).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("a.jpg")));
    }
}
