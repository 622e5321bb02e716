//! The app shell rendered by egui_kittest on wgpu: the demo folder as a grid of real thumbnails.

mod common;

use std::time::{Duration, Instant};

use alignscope::app::{AlignscopeApp, Settings, Thumb, demo_folder};
use alignscope::engine::backend::{Compute, probe_adapter};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn harness() -> Harness<'static, Option<AlignscopeApp>> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .build_ui_state(
            |ui, app: &mut Option<AlignscopeApp>| {
                let app = app.get_or_insert_with(|| {
                    AlignscopeApp::new(ui.ctx().clone(), Settings::default(), Ok(Compute::flex("test")), Some(&demo_folder()))
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
    harness.event(egui::Event::PointerButton { pos, button: egui::PointerButton::Primary, pressed: true, modifiers: Default::default() });
    harness.event(egui::Event::PointerButton { pos, button: egui::PointerButton::Primary, pressed: false, modifiers: Default::default() });
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
    assert_eq!(name_at(&harness, 0), "astronaut.jpg", "folder order before a query");
    for (caption, expected) in [("a cup of coffee on a wooden table", "coffee.jpg"), ("a cat", "chelsea.jpg")] {
        harness.state_mut().as_mut().unwrap().query = caption.to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            harness.step();
            let app = harness.state().as_ref().unwrap();
            if !app.ranking.is_busy() && app.gallery.items.iter().all(|i| i.score.is_some()) && name_at(&harness, 0) == expected {
                break;
            }
            assert!(Instant::now() < deadline, "{caption:?}: top result is {}, expected {expected}", name_at(&harness, 0));
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
