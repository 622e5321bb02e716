//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Where a test needs something the machine may lack: skip with a clear message, unless
/// `ALIGNSCOPE_REQUIRE_ALL=1` (set by `.ci/run`) turns the absence into a failure.
pub fn skip_or_fail(what: &str) {
    if std::env::var("ALIGNSCOPE_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("required for this test but missing: {what}");
    }
    eprintln!("SKIPPED: {what} (install the test dependencies: see README)");
}

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Run the built `alignscope` in the repository root: (success, stdout, stderr).
pub fn alignscope(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alignscope"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run alignscope");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Is `program` on PATH?
pub fn has_program(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A valid PNG header claiming 30000×30000, with a few bytes of pixel data behind it.
pub fn write_huge_png(path: &std::path::Path) {
    write_png_claiming(path, 30000, 30000, 8, 2);
}

/// A valid PNG header claiming `width`×`height` at `depth` bits, colour type `colour` (2: RGB,
/// 6: RGBA), with a few bytes of pixel data behind it (a decompression bomb's header).
pub fn write_png_claiming(path: &std::path::Path, width: u32, height: u32, depth: u8, colour: u8) {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[depth, colour, 0, 0, 0]);
    for (kind, data) in [(b"IHDR", header), (b"IDAT", vec![0x78, 0x9c, 0, 0]), (b"IEND", vec![])] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&chunk);
        bytes.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
