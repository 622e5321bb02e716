//! The shipped networks as files: how each is built from the committed backbones, saved and
//! loaded, where the committed weights live, and the backbone tops they share. Used at run time
//! ([`crate::engine`]) and by training ([`crate::train`]).

pub mod dsran;
pub mod global;
pub mod global_tuned;
pub mod racg;
pub mod shan;
pub mod store;

/// The visual top starts at the last MBConv block unless a config says otherwise.
pub const DEFAULT_FIRST_BLOCK: usize = 15;

/// The MiniLM layer whose input is cached; it and the layers after it run per step.
pub const TEXT_TOP_LAYER: usize = 5;
