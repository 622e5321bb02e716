//! Decoding photos: EXIF orientation applied, size limits enforced, errors that name the file.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbaImage};

/// Largest side accepted. Bigger images (or headers that claim to be) are refused before any
/// pixel memory is allocated.
pub const MAX_SIDE: u32 = 20_000;
/// Largest decoded image accepted, in bytes (checked from the header, before decoding: e.g.
/// 13,000 × 13,000 RGB passes, 18,000 × 18,000 does not). Indexing decodes one photo per core,
/// so this bounds its memory.
pub const MAX_ALLOC: u64 = 512 << 20;
/// Largest file read, in bytes: larger files are refused without reading them.
pub const MAX_FILE: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: cannot open: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a readable image: {source}")]
    Format { path: PathBuf, source: image::ImageError },
    #[error("{path}: image is {width}×{height}, larger than the {MAX_SIDE} px limit")]
    TooLarge { path: PathBuf, width: u32, height: u32 },
    #[error("{path}: image is {width}×{height} and would take {} MiB decoded, more than the {} MiB limit", bytes >> 20, MAX_ALLOC >> 20)]
    TooManyPixels { path: PathBuf, width: u32, height: u32, bytes: u64 },
    #[error("{path}: file is {} MiB, more than the {} MiB limit for a photo", size >> 20, MAX_FILE >> 20)]
    FileTooBig { path: PathBuf, size: u64 },
    #[error("{path}: not a regular file (a FIFO, a device or a folder)")]
    NotAFile { path: PathBuf },
    #[error("{path}: truncated JPEG: the file ends before the image does (no end-of-image marker)")]
    Truncated { path: PathBuf },
}

/// How far from the end a JPEG's end-of-image marker may sit (some cameras append a trailer).
const JPEG_TRAILER: u64 = 64 * 1024;

/// The JPEG decoder fills a cut-off scan with grey instead of failing; a JPEG whose end-of-image
/// marker (FF D9) is missing from its tail was cut off.
fn jpeg_is_truncated(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(JPEG_TRAILER)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    Ok(!tail.windows(2).any(|w| w == [0xFF, 0xD9]))
}

impl DecodeError {
    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. }
            | Self::Format { path, .. }
            | Self::TooLarge { path, .. }
            | Self::TooManyPixels { path, .. }
            | Self::FileTooBig { path, .. }
            | Self::NotAFile { path }
            | Self::Truncated { path } => path,
        }
    }
}

/// Decode `path` the way a photo viewer shows it: EXIF orientation applied.
pub fn decode_oriented(path: &Path) -> Result<DynamicImage, DecodeError> {
    let format_err = |source| DecodeError::Format { path: path.to_path_buf(), source };
    // Opening a FIFO would block forever; a device or a huge file is not a photo.
    let meta = std::fs::metadata(path).map_err(|source| DecodeError::Open { path: path.to_path_buf(), source })?;
    if !meta.is_file() {
        return Err(DecodeError::NotAFile { path: path.to_path_buf() });
    }
    if meta.len() > MAX_FILE {
        return Err(DecodeError::FileTooBig { path: path.to_path_buf(), size: meta.len() });
    }
    let reader = ImageReader::open(path)
        .map_err(|source| DecodeError::Open { path: path.to_path_buf(), source })?
        // Sniff the content: a PNG named .jpg still decodes, a text file named .jpg fails clearly.
        .with_guessed_format()
        .map_err(|source| DecodeError::Open { path: path.to_path_buf(), source })?;
    let is_jpeg = reader.format() == Some(image::ImageFormat::Jpeg);
    let mut decoder = reader.into_decoder().map_err(format_err)?;
    if is_jpeg && jpeg_is_truncated(path).map_err(|source| DecodeError::Open { path: path.to_path_buf(), source })? {
        return Err(DecodeError::Truncated { path: path.to_path_buf() });
    }
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(DecodeError::TooLarge { path: path.to_path_buf(), width, height });
    }
    // `from_decoder` does not check `max_alloc` against the decoded size: check it here.
    let bytes = decoder.total_bytes();
    if bytes > MAX_ALLOC {
        return Err(DecodeError::TooManyPixels { path: path.to_path_buf(), width, height, bytes });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    decoder.set_limits(limits).map_err(format_err)?;
    // A broken EXIF block should not lose the photo: show it unrotated.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(format_err)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// A thumbnail whose longer side is at most `max_side`, aspect kept.
pub fn thumbnail(path: &Path, max_side: u32) -> Result<RgbaImage, DecodeError> {
    let image = decode_oriented(path)?;
    Ok(image.thumbnail(max_side, max_side).to_rgba8())
}
