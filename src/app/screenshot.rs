//! `--screenshot FILE`: wait until the folder is loaded, capture the window, save, quit.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::notifications::{Level, Notifications};

/// Give up waiting for thumbnails after this long and capture what is there.
const PATIENCE: Duration = Duration::from_secs(400);

pub struct Plan {
    path: PathBuf,
    started: Instant,
    settled_frames: u32,
    requested: bool,
    result: Arc<Mutex<Option<Result<(), String>>>>,
}

impl Plan {
    pub fn new(path: PathBuf) -> Self {
        Self { path, started: Instant::now(), settled_frames: 0, requested: false, result: Arc::default() }
    }

    pub fn step(&mut self, ctx: &egui::Context, settled: bool, notes: &mut Notifications) {
        if self.requested {
            let done = self.result.lock().ok().and_then(|mut r| r.take());
            match done {
                Some(Ok(())) => {
                    for n in &notes.items {
                        eprintln!("message: {}", n.text);
                    }
                    eprintln!("screenshot written to {}", self.path.display());
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                Some(Err(e)) => {
                    eprintln!("screenshot failed: {e}");
                    notes.push(Level::Error, e);
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                None => ctx.request_repaint_after(Duration::from_millis(50)),
            }
            return;
        }
        // A few settled frames so textures are uploaded and layout has converged.
        if settled || self.started.elapsed() > PATIENCE {
            self.settled_frames += 1;
        }
        if self.settled_frames < 3 {
            ctx.request_repaint_after(Duration::from_millis(50));
            return;
        }
        self.requested = true;
        let (path, result, waker) = (self.path.clone(), self.result.clone(), ctx.clone());
        ctx.request_screenshot(move |image| {
            let saved = save_png(&path, &image);
            if let Ok(mut r) = result.lock() {
                *r = Some(saved);
            }
            waker.request_repaint();
        });
    }
}

fn save_png(path: &std::path::Path, image: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = image.size;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, bytes).ok_or("screenshot has an inconsistent size")?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    buffer.save(path).map_err(|e| format!("{}: {e}", path.display()))
}
