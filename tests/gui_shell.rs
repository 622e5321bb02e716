//! The app shell rendered by egui_kittest on wgpu: the demo folder as a grid of real thumbnails.

mod common;

use std::time::{Duration, Instant};

use alignscope::app::{AlignscopeApp, Settings, Thumb, demo_folder};
use alignscope::engine::backend::{Compute, probe_adapter};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn harness() -> Harness<'static, Option<AlignscopeApp>> {
    harness_on(demo_folder(), Settings::default())
}

/// The app on `folder` with `settings`, in a 1280×800 window drawn by wgpu, models on flex.
fn harness_on(folder: std::path::PathBuf, settings: Settings) -> Harness<'static, Option<AlignscopeApp>> {
    Harness::builder().with_size([1280.0, 800.0]).wgpu().build_ui_state(
        move |ui, app: &mut Option<AlignscopeApp>| {
            let app = app.get_or_insert_with(|| {
                AlignscopeApp::new(ui.ctx().clone(), settings.clone(), Ok(Compute::flex("test")), Some(&folder))
            });
            app.poll(ui.ctx());
            app.show(ui);
        },
        None,
    )
}

fn wait_until_settled(harness: &mut Harness<'static, Option<AlignscopeApp>>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        if harness.state().as_ref().is_some_and(|a| a.gallery.is_settled() && !a.ranking.is_busy()) {
            break;
        }
        assert!(Instant::now() < deadline, "thumbnails did not load within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(3);
}

/// The app on the demo folder with every thumbnail loaded, or `None` (skipped) without an adapter.
fn settled_app() -> Option<Harness<'static, Option<AlignscopeApp>>> {
    if probe_adapter().is_none() {
        common::skip_or_fail("a wgpu adapter for egui_kittest's renderer");
        return None;
    }
    let mut harness = harness();
    wait_until_settled(&mut harness);
    Some(harness)
}

#[test]
fn shell_shows_the_demo_folder() {
    let Some(mut harness) = settled_app() else { return };
    let app = harness.state().as_ref().unwrap();
    assert!(app.gallery.items.len() >= 8);
    assert!(app.gallery.items.iter().all(|i| matches!(i.thumb, Thumb::Ready(_))), "every demo photo decodes");
    // The widgets a user reaches for exist.
    harness.get_by_label("Open folder…");
    harness.get_by_label_contains("backend: flex");
    harness.snapshot("shell_demo_folder");
}

#[test]
fn clicking_a_tile_selects_it() {
    let Some(mut harness) = settled_app() else { return };
    assert_eq!(harness.state().as_ref().unwrap().gallery.selected, None);
    // The first tile sits at the top left of the central panel.
    harness.get_by_label("Open folder…"); // layout is up
    let pos = egui::pos2(60.0, 110.0);
    harness.hover_at(pos);
    harness.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: Default::default(),
    });
    harness.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: Default::default(),
    });
    harness.run_steps(2);
    assert_eq!(harness.state().as_ref().unwrap().gallery.selected, Some(0));
}

#[test]
fn typing_a_caption_reranks_the_grid() {
    let Some(mut harness) = settled_app() else { return };
    let name_at = |h: &Harness<'static, Option<AlignscopeApp>>, rank: usize| {
        let app = h.state().as_ref().unwrap();
        app.gallery.items[app.gallery.order[rank]].file_name()
    };
    assert_eq!(name_at(&harness, 0), "airplane_in_clouds.jpg", "folder order before a query");
    for (caption, expected) in [("animals in a field", "bison_on_grass.jpg"), ("a tabby cat", "chelsea.jpg")] {
        harness.state_mut().as_mut().unwrap().query = caption.to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            harness.step();
            let app = harness.state().as_ref().unwrap();
            if !app.ranking.is_busy()
                && app.gallery.items.iter().all(|i| i.score.is_some())
                && name_at(&harness, 0) == expected
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{caption:?}: top result is {}, expected {expected}",
                name_at(&harness, 0)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    harness.run_steps(3);
    harness.snapshot("gallery_ranked_a_cat");
}

#[test]
fn keyboard_focuses_clears_and_moves() {
    let Some(mut harness) = settled_app() else { return };
    // Arrow keys select in display order.
    harness.key_press(egui::Key::ArrowRight);
    harness.run_steps(2);
    assert_eq!(harness.state().as_ref().unwrap().gallery.selected, Some(0));
    harness.key_press(egui::Key::ArrowRight);
    harness.run_steps(2);
    assert_eq!(harness.state().as_ref().unwrap().gallery.selected, Some(1));
    // Ctrl+F focuses the query box: typed text lands in the query.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    harness.run_steps(2);
    harness.event(egui::Event::Text("a cat".into()));
    harness.run_steps(2);
    assert_eq!(harness.state().as_ref().unwrap().query, "a cat");
    // Esc clears it.
    harness.key_press(egui::Key::Escape);
    harness.run_steps(2);
    assert_eq!(harness.state().as_ref().unwrap().query, "");
}

fn click(harness: &mut Harness<'static, Option<AlignscopeApp>>, pos: egui::Pos2, button: egui::PointerButton) {
    harness.hover_at(pos);
    for pressed in [true, false] {
        harness.event(egui::Event::PointerButton { pos, button, pressed, modifiers: Default::default() });
    }
    harness.run_steps(2);
}

/// A tile's right-click menu: "Copy path" puts the photo's path on the clipboard.
#[test]
fn a_tile_s_menu_copies_its_path() {
    let Some(mut harness) = settled_app() else { return };
    harness.get_by_label("Open folder…");
    click(&mut harness, egui::pos2(60.0, 110.0), egui::PointerButton::Secondary);
    harness.get_by_label("Open in the system viewer");
    harness.get_by_label("Show in the file manager");
    harness.run_steps(2);
    harness.snapshot("tile_menu");
    harness.get_by_label("Copy path").click();
    harness.step();
    let copied: Vec<String> = harness
        .output()
        .platform_output
        .commands
        .iter()
        .filter_map(|c| match c {
            egui::OutputCommand::CopyText(text) => Some(text.clone()),
            _ => None,
        })
        .collect();
    let first = harness.state().as_ref().unwrap().gallery.items[0].path.display().to_string();
    assert_eq!(copied, [first]);
}

/// "Find similar photos" ranks the folder by the photo (its index embedding, as `search
/// --image`): the photo itself first, the status bar says so, and typing a caption takes over.
#[test]
fn find_similar_ranks_by_the_photo() {
    let Some(mut harness) = settled_app() else { return };
    let deadline = Instant::now() + Duration::from_secs(120);
    while harness.state().as_ref().unwrap().ranking.index.is_indexing() {
        assert!(Instant::now() < deadline, "the demo folder's index was not ready");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(2);
    let (first, cli_order) = {
        let app = harness.state().as_ref().unwrap();
        let first = app.gallery.items[0].path.clone();
        let (ok, out, err) = common::alignscope(&[
            "--backend",
            "flex",
            "-q",
            "search",
            "assets/demo",
            "--image",
            first.to_str().unwrap(),
            "--paths-only",
            "--top",
            "1000",
        ]);
        assert!(ok, "{err}");
        (first, out.lines().map(|l| common::repo_path(l).canonicalize().unwrap()).collect::<Vec<_>>())
    };
    click(&mut harness, egui::pos2(60.0, 110.0), egui::PointerButton::Secondary);
    harness.get_by_label("Find similar photos").click();
    harness.run_steps(3);
    let app = harness.state().as_ref().unwrap();
    assert!(app.gallery.is_ranked(), "ranked by the photo");
    let order: Vec<_> = app.gallery.order.iter().map(|&i| app.gallery.items[i].path.canonicalize().unwrap()).collect();
    assert_eq!(order[0], first.canonicalize().unwrap(), "the photo is most similar to itself");
    assert_eq!(order, cli_order, "the same order as `search --image`");
    harness.get_by_label_contains("ranked by similarity to");

    // Dropping a photo of the open folder on the window ranks by it too.
    let coffee = demo_folder().join("coffee.jpg");
    #[derive(Debug)]
    struct Dropped(std::path::PathBuf);
    impl egui::DroppedFile for Dropped {
        fn path(&self) -> &std::path::Path {
            &self.0
        }
        fn bytes(&self) -> Result<Vec<u8>, String> {
            std::fs::read(&self.0).map_err(|e| e.to_string())
        }
    }
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(coffee.clone())));
    harness.run_steps(3);
    let app = harness.state().as_ref().unwrap();
    let top = &app.gallery.items[app.gallery.order[0]].path;
    assert_eq!(top.canonicalize().unwrap(), coffee.canonicalize().unwrap(), "the dropped photo first");
    assert_eq!(app.similar_photo().map(|p| p.canonicalize().unwrap()), Some(coffee.canonicalize().unwrap()));

    // A photo of another folder (as Photo… picks it): that folder opens, is indexed, and is
    // ranked by the photo.
    harness.get_by_label("Photo…");
    let tmp = tempfile::tempdir().unwrap();
    for name in ["coffee.jpg", "chelsea.jpg", "rocket.jpg"] {
        std::fs::copy(demo_folder().join(name), tmp.path().join(name)).unwrap();
    }
    let cat = tmp.path().join("chelsea.jpg");
    harness.state_mut().as_mut().unwrap().search_by_example(cat.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    while harness.state().as_ref().unwrap().similar_photo() != Some(cat.as_path()) {
        assert!(Instant::now() < deadline, "the other folder was not ranked by the photo");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let app = harness.state().as_ref().unwrap();
    assert_eq!(app.gallery.folder.as_deref(), Some(tmp.path()));
    assert_eq!(app.gallery.items[app.gallery.order[0]].path, cat);

    // A photo that cannot be read is never indexed: once the index is up to date, the window
    // says so by name instead of waiting for it.
    let broken = tmp.path().join("broken.jpg");
    std::fs::write(&broken, b"not a photo at all").unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(demo_folder().join("coffee.jpg"), other.path().join("coffee.jpg")).unwrap();
    harness.state_mut().as_mut().unwrap().open_folder(other.path().to_path_buf());
    harness.run_steps(3);
    harness.state_mut().as_mut().unwrap().search_by_example(broken.clone());
    let said = |app: &AlignscopeApp| {
        app.notes.items.iter().any(|n| n.text.contains("broken.jpg") && n.text.contains("cannot rank by this photo"))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !said(harness.state().as_ref().unwrap()) {
        assert!(Instant::now() < deadline, "no message about the unreadable photo");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Moving the selection with the keyboard past the bottom of the window scrolls it into view;
/// "Export…"'s writer puts the photos in displayed order in a CSV.
#[test]
fn the_keyboard_selection_scrolls_into_view_and_the_ranking_exports() {
    if probe_adapter().is_none() {
        common::skip_or_fail("a wgpu adapter for egui_kittest's renderer");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir(&folder).unwrap();
    for i in 0..80 {
        std::fs::copy(demo_folder().join("coffee.jpg"), folder.join(format!("photo{i:02}.jpg"))).unwrap();
    }
    let mut harness = harness_on(folder.clone(), Settings::default());
    wait_until_settled(&mut harness);
    let screen = harness.state().as_ref().unwrap().gallery.on_screen().len();
    assert!(screen < 80, "the folder is taller than the window: {screen} of 80 tiles drawn");
    for _ in 0..12 {
        harness.key_press(egui::Key::ArrowDown);
        harness.run_steps(3);
    }
    let gallery = &harness.state().as_ref().unwrap().gallery;
    let selected = gallery.selected.unwrap();
    assert!(selected > screen, "the selection went below the first screen ({selected})");
    assert!(gallery.on_screen().contains(&selected), "tile {selected} is drawn: {:?}", gallery.on_screen());

    // A path relative to the checkout, so the snapshot's message is the same in every clone.
    let out = std::path::PathBuf::from("target/kittest-export/ranking.csv");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    // The message log, emptied (its start-up lines carry timings), shows the export's message.
    // Commands apply after the frame, and a new window is sized in the frame before it shows.
    harness.get_by_label("Messages").click();
    harness.run_steps(3);
    harness.get_by_label("Clear").click();
    harness.run_steps(2);
    harness.state_mut().as_mut().unwrap().export_to(out.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !out.exists() {
        assert!(Instant::now() < deadline, "the export was not written");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(2);
    let csv = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 81, "a header and one line per photo");
    assert_eq!(lines[1], format!("1,,{}", folder.join("photo00.jpg").display()), "unranked: folder order");
    harness.get_by_label(&format!("{}: 80 photos written", out.display()));
    harness.snapshot("export_written");
    std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
}

/// The heatmap values (`relevance`, by the default method) `alignscope explain --json` prints
/// for each word of `caption` on `photo`.
fn cli_attention(photo: &std::path::Path, caption: &str) -> Vec<(String, Vec<f32>)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alignscope"))
        .args(["--backend", "flex", "explain"])
        .arg(photo)
        .args([caption, "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run alignscope explain");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    e["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["word"].as_str().unwrap().to_string(),
                w["relevance"].as_array().unwrap().iter().map(|a| a.as_f64().unwrap() as f32).collect(),
            )
        })
        .collect()
}

#[test]
fn inspector_heatmap_is_the_explanation_and_follows_the_clicked_word() {
    let Some(mut harness) = settled_app() else { return };
    let caption = "a man with a camera on a tripod";
    let photo = {
        let app = harness.state_mut().as_mut().unwrap();
        app.query = caption.to_string();
        let camera = app
            .gallery
            .items
            .iter()
            .position(|i| i.file_name() == "camera.jpg")
            .expect("camera.jpg in the demo folder");
        app.gallery.selected = Some(camera);
        app.inspector.open = true;
        app.gallery.items[camera].path.clone()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        assert!(app.models.runtime.unavailable.is_none(), "{:?}", app.models.runtime.unavailable);
        if !app.inspector.is_busy()
            && !app.ranking.is_busy()
            && app.inspector.current.as_ref().is_some_and(|c| c.explained.explanation.caption == caption)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no explanation within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(3);
    // The same pair under the other networks, side by side: RACG's attention per word (the same
    // words as SHAN's), DSRAN's map, and each network's score and rank.
    {
        let app = harness.state().as_ref().unwrap();
        let explained = &app.inspector.current.as_ref().unwrap().explained;
        let racg = explained.racg_attention.as_ref().expect("RACG is loaded").as_ref().expect("RACG explains the pair");
        let words = |w: &[(String, Vec<f32>)]| w.iter().map(|(w, _)| w.clone()).collect::<Vec<_>>();
        assert_eq!(words(racg), explained.explanation.words.iter().map(|w| w.word.clone()).collect::<Vec<_>>());
        assert!(
            racg.iter().all(|(_, a)| a.len() == 49 && (a.iter().sum::<f32>() - 1.0).abs() < 1e-3),
            "attention rows sum to 1"
        );
        assert!(explained.dsran_attention.as_ref().is_some_and(|a| a.len() == 49));
        // The detector's objects come with the explanation: the photographer is a person.
        let objects = explained.objects.as_ref().expect("the object detector runs");
        assert!(objects.iter().any(|o| o.label == "person" && o.score > 0.5), "{objects:?}");
        harness.get_by_label(&format!("objects ({})", objects.len()));
        let selected = app.gallery.selected.unwrap();
        let models: Vec<_> = app.ranking.compare(selected).into_iter().map(|m| (m.name, m.rank)).collect();
        // Ranked by the default from the folder's index: the index's networks are compared.
        assert_eq!(models.iter().map(|m| m.0).collect::<Vec<_>>(), ["default", "global"], "{models:?}");
        assert!(models.iter().all(|&(_, rank)| (1..=app.gallery.items.len()).contains(&rank)), "{models:?}");
    }
    harness.get_by_label("Side by side: this pair under each network");
    let cli = cli_attention(&photo, caption);
    let close = |a: &[f32], b: &[f32]| {
        a.len() == 49 && a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
    };
    // The inspector starts on the content word that aligns best.
    let (painted, best) = {
        let app = harness.state().as_ref().unwrap();
        let explanation = &app.inspector.current.as_ref().unwrap().explained.explanation;
        (app.inspector.painted.clone(), explanation.first_word())
    };
    assert!(!["a", "with", "on"].contains(&cli[best].0.as_str()), "starts on a content word, not {}", cli[best].0);
    assert_eq!(app_word(&harness), best);
    assert!(close(&painted, &cli[best].1), "{}: painted {painted:?}\nexplain --json {:?}", cli[best].0, cli[best].1);

    // In a 1280×800 window the heatmap's colour bar and Save are on screen, not below the fold.
    assert_on_screen(&harness, "Save PNG…");
    assert_on_screen(&harness, alignscope::engine::explain::Method::default().meaning());

    // Clicking a word chip shows that word's map instead.
    for word in ["tripod", "camera"] {
        harness.get_by_label(word).click();
        harness.run_steps(3);
        let painted = harness.state().as_ref().unwrap().inspector.painted.clone();
        let want = &cli.iter().find(|(w, _)| w == word).unwrap().1;
        assert!(close(&painted, want), "{word}: painted {painted:?}\nexplain --json {want:?}");
    }
    let attention = |w: &str| &cli.iter().find(|(x, _)| x == w).unwrap().1;
    assert!(!close(attention("camera"), attention("tripod")), "the two words attend differently");
    harness.snapshot("inspector_camera");

    // Pin it, then change the caption: both explanations side by side.
    harness.get_by_label("Pin").click();
    harness.run_steps(2);
    let other = "a man standing on the grass";
    harness.state_mut().as_mut().unwrap().query = other.to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        if !app.inspector.is_busy()
            && !app.ranking.is_busy()
            && app.inspector.current.as_ref().is_some_and(|c| c.explained.explanation.caption == other)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no second explanation within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(3);
    let app = harness.state().as_ref().unwrap();
    let pinned = app.inspector.pinned.as_ref().expect("a pinned explanation");
    assert_eq!(pinned.explained.explanation.caption, caption);
    assert_eq!(pinned.word, 4, "the pinned view keeps its chosen word");
    harness.get_by_label("pinned");
    harness.get_by_label("live");
    for save in harness.get_all_by_label("Save PNG…") {
        assert!(save.rect().max.y <= 800.0, "Save below the fold with Pin on: {:?}", save.rect());
    }
    harness.snapshot("inspector_compare");
}

/// The first widget labelled `label` lies inside the 1280×800 window.
fn assert_on_screen(harness: &Harness<'static, Option<AlignscopeApp>>, label: &str) {
    let node = harness.get_all_by_label(label).next().unwrap_or_else(|| panic!("no {label:?}"));
    let rect = node.rect();
    assert!(rect.max.y <= 800.0 && rect.max.x <= 1280.0, "{label:?} at {rect:?}, outside the window");
}

fn app_word(harness: &Harness<'static, Option<AlignscopeApp>>) -> usize {
    harness.state().as_ref().unwrap().inspector.current.as_ref().unwrap().word
}

/// A Flickr8k-shaped folder of four demo photos with five captions each (test split).
fn tiny_flickr8k(root: &std::path::Path) -> [(&'static str, [&'static str; 5]); 4] {
    let data = [
        (
            "chelsea.jpg",
            [
                "a cat looking at the camera",
                "a tabby cat with green eyes",
                "close up of the face of a cat",
                "an orange and grey cat",
                "a cat",
            ],
        ),
        (
            "coffee.jpg",
            [
                "a cup of coffee on a wooden table",
                "an espresso in a red cup",
                "a coffee cup on a saucer",
                "a cup of coffee with a spoon",
                "coffee",
            ],
        ),
        (
            "astronaut.jpg",
            [
                "a woman in an orange space suit",
                "an astronaut smiling in front of a flag",
                "a female astronaut",
                "a woman astronaut with a helmet",
                "an astronaut",
            ],
        ),
        (
            "camera.jpg",
            [
                "a man with a camera on a tripod",
                "a photographer in a field",
                "a man looking through a camera",
                "a black and white photo of a man with a camera",
                "a cameraman",
            ],
        ),
    ];
    std::fs::create_dir_all(root.join("images")).unwrap();
    let mut tokens = String::new();
    let mut split = String::new();
    for (name, captions) in &data {
        std::fs::copy(demo_folder().join(name), root.join("images").join(name)).unwrap();
        for (k, c) in captions.iter().enumerate() {
            tokens.push_str(&format!("{name}#{k}\t{c}\n"));
        }
        split.push_str(&format!("{name}\n"));
    }
    std::fs::write(root.join("Flickr8k.token.txt"), tokens).unwrap();
    std::fs::write(root.join("Flickr_8k.testImages.txt"), split).unwrap();
    data
}

#[test]
fn dataset_browser_shows_captions_ranks_and_recall() {
    let Some(mut harness) = settled_app() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // A fixed folder name: the snapshot shows it.
    let root = tmp.path().join("flickr8k-mini");
    let data = tiny_flickr8k(&root);
    harness.state_mut().as_mut().unwrap().open_dataset(root.clone(), alignscope::data::flickr8k::Split::Test);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        if app.dataset.as_ref().is_some_and(|d| d.recalls().is_some()) && app.gallery.is_settled() {
            break;
        }
        assert!(Instant::now() < deadline, "the dataset was not embedded within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = {
        let app = harness.state().as_ref().unwrap();
        let names: Vec<String> = app.gallery.items.iter().map(|i| i.file_name()).collect();
        assert_eq!(names, data.map(|(n, _)| n.to_string()), "the gallery shows the split in split-file order");
        let r = app.dataset.as_ref().unwrap().recalls().unwrap();
        // The split ranks from its index, with the default ranker, as folders and `search` do.
        assert_eq!(app.ranking.uses_index(), Some(alignscope::engine::search::SearchModel::Default));
        assert_eq!(app.ranking.loaded_index(app.gallery.generation).map(|i| i.len()), Some(4));
        // Four images: every image is within the top 5 for every caption.
        assert_eq!(r.t2i[1], 100.0, "{r:?}");
        assert!(r.rsum > 300.0 && r.rsum <= 600.0, "{r:?}");
        r
    };
    // Select the cat: its five captions are listed with their ranks; clicking one makes it the query.
    harness.state_mut().as_mut().unwrap().gallery.selected = Some(0);
    harness.run_steps(3);
    harness.get_by_label_contains("a cat looking at the camera");
    harness.get_by_label_contains("a tabby cat with green eyes").click();
    harness.run_steps(2);
    assert_eq!(harness.state().as_ref().unwrap().query, "a tabby cat with green eyes");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        if !app.ranking.is_busy() && app.gallery.items.iter().all(|i| i.score.is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "no ranking within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(3);
    let app = harness.state().as_ref().unwrap();
    let top = app.gallery.items[app.gallery.order[0]].file_name();
    assert_eq!(top, "chelsea.jpg");
    harness.get_by_label_contains("The query is a caption of chelsea.jpg: ranked #1");
    harness.get_by_label_contains("Recall@K (the default ranker)");
    harness.snapshot("dataset_browser");

    // Another split picked in the panel opens that split's images.
    std::fs::write(root.join("Flickr_8k.devImages.txt"), "coffee.jpg\ncamera.jpg\n").unwrap();
    if let Some(d) = harness.state_mut().as_mut().unwrap().dataset.as_mut() {
        d.requested_split = Some(alignscope::data::flickr8k::Split::Dev);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        let names: Vec<String> = app.gallery.items.iter().map(|i| i.file_name()).collect();
        if app.dataset.as_ref().is_some_and(|d| d.split == alignscope::data::flickr8k::Split::Dev) {
            assert_eq!(names, ["coffee.jpg", "camera.jpg"]);
            break;
        }
        assert!(Instant::now() < deadline, "the dev split did not open");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The test split's captions were kept beside its index: reopened, they are read back (the file
    // is not written again) and the figures are the same.
    let cache = root.join(".alignscope/captions-test.bin");
    let written = std::fs::metadata(&cache).and_then(|m| m.modified()).expect("the test split's captions are kept");
    harness.state_mut().as_mut().unwrap().open_dataset(root.clone(), alignscope::data::flickr8k::Split::Test);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        let test = app.dataset.as_ref().filter(|d| d.split == alignscope::data::flickr8k::Split::Test);
        if let Some(again) = test.and_then(|d| d.recalls()) {
            assert_eq!(again, first, "the same figures from the kept captions");
            break;
        }
        assert!(Instant::now() < deadline, "the test split did not reopen");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::metadata(&cache).and_then(|m| m.modified()).unwrap(), written, "read, not rewritten");
}

#[test]
fn an_empty_split_says_so_and_settles() {
    let Some(mut harness) = settled_app() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("flickr8k-empty");
    tiny_flickr8k(&root);
    std::fs::write(root.join("Flickr_8k.testImages.txt"), "").unwrap();
    harness.state_mut().as_mut().unwrap().open_dataset(root, alignscope::data::flickr8k::Split::Test);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Settled: opened, nothing running (its index starts in the frame the split arrives).
    let busy = |app: &AlignscopeApp| app.dataset.as_ref().is_none_or(|d| d.is_busy()) || app.ranking.is_busy();
    while busy(harness.state().as_ref().unwrap()) {
        harness.step();
        assert!(Instant::now() < deadline, "the empty split did not open and settle");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing to embed: no background work is started for it again, frame after frame.
    for _ in 0..20 {
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
        let app = harness.state().as_ref().unwrap();
        assert!(!app.dataset.as_ref().unwrap().is_busy() && !app.ranking.is_busy());
    }
    harness.get_by_label_contains("this split lists no images");
}

#[test]
fn a_karpathy_json_opened_as_a_file_is_indexed_under_its_folder() {
    let Some(mut harness) = settled_app() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("flickr30k-mini");
    std::fs::create_dir_all(root.join("images")).unwrap();
    let names = ["chelsea.jpg", "coffee.jpg", "rocket.jpg"];
    let mut images = Vec::new();
    for name in names {
        std::fs::copy(demo_folder().join(name), root.join("images").join(name)).unwrap();
        let stem = name.trim_end_matches(".jpg");
        let sentences: Vec<String> = (0..5).map(|k| format!(r#"{{"raw": "a photo of a {stem} {k}"}}"#)).collect();
        images.push(format!(r#"{{"filename": "{name}", "split": "test", "sentences": [{}]}}"#, sentences.join(",")));
    }
    let json = root.join("dataset_flickr30k.json");
    std::fs::write(&json, format!(r#"{{"images": [{}]}}"#, images.join(","))).unwrap();
    harness.state_mut().as_mut().unwrap().open_dataset(json, alignscope::data::flickr8k::Split::Test);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        if app.dataset.as_ref().is_some_and(|d| d.recalls().is_some()) {
            assert_eq!(app.ranking.loaded_index(app.gallery.generation).map(|i| i.len()), Some(3));
            break;
        }
        assert!(Instant::now() < deadline, "the split was not indexed and scored within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(root.join(".alignscope/index.bin").is_file(), "the index lives in the JSON file's folder");
    assert!(root.join(".alignscope/captions-test.bin").is_file());
}

/// A copy of the demo photos `names`, ranked in the window by `model` for `caption`: the folder
/// (its temporary directory lives as long as the result) and the gallery's order, best first.
fn ranked_in_window(
    model: alignscope::app::RankModel,
    names: &[&str],
    caption: &str,
) -> Option<(tempfile::TempDir, std::path::PathBuf, Vec<String>)> {
    let settings = Settings { rank_model: model, ..Settings::default() };
    ranked_with(settings, names, caption).map(|(tmp, folder, order, _)| (tmp, folder, order))
}

type Ranked = (tempfile::TempDir, std::path::PathBuf, Vec<String>, Harness<'static, Option<AlignscopeApp>>);

/// [`ranked_in_window`] with any `settings`, the window's harness returned too.
fn ranked_with(settings: Settings, names: &[&str], caption: &str) -> Option<Ranked> {
    let model = settings.rank_model;
    if probe_adapter().is_none() {
        common::skip_or_fail("a wgpu adapter for egui_kittest's renderer");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir(&folder).unwrap();
    for name in names {
        std::fs::copy(demo_folder().join(name), folder.join(name)).unwrap();
    }
    let mut harness = harness_on(folder.clone(), settings);
    harness.step();
    harness.state_mut().as_mut().unwrap().query = caption.into();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        assert_eq!(app.settings.rank_model, model, "the model stays chosen (its weights load)");
        if !app.ranking.is_busy()
            && app.gallery.items.len() == names.len()
            && app.gallery.items.iter().all(|i| i.score.is_some())
        {
            break;
        }
        assert!(Instant::now() < deadline, "no {model:?} ranking within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    let app = harness.state().as_ref().unwrap();
    let order = app.gallery.order.iter().map(|&i| app.gallery.items[i].file_name()).collect();
    Some((tmp, folder, order, harness))
}

/// With the objects setting SHAN ranks from an index of the photos' cells and detected objects
/// (kept apart from the grid's), and the status bar says so; switching it off waits for a restart.
#[test]
fn the_objects_setting_indexes_detected_objects_as_shan_regions() {
    use alignscope::app::RankModel;
    let settings = Settings { rank_model: RankModel::Shan, objects: 4, ..Settings::default() };
    let names = ["chelsea.jpg", "camera.jpg", "coffee.jpg", "astronaut.jpg"];
    let Some((_tmp, folder, order, mut harness)) = ranked_with(settings, &names, "a cat") else { return };
    assert_eq!(order[0], "chelsea.jpg");
    let index = std::fs::read_dir(folder.join(".alignscope"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with("index-"))
        .expect("an index of its own");
    let file = alignscope::data::index_file::IndexFile::load(&folder.join(".alignscope").join(index)).unwrap();
    assert_eq!(file.header.regions, 49 + 4);
    assert!(!folder.join(".alignscope/index.bin").exists(), "no grid index was needed");
    harness.get_by_label("SHAN + 4 objects");
    harness.get_by_label("Settings").click();
    harness.run_steps(2);
    harness.get_by_label_contains("Detected objects as SHAN regions").click();
    harness.run_steps(2);
    let app = harness.state().as_ref().unwrap();
    assert_eq!((app.settings.objects, app.objects), (0, 4), "saved for the next start; this one keeps its runtime");
    harness.get_by_label("restart for the grid alone");
}

/// A 4-photo folder ranked by `model` for "a man holding a camera": camera.jpg comes first.
fn camera_first_under(model: alignscope::app::RankModel) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let names = ["chelsea.jpg", "camera.jpg", "coffee.jpg", "astronaut.jpg"];
    let (tmp, folder, order) = ranked_in_window(model, &names, "a man holding a camera")?;
    assert_eq!(order[0], "camera.jpg", "{model:?}");
    Some((tmp, folder))
}

#[test]
fn shan_ranks_the_folder_from_its_persistent_index() {
    let Some((_tmp, folder)) = camera_first_under(alignscope::app::RankModel::Shan) else { return };
    assert!(folder.join(".alignscope/index.bin").is_file(), "the index persists in the folder");
}

/// The window and `alignscope search` rank a folder in the same order, with each model they share,
/// from the same index (the window's run writes it, the CLI's reads it unchanged).
#[test]
fn the_window_ranks_the_demo_folder_as_search_does() {
    use alignscope::app::RankModel;
    let names: Vec<String> = std::fs::read_dir(demo_folder())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let caption = "a cup of coffee on a table";
    for (model, flag) in [(RankModel::Default, "default"), (RankModel::Global, "global"), (RankModel::Shan, "shan")] {
        let Some((_tmp, folder, window)) = ranked_in_window(model, &names, caption) else { return };
        let dir = folder.to_str().unwrap();
        let (ok, out, err) = common::alignscope(&["search", dir, caption, "--model", flag, "--top", "100"]);
        assert!(ok, "{err}");
        assert!(err.contains("0 to embed"), "search reuses the window's index: {err}");
        let cli: Vec<String> = out
            .lines()
            .filter_map(|l| std::path::Path::new(l.split('\t').nth(1)?).file_name()?.to_str().map(String::from))
            .collect();
        assert_eq!(window, cli, "{model:?}: the window's order and search's");
    }
}

#[test]
fn racg_and_dsran_rank_the_folder() {
    for model in [alignscope::app::RankModel::Racg, alignscope::app::RankModel::Dsran] {
        let Some((_tmp, folder)) = camera_first_under(model) else { return };
        assert!(!folder.join(".alignscope").exists(), "{model:?} keeps nothing in the folder");
    }
}

/// A folder holding two altered copies of the camera photo: once indexed, "hide near-duplicates"
/// leaves the best-ranked camera photo with a "+2 near-duplicates" badge, and the count says so.
#[test]
fn near_duplicates_hide_behind_the_best_ranked_copy() {
    if probe_adapter().is_none() {
        return common::skip_or_fail("a wgpu adapter for egui_kittest's renderer");
    }
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir(&folder).unwrap();
    for name in ["chelsea.jpg", "camera.jpg", "coffee.jpg", "astronaut.jpg"] {
        std::fs::copy(demo_folder().join(name), folder.join(name)).unwrap();
    }
    let camera = image::open(demo_folder().join("camera.jpg")).unwrap();
    camera.brighten(20).save(folder.join("camera-brighter.png")).unwrap();
    camera.save(folder.join("camera-copy.png")).unwrap();
    let mut harness = harness_on(folder.clone(), Settings::default());
    harness.step();
    harness.state_mut().as_mut().unwrap().query = "a man holding a camera".into();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        if !app.ranking.is_busy() && app.gallery.has_groups() && app.gallery.items.iter().all(|i| i.score.is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "no ranking and groups within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(2);
    assert_eq!(harness.state().as_ref().unwrap().gallery.order.len(), 6, "all shown until asked");
    harness.get_by_label("hide near-duplicates").click();
    harness.run_steps(3);
    let app = harness.state().as_ref().unwrap();
    let shown: Vec<String> = app.gallery.order.iter().map(|&i| app.gallery.items[i].file_name()).collect();
    assert_eq!(shown.len(), 4, "{shown:?}");
    assert!(shown[0].starts_with("camera"), "the best-ranked copy stays first: {shown:?}");
    assert_eq!(shown.iter().filter(|n| n.starts_with("camera")).count(), 1, "{shown:?}");
    assert!(app.settings.hide_duplicates, "the choice is a setting");
    harness.get_by_label("hide near-duplicates (2 hidden)");
    harness.snapshot("near_duplicates_hidden");
}

/// Ranked by the default model, tiles below the calibrated weak-match line are marked weak, and a
/// caption nothing in the folder matches says so in the status bar.
#[test]
fn weak_matches_are_marked_and_a_caption_without_a_match_says_so() {
    let Some(mut harness) = settled_app() else { return };
    let rank = |harness: &mut Harness<'static, Option<AlignscopeApp>>, caption: &str| {
        harness.state_mut().as_mut().unwrap().query = caption.to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            harness.step();
            let app = harness.state().as_ref().unwrap();
            let scored = app.gallery.items.iter().all(|i| i.score.is_some());
            if !app.ranking.is_busy() && scored && app.ranking.index.scores.caption == caption {
                break;
            }
            assert!(Instant::now() < deadline, "{caption:?} not ranked within a minute");
            std::thread::sleep(Duration::from_millis(20));
        }
        harness.run_steps(3);
    };
    rank(&mut harness, "a man holding a camera");
    {
        let app = harness.state().as_ref().unwrap();
        let (line, _) = app.gallery.weak_below.expect("the committed bank is calibrated");
        let best = app.gallery.items[app.gallery.order[0]].score.unwrap();
        assert!(best >= line, "camera.jpg ({best}) is a good match, above {line}");
        assert!(app.gallery.best_is_weak().is_none());
        let weak = app.gallery.items.iter().filter(|i| i.score.is_some_and(|s| s < line)).count();
        assert!(weak >= 1, "the textures and micrographs are weak matches for a man with a camera");
    }
    assert!(harness.query_by_label("no photo matches well").is_none());
    rank(&mut harness, "a man riding a motorcycle on a dirt road");
    assert!(harness.state().as_ref().unwrap().gallery.best_is_weak().is_some(), "no motorcycle in the demo folder");
    harness.get_by_label("no photo matches well");
}

/// Two folders opened one after the other: "Recent" lists both, and picking the first reopens it.
#[test]
fn recent_folders_reopen_from_the_toolbar() {
    if probe_adapter().is_none() {
        return common::skip_or_fail("a wgpu adapter for egui_kittest's renderer");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    for (dir, name) in [(&first, "chelsea.jpg"), (&second, "coffee.jpg")] {
        std::fs::create_dir(dir).unwrap();
        std::fs::copy(demo_folder().join(name), dir.join(name)).unwrap();
    }
    let mut harness = harness_on(first.clone(), Settings::default());
    harness.run_steps(2);
    harness.state_mut().as_mut().unwrap().open_folder(second.clone());
    harness.run_steps(2);
    assert_eq!(harness.state().as_ref().unwrap().settings.recent_folders[..2], [second.clone(), first.clone()]);
    harness.get_by_label("Recent").click();
    harness.run_steps(2);
    harness.get_by_label(&first.display().to_string()).click();
    harness.run_steps(3);
    let app = harness.state().as_ref().unwrap();
    assert_eq!(app.gallery.folder.as_deref(), Some(first.as_path()), "the first folder is open again");
    assert_eq!(app.settings.recent_folders[0], first, "and most recent");
}

/// A folder's thumbnails are written to the disk cache, and a second window takes them from
/// there: the photo's bytes are replaced by same-sized garbage with its old mtime (the cache's
/// key), which no decoder could have made a thumbnail of.
#[test]
fn thumbnails_come_back_from_the_disk_cache() {
    if probe_adapter().is_none() {
        return common::skip_or_fail("a wgpu adapter for egui_kittest's renderer");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (folder, cache) = (tmp.path().join("photos"), tmp.path().join("cache"));
    std::fs::create_dir(&folder).unwrap();
    let photo = folder.join("chelsea.jpg");
    std::fs::copy(demo_folder().join("chelsea.jpg"), &photo).unwrap();
    let thumbnail = |cache: &std::path::Path| first_thumbnail(&folder, 1.0, Some(cache)).is_some();
    assert!(thumbnail(&cache), "decoded");
    let entries = walk_files(&cache);
    assert_eq!(entries.len(), 1, "one entry written: {entries:?}");
    let modified = std::fs::metadata(&photo).unwrap().modified().unwrap();
    let size = std::fs::metadata(&photo).unwrap().len() as usize;
    std::fs::write(&photo, vec![0x5a; size]).unwrap();
    std::fs::File::options().write(true).open(&photo).unwrap().set_modified(modified).unwrap();
    assert!(thumbnail(&cache), "served from the cache although the file no longer decodes");
    assert!(!thumbnail(&tmp.path().join("empty-cache")), "without the cache the garbage fails to decode");
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk_files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// On a screen of 2 pixels per point the thumbnails are decoded at twice the size (512 px on the
/// long side instead of 256), so they stay sharp.
#[test]
fn thumbnails_follow_the_screen_s_pixel_density() {
    if probe_adapter().is_none() {
        return common::skip_or_fail("a wgpu adapter for egui_kittest's renderer");
    }
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("photos");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(demo_folder().join("chelsea.jpg"), folder.join("chelsea.jpg")).unwrap();
    let side = |ppp: f32| first_thumbnail(&folder, ppp, None).expect("decoded");
    assert_eq!(side(1.0), 256);
    assert_eq!(side(2.0), 512);
}

/// A window on `folder` (one photo) at `pixels_per_point`, with its thumbnails cached in `cache`
/// (else the user's): the long side of the first photo's thumbnail once decoded, None when it
/// failed.
fn first_thumbnail(folder: &std::path::Path, pixels_per_point: f32, cache: Option<&std::path::Path>) -> Option<usize> {
    let (folder, cache) = (folder.to_path_buf(), cache.map(std::path::Path::to_path_buf));
    let mut harness =
        Harness::builder().with_size([1280.0, 800.0]).with_pixels_per_point(pixels_per_point).wgpu().build_ui_state(
            move |ui, app: &mut Option<AlignscopeApp>| {
                let app = app.get_or_insert_with(|| {
                    let mut app =
                        AlignscopeApp::new(ui.ctx().clone(), Settings::default(), Ok(Compute::flex("test")), None);
                    if let Some(cache) = &cache {
                        app.gallery.thumb_cache = Some(alignscope::data::thumb_cache::ThumbCache::new(cache.clone()));
                    }
                    app.open_folder(folder.clone());
                    app
                });
                app.poll(ui.ctx());
                app.show(ui);
            },
            None,
        );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        let app = harness.state().as_ref().unwrap();
        match app.gallery.items.first().map(|i| &i.thumb) {
            Some(Thumb::Ready(texture)) => return texture.size().into_iter().max(),
            Some(Thumb::Failed(_)) => return None,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no thumbnail within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
}
