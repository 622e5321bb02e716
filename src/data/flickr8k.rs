//! Flickr8k as distributed: `Flickr8k.token.txt` (`IMAGE.jpg#N<TAB>caption`) and the standard
//! train/dev/test split files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: expected `IMAGE.jpg#N<TAB>caption`")]
    Syntax { path: PathBuf, line: usize },
    #[error("{path}: image {image} has {found} captions, expected 5")]
    Captions { path: PathBuf, image: String, found: usize },
    #[error("{path}: image {image} is in the split but has no captions")]
    Unknown { path: PathBuf, image: String },
    #[error("{path}: not a caption file: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: not a dataset (no Flickr8k.token.txt, no dataset_*.json)")]
    NotADataset { path: PathBuf },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Dev,
    Test,
}

impl Split {
    /// "train", "dev" or "test", as the command line and file names spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Dev => "dev",
            Self::Test => "test",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Self::Train => "Flickr_8k.trainImages.txt",
            Self::Dev => "Flickr_8k.devImages.txt",
            Self::Test => "Flickr_8k.testImages.txt",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(Self::Train),
            "dev" | "val" => Ok(Self::Dev),
            "test" => Ok(Self::Test),
            other => Err(format!("unknown split `{other}` (train, dev, test)")),
        }
    }
}

/// One split: image paths in split-file order, five captions each.
#[derive(Clone, Debug)]
pub struct SplitData {
    pub images: Vec<PathBuf>,
    pub captions: Vec<[String; 5]>,
}

fn read(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|source| DatasetError::Read { path: path.to_path_buf(), source })
}

/// Every image's captions, from the token file.
pub fn read_captions(root: &Path) -> Result<HashMap<String, Vec<String>>, DatasetError> {
    let path = root.join("Flickr8k.token.txt");
    let mut captions: HashMap<String, Vec<String>> = HashMap::new();
    for (i, line) in read(&path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (key, caption) =
            line.split_once('\t').ok_or_else(|| DatasetError::Syntax { path: path.clone(), line: i + 1 })?;
        let (image, _n) =
            key.rsplit_once('#').ok_or_else(|| DatasetError::Syntax { path: path.clone(), line: i + 1 })?;
        captions.entry(image.to_string()).or_default().push(caption.trim().to_string());
    }
    Ok(captions)
}

pub fn load_split(root: &Path, split: Split) -> Result<SplitData, DatasetError> {
    let captions = read_captions(root)?;
    let split_path = root.join(split.file_name());
    let mut data = SplitData { images: Vec::new(), captions: Vec::new() };
    for image in read(&split_path)?.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let caps = captions
            .get(image)
            .ok_or_else(|| DatasetError::Unknown { path: split_path.clone(), image: image.into() })?;
        let five: [String; 5] = caps.clone().try_into().map_err(|v: Vec<String>| DatasetError::Captions {
            path: root.join("Flickr8k.token.txt"),
            image: image.into(),
            found: v.len(),
        })?;
        data.images.push(root.join("images").join(image));
        data.captions.push(five);
    }
    Ok(data)
}
