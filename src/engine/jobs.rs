//! Background jobs: a worker thread streams typed messages to whoever polls, and can be cancelled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

/// Shared cancel flag: the job checks it between units of work.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Called after every message so a UI can wake up (egui's `request_repaint`); a no-op headless.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

pub fn no_waker() -> Waker {
    Arc::new(|| {})
}

/// The sending half handed to a job's workers.
pub struct Reporter<M> {
    tx: Sender<M>,
    waker: Waker,
}

impl<M> Clone for Reporter<M> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), waker: self.waker.clone() }
    }
}

impl<M> Reporter<M> {
    /// Send a message; false when nobody listens any more (the job should stop).
    pub fn send(&self, message: M) -> bool {
        let ok = self.tx.send(message).is_ok();
        (self.waker)();
        ok
    }
}

/// The state of a one-message job (see [`spawn_oneshot`]).
pub enum Oneshot<T> {
    Pending,
    Done(T),
    /// The worker ended without sending (it panicked).
    Gone,
}

/// Poll the one-message job kept in `slot` (if any); once it is done or gone the slot is emptied.
pub fn poll_slot<T>(slot: &mut Option<Job<T>>) -> Oneshot<T> {
    let outcome = slot.as_ref().map_or(Oneshot::Pending, Job::poll_once);
    if !matches!(outcome, Oneshot::Pending) {
        *slot = None;
    }
    outcome
}

/// The receiving half, kept by the caller.
pub struct Job<M> {
    pub name: String,
    rx: Receiver<M>,
    cancel: CancelToken,
}

impl<M> Job<M> {
    pub fn new(name: impl Into<String>, waker: Waker) -> (Self, Reporter<M>, CancelToken) {
        let (tx, rx) = std::sync::mpsc::channel();
        let cancel = CancelToken::default();
        (Self { name: name.into(), rx, cancel: cancel.clone() }, Reporter { tx, waker }, cancel)
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Every message that arrived since the last call, without waiting; `None` once all workers
    /// are gone and the queue is drained.
    pub fn drain(&self) -> Option<Vec<M>> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(m) => out.push(m),
                Err(TryRecvError::Empty) => return Some(out),
                Err(TryRecvError::Disconnected) => return if out.is_empty() { None } else { Some(out) },
            }
        }
    }

    /// For a job that sends a single message: that message once it has arrived.
    pub fn poll_once(&self) -> Oneshot<M> {
        match self.rx.try_recv() {
            Ok(m) => Oneshot::Done(m),
            Err(TryRecvError::Empty) => Oneshot::Pending,
            Err(TryRecvError::Disconnected) => Oneshot::Gone,
        }
    }

    /// Block for the next message (headless callers only).
    pub fn recv(&self) -> Option<M> {
        self.rx.recv().ok()
    }
}

/// Run `work` on its own thread and deliver its one result as the job's only message.
pub fn spawn_oneshot<T: Send + 'static>(
    name: impl Into<String>,
    waker: Waker,
    work: impl FnOnce(&CancelToken) -> T + Send + 'static,
) -> Job<T> {
    let (job, reporter, cancel) = Job::new(name, waker);
    std::thread::spawn(move || {
        let result = work(&cancel);
        reporter.send(result);
    });
    job
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneshot_delivers_once_then_reports_finished() {
        let job = spawn_oneshot("sum", no_waker(), |_| 2 + 2);
        assert_eq!(job.recv(), Some(4));
        assert!(job.recv().is_none());
        // The worker has hung up: polling now says so instead of waiting.
        assert!(matches!(job.poll_once(), Oneshot::Gone));
        assert!(job.drain().is_none());
    }

    #[test]
    fn cancel_is_seen_by_the_worker() {
        let job = spawn_oneshot("wait", no_waker(), |cancel: &CancelToken| {
            while !cancel.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            "stopped"
        });
        job.cancel();
        assert_eq!(job.recv(), Some("stopped"));
    }
}
