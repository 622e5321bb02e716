//! Paths as text for output: unambiguous where a name is not UTF-8 or holds control characters
//! (a newline in a file name must not split a `SCORE<TAB>PATH` line), exact in JSON.

use std::borrow::Cow;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// The path as is when it is UTF-8 without control characters; else in double quotes with escapes:
/// `\n`, `\t`, `\"`, `\\`, `\u{…}` for other control characters and `\xNN` for bytes that are
/// not UTF-8.
pub fn shown(path: &Path) -> Cow<'_, str> {
    if let Some(s) = path.to_str()
        && !s.chars().any(char::is_control)
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::from("\"");
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// The path in a JSON object under `key` as a string (lossy where it is not UTF-8), and then also
/// under `{key}_bytes`, the exact bytes.
pub fn json_fields(path: &Path, key: &str, object: &mut serde_json::Map<String, serde_json::Value>) {
    object.insert(key.into(), path.to_string_lossy().into_owned().into());
    if path.to_str().is_none() {
        object.insert(format!("{key}_bytes"), path.as_os_str().as_bytes().to_vec().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn plain_names_are_unchanged_and_odd_ones_quoted_unambiguously() {
        assert_eq!(shown(Path::new("a/b c.jpg")), "a/b c.jpg");
        assert_eq!(shown(Path::new("new\nline.jpg")), "\"new\\nline.jpg\"");
        assert_eq!(shown(Path::new(OsStr::from_bytes(b"caf\xe9.jpg"))), "\"caf\\xe9.jpg\"");
        assert_eq!(shown(Path::new(OsStr::from_bytes(b"q\"\xff\\.jpg"))), "\"q\\\"\\xff\\\\.jpg\"");
        assert!(!shown(Path::new("tab\there.jpg")).contains('\t'));
    }

    #[test]
    fn json_keeps_the_exact_bytes() {
        let mut m = serde_json::Map::new();
        json_fields(Path::new(OsStr::from_bytes(b"caf\xe9.jpg")), "path", &mut m);
        assert_eq!(m["path_bytes"], serde_json::json!([99, 97, 102, 233, 46, 106, 112, 103]));
        let mut m = serde_json::Map::new();
        json_fields(Path::new("café.jpg"), "path", &mut m);
        assert_eq!(m["path"], "café.jpg");
        assert!(!m.contains_key("path_bytes"));
    }
}
