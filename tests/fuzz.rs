//! Mutation fuzzing of the three readers that take a user's bytes: the folder index, the caption
//! tokenizer and photo decoding. Each target mutates valid seeds (bit flips, interesting values,
//! cut, repeated and inserted runs) and asserts that the reader returns — a value or an error,
//! never a panic — and that what it returns is sane.
//!
//! `cargo fuzz` needs a nightly toolchain this project does not install; these run on stable.
//! Each target runs `ALIGNSCOPE_FUZZ_SECS` seconds (default 3, as in CI); the figures in the
//! README came from `ALIGNSCOPE_FUZZ_SECS=600 cargo test --release --test fuzz -- --test-threads 1`.
//! A failure prints the seed and iteration, and the input is written under the system temp dir.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alignscope::data::index_file::{FailedEntry, IndexEntry, IndexFile, IndexHeader};

fn budget() -> Duration {
    let secs = std::env::var("ALIGNSCOPE_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Bytes that break parsers: zero, all-ones, sign bits, around powers of two.
const INTERESTING: [u8; 8] = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe, 0x10, 0x40];

/// One to four random edits of `seed`.
fn mutate(rng: &mut fastrand::Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let n = b.len();
        match rng.u8(0..7) {
            0 if n > 0 => {
                let i = rng.usize(0..n);
                b[i] ^= 1 << rng.u8(0..8);
            }
            1 if n > 0 => {
                let i = rng.usize(0..n);
                b[i] = INTERESTING[rng.usize(0..INTERESTING.len())];
            }
            2 if n >= 8 => {
                // A length or size field made huge, zero or negative.
                let i = rng.usize(0..n - 7);
                let v: u64 = [0, u64::MAX, u32::MAX as u64, 1 << 40, rng.u64(..)][rng.usize(0..5)];
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            3 => b.truncate(rng.usize(0..=n)),
            4 if n > 0 => {
                let (start, len) = (rng.usize(0..n), rng.usize(1..=64));
                let run: Vec<u8> = b[start..(start + len).min(n)].to_vec();
                let at = rng.usize(0..=n);
                b.splice(at..at, run);
            }
            5 if n > 0 => {
                let start = rng.usize(0..n);
                let end = (start + rng.usize(1..=256)).min(n);
                b.drain(start..end);
            }
            _ => {
                let at = rng.usize(0..=n);
                let junk: Vec<u8> = (0..rng.usize(1..=32)).map(|_| rng.u8(..)).collect();
                b.splice(at..at, junk);
            }
        }
    }
    b
}

/// Run `target` on mutations of `seeds` for the time budget, with the seed printed on failure.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut target: impl FnMut(&[u8])) -> usize {
    let seed = std::env::var("ALIGNSCOPE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = Instant::now();
    let mut runs = 0;
    while start.elapsed() < budget() || runs < 100 {
        let base = &seeds[rng.usize(0..seeds.len())];
        let input = mutate(&mut rng, base);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        if caught.is_err() {
            let saved = std::env::temp_dir().join(format!("alignscope-fuzz-{name}-{seed}-{runs}.bin"));
            let _ = std::fs::write(&saved, &input);
            panic!("{name}: panic on input {runs} (ALIGNSCOPE_FUZZ_SEED={seed}); input saved to {}", saved.display());
        }
        runs += 1;
    }
    eprintln!("fuzz {name}: {runs} inputs in {:.0} s, no panic", start.elapsed().as_secs_f64());
    runs
}

fn sample_index() -> IndexFile {
    let mut f = IndexFile::new(IndexHeader { model: "m".into(), dim: 4, regions: 3, region_dim: 2, global_dim: 3 });
    for (i, name) in ["a.jpg", "sub/b é.png", "c\nd.webp"].iter().enumerate() {
        f.entries.insert(
            PathBuf::from(name),
            IndexEntry {
                size: 100 + i as u64,
                mtime_ns: 1_700_000_000_000_000_000 + i as i64,
                embedding: vec![0.5, -0.5, 0.5, i as f32],
                regions: (0..6).map(|v| half::f16::from_f32(v as f32 / 7.0)).collect(),
                context: vec![0.1; 9],
                global: vec![0.6, 0.0, -0.8],
                normaliser: 11.5,
            },
        );
    }
    f.failed.insert("broken.jpg".into(), FailedEntry { size: 3, mtime_ns: 4, cause: "truncated".into() });
    f
}

/// The index reader: every mutation is read with its checksum made valid again (else every
/// mutation stops at the checksum), so the parser behind it is what gets exercised.
#[test]
fn fuzz_index_reader() {
    let empty = IndexFile::new(sample_index().header);
    let seeds = vec![sample_index().to_bytes(), empty.to_bytes()];
    let runs = fuzz("index", &seeds, |input| {
        let mut bytes = input.to_vec();
        if bytes.len() >= 32 && bytes[0] & 0x0f != 0x0f {
            let body = bytes.len() - 32;
            let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes[..body]);
            bytes[body..].copy_from_slice(&digest);
        }
        if let Ok(file) = IndexFile::from_bytes(&bytes, Path::new("fuzz.bin")) {
            let again = IndexFile::from_bytes(&file.to_bytes(), Path::new("fuzz.bin"));
            assert_eq!(again.ok().as_ref(), Some(&file), "what was read writes and reads back the same");
            for e in file.entries.values() {
                assert_eq!(e.embedding.len(), file.header.dim);
                assert_eq!(e.regions.len(), file.header.regions * file.header.region_dim);
            }
        }
    });
    assert!(runs >= 100);
}

/// The tokenizer on mutated captions (bytes made into text lossily: control characters,
/// replacement characters, cut UTF-8) and on long runs of odd characters.
#[test]
fn fuzz_tokenizer() {
    use alignscope::features::tokenizer::WordPiece;
    let vocab = common::repo_path("assets/models/minilm-vocab.txt");
    let tokenizer = WordPiece::load(&vocab, 64).expect("the bundled vocabulary loads");
    let seeds: Vec<Vec<u8>> = [
        "A dog runs through the snow .",
        "Café crème, naïve façade — 東京の猫 🐈‍⬛ 👩🏽‍🚀",
        "a\u{0301}\u{0301}\u{0301} e\u{200d}f\tg\r\nh\u{0}i",
        "ALL CAPS!!! ??? ... ---- '' \"\" (((",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain(std::iter::once("word ".repeat(400).into_bytes()))
    .collect();
    let runs = fuzz("tokenizer", &seeds, |input| {
        let caption = String::from_utf8_lossy(input);
        if let Ok(t) = tokenizer.tokenize(&caption) {
            assert!(t.ids.len() <= 64, "{} tokens over the limit of 64", t.ids.len());
            assert!(t.ids.iter().all(|&id| (id as usize) < tokenizer.vocab_size()));
            let _ = (t.warning(), t.truncation_warning());
        }
    });
    assert!(runs >= 100);
}

/// Photo decoding on mutated small images of every format alignscope reads, through a file as in
/// use: an image (whose size the limits bound) or an error naming the file.
#[test]
fn fuzz_photo_decoding() {
    use alignscope::data::decode::{MAX_SIDE, decode_oriented};
    let photo = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 16, |x, y| {
        image::Rgb([(x * 10) as u8, (y * 15) as u8, ((x + y) * 5) as u8])
    }));
    let formats = [
        image::ImageFormat::Jpeg,
        image::ImageFormat::Png,
        image::ImageFormat::WebP,
        image::ImageFormat::Bmp,
        image::ImageFormat::Gif,
        image::ImageFormat::Tiff,
    ];
    let seeds: Vec<Vec<u8>> = formats
        .iter()
        .map(|&format| {
            let mut out = std::io::Cursor::new(Vec::new());
            photo.write_to(&mut out, format).expect("encode a seed");
            out.into_inner()
        })
        .collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("photo.jpg");
    let runs = fuzz("decode", &seeds, |input| {
        std::fs::write(&path, input).expect("write the input");
        match decode_oriented(&path) {
            Ok(image) => assert!(image.width() <= MAX_SIDE && image.height() <= MAX_SIDE),
            Err(e) => assert_eq!(e.path(), path, "the error names the file"),
        }
    });
    assert!(runs >= 100);
}
