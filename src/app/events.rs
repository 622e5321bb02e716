//! The window's one-off background work (file dialogs, reading a dataset, writing an export, the
//! backend check) as one stream of typed events: each task runs on its own thread and sends one
//! [`Event`]; `AlignscopeApp::poll` applies them in arrival order. The panels' long jobs
//! (scanning, indexing, ranking, explaining) keep their own typed streams (`engine::jobs::Job`).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};

use super::dataset::Opened;
use crate::engine::jobs::Waker;

/// What kind of task an event answers; a dialog of each kind is open at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    DatasetDialog,
    FolderDialog,
    ExampleDialog,
    ExportDialog,
    DatasetOpen,
    ExportWrite,
    BackendCheck,
}

impl Task {
    /// What the task was doing, for the message when it stops without an answer.
    pub fn doing(self) -> &'static str {
        match self {
            Task::DatasetDialog => "the open dataset dialog",
            Task::FolderDialog => "the open folder dialog",
            Task::ExampleDialog => "the example photo dialog",
            Task::ExportDialog => "the export dialog",
            Task::DatasetOpen => "opening the dataset",
            Task::ExportWrite => "exporting the ranking",
            Task::BackendCheck => "the backend check",
        }
    }
}

pub enum Event {
    /// A dialog's answer (None: cancelled).
    Chosen(Task, Option<PathBuf>),
    /// A dataset split read from disk; `request` says which `open_dataset` asked (only the latest
    /// is applied).
    DatasetOpened { request: u64, result: Result<Opened, String> },
    /// The ranking written (the message to show) or why not.
    Exported(Result<String, String>),
    /// The first op on the model's device: what ran, or why it failed.
    BackendChecked(Result<String, String>),
    /// The task's thread ended without an answer (it panicked).
    Stopped(Task),
}

/// The stream: tasks are started here and their events drained once per frame.
pub struct Events {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    waker: Waker,
    /// Tasks started and not yet answered.
    out: Vec<Task>,
}

impl Events {
    pub fn new(waker: Waker) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        Self { tx, rx, waker, out: Vec::new() }
    }

    /// Run `work` on its own thread; its event joins the stream (a panic becomes
    /// [`Event::Stopped`]).
    pub fn start(&mut self, task: Task, work: impl FnOnce() -> Event + Send + 'static) {
        self.out.push(task);
        let (tx, waker) = (self.tx.clone(), self.waker.clone());
        std::thread::spawn(move || {
            let event = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(Event::Stopped(task));
            // The window may be gone; nobody is left to tell then.
            let _ = tx.send(event);
            waker();
        });
    }

    /// Start `task` unless one of its kind is still out (a second click on Open… while its dialog
    /// is up does nothing).
    pub fn start_once(&mut self, task: Task, work: impl FnOnce() -> Event + Send + 'static) {
        if !self.is_out(task) {
            self.start(task, work);
        }
    }

    pub fn is_out(&self, task: Task) -> bool {
        self.out.contains(&task)
    }

    /// Every event that arrived since the last call, without waiting.
    pub fn drain(&mut self) -> Vec<Event> {
        let events: Vec<Event> = self.rx.try_iter().collect();
        for event in &events {
            if let Some(i) = self.out.iter().position(|&t| t == event.task()) {
                self.out.remove(i);
            }
        }
        events
    }
}

impl Event {
    pub fn task(&self) -> Task {
        match self {
            Event::Chosen(task, _) | Event::Stopped(task) => *task,
            Event::DatasetOpened { .. } => Task::DatasetOpen,
            Event::Exported(_) => Task::ExportWrite,
            Event::BackendChecked(_) => Task::BackendCheck,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain_until(events: &mut Events, n: usize) -> Vec<Event> {
        let mut got = Vec::new();
        let started = std::time::Instant::now();
        while got.len() < n && started.elapsed().as_secs() < 10 {
            got.extend(events.drain());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        got
    }

    #[test]
    fn one_event_per_task_and_a_panic_is_reported_not_lost() {
        let mut events = Events::new(crate::engine::jobs::no_waker());
        events.start(Task::BackendCheck, || Event::BackendChecked(Ok("ran".into())));
        events.start(Task::ExportWrite, || panic!("disk on fire"));
        assert!(events.is_out(Task::BackendCheck) && events.is_out(Task::ExportWrite));
        let got = drain_until(&mut events, 2);
        assert_eq!(got.len(), 2);
        assert!(got.iter().any(|e| matches!(e, Event::BackendChecked(Ok(s)) if s == "ran")));
        assert!(got.iter().any(|e| matches!(e, Event::Stopped(Task::ExportWrite))));
        assert!(!events.is_out(Task::BackendCheck) && !events.is_out(Task::ExportWrite), "both answered");
    }

    #[test]
    fn a_dialog_of_a_kind_is_out_once() {
        let mut events = Events::new(crate::engine::jobs::no_waker());
        let (release, wait) = std::sync::mpsc::channel::<()>();
        events.start_once(Task::FolderDialog, move || {
            let _ = wait.recv();
            Event::Chosen(Task::FolderDialog, None)
        });
        events.start_once(Task::FolderDialog, || Event::Chosen(Task::FolderDialog, Some("second".into())));
        release.send(()).unwrap();
        let got = drain_until(&mut events, 1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let later = events.drain();
        assert!(matches!(got.as_slice(), [Event::Chosen(Task::FolderDialog, None)]));
        assert!(later.is_empty(), "the second click started nothing");
    }
}
