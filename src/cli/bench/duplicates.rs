//! `alignscope bench duplicates`: where near-duplicates end. Flickr8k test photos and altered
//! copies of the first few (JPEG re-encoded at quality 30, half size, a 90 % centre crop,
//! brightened, mirrored) are indexed as one folder; printed: each alteration's cosine to its
//! original under SHAN's and the global model's embeddings, each original's cosine to its
//! nearest *other* test photo, and per threshold how many copies it groups and how many
//! originals it wrongly joins to another photo.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use alignscope::engine::duplicates::{THRESHOLD, groups};
use alignscope::engine::runtime::Runtime;
use alignscope::engine::search::LoadedIndex;
use image::DynamicImage;

use alignscope::engine::fused::dot;
use alignscope::engine::recall::percentile;

use super::search::ScratchDir;

/// A cosine percentile of sorted values (0 when there are none).
fn pct(sorted: &[f32], q: f64) -> f32 {
    percentile(sorted, q).unwrap_or(0.0)
}

pub struct DuplicatesBench {
    pub flickr8k: PathBuf,
    pub photos: usize,
    pub altered: usize,
}

type Alteration = (&'static str, fn(&DynamicImage, &Path) -> anyhow::Result<()>);

const ALTERATIONS: [Alteration; 5] = [
    ("re-encoded JPEG q30", |img, path| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 30).encode_image(img)?;
        Ok(())
    }),
    ("half size", |img, path| {
        Ok(img.resize(img.width() / 2, img.height() / 2, image::imageops::FilterType::Triangle).save(path)?)
    }),
    ("90 % centre crop", |img, path| {
        let (w, h) = (img.width(), img.height());
        Ok(img.crop_imm(w / 20, h / 20, w * 9 / 10, h * 9 / 10).save(path)?)
    }),
    ("brightened +30", |img, path| Ok(img.brighten(30).save(path)?)),
    ("mirrored", |img, path| Ok(img.fliph().save(path)?)),
];

/// The altered copy `a` of the i-th photo: PNG (lossless, so only the alteration differs),
/// except the JPEG re-encode.
fn altered_name(a: usize, i: usize) -> String {
    format!("altered-{a}-{i}.{}", if a == 0 { "jpg" } else { "png" })
}

impl DuplicatesBench {
    pub fn run(&self, runtime: &Runtime) -> anyhow::Result<String> {
        use alignscope::data::flickr8k::{Split, load_split};
        let data = load_split(&self.flickr8k, Split::Test)?;
        let originals: Vec<&PathBuf> = data.images.iter().take(self.photos).collect();
        let scratch = ScratchDir::new("bench-duplicates")?;
        let dir = scratch.0.as_path();
        for p in &originals {
            std::fs::copy(p, dir.join(p.file_name().unwrap_or_default()))?;
        }
        for (i, p) in originals.iter().take(self.altered).enumerate() {
            let img = alignscope::data::decode::decode_oriented(p)?;
            for (a, (_, alter)) in ALTERATIONS.iter().enumerate() {
                alter(&img, &dir.join(altered_name(a, i)))?;
            }
        }
        let started = std::time::Instant::now();
        let cancel = alignscope::engine::jobs::CancelToken::default();
        let (_, file) = alignscope::engine::index::update_index(runtime, dir, &cancel, &|_| {})?;
        let indexed = started.elapsed().as_secs_f64();
        let index = LoadedIndex::new(dir, file);
        let at = |name: &str| index.paths.iter().position(|p| p.as_os_str() == name);
        let original_rows: Vec<usize> =
            originals.iter().filter_map(|p| at(&p.file_name().unwrap_or_default().to_string_lossy())).collect();
        let copy_rows: Vec<Vec<Option<usize>>> = (0..ALTERATIONS.len())
            .map(|a| (0..self.altered.min(original_rows.len())).map(|i| at(&altered_name(a, i))).collect())
            .collect();
        let mut out = format!(
            "{} Flickr8k test photos + {} altered copies of the first {} indexed in {indexed:.0} s\n",
            original_rows.len(),
            index.len() - original_rows.len(),
            self.altered
        );
        // The index's embeddings are unit rows: dot products are the cosines the app groups by.
        for (what, vectors, dim, app) in [
            ("SHAN's embedding", &index.embeddings, index.dim, false),
            ("the global model's embedding (what the app groups by)", &index.globals, index.global_dim, true),
        ] {
            table(&mut out, what, vectors, dim, &original_rows, &copy_rows, app)?;
        }
        Ok(out)
    }
}

/// One embedding's figures: each alteration's cosine to its original, each original's to its
/// nearest other, and what each threshold groups.
fn table(
    out: &mut String,
    what: &str,
    unit: &[f32],
    dim: usize,
    original_rows: &[usize],
    copy_rows: &[Vec<Option<usize>>],
    app: bool,
) -> anyhow::Result<()> {
    let row = |i: usize| &unit[i * dim..(i + 1) * dim];
    let cos = |a: usize, b: usize| dot(row(a), row(b));
    writeln!(out, "cosine of {what}")?;
    writeln!(out, "  {:28} {:>6} {:>6} {:>6} {:>6}", "copy of a photo", "min", "p5", "median", "max")?;
    let mut copies: Vec<Vec<f32>> = Vec::new();
    for ((name, _), rows) in ALTERATIONS.iter().zip(copy_rows) {
        let mut c: Vec<f32> = rows.iter().zip(original_rows).filter_map(|(r, &o)| r.map(|r| cos(r, o))).collect();
        c.sort_by(f32::total_cmp);
        let (min, max) = (c.first().copied().unwrap_or(0.0), c.last().copied().unwrap_or(0.0));
        writeln!(out, "  {name:28} {min:6.3} {:6.3} {:6.3} {max:6.3}", pct(&c, 0.05), pct(&c, 0.5))?;
        copies.push(c);
    }
    let mut nearest: Vec<f32> = original_rows
        .iter()
        .map(|&i| original_rows.iter().filter(|&&j| j != i).map(|&j| cos(i, j)).fold(f32::MIN, f32::max))
        .collect();
    nearest.sort_by(f32::total_cmp);
    writeln!(
        out,
        "  {:28} {:6.3} {:6.3} {:6.3} {:6.3}  (p95 {:.3}, p99 {:.3})",
        "nearest other test photo",
        nearest.first().copied().unwrap_or(0.0),
        pct(&nearest, 0.05),
        pct(&nearest, 0.5),
        nearest.last().copied().unwrap_or(0.0),
        pct(&nearest, 0.95),
        pct(&nearest, 0.99)
    )?;
    writeln!(
        out,
        "  threshold: copies grouped with their original (all but mirrored) / test photos joined to another"
    )?;
    let edits: Vec<f32> = copies.iter().take(ALTERATIONS.len() - 1).flatten().copied().collect();
    let originals_only: Vec<f32> = original_rows.iter().flat_map(|&i| row(i).iter().copied()).collect();
    for t in [0.70f32, 0.75, 0.80, 0.85, 0.90, 0.95] {
        let kept = edits.iter().filter(|&&c| c >= t).count();
        let g = groups(&originals_only, dim, t);
        let mut size = std::collections::HashMap::<usize, usize>::new();
        for &first in &g {
            *size.entry(first).or_default() += 1;
        }
        let joined = g.iter().filter(|first| size[first] > 1).count();
        writeln!(
            out,
            "    {t:.2}{}  {kept}/{} copies  {joined}/{} test photos",
            if app && (t - THRESHOLD).abs() < 1e-6 { " (the app's)" } else { "" },
            edits.len(),
            original_rows.len()
        )?;
    }
    Ok(())
}
