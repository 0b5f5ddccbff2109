//! The crate's shape, checked: no two modules import each other, and the
//! shared layers (`net`, `session`, `wire`, `dataplane`, `chain`,
//! `identity`) never import a role (`fullnode`, `provider`, `client`).
//!
//! Reads `src/` as text: every `crate::…`/`super::…` path outside comments
//! is resolved to the deepest module it names (a file under `src/`), which
//! gives the import graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROLES: [&str; 3] = ["fullnode", "provider", "client"];
const LAYERS: [&str; 6] = ["net", "session", "wire", "dataplane", "chain", "identity"];

/// Module path (`fullnode::api::state`) → its file, for the library.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable src dir") {
            let path = entry.expect("dir entry").path();
            let rel = path.strip_prefix(src).expect("under src");
            // The binaries (main.rs, cli/, bin/) are not the library.
            if rel.starts_with("bin") || rel.starts_with("cli") || rel == Path::new("main.rs") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The deepest module `path` (as written in module `from`) names.
fn resolve(modules: &BTreeMap<String, PathBuf>, from: &str, path: &str) -> Option<String> {
    let mut segments = path.split("::").peekable();
    let mut base: Vec<&str> = Vec::new();
    match segments.peek() {
        Some(&"crate") => {
            segments.next();
        }
        _ => {
            // `super` in module foo::bar (foo/bar.rs or foo/bar/mod.rs) is foo.
            base = from.split("::").filter(|s| !s.is_empty()).collect();
            while segments.peek() == Some(&"super") {
                segments.next();
                base.pop();
            }
        }
    }
    let mut best = None;
    let mut current: Vec<&str> = base;
    for segment in segments {
        current.push(segment);
        let name = current.join("::");
        if modules.contains_key(&name) {
            best = Some(name);
        }
    }
    best
}

fn import_graph(src: &Path) -> BTreeSet<(String, String)> {
    let modules = modules(src);
    let mut edges = BTreeSet::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("readable source");
        for line in text.lines() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (start, _) in line
                .match_indices("crate::")
                .chain(line.match_indices("super::"))
            {
                // Only at a path's start (not `foo::super::`).
                if start > 0 && line[..start].ends_with("::") {
                    continue;
                }
                let path: String = line[start..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let path = path.trim_end_matches(':');
                if let Some(target) = resolve(&modules, module, path) {
                    if target != *module {
                        edges.insert((module.clone(), target));
                    }
                }
            }
        }
    }
    edges
}

/// Pairs of modules that import each other.
fn circles(edges: &BTreeSet<(String, String)>) -> Vec<(String, String)> {
    edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .cloned()
        .collect()
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn no_two_modules_import_each_other_and_layers_never_import_roles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = import_graph(&src);
    assert!(
        edges.len() > 50,
        "the scan found too few imports ({}): is it reading src/?",
        edges.len()
    );
    let circles = circles(&edges);
    assert!(
        circles.is_empty(),
        "modules importing each other: {circles:?}"
    );
    let upward: Vec<_> = edges
        .iter()
        .filter(|(from, to)| LAYERS.contains(&top(from)) && ROLES.contains(&top(to)))
        .collect();
    assert!(
        upward.is_empty(),
        "shared layers importing a role: {upward:?}"
    );
}

#[test]
fn the_scan_sees_a_circle_where_there_is_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("fullnode")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod fullnode;\npub mod wire;\n").expect("write");
    std::fs::write(
        src.join("fullnode/mod.rs"),
        "mod ingest;\npub use crate::fullnode::ingest::Ingest;\npub enum Event {}\n",
    )
    .expect("write");
    std::fs::write(
        src.join("fullnode/ingest.rs"),
        "use crate::fullnode::Event;\n// use crate::wire::X; (a comment)\npub struct Ingest;\n",
    )
    .expect("write");
    std::fs::write(src.join("wire.rs"), "use crate::fullnode::Event;\n").expect("write");
    let edges = import_graph(src);
    assert_eq!(
        circles(&edges),
        vec![("fullnode".to_string(), "fullnode::ingest".to_string())]
    );
    assert!(edges.contains(&("wire".into(), "fullnode".into())));
    assert!(!edges.iter().any(|(_, to)| to == "wire"), "{edges:?}");
}
