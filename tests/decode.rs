//! Decoding: EXIF orientation is applied; bad files fail with the file's name and the cause.

mod common;

use alignscope::data::decode::{DecodeError, decode_oriented, thumbnail};
use alignscope::data::folder::scan_folder;
use image::{ImageEncoder, RgbImage};

/// A minimal big-endian TIFF/EXIF block holding only the Orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut b = b"MM\0\x2a\0\0\0\x08".to_vec();
    b.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    b.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    b.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    b.extend_from_slice(&1u32.to_be_bytes()); // count
    b.extend_from_slice(&value.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    b
}

#[test]
fn exif_rotation_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotated.jpg");
    // 40 wide, 20 high, left half red; orientation 6 = rotate 90° clockwise to display.
    let img = RgbImage::from_fn(40, 20, |x, _| if x < 20 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    encoder.set_exif_metadata(exif_orientation(6)).unwrap();
    encoder.write_image(img.as_raw(), 40, 20, image::ExtendedColorType::Rgb8).unwrap();
    std::fs::write(&path, bytes).unwrap();

    let shown = decode_oriented(&path).unwrap().to_rgb8();
    assert_eq!(shown.dimensions(), (20, 40), "rotated to portrait");
    // The red left half is on top after a clockwise turn.
    assert!(shown.get_pixel(10, 5)[0] > 200 && shown.get_pixel(10, 5)[2] < 60);
    assert!(shown.get_pixel(10, 35)[2] > 200);
}

#[test]
fn bad_files_name_the_file_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, b"this is not a photo\n").unwrap();
    let truncated = dir.path().join("truncated.png");
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&[7u8; 64 * 64 * 3], 64, 64, image::ExtendedColorType::Rgb8)
        .unwrap();
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    let missing = dir.path().join("missing.jpg");
    let cut_jpeg = dir.path().join("cut.jpg");
    let coffee = std::fs::read(common::repo_path("assets/demo/coffee.jpg")).unwrap();
    std::fs::write(&cut_jpeg, &coffee[..coffee.len() / 3]).unwrap();
    assert!(
        matches!(decode_oriented(&cut_jpeg), Err(DecodeError::Truncated { .. })),
        "a cut-off JPEG is refused, not filled with grey"
    );

    for path in [&empty, &text, &truncated, &missing, &cut_jpeg] {
        let err = decode_oriented(path).expect_err("must fail");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert_eq!(err.path(), path.as_path());
    }
}

#[test]
fn huge_header_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.png");
    common::write_huge_png(&path);
    match decode_oriented(&path) {
        Err(DecodeError::TooLarge { width, height, .. }) => assert_eq!((width, height), (30000, 30000)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// Within the side limit but not the memory limit: 19999×19999 16-bit RGBA would take 3.0 GiB
/// (issue: `explain` peaked at 3.5 GB on one).
#[test]
fn a_bomb_within_the_side_limit_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    for (name, side, depth, colour) in [("deep.png", 19_999, 16, 6), ("wide.png", 18_000, 8, 2)] {
        let path = dir.path().join(name);
        common::write_png_claiming(&path, side, side, depth, colour);
        match decode_oriented(&path) {
            Err(e @ DecodeError::TooManyPixels { .. }) => {
                assert!(e.to_string().contains(name) && e.to_string().contains("MiB"), "{e}")
            }
            other => panic!("{name}: expected TooManyPixels, got {other:?}"),
        }
    }
}

/// A FIFO named like a photo is refused at once instead of blocking the reader forever.
#[cfg(unix)]
#[test]
fn a_fifo_is_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipe.jpg");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let started = std::time::Instant::now();
    match decode_oriented(&path) {
        Err(e @ DecodeError::NotAFile { .. }) => assert!(e.to_string().contains("pipe.jpg"), "{e}"),
        other => panic!("expected NotAFile, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn demo_folder_has_real_photos_that_decode() {
    let scan = scan_folder(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    // 13 scikit-image samples and at least 40 everyday photos, small enough for the repository.
    assert!((53..=120).contains(&scan.images.len()), "{} photos", scan.images.len());
    for path in &scan.images {
        let t = thumbnail(path, 128).unwrap();
        assert!(t.width() == 128 || t.height() == 128, "{}", path.display());
    }
}

#[cfg(unix)]
#[test]
fn scan_survives_symlink_loops_odd_names_and_hidden_folders() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::symlink(dir.path(), sub.join("loop")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling.jpg")).unwrap();
    let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9 photo.jpg"));
    std::fs::write(&odd, b"x").unwrap();
    std::fs::write(sub.join("b.PNG"), b"x").unwrap();
    std::fs::create_dir(dir.path().join(".alignscope")).unwrap();
    std::fs::write(dir.path().join(".alignscope/cache.jpg"), b"x").unwrap();

    let scan = scan_folder(dir.path());
    assert_eq!(scan.images, vec![odd, sub.join("b.PNG")]);
    assert_eq!(scan.problems.len(), 1, "{:?}", scan.problems);
    assert!(scan.problems[0].path.ends_with("dangling.jpg"));
}
