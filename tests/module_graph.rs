//! The layers of DEVELOPERS.md, checked on the source: which top-level
//! module imports which, no cycles (between top-level modules, nor among
//! `client/*`), and the pure core (key data, AEAD, FLE1, schemas, query
//! analysis, explicit encryption) importing only layers below it and none
//! of the I/O crates. `cargo build --no-default-features` in `.ci/run`
//! proves the same from the other side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure layers, bottom first, and what each may import.
const PURE: &[(&str, &[&str])] = &[
    ("nesting", &[]),
    ("ejson", &[]),
    ("key", &[]),
    ("crypto", &["key"]),
    ("qe", &["crypto"]),
    ("ciphertext", &["crypto", "key"]),
    ("schema", &["ciphertext", "crypto", "key", "nesting"]),
    // `qe` (feature `qe`): decryption's side path for QE values and
    // `encrypt_qe`.
    (
        "explicit",
        &["ciphertext", "crypto", "key", "nesting", "qe"],
    ),
    (
        "analysis",
        &[
            "explicit",
            "schema",
            "ciphertext",
            "crypto",
            "key",
            "nesting",
        ],
    ),
];

/// Crates the pure layers must not name.
const IO_CRATES: &[&str] = &[
    "mongodb",
    "tokio",
    "reqwest",
    "hyper",
    "clap",
    "indicatif",
    "futures_util",
    "aws_sdk_kms",
    "aws_config",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its unit tests (a
/// test module may use anything).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names right after `prefix::` in `code`, with `prefix::{a, b::c}`
/// groups expanded to their first segments.
fn paths_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pat = format!("{prefix}::");
    let mut rest = code;
    while let Some(i) = rest.find(&pat) {
        let before = rest[..i].chars().last();
        rest = &rest[i + pat.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// `src/<m>.rs` or `src/<m>/…` → `m`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(m) => Some(m.to_owned()),
        None if first == "bin" => None,
        None => Some(first),
    }
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn layers_hold_and_nothing_imports_in_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut client: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for f in &files {
        let Some(m) = top_module(&src, f) else {
            continue;
        };
        let code = code(f);
        let used = paths_after(&code, "crate");
        let pure = PURE.iter().find(|(p, _)| *p == m);
        for u in &used {
            if modules.contains(u) {
                if *u != m {
                    graph.entry(m.clone()).or_default().insert(u.clone());
                }
                if let Some((_, allowed)) = pure
                    && *u != m
                    && !allowed.contains(&u.as_str())
                {
                    violations.push(format!("{}: pure `{m}` imports `{u}`", f.display()));
                }
            } else if pure.is_some() {
                // A root item (`crate::Error`, a re-export): the pure
                // layers name the module that defines what they use.
                violations.push(format!(
                    "{}: pure `{m}` uses root item `crate::{u}`",
                    f.display()
                ));
            }
        }
        if pure.is_some() {
            for c in IO_CRATES {
                if code.contains(&format!("{c}::")) {
                    violations.push(format!("{}: pure `{m}` names `{c}`", f.display()));
                }
            }
        }
        graph.entry(m.clone()).or_default();
        if m == "client" {
            // The submodule: `client/<x>.rs` or anything under `client/<x>/`.
            let rel = f.strip_prefix(src.join("client")).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap();
            let sub = first.trim_end_matches(".rs").to_owned();
            let is_sub = |u: &str| {
                u != sub
                    && (src.join("client").join(format!("{u}.rs")).exists()
                        || src.join("client").join(u).is_dir())
            };
            let mut deps: BTreeSet<String> = paths_after(&code, "crate::client")
                .into_iter()
                .filter(|u| is_sub(u))
                .collect();
            // `super::x` names a sibling in files directly in client/ and
            // in a directory module's own mod.rs.
            let depth = rel.components().count();
            if (depth == 1 && sub != "mod") || (depth == 2 && rel.ends_with("mod.rs")) {
                deps.extend(
                    paths_after(&code, "super")
                        .into_iter()
                        .filter(|u| is_sub(u)),
                );
            }
            client.entry(sub).or_default().extend(deps);
        }
    }
    for (m, deps) in &graph {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("{m} -> {}", deps.join(", "));
    }
    for (m, deps) in &client {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("client/{m} -> {}", deps.join(", "));
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert_eq!(
        cycle(&graph),
        None,
        "import cycle between top-level modules"
    );
    assert_eq!(cycle(&client), None, "import cycle among client/*");
    // The check sees what it should: the graph is the crate's, not empty.
    for m in ["key", "crypto", "analysis", "keyvault", "client", "migrate"] {
        assert!(graph.contains_key(m), "{m} not found");
    }
    assert!(graph["crypto"].contains("key") && graph["client"].contains("keyvault"));
}

#[test]
fn the_checker_finds_cycles_and_group_imports() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).into()).or_default().insert((*b).into());
            g.entry((*b).into()).or_default();
        }
        g
    };
    assert_eq!(cycle(&g(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        cycle(&g(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let used = paths_after(
        "use crate::{key::KeyId, crypto};\nlet x = crate::nesting::check(d);\nsuper::crate::no",
        "crate",
    );
    assert_eq!(
        used,
        BTreeSet::from(["key".into(), "crypto".into(), "nesting".into()])
    );
}
