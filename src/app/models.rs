//! The loaded models, with one owner: SHAN's runtime (the folder index, the default ranking, the
//! dataset browser's scores, the explanations) and the per-session networks (the global model,
//! DSRAN, RACG), each loaded once in the background. Panels borrow them from here each frame;
//! none loads or keeps its own.

use std::sync::Arc;

use crate::engine::backend::Compute;
use crate::engine::jobs::{Job, Oneshot, Waker, poll_slot, spawn_oneshot};
use crate::engine::rank::Ranker;
use crate::engine::runtime::Runtime;

use super::notifications::{Level, Notifications};

/// A model loading in the background, then loaded, or why it cannot be.
pub struct Loaded<T> {
    job: Option<Job<Result<Arc<T>, String>>>,
    value: Option<Arc<T>>,
    /// Why it is unavailable (no weights, a load error).
    pub unavailable: Option<String>,
    /// What is lost without it, for the message.
    lost: &'static str,
}

impl<T> Loaded<T> {
    fn none(lost: &'static str) -> Self {
        Self { job: None, value: None, unavailable: None, lost }
    }

    /// The model, once loaded.
    pub fn get(&self) -> Option<Arc<T>> {
        self.value.clone()
    }

    pub fn is_loading(&self) -> bool {
        self.job.is_some()
    }

    fn poll(&mut self, notes: &mut Notifications) {
        match poll_slot(&mut self.job) {
            Oneshot::Done(Ok(value)) => self.value = Some(value),
            Oneshot::Done(Err(e)) => {
                notes.push(Level::Warning, format!("{} unavailable: {e}", self.lost));
                self.unavailable = Some(e);
            }
            Oneshot::Gone => self.unavailable = Some("its loader stopped unexpectedly".into()),
            Oneshot::Pending => {}
        }
    }
}

impl<T: Send + Sync + 'static> Loaded<T> {
    fn start(lost: &'static str, waker: Waker, load: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Self {
        let job = spawn_oneshot(lost, waker, move |_| load().map(Arc::new).map_err(|e| format!("{e:#}")));
        Self { job: Some(job), ..Self::none(lost) }
    }
}

pub struct Models {
    /// SHAN, the tuned global model and the query bank (`engine::runtime`).
    pub runtime: Loaded<Runtime>,
    /// The global model, DSRAN and RACG on the frozen backbones (`engine::rank`).
    pub ranker: Loaded<Ranker>,
}

impl Default for Models {
    /// Nothing loaded nor loading (no backend).
    fn default() -> Self {
        Self { runtime: Loaded::none("explanations"), ranker: Loaded::none("caption ranking") }
    }
}

impl Models {
    /// Load both in the background with the committed weights; SHAN's runtime with each
    /// photo's best `objects` detected objects as more regions (0: the grid alone).
    pub fn start(compute: &Compute, waker: Waker, objects: usize) -> Self {
        let (c, r) = (compute.clone(), compute.clone());
        Self {
            runtime: Loaded::start("explanations", waker.clone(), move || {
                Runtime::load(&c, &crate::nets::shan::default_path(), crate::features::VISUAL)?.with_objects(objects)
            }),
            ranker: Loaded::start("caption ranking", waker, move || Ranker::load(&r)),
        }
    }

    pub fn poll(&mut self, notes: &mut Notifications) {
        self.runtime.poll(notes);
        self.ranker.poll(notes);
    }

    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.runtime.get()
    }

    pub fn ranker(&self) -> Option<Arc<Ranker>> {
        self.ranker.get()
    }

    pub fn is_loading(&self) -> bool {
        self.runtime.is_loading() || self.ranker.is_loading()
    }
}
