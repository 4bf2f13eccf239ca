//! The source's layout rules, checked by reading it: no import circles between the crate's modules,
//! and nothing outside `src/s3/` talks to the AWS SDK (README, "Layout").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each file's module path under `src` (`cmd::batch::manifest`), and its text without test modules
/// and comments.
fn sources() -> Vec<(Vec<String>, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|last| last == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] {
                return None;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]\nmod ").next().unwrap().to_string();
            let code: String = text
                .lines()
                .map(|line| line.split("//").next().unwrap())
                .collect::<Vec<_>>()
                .join("\n");
            Some((module, code))
        })
        .collect()
}

/// Module -> modules it names through `crate::`, at `depth` path segments.
fn graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in sources() {
        let me = module[..depth.min(module.len())].join("::");
        for (at, _) in code.match_indices("crate::") {
            let path: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let target: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            // Only module paths: lowercase segments (a type or function ends the path).
            let target: Vec<&str> = target
                .into_iter()
                .take_while(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
                .take(depth)
                .collect();
            let target = target.join("::");
            if !target.is_empty() && target != me && !me.starts_with(&format!("{target}::")) {
                edges.entry(me.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// A module that reaches itself through others.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            return Some(path[at..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = walk(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| walk(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    for depth in [1, 2] {
        let edges = graph(depth);
        assert!(edges.len() > 10, "the source was not read: {edges:?}");
        assert_eq!(circle(&edges), None, "an import circle (depth {depth})");
    }
}

#[test]
fn a_circle_is_found() {
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(circle(&edges).map(|c| c.len()), Some(3));
}

#[test]
fn only_the_s3_seam_talks_to_the_sdk() {
    for (module, code) in sources() {
        // The tests' independent client (local_server, behind the testing feature) is the exception.
        if module[0] == "s3" || module == ["local_server"] {
            continue;
        }
        // A path into an SDK crate (`aws_sdk_s3::...`), not a word in a string.
        for crate_name in ["aws_sdk_", "aws_smithy_", "aws_config"] {
            for (at, _) in code.match_indices(crate_name) {
                let rest = &code[at + crate_name.len()..];
                let name_end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                assert!(
                    !rest[name_end..].starts_with("::"),
                    "{} uses {crate_name}{}: go through crate::s3",
                    module.join("::"),
                    &rest[..name_end]
                );
            }
        }
    }
}
