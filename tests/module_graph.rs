//! The house rule of ARCHITECTURE.md, checked on the source: no module imports one that imports
//! it back (directly or around a loop), counting `crate::…` and `super::…` paths outside comments
//! and test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of `src/` by its path (`engine::explain`) with its file's text.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix("src").unwrap().with_extension("");
                let mut name = rel.to_string_lossy().replace('/', "::");
                if let Some(parent) = name.strip_suffix("::mod") {
                    name = parent.to_string();
                }
                out.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("src"), &mut out);
    out
}

/// The modules `name` refers to (the longest known prefix of each path).
fn imports(name: &str, text: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    // `super` is the module's parent (the crate root for a top-level module), mod.rs or not.
    let parent = name.rsplit_once("::").map_or("", |(p, _)| p).to_string();
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (prefix, base) in [("crate::", String::new()), ("super::", parent.clone())] {
            for (at, _) in line.match_indices(prefix) {
                let rest = &line[at + prefix.len()..];
                let path: String =
                    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
                let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
                let target = (1..=parts.len())
                    .rev()
                    .map(|k| {
                        let tail = parts[..k].join("::");
                        if base.is_empty() { tail } else { format!("{base}::{tail}") }
                    })
                    .find(|m| known.contains_key(m));
                if let Some(m) = target.filter(|m| m != name) {
                    found.insert(m);
                }
            }
        }
    }
    found
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let known = modules();
    assert!(known.contains_key("engine::explain") && known.contains_key("train::fit"), "run from the crate root");
    let edges: BTreeMap<&str, BTreeSet<String>> =
        known.iter().map(|(name, text)| (name.as_str(), imports(name, text, &known))).collect();
    // A loop exists where some module reaches itself again.
    let mut loops = Vec::new();
    for start in edges.keys() {
        let mut stack: Vec<Vec<&str>> = vec![vec![start]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap();
            for next in &edges[last] {
                if next == start {
                    loops.push(path.join(" → ") + " → " + start);
                } else if seen.insert(next.as_str()) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
    assert!(loops.is_empty(), "modules that import each other:\n{}", loops.join("\n"));
}

#[test]
fn the_checker_sees_a_loop() {
    let mut known = BTreeMap::new();
    known.insert("a".to_string(), "use crate::b::x;".to_string());
    known.insert("b".to_string(), "// crate::a in a comment\nfn f() { super::a::g() }".to_string());
    assert_eq!(imports("a", &known["a"], &known), BTreeSet::from(["b".to_string()]));
    assert_eq!(imports("b", &known["b"], &known), BTreeSet::from(["a".to_string()]));
    known.insert("c::d".to_string(), "use super::e;\n#[cfg(test)]\nuse crate::a;".to_string());
    known.insert("c::e".to_string(), String::new());
    assert_eq!(imports("c::d", &known["c::d"], &known), BTreeSet::from(["c::e".to_string()]));
}
