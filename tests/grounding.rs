//! `alignscope grounding` on a Flickr8k-shaped folder of demo photos with hand-drawn boxes: the
//! pointing game's counts and the deletion test's shape, without the dataset.

mod common;

/// `alignscope --backend flex ARGS…`: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    common::alignscope(&[&["--backend", "flex"], args].concat())
}

/// Four demo photos as a Flickr8k test split, and a grounding set over them.
fn tiny(root: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(root.join("images")).unwrap();
    let photos = ["chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"];
    let mut tokens = String::new();
    for name in photos {
        std::fs::copy(std::path::Path::new("assets/demo").join(name), root.join("images").join(name)).unwrap();
        for k in 0..5 {
            tokens.push_str(&format!("{name}#{k}\ta photo of a {}\n", name.trim_end_matches(".jpg")));
        }
    }
    std::fs::write(root.join("Flickr8k.token.txt"), tokens).unwrap();
    std::fs::write(root.join("Flickr_8k.testImages.txt"), photos.join("\n") + "\n").unwrap();
    let set = root.join("set.tsv");
    std::fs::write(
        &set,
        "image\tcaption\tword\tx0\ty0\tx1\ty1\n\
         chelsea.jpg\ta cat on a blanket\tcat\t0.0\t0.0\t1.0\t1.0\n\
         coffee.jpg\ta cup of coffee\tcup\t0.0\t0.0\t0.05\t0.05\n\
         astronaut.jpg\ta woman in a suit\twoman\t0.3\t0.0\t0.8\t0.6\n",
    )
    .unwrap();
    set
}

#[test]
fn pointing_counts_hits_centre_and_chance_and_deletion_has_every_k() {
    let dir = tempfile::tempdir().unwrap();
    let set = tiny(dir.path());
    let root = dir.path().to_str().unwrap();
    let grounding = |model: &str, method: &str, set: &str, pairs: &str, json: bool| {
        let mut args = vec!["grounding", "--model", model, "--method", method, "--set", set];
        args.extend(["--flickr8k", root, "--pairs", pairs]);
        if json {
            args.push("--json");
        }
        run(&args)
    };
    for model in ["shan", "dsran"] {
        let (ok, out, err) = grounding(model, "attention", set.to_str().unwrap(), "2", true);
        assert!(ok, "{out}\n{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!((v["model"].as_str(), v["method"].as_str()), (Some(model), Some("attention")));
        let p = &v["pointing"];
        assert_eq!(p["total"], 3);
        // A whole-photo box is hit by any cell; a corner box of 0.05 holds no cell centre.
        let hits = p["hits"].as_u64().unwrap();
        assert!((1..=2).contains(&hits), "{v}");
        assert_eq!(p["centre"], 2, "the middle lies in the cat's and the woman's boxes");
        let chance = p["chance"].as_f64().unwrap();
        assert!(chance > 1.0 && chance < 2.0, "1 (the whole photo) + 0 + the woman's share: {chance}");
        let d = &v["deletion"];
        assert_eq!(d["pairs"], 2);
        assert_eq!(d["k"], serde_json::json!([1, 3, 5]));
        for key in ["score_drop_top", "score_drop_random", "rank_drop_top", "rank_drop_random"] {
            assert_eq!(d[key].as_array().unwrap().len(), 3, "{key}: {d}");
        }
    }
    // The global model has no attention to show; a word missing from its caption is named.
    let (ok, _, err) = grounding("global", "attention", set.to_str().unwrap(), "0", false);
    assert!(!ok && err.contains("no attention"), "{err}");
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "image\tcaption\tword\tx0\ty0\tx1\ty1\nchelsea.jpg\ta cat\tcat\t0.5\t0.5\t0.2\t0.9\n")
        .unwrap();
    let (ok, _, err) = grounding("shan", "attention", bad.to_str().unwrap(), "0", false);
    assert!(!ok && err.contains("bad.tsv:2"), "{err}");
}
