//! Progress and messages on stderr for long commands: one indicatif bar per stage (count, rate,
//! ETA), drawn only when stderr is a terminal and not under `-q`, so pipes and logs get the
//! messages alone; messages print above the bar instead of tearing it. `-v`/`-q` also set the
//! level of the `log` records wgpu, eframe and burn write (warnings by default).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Route `log` records to stderr at the level `-v` (info), `-vv` (debug), `-vvv` (trace) or `-q`
/// (errors only, no progress bars) ask for; `RUST_LOG` overrides.
pub fn init(verbose: u8, quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    let level = match (quiet, verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, 2) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level).format_timestamp(None);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    // A second init (tests call `run` more than once) keeps the first logger.
    let _ = builder.try_init();
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The bar of the stage now running (a new stage replaces it).
#[derive(Default)]
pub struct Progress {
    /// The stage, its bar and when it started (the rate is counted from there: work that arrives
    /// in batches would show indicatif's instantaneous rate as wild swings).
    current: Mutex<Option<(String, ProgressBar, std::time::Instant)>>,
}

static PROGRESS: std::sync::LazyLock<Progress> = std::sync::LazyLock::new(Progress::default);

/// The process's progress: one command runs at a time.
pub fn global() -> &'static Progress {
    &PROGRESS
}

impl Progress {
    /// `done` of `total` in `stage` (a new bar when the stage changes), with `detail` after it.
    pub fn update(&self, stage: &str, done: u64, total: u64, detail: &str) {
        let Ok(mut current) = self.current.lock() else { return };
        if current.as_ref().is_none_or(|(s, _, _)| s != stage) {
            if let Some((_, old, _)) = current.take() {
                old.finish_and_clear();
            }
            let bar = ProgressBar::with_draw_target(Some(total), target());
            let template = "{prefix} [{bar:30}] {pos}/{len} {msg}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(stage.to_string());
            *current = Some((stage.to_string(), bar, std::time::Instant::now()));
        }
        if let Some((_, bar, started)) = current.as_ref() {
            let seconds = started.elapsed().as_secs_f64();
            let rate = done as f64 / seconds.max(1e-3);
            let eta = if done > 0 && done < total { (total - done) as f64 / rate } else { 0.0 };
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(format!("{rate:.1}/s, ETA {eta:.0} s {detail}"));
        }
    }

    /// A line on stderr, above the bar when one is drawn.
    pub fn println(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        match self.current.lock().ok().as_ref().and_then(|c| c.as_ref().map(|(_, bar, _)| bar.clone())) {
            Some(bar) if !bar.is_hidden() => bar.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    /// An informational line: as [`Self::println`], left out under `-q`.
    pub fn info(&self, line: impl AsRef<str>) {
        if !quiet() {
            self.println(line);
        }
    }

    /// Take the bar off the terminal (what it measured is in the lines printed around it).
    pub fn finish(&self) {
        if let Ok(mut current) = self.current.lock()
            && let Some((_, bar, _)) = current.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// stderr when it is a terminal (indicatif hides the bar otherwise) and not `-q`.
fn target() -> ProgressDrawTarget {
    if quiet() { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() }
}
