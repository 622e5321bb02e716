//! The models and demo photos inside the binary: a copied or `cargo install`ed alignscope finds
//! no `assets/` beside it, so its first run writes these to the XDG data folder
//! (`~/.local/share/alignscope/{models,demo}`), checked against `CHECKSUMS`. A test keeps the
//! lists equal to what `assets/` holds.

use std::path::{Path, PathBuf};

use alignscope::features::{MODELS_MISSING, install::install_files, installed_models_dir, models_location};

/// `(name, bytes)` of files under `assets/<dir>/`, read in at build time.
macro_rules! embed {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $dir, "/", $name)))),*]
    };
}

pub const MODELS: &[(&str, &[u8])] = embed!("models":
    "CHECKSUMS", "LICENSES.md", "dsran.safetensors", "efficientnet-lite0.safetensors", "global.safetensors",
    "imagenet-classes.txt", "minilm-l6.safetensors", "minilm-vocab.txt", "query-bank-calibration.json",
    "query-bank.safetensors", "racg.safetensors", "shan.safetensors", "ssd-mobilenet-v2-coco.safetensors",
);

pub const DEMO: &[(&str, &[u8])] = embed!("demo":
    "LICENSES.md",
    "airplane_in_clouds.jpg", "astronaut.jpg", "autumn_mountain_meadow.jpg", "bison_on_grass.jpg",
    "brandenburg_gate.jpg", "brick.jpg", "burger_and_fries.jpg", "camera.jpg", "canyon_landscape.jpg", "cell.jpg",
    "chelsea.jpg", "chickens_on_grass.jpg", "child_with_teddy_bear.jpg", "chinese_temple_hillside.jpg",
    "clock_motion.jpg", "coffee.jpg", "coins.jpg", "coral_reef_underwater.jpg", "cow_in_pasture.jpg",
    "dandelion_meadow.jpg", "didgeridoo_player.jpg", "dragonfly_on_twig.jpg", "drum_kit_and_guitar.jpg",
    "fig_on_red_plate.jpg", "folk_musicians.jpg", "forest_stream.jpg", "german_shepherd_dog.jpg", "giant_panda.jpg",
    "giraffes_in_savanna.jpg", "girl_hugging_big_dog.jpg", "grace_hopper_portrait.jpg", "grass.jpg", "gravel.jpg",
    "great_wall_of_china.jpg", "horses_in_field.jpg", "hubble_deep_field.jpg", "jockey_horse_race.jpg",
    "kangaroo_with_joey.jpg", "kingfisher_on_branch.jpg", "kitten_playing_with_yarn.jpg", "koala_in_tree.jpg",
    "living_room_with_wine.jpg", "machu_picchu_mountains.jpg", "mariachi_band.jpg", "mont_saint_michel.jpg",
    "mountain_trail_rocky_peaks.jpg", "nuthatch_on_tree.jpg", "orchestra_on_stage.jpg", "paint_brushes.jpg",
    "pepperoni_pizza.jpg", "pig_on_grass.jpg", "polar_bear_in_snow.jpg", "red_crab_on_rock.jpg", "red_panda.jpg",
    "retina.jpg", "rocket.jpg", "scarlet_macaw_parrot.jpg", "sheep_on_grass.jpg", "soccer_players.jpg",
    "sunset_over_hills.jpg", "surfer_on_wave.jpg", "swans_with_cygnets.jpg", "taiko_drums_festival_night.jpg",
    "two_dogs_at_door.jpg", "underwater_corals.jpg", "white_duck.jpg", "yellow_taxis_city_street.jpg",
);

/// Write the carried models to `models` and the demo photos beside it (`demo`); returns the bytes written.
pub fn install(models: &Path) -> anyhow::Result<u64> {
    let mut bytes = 0;
    for (files, dir) in [(MODELS, models.to_path_buf()), (DEMO, models.with_file_name("demo"))] {
        install_files(files, &dir)?;
        bytes += files.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    }
    Ok(bytes)
}

/// On a run that finds no models (a copied or installed binary's first), write the carried ones
/// to the XDG data folder; says so on stderr. A failure is reported and the command goes on (it
/// then names the missing models itself).
pub fn install_if_missing(quiet: bool) {
    if models_location().1 != MODELS_MISSING {
        return;
    }
    let Some(dir) = installed_models_dir() else { return };
    match install(&dir) {
        Ok(bytes) if !quiet => eprintln!(
            "first run: wrote the models and demo photos this binary carries ({:.0} MB) to {}",
            bytes as f64 / 1e6,
            dir.parent().unwrap_or(&dir).display()
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot install the models to {}: {e:#}", dir.display()),
    }
}

/// `alignscope install-models [--to DIR]`.
pub fn install_models(to: Option<PathBuf>) -> anyhow::Result<String> {
    let to =
        to.or_else(installed_models_dir).ok_or_else(|| anyhow::anyhow!("no $XDG_DATA_HOME or $HOME: give --to DIR"))?;
    let bytes = install(&to)?;
    Ok(format!(
        "installed {} model files and {} demo photos ({:.0} MB) to {} and {}\n",
        MODELS.len(),
        DEMO.len() - 1,
        bytes as f64 / 1e6,
        to.display(),
        to.with_file_name("demo").display()
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn names(files: &[(&str, &[u8])]) -> BTreeSet<String> {
        files.iter().map(|(n, _)| n.to_string()).collect()
    }

    fn dir_files(dir: &str) -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(dir);
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.')) // the folder's index, when a test or the window made one
            .collect()
    }

    /// Every listed model and the list itself are carried (a model added to CHECKSUMS but not
    /// here would be missing from an installed binary).
    #[test]
    fn carries_every_model_the_checksums_list() {
        let list = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/models/CHECKSUMS")).unwrap();
        let mut want: BTreeSet<String> =
            list.lines().filter_map(|l| l.split_once("  ")).map(|(_, n)| n.into()).collect();
        want.extend(["CHECKSUMS".to_string(), "LICENSES.md".to_string()]);
        assert_eq!(names(super::MODELS), want);
    }

    #[test]
    fn carries_every_demo_photo() {
        assert_eq!(names(super::DEMO), dir_files("demo"));
    }
}
