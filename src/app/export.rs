//! The ranked gallery written out: CSV (`rank,score,path`) or JSON in the shape `alignscope search
//! --json` prints (`query`, `photos`, `model`, `results` of `{score, path[, path_bytes]}`), chosen
//! by the file's extension.

use std::path::Path;

use crate::engine::search::Hit;

/// What is exported: the query, the model that ranked, and the photos best first (`score` is
/// NaN for a photo that has none, e.g. one that could not be embedded).
pub struct Ranking {
    pub caption: String,
    /// Ranked by similarity to this photo instead of a caption ("Find similar").
    pub image: Option<std::path::PathBuf>,
    pub model: String,
    pub hits: Vec<Hit>,
}

/// A CSV field, quoted where it holds a comma, a quote or a line break (RFC 4180); a name that is
/// not UTF-8 is written lossily (the JSON export keeps its bytes).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

pub fn to_csv(ranking: &Ranking) -> String {
    let mut out = String::from("rank,score,path\n");
    for (rank, hit) in ranking.hits.iter().enumerate() {
        let score = if hit.score.is_finite() { format!("{:.6}", hit.score) } else { String::new() };
        out.push_str(&format!("{},{score},{}\n", rank + 1, csv_field(&hit.path.to_string_lossy())));
    }
    out
}

pub fn to_json(ranking: &Ranking) -> String {
    let results: Vec<serde_json::Value> = ranking
        .hits
        .iter()
        .map(|hit| {
            let mut object = serde_json::Map::new();
            let score =
                if hit.score.is_finite() { serde_json::Value::from(hit.score) } else { serde_json::Value::Null };
            object.insert("score".into(), score);
            crate::data::path_text::json_fields(&hit.path, "path", &mut object);
            serde_json::Value::Object(object)
        })
        .collect();
    let mut query = serde_json::Map::new();
    match &ranking.image {
        Some(image) => crate::data::path_text::json_fields(image, "image", &mut query),
        None => {
            query.insert("caption".into(), ranking.caption.clone().into());
        }
    }
    let object = serde_json::json!({
        "query": query,
        "photos": ranking.hits.len(),
        "model": ranking.model.to_lowercase(),
        "results": results,
    });
    format!("{object:#}\n")
}

/// Write `ranking` to `path` (JSON for `.json`, else CSV); the message says what was written or
/// why not, naming the file.
pub fn write(path: &Path, ranking: &Ranking) -> Result<String, String> {
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = if json { to_json(ranking) } else { to_csv(ranking) };
    std::fs::write(path, text).map_err(|e| format!("{}: cannot write the ranking: {e}", path.display()))?;
    Ok(format!("{}: {} photos written", path.display(), ranking.hits.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::PathBuf;

    fn ranking() -> Ranking {
        Ranking {
            caption: "a \"red\" car".into(),
            image: None,
            model: "Default".into(),
            hits: vec![
                Hit { score: 1.5, path: PathBuf::from("/p/a, b.jpg") },
                Hit { score: 0.25, path: PathBuf::from(std::ffi::OsStr::from_bytes(b"/p/caf\xe9.jpg")) },
                Hit { score: f32::NAN, path: PathBuf::from("/p/two\nlines \"q\".png") },
            ],
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting_and_leaves_missing_scores_empty() {
        let csv = to_csv(&ranking());
        assert_eq!(
            csv,
            "rank,score,path\n1,1.500000,\"/p/a, b.jpg\"\n2,0.250000,/p/caf\u{fffd}.jpg\n3,,\"/p/two\nlines \"\"q\"\".png\"\n"
        );
    }

    #[test]
    fn json_has_search_s_shape_and_exact_bytes() {
        let json: serde_json::Value = serde_json::from_str(&to_json(&ranking())).unwrap();
        assert_eq!(json["query"]["caption"], "a \"red\" car");
        assert_eq!(json["model"], "default");
        assert_eq!(json["photos"], 3);
        assert_eq!(json["results"][0]["score"], 1.5);
        assert_eq!(json["results"][1]["path_bytes"].as_array().map(Vec::len), Some(11));
        assert!(json["results"][2]["score"].is_null());
    }

    #[test]
    fn the_extension_picks_the_format_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("r.JSON");
        write(&json, &ranking()).unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&json).unwrap()).is_ok());
        let csv = dir.path().join("r.csv");
        assert!(write(&csv, &ranking()).unwrap().contains("3 photos"));
        assert!(std::fs::read_to_string(&csv).unwrap().starts_with("rank,score,path\n"));
        let err = write(&dir.path().join("missing/r.csv"), &ranking()).unwrap_err();
        assert!(err.contains("missing/r.csv"), "{err}");
    }
}
