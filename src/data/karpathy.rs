//! Karpathy-split caption files (`dataset_flickr8k.json`, `dataset_flickr30k.json`,
//! `dataset_coco.json`): `{"images": [{"filename", "filepath"?, "split", "sentences": [{"raw"}]}]}`,
//! and the choice between them and a Flickr8k folder for "open a dataset".

use std::path::{Path, PathBuf};

use super::flickr8k::{DatasetError, Split, SplitData};

#[derive(serde::Deserialize)]
struct File {
    images: Vec<Image>,
}

#[derive(serde::Deserialize)]
struct Image {
    filename: String,
    /// COCO's subfolder (`val2014`, …); absent for the Flickr files.
    #[serde(default)]
    filepath: Option<String>,
    split: String,
    sentences: Vec<Sentence>,
}

#[derive(serde::Deserialize)]
struct Sentence {
    raw: String,
}

/// Karpathy's split names: "restval" trains too.
fn in_split(name: &str, split: Split) -> bool {
    match split {
        Split::Train => name == "train" || name == "restval",
        Split::Dev => name == "val",
        Split::Test => name == "test",
    }
}

/// One split of a Karpathy JSON file; images are under `images_dir` (plus COCO's `filepath`).
/// The first five sentences of each image are kept (COCO has a few with six or seven).
pub fn load(json: &Path, images_dir: &Path, split: Split) -> Result<SplitData, DatasetError> {
    let text =
        std::fs::read_to_string(json).map_err(|source| DatasetError::Read { path: json.to_path_buf(), source })?;
    let file: File = serde_json::from_str(&text)
        .map_err(|e| DatasetError::Json { path: json.to_path_buf(), message: e.to_string() })?;
    let mut data = SplitData { images: Vec::new(), captions: Vec::new() };
    for image in file.images.into_iter().filter(|i| in_split(&i.split, split)) {
        let found = image.sentences.len();
        let five: [String; 5] = image
            .sentences
            .into_iter()
            .take(5)
            .map(|s| s.raw.trim().to_string())
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| DatasetError::Captions { path: json.to_path_buf(), image: image.filename.clone(), found })?;
        let dir = image.filepath.as_deref().map_or_else(|| images_dir.to_path_buf(), |sub| images_dir.join(sub));
        data.images.push(dir.join(&image.filename));
        data.captions.push(five);
    }
    Ok(data)
}

/// What "open a dataset" accepts: a Flickr8k folder (token + split files), a Karpathy JSON file,
/// or a folder holding one `dataset_*.json`. Images: the folder's `images/` if present, else the
/// folder itself.
pub fn load_any(path: &Path, split: Split) -> Result<SplitData, DatasetError> {
    if path.is_dir() && path.join("Flickr8k.token.txt").is_file() {
        return super::flickr8k::load_split(path, split);
    }
    let json = if path.is_dir() { find_json(path)? } else { path.to_path_buf() };
    let root = json.parent().unwrap_or(Path::new("."));
    let images = if root.join("images").is_dir() { root.join("images") } else { root.to_path_buf() };
    load(&json, &images, split)
}

fn find_json(dir: &Path) -> Result<PathBuf, DatasetError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DatasetError::Read { path: dir.to_path_buf(), source })?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("dataset_") && n.ends_with(".json"))
        })
        .collect();
    found.sort();
    found.into_iter().next().ok_or_else(|| DatasetError::NotADataset { path: dir.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(n: usize, tag: &str) -> String {
        (0..n).map(|k| format!(r#"{{"raw": " {tag} caption {k} ", "tokens": []}}"#)).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn reads_a_split_with_coco_subfolders_and_keeps_five_sentences() {
        let dir = std::env::temp_dir().join(format!("alignscope-karpathy-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("images")).unwrap();
        let json = format!(
            r#"{{"dataset": "coco", "images": [
                {{"filename": "a.jpg", "filepath": "val2014", "split": "test", "sentences": [{}]}},
                {{"filename": "b.jpg", "split": "train", "sentences": [{}]}},
                {{"filename": "c.jpg", "split": "restval", "sentences": [{}]}},
                {{"filename": "d.jpg", "split": "test", "sentences": [{}]}}]}}"#,
            sentences(7, "a"),
            sentences(5, "b"),
            sentences(5, "c"),
            sentences(5, "d")
        );
        std::fs::write(dir.join("dataset_coco.json"), json).unwrap();
        let test = load_any(&dir, Split::Test).unwrap();
        assert_eq!(test.images, vec![dir.join("images/val2014/a.jpg"), dir.join("images/d.jpg")]);
        assert_eq!(test.captions[0][4], "a caption 4", "trimmed, first five kept");
        assert_eq!(
            load_any(&dir.join("dataset_coco.json"), Split::Train).unwrap().images.len(),
            2,
            "restval trains too"
        );
        assert!(load_any(&dir, Split::Dev).unwrap().images.is_empty());

        std::fs::write(
            dir.join("dataset_coco.json"),
            r#"{"images": [{"filename": "x.jpg", "split": "test", "sentences": [{"raw": "one"}]}]}"#,
        )
        .unwrap();
        let err = load_any(&dir, Split::Test).unwrap_err().to_string();
        assert!(err.contains("dataset_coco.json") && err.contains("x.jpg") && err.contains("1 captions"), "{err}");
        std::fs::write(dir.join("dataset_coco.json"), "{not json").unwrap();
        let err = load_any(&dir, Split::Test).unwrap_err().to_string();
        assert!(err.contains("dataset_coco.json"), "{err}");
        std::fs::remove_file(dir.join("dataset_coco.json")).unwrap();
        let err = load_any(&dir, Split::Test).unwrap_err().to_string();
        assert!(err.contains("no Flickr8k.token.txt"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
