//! UI frame time while the app works: the Flickr8k 1K test split opened in the gallery (1,000
//! thumbnails decoding, 1,000 photos and 5,000 captions embedding in the background), a caption
//! typed into the query box, the grid re-ranked. Each frame is the UI thread's whole work (egui
//! logic, layout, tessellation; kittest's headless backend, so the GPU submit is not included).
//!
//! Then the whole Flickr8k image folder (8,091 photos) opened as a folder and scrolled through
//! continuously while its photos embed: frame times and the thumbnails held (the cache's limit).
//!
//! `cargo bench --bench frame_time` (needs ../shared/data/flickr8k).

use std::time::{Duration, Instant};

use alignscope::app::{AlignscopeApp, Settings};
use alignscope::engine::backend::Compute;
use egui_kittest::Harness;

type App = Harness<'static, Option<AlignscopeApp>>;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/flickr8k");
    if !root.join("Flickr8k.token.txt").is_file() {
        eprintln!("skipped: {} not found", root.display());
        return;
    }
    ranked_split(&root);
    scrolled_folder(&root.join("images"));
}

fn harness() -> App {
    Harness::builder().with_size([1280.0, 800.0]).build_ui_state(
        |ui, app: &mut Option<AlignscopeApp>| {
            let app = app.get_or_insert_with(|| {
                AlignscopeApp::new(ui.ctx().clone(), Settings::default(), Ok(Compute::flex("bench")), None)
            });
            app.poll(ui.ctx());
            app.show(ui);
        },
        None,
    )
}

fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN)
}

fn ranked_split(root: &std::path::Path) {
    let mut harness = harness();
    harness.step();
    harness
        .state_mut()
        .as_mut()
        .expect("app")
        .open_dataset(root.to_path_buf(), alignscope::data::flickr8k::Split::Test);
    let mut frames: Vec<(f64, bool, usize)> = Vec::new(); // (ms, ranked, photos embedded)
    let started = Instant::now();
    let mut typed = false;
    while started.elapsed() < Duration::from_secs(90) {
        let t = Instant::now();
        harness.step();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let app = harness.state().as_ref().expect("app");
        let embedded = app.ranking.embedded();
        frames.push((ms, app.gallery.items.iter().any(|i| i.score.is_some()), embedded));
        if !typed && app.gallery.items.len() == 1000 && embedded >= 200 {
            typed = true;
            harness.state_mut().as_mut().expect("app").query = "two dogs playing in the snow".into();
        }
        // ~60 frames per second at most, like a window.
        std::thread::sleep(Duration::from_millis(16).saturating_sub(t.elapsed()));
    }
    let app = harness.state().as_ref().expect("app");
    let mut all: Vec<f64> = frames.iter().map(|f| f.0).collect();
    let ranked: Vec<f64> = frames.iter().filter(|f| f.1).map(|f| f.0).collect();
    let q = |v: &mut Vec<f64>, p: f64| quantile(v, p);
    let mut ranked_sorted = ranked.clone();
    println!(
        "frame_time: {} frames over 90 s, gallery of {} photos, {} embedded by the end",
        frames.len(),
        app.gallery.items.len(),
        app.ranking.embedded()
    );
    println!(
        "  all frames:            median {:.1} ms  p95 {:.1} ms  max {:.1} ms",
        q(&mut all, 0.5),
        q(&mut all, 0.95),
        q(&mut all, 1.0)
    );
    println!(
        "  frames with a ranking: median {:.1} ms  p95 {:.1} ms  max {:.1} ms  ({} frames, while embedding continued)",
        q(&mut ranked_sorted, 0.5),
        q(&mut ranked_sorted, 0.95),
        q(&mut ranked_sorted, 1.0),
        ranked.len()
    );
    let over = all.iter().filter(|&&ms| ms > 33.0).count();
    println!("  frames over 33 ms: {over} of {} ({:.1} %)", all.len(), 100.0 * over as f64 / all.len().max(1) as f64);
}

fn scrolled_folder(images: &std::path::Path) {
    let mut harness = harness();
    harness.step();
    harness.state_mut().as_mut().expect("app").open_folder(images.to_path_buf());
    let mut frames = Vec::new();
    let mut held_max = 0;
    let started = Instant::now();
    let mut next_scroll = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if Instant::now() >= next_scroll && harness.state().as_ref().is_some_and(|a| !a.gallery.items.is_empty()) {
            // One screen down every 150 ms, over the grid.
            harness.event(egui::Event::PointerMoved(egui::pos2(500.0, 400.0)));
            harness.event(egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Point,
                delta: egui::vec2(0.0, -700.0),
                phase: egui::TouchPhase::Move,
                source: egui::MouseWheelSource::Unknown,
                modifiers: Default::default(),
            });
            next_scroll = Instant::now() + Duration::from_millis(150);
        }
        let t = Instant::now();
        harness.step();
        frames.push(t.elapsed().as_secs_f64() * 1e3);
        held_max = held_max.max(harness.state().as_ref().expect("app").gallery.textures_held());
        std::thread::sleep(Duration::from_millis(16).saturating_sub(t.elapsed()));
    }
    let app = harness.state().as_ref().expect("app");
    let last_seen = app.gallery.items.iter().map(|i| i.last_seen).max().unwrap_or(0);
    let reached = app.gallery.items.iter().filter(|i| i.last_seen > 0).count();
    let over = frames.iter().filter(|&&ms| ms > 33.0).count();
    println!(
        "scrolled folder: {} photos, {} frames over 60 s, {} tiles shown at least once (last frame {last_seen}), {} photos embedded",
        app.gallery.items.len(),
        frames.len(),
        reached,
        app.ranking.embedded()
    );
    println!(
        "  frames: median {:.1} ms  p95 {:.1} ms  max {:.1} ms; over 33 ms: {over}",
        quantile(&mut frames, 0.5),
        quantile(&mut frames, 0.95),
        quantile(&mut frames, 1.0)
    );
    println!(
        "  thumbnails held: at most {held_max} (limit {}), {} at the end",
        app.gallery.limit(),
        app.gallery.textures_held()
    );
}
