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

/// SHAN and a tuned global model that fine-tune the same backbone top (the default ranker and
/// the fusions use both from one backbone pass), each checked.
pub fn shan_and_global(
    shan_path: &std::path::Path,
    global_path: &std::path::Path,
    visual: &str,
    device: &burn::tensor::Device,
) -> anyhow::Result<(shan::ShanNet, global_tuned::TunedGlobal)> {
    let net = shan::load(shan_path, visual, device)?;
    let global = global_tuned::load(global_path, visual, device)?;
    let block = net.visual.first_block;
    anyhow::ensure!(
        global.visual.first_block == block,
        "{}: fine-tuned from block {}, SHAN ({}) from block {block}",
        global_path.display(),
        global.visual.first_block,
        shan_path.display()
    );
    Ok((net, global))
}
