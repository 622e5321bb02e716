//! Pixels from results: the heatmap colormap, text drawn into images, and the explanation as a
//! PNG. Used by the CLI's `explain --out` and the app's export.

pub mod colormap;
pub mod explanation;
pub mod text;
