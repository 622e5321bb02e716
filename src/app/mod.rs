//! The egui app: gallery, query bar, status bar. Only this module knows about egui.

mod commands;
mod dataset;
mod events;
mod export;
mod gallery;
mod index_ranking;
mod inspector;
mod models;
mod notifications;
mod ranking;
mod screenshot;
mod settings;
mod status;
mod system_open;
mod toolbar;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::backend::{self, BackendRequest, Compute};
use crate::engine::jobs::Waker;

use crate::engine::rank::RankerModel;
pub use commands::{Command, TileAction};
pub use dataset::Dataset;
use events::{Event, Events, Task};
pub use gallery::{Gallery, Thumb};
pub use inspector::Inspector;
pub use models::Models;
pub use notifications::{Level, Notifications};
use ranking::ModelScore;
pub use settings::{RankModel, Settings, ThumbSize};

/// How the window was asked to start (`alignscope gui …`).
#[derive(Clone, Debug, Default)]
pub struct GuiOptions {
    pub folder: Option<PathBuf>,
    pub backend: Option<BackendRequest>,
    /// Write a PNG of the window once everything is loaded, then quit (scripts, tests).
    pub screenshot: Option<PathBuf>,
    /// Start with this caption in the query box.
    pub query: Option<String>,
    /// Once the folder is ranked, select its N-th photo (1 = best) and open the inspector.
    pub select: Option<usize>,
    /// Open this Flickr8k folder's split in the dataset browser instead of a photo folder.
    pub dataset: Option<(PathBuf, crate::data::flickr8k::Split)>,
    /// Detected objects per photo as SHAN's regions, instead of the setting.
    pub objects: Option<usize>,
}

/// The bundled demo photos (beside the models: `assets/demo` in a checkout).
pub use crate::features::demo_dir as demo_folder;

/// Open the window. Blocks until it is closed.
pub fn run(options: GuiOptions) -> anyhow::Result<()> {
    let mut wgpu_options = egui_wgpu::WgpuConfiguration::default();
    if let egui_wgpu::WgpuSetup::CreateNew(create) = &mut wgpu_options.wgpu_setup {
        // The model shares this device, so ask for everything the adapter has (burn needs
        // SHADER_FLOAT32_ATOMIC, which wgpu's default descriptor leaves out).
        create.device_descriptor = Arc::new(backend::device_descriptor);
    }
    let scripted = options.screenshot.is_some();
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("alignscope")
            .with_app_id("alignscope")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options,
        // A scripted screenshot run should look the same every time.
        persist_window: !scripted,
        ..Default::default()
    };
    eframe::run_native(
        "alignscope",
        native,
        Box::new(move |cc| Ok(Box::new(AlignscopeApp::from_creation(cc, options)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// The most the thumbnail cache keeps on disk (about 10,000 photos: ~100 KB per 256-px PNG).
const THUMB_CACHE_BYTES: u64 = 1 << 30;

pub struct AlignscopeApp {
    pub settings: Settings,
    pub compute: Result<Compute, String>,
    pub gallery: Gallery,
    pub query: String,
    /// The loaded models, one owner; the panels borrow them.
    pub models: Models,
    pub ranking: ranking::Ranking,
    pub inspector: Inspector,
    pub notes: Notifications,
    /// `--select N`, applied once the folder is ranked.
    pending_select: Option<usize>,
    /// The inspector's per-model scores and ranks, kept while the photo, the caption and the
    /// embeddings are unchanged (ranking every photo per frame costs with 10,000 photos).
    comparison: Option<((usize, String, u64), Vec<ModelScore>)>,
    /// The open dataset split (the gallery shows its images), and the jobs that open one.
    pub dataset: Option<Dataset>,
    /// The latest `open_dataset`'s number: only its split is shown.
    dataset_request: u64,
    waker: Waker,
    /// Dialogs, dataset reads, exports and the backend check: one stream of events.
    events: Events,
    /// The photo the gallery is ranked by ("Find similar"), until a caption ranking replaces it
    /// (the ranking's version then moves on).
    pub similar_to: Option<(PathBuf, u64)>,
    /// A dropped or picked photo to rank the folder by, once its folder's index is ready.
    pending_similar: Option<PathBuf>,
    screenshot: Option<screenshot::Plan>,
    /// The saved backend differs from the running one until restart.
    backend_pending: bool,
    /// Detected objects per photo SHAN's runtime was loaded with (the setting applies at start).
    pub objects: usize,
    /// The objects setting was changed since start.
    objects_pending: bool,
    persist: bool,
}

impl AlignscopeApp {
    fn from_creation(cc: &eframe::CreationContext<'_>, options: GuiOptions) -> Self {
        let persist = options.screenshot.is_none();
        let settings: Settings = match cc.storage {
            Some(storage) if persist => eframe::get_value(storage, settings::STORAGE_KEY).unwrap_or_default(),
            _ => Settings::default(),
        };
        let request = options.backend.unwrap_or(settings.backend);
        let compute = match &cc.wgpu_render_state {
            Some(rs) => Compute::from_shared(request, &rs.instance, &rs.adapter, &rs.device, &rs.queue)
                .map_err(|e| e.to_string()),
            None if request == BackendRequest::Wgpu => Err(backend::BackendError::NoAdapter.to_string()),
            None => Ok(Compute::flex("the window has no wgpu renderer: flex (CPU)")),
        };
        let folder = options.folder.clone().or_else(|| settings.last_folder.clone().filter(|f| f.is_dir()));
        // A `gui --objects N` runs with N without changing the saved setting.
        let saved_objects = settings.objects;
        let running = Settings { objects: options.objects.unwrap_or(saved_objects), ..settings };
        let mut app = Self::new(cc.egui_ctx.clone(), running, compute, folder.as_deref());
        app.settings.objects = saved_objects;
        app.persist = persist;
        app.screenshot = options.screenshot.map(screenshot::Plan::new);
        app.query = options.query.unwrap_or_default();
        app.select_when_ranked(options.select);
        if let Some((root, split)) = options.dataset {
            app.open_dataset(root, split);
        }
        app
    }

    /// Open a dataset's split in the dataset browser (read in the background): a Flickr8k folder,
    /// a Karpathy-split JSON, or a folder holding one.
    pub fn open_dataset(&mut self, root: PathBuf, split: crate::data::flickr8k::Split) {
        self.dataset_request += 1;
        let request = self.dataset_request;
        self.events
            .start(Task::DatasetOpen, move || Event::DatasetOpened { request, result: dataset::open(root, split) });
    }

    fn pick_dataset(&mut self) {
        self.events.start_once(Task::DatasetDialog, || {
            let dialog =
                rfd::FileDialog::new().set_title("Open a dataset folder (Flickr8k, or one with a dataset_*.json)");
            Event::Chosen(Task::DatasetDialog, dialog.pick_folder())
        });
    }

    /// Select the N-th photo in display order (1 = best) once the folder is loaded and ranked,
    /// and open the inspector on it.
    pub fn select_when_ranked(&mut self, n: Option<usize>) {
        self.pending_select = n.map(|n| n.max(1));
    }

    /// The app without a window (tests drive it through egui_kittest).
    pub fn new(
        ctx: egui::Context,
        settings: Settings,
        compute: Result<Compute, String>,
        folder: Option<&Path>,
    ) -> Self {
        let waker: Waker = Arc::new(move || ctx.request_repaint());
        let events = Events::new(waker.clone());
        let mut notes = Notifications::default();
        match &compute {
            Ok(c) => notes.push(Level::Info, c.describe()),
            Err(e) => notes.push(Level::Error, format!("model backend unavailable: {e}")),
        }
        let objects = settings.objects;
        let mut app = Self {
            objects,
            settings,
            compute,
            gallery: Gallery::default(),
            query: String::new(),
            models: Models::default(),
            ranking: ranking::Ranking::default(),
            inspector: Inspector::default(),
            notes,
            pending_select: None,
            comparison: None,
            dataset: None,
            dataset_request: 0,
            waker,
            events,
            similar_to: None,
            pending_similar: None,
            screenshot: None,
            backend_pending: false,
            objects_pending: false,
            persist: false,
        };
        if let Ok(compute) = &app.compute {
            app.models = Models::start(compute, app.waker.clone(), app.objects);
            let compute = compute.clone();
            // A first op on the model's device: proves the shared device works.
            app.events.start(Task::BackendCheck, move || Event::BackendChecked(crate::engine::doctor::check(&compute)));
        }
        app.gallery.thumb_cache = crate::data::thumb_cache::ThumbCache::user();
        if let Some(cache) = app.gallery.thumb_cache.clone() {
            // Bounded: the oldest thumbnails go past 1 GB (in the background, not waited on).
            std::thread::spawn(move || cache.prune(THUMB_CACHE_BYTES));
        }
        app.open_folder(folder.map(Path::to_path_buf).unwrap_or_else(demo_folder));
        app
    }

    pub fn open_folder(&mut self, dir: PathBuf) {
        if !dir.is_dir() {
            self.notes.push(Level::Error, format!("{}: not a folder", dir.display()));
            return;
        }
        self.pending_similar = None;
        self.gallery.open(&dir, self.waker.clone());
        self.settings.remember_folder(&dir);
        if let Some(d) = self.dataset.take() {
            d.cancel();
        }
    }

    fn pick_folder(&mut self) {
        self.dialog(Task::FolderDialog, |dialog| dialog.set_title("Open a photo folder").pick_folder());
    }

    /// Rank by a photo: its folder opened (unless it is the open one), then ranked by similarity
    /// to it once the folder's index holds it (dropped on the window, or picked with Photo…).
    pub fn search_by_example(&mut self, photo: PathBuf) {
        if let Some(dir) = photo.parent().filter(|d| self.gallery.folder.as_deref() != Some(*d)) {
            self.open_folder(dir.to_path_buf());
        }
        self.pending_similar = Some(photo);
    }

    /// A file dialog opening in the open folder, run on its own thread: rfd's dialog blocks its
    /// thread, and that thread is not the UI's.
    fn dialog(&mut self, task: Task, show: impl FnOnce(rfd::FileDialog) -> Option<PathBuf> + Send + 'static) {
        let start = self.gallery.folder.clone();
        self.events.start_once(task, move || {
            let dialog = rfd::FileDialog::new();
            Event::Chosen(
                task,
                show(match start {
                    Some(start) => dialog.set_directory(start),
                    None => dialog,
                }),
            )
        });
    }

    /// Ask for a photo to rank by.
    fn pick_example(&mut self) {
        self.dialog(Task::ExampleDialog, |dialog| {
            dialog
                .set_title("Rank the photos of its folder by this photo")
                .add_filter("photos", crate::data::folder::IMAGE_EXTENSIONS)
                .pick_file()
        });
    }

    /// Ask where to export the ranked gallery (CSV or JSON, by the extension chosen).
    fn pick_export(&mut self) {
        if !self.events.is_out(Task::ExportWrite) {
            self.dialog(Task::ExportDialog, |dialog| {
                dialog
                    .set_title("Export the ranking")
                    .set_file_name("ranking.csv")
                    .add_filter("CSV", &["csv"])
                    .add_filter("JSON", &["json"])
                    .save_file()
            });
        }
    }

    /// The gallery in display order, with the query and the model that ranked it.
    pub fn ranking_export(&self) -> export::Ranking {
        let hits = self
            .gallery
            .order
            .iter()
            .filter_map(|&i| self.gallery.items.get(i))
            .map(|i| crate::engine::search::Hit { score: i.score.unwrap_or(f32::NAN), path: i.path.clone() })
            .collect();
        let model = match self.ranking.uses_index() {
            Some(model) => model.name().to_string(),
            None => self.settings.rank_model.name().to_string(),
        };
        match self.similar_photo() {
            Some(image) => export::Ranking {
                caption: String::new(),
                image: Some(image.to_path_buf()),
                model: "shan-embedding".into(),
                hits,
            },
            None => export::Ranking {
                caption: self.ranking.caption().unwrap_or_default().to_string(),
                image: None,
                model,
                hits,
            },
        }
    }

    /// The photo the gallery is ranked by, while "Find similar"'s ranking is the one shown.
    pub fn similar_photo(&self) -> Option<&Path> {
        self.similar_to.as_ref().filter(|(_, version)| *version == self.ranking.version).map(|(p, _)| p.as_path())
    }

    /// Write the ranking to `path` in the background.
    pub fn export_to(&mut self, path: PathBuf) {
        let ranking = self.ranking_export();
        self.events.start(Task::ExportWrite, move || Event::Exported(export::write(&path, &ranking)));
    }

    /// Rank the gallery by similarity to item `i` and select it; false while the folder's index
    /// does not hold that photo.
    fn rank_by_similar(&mut self, i: usize) -> bool {
        let Some(photo) = self.gallery.items.get(i).map(|item| item.path.clone()) else { return false };
        let Some(scores) = self.ranking.index.similar(&self.gallery.items, &photo) else { return false };
        self.gallery.rank_by(scores);
        self.gallery.selected = Some(i);
        self.similar_to = Some((photo, self.ranking.version));
        true
    }

    /// What a double-click or a tile's menu asked for.
    fn tile_action(&mut self, ctx: &egui::Context, action: TileAction) {
        let path = |i: usize| self.gallery.items.get(i).map(|item| item.path.clone());
        match action {
            TileAction::Inspect(i) => {
                self.gallery.selected = Some(i);
                self.inspector.open = true;
            }
            TileAction::OpenExternally(i) | TileAction::Reveal(i) => {
                let Some(p) = path(i) else { return };
                let opened = if matches!(action, TileAction::Reveal(_)) {
                    system_open::reveal(&p)
                } else {
                    system_open::open(&p)
                };
                if let Err(e) = opened {
                    self.notes.push(Level::Error, e);
                }
            }
            TileAction::FindSimilar(i) => {
                let held = path(i).and_then(|p| self.ranking.index.holds(&p));
                if let (Some(false), Some(p)) = (held, path(i)) {
                    self.notes.push(Level::Error, unindexed(&p));
                } else if !self.rank_by_similar(i) {
                    self.notes.push(
                        Level::Warning,
                        "Find similar uses the folder's index: wait for it (status bar), or choose \
                         the default, global or SHAN model in Settings",
                    );
                }
            }
            TileAction::CopyPath(i) => {
                let Some(p) = path(i) else { return };
                ctx.copy_text(p.display().to_string());
                self.notes.push(Level::Info, format!("copied {}", p.display()));
            }
        }
    }

    /// Everything that arrived from background work, applied before drawing.
    pub fn poll(&mut self, ctx: &egui::Context) {
        // The one-off tasks' answers first: a dataset split read from disk becomes the gallery
        // before the ranking below looks (never a frame that looks idle before its index starts).
        for event in self.events.drain() {
            self.apply_event(event);
        }
        self.gallery.poll(ctx, &self.waker, &mut self.notes);
        self.ranking.set_query(&self.query);
        self.models.poll(&mut self.notes);
        self.ranking.set_use_index(self.settings.rank_model.index_model());
        self.ranking.set_model(self.settings.rank_model.network().unwrap_or(RankerModel::Global));
        self.ranking.poll(ctx, &mut self.gallery, &self.models, &self.waker, &mut self.notes);
        // A chosen (or saved) network that cannot load falls back to the default.
        let model = self.settings.rank_model;
        if let Some(why) = model.network().and_then(|n| self.models.ranker.get()?.missing(n).map(str::to_string)) {
            self.notes.push(Level::Warning, format!("{} cannot rank: {why}", model.name()));
            self.settings.rank_model = RankModel::Default;
        }
        if let Some(version) = self.ranking.index.groups_version().filter(|v| self.gallery.groups_version != Some(*v))
            && let Some(groups) =
                self.ranking.index.duplicate_groups(self.gallery.folder.as_deref(), &self.gallery.items)
        {
            self.gallery.set_groups(groups, version);
        }
        self.gallery.set_hide_duplicates(self.settings.hide_duplicates);
        // The weak-match line is on the default ranker's score, for captions only.
        self.gallery.weak_below = self.models.runtime().and_then(|r| r.bank.as_ref().ok()?.weak_below).filter(|_| {
            self.ranking.uses_index() == Some(crate::engine::search::SearchModel::Default)
                && self.similar_photo().is_none()
        });
        if let Some(d) = &mut self.dataset {
            d.poll(&self.ranking, &self.models, &self.waker, &mut self.notes);
        }
        if let Some(n) = self.pending_select
            && self.gallery.is_settled()
            && !self.models.is_loading()
            && !self.ranking.is_busy()
        {
            self.pending_select = None;
            if let Some(&index) = self.gallery.order.get(n - 1) {
                self.gallery.selected = Some(index);
                self.inspector.open = true;
            }
        }
        let selected = self
            .gallery
            .selected
            .filter(|_| self.inspector.open)
            .and_then(|i| self.gallery.items.get(i))
            .map(|i| i.path.clone());
        self.inspector.request(selected, &self.query, &self.models, &self.waker);
        self.inspector.poll(ctx, &self.models, &self.waker, &mut self.notes);
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        if let Some(path) = dropped.into_iter().next() {
            if crate::data::folder::is_image_path(&path) {
                self.search_by_example(path);
            } else if path.is_dir() {
                self.open_folder(path);
            } else if let Some(dir) = path.parent() {
                self.open_folder(dir.to_path_buf());
            }
        }
        if let Some(photo) = self.pending_similar.clone() {
            let item = self.gallery.items.iter().position(|item| item.path == photo);
            let in_folder = self.gallery.folder.as_deref().is_some_and(|f| photo.parent() == Some(f));
            if item.is_some_and(|i| self.rank_by_similar(i)) {
                self.pending_similar = None;
            } else if in_folder && self.ranking.index.holds(&photo) == Some(false) {
                // Indexed without it: it could not be read (the index's warning says why).
                self.pending_similar = None;
                self.notes.push(Level::Error, unindexed(&photo));
            }
        }
    }

    /// One answer of the one-off tasks, applied.
    fn apply_event(&mut self, event: Event) {
        match event {
            Event::DatasetOpened { request, result: Ok(opened) } if request == self.dataset_request => {
                if let Some(d) = self.dataset.take() {
                    d.cancel();
                }
                self.gallery.open_files(&opened.folder, opened.data.images.clone(), &self.waker, &mut self.notes);
                self.dataset = Some(Dataset::new(opened, self.gallery.generation));
            }
            // A later request replaced it.
            Event::DatasetOpened { result: Ok(_), .. } => {}
            Event::DatasetOpened { result: Err(e), .. } | Event::Exported(Err(e)) | Event::BackendChecked(Err(e)) => {
                self.notes.push(Level::Error, e)
            }
            Event::Exported(Ok(line)) | Event::BackendChecked(Ok(line)) => self.notes.push(Level::Info, line),
            Event::Chosen(Task::DatasetDialog, Some(dir)) => self.open_dataset(dir, crate::data::flickr8k::Split::Test),
            Event::Chosen(Task::FolderDialog, Some(dir)) => self.open_folder(dir),
            Event::Chosen(Task::FolderDialog, None) => self.notes.push(Level::Info, "no folder chosen"),
            Event::Chosen(Task::ExportDialog, Some(path)) => self.export_to(path),
            Event::Chosen(Task::ExampleDialog, Some(photo)) => self.search_by_example(photo),
            Event::Chosen(..) => {}
            Event::Stopped(task) => self.notes.push(Level::Error, format!("{} stopped unexpectedly", task.doing())),
        }
    }

    /// Draw the whole window into `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let mut commands = Vec::new();
        self.shortcuts(&ctx, &mut commands);
        egui::Panel::top("toolbar").show(ui, |ui| toolbar::show(self, ui, &mut commands));
        egui::Panel::bottom("status").show(ui, |ui| status::show(self, ui, &mut commands));
        if self.dataset.is_some() {
            let gt_rank = self
                .dataset
                .as_ref()
                .and_then(|d| d.owner_of(&self.query))
                .filter(|&i| self.gallery.items.get(i).is_some_and(|i| i.score.is_some()))
                .and_then(|i| self.gallery.order.iter().position(|&o| o == i))
                .map(|r| r + 1);
            let (selected, query) = (self.gallery.selected, self.query.clone());
            let mut picked = None;
            if let Some(d) = &mut self.dataset {
                let ranking = &self.ranking;
                egui::Panel::left("dataset")
                    .resizable(true)
                    .default_size(340.0)
                    .min_size(260.0)
                    .show(ui, |ui| picked = d.show(ui, selected, &query, gt_rank, ranking));
            }
            if let Some(caption) = picked {
                commands.push(Command::SetQuery(caption));
            }
            if let Some((root, split)) =
                self.dataset.as_mut().and_then(|d| d.requested_split.take().map(|s| (d.root.clone(), s)))
            {
                commands.push(Command::OpenDataset(root, split));
            }
        }
        if self.inspector.open && self.gallery.selected.is_some() {
            let rank = self.selected_rank();
            let waker = self.waker.clone();
            let scores = self.model_comparison();
            let ranked_by = match self.ranking.uses_index() {
                Some(model) => model.name(),
                None if matches!(self.settings.rank_model, RankModel::Dsran | RankModel::Racg) => {
                    self.settings.rank_model.name()
                }
                None => "global",
            };
            egui::Panel::right("inspector")
                .resizable(true)
                .default_size(480.0)
                .min_size(320.0)
                .show(ui, |ui| self.inspector.show(ui, rank, ranked_by, &scores, &self.models, &waker));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let tile = self.settings.thumbnail_size.pixels();
            if let Some(action) = self.gallery.show(ui, tile) {
                commands.push(Command::Tile(action));
            }
        });
        self.notes.show_toasts(&ctx);
        self.notes.show_log(&ctx);
        drop_overlay(&ctx);
        for command in commands {
            self.apply(&ctx, command);
        }
    }
}

impl AlignscopeApp {
    /// The selected photo's place in the ranked folder and the folder's size, when ranked.
    fn selected_rank(&self) -> Option<(usize, usize)> {
        let selected = self.gallery.selected?;
        self.gallery.items.get(selected)?.score?;
        Some((self.gallery.order.iter().position(|&i| i == selected)?, self.gallery.items.len()))
    }

    fn model_comparison(&mut self) -> Vec<ModelScore> {
        let Some(selected) = self.gallery.selected else { return Vec::new() };
        let key = (selected, self.ranking.caption().unwrap_or_default().to_string(), self.ranking.version);
        match &self.comparison {
            Some((k, rows)) if *k == key => rows.clone(),
            _ => {
                let rows = self.ranking.compare(selected);
                self.comparison = Some((key, rows.clone()));
                rows
            }
        }
    }

    /// The ranked folder's paths, best first, one per line (for the clipboard).
    pub fn ranked_paths(&self) -> String {
        self.gallery
            .order
            .iter()
            .filter_map(|&i| self.gallery.items.get(i))
            .map(|i| format!("{}\n", i.path.display()))
            .collect()
    }

    /// The keys pressed this frame, as commands: Ctrl+F focuses the query, Esc clears it (then
    /// closes the inspector), arrow keys move the selection in display order, Enter opens the
    /// inspector on it (neither while typing in the query).
    fn shortcuts(&self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        let query_focused = ctx.memory(|m| m.has_focus(toolbar::query_id()));
        let columns = self.gallery.columns.max(1) as i64;
        ctx.input_mut(|i| {
            for command in [Command::FocusQuery, Command::Escape, Command::InspectSelected] {
                let typing = query_focused && command == Command::InspectSelected;
                if let Some(shortcut) = command.shortcut().filter(|_| !typing)
                    && i.consume_shortcut(&shortcut)
                {
                    commands.push(command);
                }
            }
            if !query_focused {
                let step: i64 = commands::arrow_steps(columns)
                    .into_iter()
                    .filter(|&(key, _)| i.consume_key(egui::Modifiers::NONE, key))
                    .map(|(_, delta)| delta)
                    .sum();
                if step != 0 {
                    commands.push(Command::MoveSelection(step));
                }
            }
        });
    }

    /// Do what a command asks (after the frame that collected it is drawn).
    pub fn apply(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::PickFolder => self.pick_folder(),
            Command::OpenFolder(dir) => self.open_folder(dir),
            Command::PickExample => self.pick_example(),
            Command::OpenDemo => self.open_folder(demo_folder()),
            Command::PickDataset => self.pick_dataset(),
            Command::OpenDataset(root, split) => self.open_dataset(root, split),
            Command::CopyPaths => {
                ctx.copy_text(self.ranked_paths());
                self.notes.push(Level::Info, format!("copied {} paths", self.gallery.order.len()));
            }
            Command::PickExport => self.pick_export(),
            Command::FocusQuery => ctx.memory_mut(|m| m.request_focus(toolbar::query_id())),
            Command::Escape if !self.query.is_empty() => self.query.clear(),
            Command::Escape => self.inspector.open = false,
            Command::InspectSelected => {
                if self.gallery.selected.is_some() {
                    self.inspector.open = true;
                }
            }
            Command::MoveSelection(step) => self.gallery.move_selection(step),
            Command::SetQuery(caption) => self.query = caption,
            Command::Tile(action) => self.tile_action(ctx, action),
            Command::SetThumbnailSize(size) => self.settings.thumbnail_size = size,
            // A network that cannot load is refused (with its reason) by the next poll.
            Command::SetRankModel(model) => self.settings.rank_model = model,
            Command::SetHideDuplicates(hide) => self.settings.hide_duplicates = hide,
            Command::StopThumbnails => self.gallery.cancel(),
            Command::StopIndexing => self.ranking.index.cancel(),
            Command::StopEmbedding => self.ranking.cancel(),
            Command::ToggleMessages => self.notes.expanded = !self.notes.expanded,
            Command::SetObjects(n) => {
                self.settings.objects = n;
                self.objects_pending = n != self.objects;
            }
            Command::SetBackend(request) => {
                self.backend_pending |= self.settings.backend != request;
                self.settings.backend = request;
            }
        }
    }
}

impl eframe::App for AlignscopeApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll(ctx);
        if let Some(plan) = &mut self.screenshot {
            let settled = self.gallery.is_settled()
                && !self.events.is_out(Task::BackendCheck)
                && !self.models.is_loading()
                && !self.ranking.is_busy()
                && !self.inspector.is_busy()
                && self.pending_select.is_none()
                && !self.events.is_out(Task::DatasetOpen)
                && !self.dataset.as_ref().is_some_and(Dataset::is_busy);
            plan.step(ctx, settled, &mut self.notes);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.persist {
            eframe::set_value(storage, settings::STORAGE_KEY, &self.settings);
        }
    }

    fn on_exit(&mut self) {
        self.gallery.cancel();
        self.ranking.cancel();
        if let Some(d) = &self.dataset {
            d.cancel();
        }
    }
}

fn drop_overlay(ctx: &egui::Context) {
    if ctx.input(|i| i.raw.hovered_files.is_empty()) {
        return;
    }
    let screen = ctx.content_rect();
    let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop")));
    painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(160));
    painter.text(
        screen.center(),
        egui::Align2::CENTER_CENTER,
        "Drop a folder to open it",
        egui::TextStyle::Heading.resolve(&ctx.global_style()),
        egui::Color32::WHITE,
    );
}

/// Why a photo cannot be ranked by: the folder's index could not take it in.
fn unindexed(photo: &Path) -> String {
    format!(
        "{}: cannot rank by this photo: it could not be read into the folder's index (Messages says why)",
        photo.display()
    )
}
