//! The command line: doctor reports backend and adapter; features shows what the backbones see.

mod common;

fn run(args: &[&str]) -> (bool, String, String) {
    common::alignscope(args)
}

#[test]
fn doctor_reports_backend_and_adapter() {
    let (ok, out, err) = run(&["doctor"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("backend: "), "{out}");
    assert!(out.contains("check: 64×64 matmul + softmax"), "{out}");
    match alignscope::engine::backend::probe_adapter() {
        Some((_, adapter)) if adapter.get_info().device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu => {
            assert!(out.contains("type software (CPU)"), "{out}");
            assert!(out.contains("backend: flex (CPU) (only a software adapter"), "{out}");
            // Forcing wgpu on the software adapter works.
            let (ok, out, err) = run(&["--backend", "wgpu", "doctor"]);
            assert!(ok, "{out}\n{err}");
            assert!(out.contains("backend: wgpu (wgpu forced") && out.contains("ok in"), "{out}");
        }
        Some(_) => assert!(out.contains("backend: wgpu"), "{out}"),
        None => common::skip_or_fail("a wgpu adapter, to check what doctor says about it"),
    }
}

#[test]
fn features_of_a_photo_give_classes_and_the_region_grid() {
    let (ok, out, err) = run(&["--backend", "flex", "features", "assets/demo/chelsea.jpg"]);
    assert!(ok, "{out}\n{err}");
    let top1 = out.lines().find(|l| l.contains('%')).unwrap_or_default();
    assert!(top1.contains("Egyptian cat"), "{out}");
    assert!(out.contains("7×7 grid = 49 regions × 1280 features"), "{out}");
    assert!(err.contains("backend flex"), "the backend is announced: {err}");
}

#[test]
fn features_of_a_caption_map_pieces_to_typed_words() {
    let (ok, out, err) = run(&["--backend", "flex", "features", "--text", "Two dogs near a café!"]);
    assert!(ok, "{out}\n{err}");
    let cafe = out.lines().find(|l| l.contains(" cafe ")).unwrap_or_default();
    assert!(cafe.trim_end().ends_with("café!"), "{out}");
    let bang = out.lines().find(|l| l.contains("  !  ")).unwrap_or_default();
    assert!(bang.trim_end().ends_with("café!"), "{out}");
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let (ok, _, err) = run(&["--backend", "flex", "features", "--text", "   "]);
    assert!(!ok && err.contains("the caption is empty"), "{err}");
    let (ok, _, err) = run(&["--backend", "flex", "features", "Cargo.toml"]);
    assert!(!ok && err.contains("Cargo.toml") && err.contains("not a readable image"), "{err}");
    let long = format!("a dog {}", "runs ".repeat(400));
    let (ok, out, err) = run(&["--backend", "flex", "features", "--text", &long]);
    assert!(ok, "{err}");
    assert!(out.starts_with("warning: caption too long"), "{out}");
    for factor in ["0", "-1", "nan", "fast"] {
        let (ok, _, err) = run(&["train", "--model", "racg", &format!("--lr-factor={factor}")]);
        assert!(!ok && err.contains("is not a positive number"), "--lr-factor {factor}: {err}");
    }
    let (ok, _, err) = run(&["train", "--model", "racg", "--tuned", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("--tuned is for --model global"), "{err}");
    let (ok, _, err) = run(&["tune-levels", "--model", "dsran", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("tune-levels is for shan and racg"), "{err}");
    let (ok, _, err) = run(&["train", "--model", "global", "--aux-weight", "1", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("--aux-weight are for --model shan"), "{err}");
    let (ok, _, err) = run(&["train", "--model", "global", "--aug-views", "2", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("--aug-views is for --model shan and --model global --tuned"), "{err}");
    // Objects go through a fine-tuned top or the frozen backbone's nodes, never a pooled feature,
    // and not with views (a view's crop does not hold its photo's objects).
    let (ok, _, err) = run(&["train", "--model", "global", "--objects", "4", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("--objects is for --model dsran, racg, shan and global --tuned"), "{err}");
    let (ok, _, err) =
        run(&["train", "--model", "shan", "--objects", "4", "--aug-views", "2", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("--objects and --aug-views do not go together"), "{err}");
    let (ok, _, err) = run(&["train", "--model", "shan", "--init-global", "x", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("--init-global is for --model global --tuned"), "{err}");
    // Training never replaces a shipped model unless told to (issue: `train` without --out
    // overwrote assets/models/).
    let shipped = std::fs::read("assets/models/dsran.safetensors").unwrap();
    let (ok, _, err) = run(&["train", "--model", "dsran", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("dsran.safetensors") && err.contains("a shipped model"), "{err}");
    let (ok, _, err) =
        run(&["train", "--model", "dsran", "--out", "assets/models/dsran.safetensors", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read("assets/models/dsran.safetensors").unwrap(), shipped);
    // The folder of --out is made (or refused) before any split is prepared.
    let (ok, _, err) =
        run(&["train", "--model", "racg", "--out", "Cargo.toml/racg.safetensors", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("Cargo.toml: cannot create the folder for the weights"), "{err}");
    // A fusion partner that is not a tuned global model is named before any split is prepared.
    let dir = tempfile::tempdir().unwrap();
    let frozen = dir.path().join("frozen-global.safetensors");
    let model = alignscope::model::global::GlobalConfig::new().init(&burn::tensor::Device::flex());
    alignscope::nets::global::save(&model, &frozen, Default::default()).unwrap();
    let (ok, _, err) =
        run(&["--backend", "flex", "fuse", "--global", frozen.to_str().unwrap(), "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("frozen-global.safetensors") && err.contains("not a tuned global model"), "{err}");
    let frozen_path = frozen.to_str().unwrap();
    let args = ["--backend", "flex", "eval", "--model", "global", "--objects", "4", "--weights", frozen_path];
    let (ok, _, err) = run(&[&args[..], &["--flickr8k", "/nonexistent"]].concat());
    assert!(!ok && err.contains("frozen-global.safetensors: --objects needs a tuned global model"), "{err}");
    let (ok, _, err) =
        run(&["--backend", "flex", "fuse", "--global", "assets/models/shan.safetensors", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("shan.safetensors: the weights of a shan model, not of the global model"), "{err}");
    let (ok, _, err) = run(&["--backend", "flex", "fuse", "--global", "Cargo.toml", "--flickr8k", "/nonexistent"]);
    assert!(!ok && err.contains("Cargo.toml"), "{err}");
    // DSRAN weights with an object stream for 4 objects read 4 per photo, said before any split
    // is prepared.
    let dual = dir.path().join("dual.safetensors");
    let config = alignscope::model::dsran::DsranConfig::new().with_dim(16).with_heads(2).with_objects(Some(4));
    alignscope::nets::dsran::save(&config.init(&burn::tensor::Device::flex()), &dual, &config, &[]).unwrap();
    for objects in ["0", "2"] {
        let dual = dual.to_str().unwrap();
        let args = ["--backend", "flex", "eval", "--model", "dsran", "--objects", objects, "--weights", dual];
        let (ok, _, err) = run(&[&args[..], &["--flickr8k", "/nonexistent"]].concat());
        assert!(!ok && err.contains("dual.safetensors") && err.contains("pass --objects 4"), "{err}");
    }
}

/// Piped (not a terminal), `index` writes its messages as whole lines, no progress bar or
/// carriage return; `-q` leaves only errors and results; `-v` lets library log records through.
#[test]
fn progress_stays_off_pipes_and_quiet_and_verbose_do_what_they_say() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(common::repo_path("assets/demo/chelsea.jpg"), tmp.path().join("cat.jpg")).unwrap();
    let dir = tmp.path().to_str().unwrap();
    let (ok, out, err) = run(&["--backend", "flex", "index", dir]);
    assert!(ok, "{out}\n{err}");
    assert!(!err.contains('\r') && err.contains("1 to embed") && err.contains("backend flex"), "{err:?}");
    let (ok, out, err) = run(&["--backend", "flex", "-q", "search", dir, "a cat"]);
    assert!(ok && out.trim_end().ends_with("cat.jpg"), "{out}\n{err}");
    assert!(!err.contains("backend flex") && !err.contains("photos:"), "-q: no chatter: {err:?}");
    let (ok, _, err) = run(&["--backend", "flex", "-q", "-v", "doctor"]);
    assert!(!ok && err.contains("cannot be used with"), "-q and -v conflict: {err}");
    let (ok, out, err) = run(&["--backend", "flex", "-vv", "search", dir, "a cat"]);
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("DEBUG") || err.contains("INFO"), "-vv: library log records: {err}");
}

/// A copied binary with nothing beside it, run from `/`: it cannot reach the source tree's
/// `assets/` (there is no build-time path), so its first run writes the models and demo photos it
/// carries to the XDG data folder and `search` ranks the demo photos with them; `doctor` then
/// says the models come from there.
#[test]
fn a_copied_binary_installs_its_models_and_searches() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin/alignscope");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_alignscope"), &bin).unwrap();
    let data = tmp.path().join("data");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .args(args)
            .current_dir("/")
            .env_remove("ALIGNSCOPE_MODELS")
            .env("XDG_DATA_HOME", &data)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let demo = data.join("alignscope/demo");
    let (ok, out, err) = run(&["--backend", "flex", "search", demo.to_str().unwrap(), "a tabby cat", "--top", "1"]);
    assert!(ok && out.trim_end().ends_with("chelsea.jpg"), "{out}\n{err}");
    assert!(err.contains("first run: wrote the models and demo photos"), "{err}");
    let installed = data.join("alignscope/models");
    assert!(installed.join("shan.safetensors").is_file() && installed.join("CHECKSUMS").is_file());
    let (_, out, err) = run(&["--backend", "flex", "doctor"]);
    assert!(out.contains(&format!("models: {} (installed)", installed.display())), "{out}");
    assert!(!err.contains("first run"), "installed once: {err}");
    let repo = env!("CARGO_MANIFEST_DIR");
    assert!(!out.contains(repo), "the source tree is not used: {out}");
    // A damaged installed model is refused by name, not used.
    let shan = installed.join("shan.safetensors");
    let mut bytes = std::fs::read(&shan).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 8].copy_from_slice(&[0x3c; 8]);
    std::fs::write(&shan, bytes).unwrap();
    let (ok, out, err) = run(&["--backend", "flex", "search", demo.to_str().unwrap(), "a tabby cat"]);
    assert!(!ok && err.contains("shan.safetensors"), "{out}\n{err}");
    let (ok, out, err) = run(&["install-models"]);
    assert!(ok && out.contains("installed"), "{out}\n{err}");
    let (ok, out, err) = run(&["--backend", "flex", "search", demo.to_str().unwrap(), "a tabby cat", "--top", "1"]);
    assert!(ok && out.trim_end().ends_with("chelsea.jpg"), "install-models mends it: {out}\n{err}");
}
