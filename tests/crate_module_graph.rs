//! The layers of DEVELOPERS.md, checked on the source: which top-level
//! module imports which, no cycles (between top-level modules, nor among
//! the files of any folder of `src/`), and the pure core (key data, AEAD,
//! FLE1, schemas, query analysis, explicit encryption) importing only
//! layers below it and none of the I/O crates, and `error` and `driver`
//! naming no layer above them (also through a root re-export such as
//! `crate::ClientEncryption`). `cargo build --no-default-features` in
//! `.ci/run` proves the same from the other side.
//!
//! An import is a path that starts with `crate::` or `super::` (in a `use`
//! or in code), resolved from the module of the file (and of the inline
//! `mod x { … }` it is written in) to the file that defines its longest
//! module prefix. Relative paths (`use child::X`, `pub use child::X` in a
//! `mod.rs`) are not imports here: they are how a folder's own file
//! re-exports its children, and every child naming `super::Error` would
//! otherwise close a cycle through its `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The pure layers, bottom first, and what each may import.
const PURE: &[(&str, &[&str])] = &[
    // What the protocol names (`encryptionInformation`, `db.coll`): below
    // every layer that reads or writes it.
    ("wire", &[]),
    ("nesting", &[]),
    ("ejson", &[]),
    ("key", &[]),
    ("crypto", &["key"]),
    ("qe", &["crypto", "wire"]),
    ("ciphertext", &["crypto", "key"]),
    (
        "schema",
        &["ciphertext", "crypto", "key", "nesting", "wire"],
    ),
    // `qe` (feature `qe`): decryption's side path for QE values and
    // `encrypt_qe`.
    (
        "explicit",
        &["ciphertext", "crypto", "key", "nesting", "qe"],
    ),
    // `qe` (feature `qe`): the encryptedFields of Queryable Encryption
    // collections and the placeholders their commands get.
    (
        "analysis",
        &[
            "explicit",
            "qe",
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

/// The library's source files, without its unit-test files (`tests.rs`,
/// `*_tests.rs`, a `tests/` folder: the files the package leaves out,
/// compiled only under `#[cfg(test)]`, where a test module may use
/// anything, as [`code`] ignores an inline `mod tests`).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() {
            if name != "tests" {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs")
            && name != "tests.rs"
            && !name.ends_with("_tests.rs")
        {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its unit tests (a
/// test module may use anything).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifier at the start of `s` (empty if none).
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The paths of the use tree at the start of `s` (`a::b`, `a::{b, c::{d,
/// e}}`, `a as b`, `a::*`), each as its segments (`self` and `*` add
/// none), and the text after the tree. In code the tree is a plain path
/// that ends where the identifiers do (`a::f(`, `a::T<`).
fn use_tree(s: &str) -> (Vec<Vec<String>>, &str) {
    let s = s.trim_start();
    if let Some(mut rest) = s.strip_prefix('{') {
        let mut out = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                return (out, after);
            }
            let (paths, after) = use_tree(rest);
            if after.len() == rest.len() {
                // Not a use tree: stop rather than loop.
                return (out, rest);
            }
            out.extend(paths);
            rest = after.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    if let Some(rest) = s.strip_prefix('*') {
        return (vec![Vec::new()], rest);
    }
    let name = ident(s);
    let rest = &s[name.len()..];
    if name.is_empty() {
        return (vec![Vec::new()], rest);
    }
    let head: Vec<String> = if name == "self" {
        Vec::new()
    } else {
        vec![name.to_owned()]
    };
    if let Some(tail) = rest.strip_prefix("::") {
        let (paths, rest) = use_tree(tail);
        let paths = paths
            .into_iter()
            .map(|p| head.iter().cloned().chain(p).collect())
            .collect();
        return (paths, rest);
    }
    // `x as y`: the alias is no segment.
    let rest = match rest.trim_start().strip_prefix("as ") {
        Some(alias) => {
            let alias = alias.trim_start();
            &alias[ident(alias).len()..]
        }
        None => rest,
    };
    (vec![head], rest)
}

/// Every path in `code` that starts with `prefix::` (`crate` or `super`):
/// where it starts and its segments after the prefix, groups expanded. A
/// `super::super::x` is one path (`[super, x]`); `pub(in crate::x)` is
/// visibility, not an import.
fn paths(code: &str, prefix: &str) -> Vec<(usize, Vec<String>)> {
    let pat = format!("{prefix}::");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find(&pat).map(|i| from + i) {
        from = i + pat.len();
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            || code[..i].trim_end().ends_with("(in")
        {
            continue;
        }
        let (trees, _) = use_tree(&code[from..]);
        out.extend(trees.into_iter().map(|p| (i, p)));
    }
    out
}

/// The modules written inline in `code` (`mod x { … }`): the byte range of
/// each and its name. A module ends at the first later line that is a `}`
/// indented like its `mod` line (the sources are rustfmt'ed), or at the
/// end of the code.
fn inline_modules(code: &str) -> Vec<(Range<usize>, String)> {
    let mut lines = Vec::new();
    let mut at = 0;
    for l in code.split('\n') {
        lines.push((at, l));
        at += l.len() + 1;
    }
    let mut out = Vec::new();
    for (k, &(start, line)) in lines.iter().enumerate() {
        let text = line.trim_start();
        let indent = &line[..line.len() - text.len()];
        let text = match text.strip_prefix("pub") {
            Some(rest) => {
                let rest = match rest.strip_prefix('(') {
                    Some(r) => r.split_once(')').map_or(r, |(_, after)| after),
                    None => rest,
                };
                match rest.strip_prefix(' ') {
                    Some(r) => r.trim_start(),
                    None => continue,
                }
            }
            None => text,
        };
        let Some(rest) = text.strip_prefix("mod ") else {
            continue;
        };
        let rest = rest.trim_start();
        let name = ident(rest);
        if name.is_empty() || rest[name.len()..].trim() != "{" {
            continue;
        }
        let close = format!("{indent}}}");
        let end = lines[k + 1..]
            .iter()
            .find(|(_, l)| l.trim_end() == close)
            .map_or(code.len(), |&(o, _)| o);
        out.push((start..end, name.to_owned()));
    }
    out
}

/// The module a file under `src/` defines: `a/b.rs` and `a/b/mod.rs` →
/// `[a, b]`, `lib.rs` → `[]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    let file = parts.pop().unwrap_or_default();
    match file.strip_suffix(".rs") {
        Some("mod" | "lib") => {}
        Some(stem) => parts.push(stem.to_owned()),
        None => parts.push(file),
    }
    parts
}

/// The absolute module path `path` names when written after `prefix::` in
/// module `module`, or `None` when it climbs above the crate root.
fn resolve(module: &[String], prefix: &str, path: &[String]) -> Option<Vec<String>> {
    let mut base = match prefix {
        "crate" => Vec::new(),
        "super" => {
            let mut base = module.to_vec();
            base.pop()?;
            base
        }
        _ => return None,
    };
    let mut path = path;
    while path.first().is_some_and(|s| s == "super") {
        base.pop()?;
        path = &path[1..];
    }
    base.extend(path.iter().cloned());
    Some(base)
}

/// The longest prefix of `path` that a file defines (`[]`, the crate root,
/// when none does): `crate::key::KeyId` → `[key]`.
fn owner(modules: &BTreeMap<Vec<String>, String>, path: &[String]) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains_key(p))
        .unwrap_or_default()
}

/// One file under `src/` and what it imports.
struct Source {
    /// The path relative to `src/`, `/`-separated.
    rel: String,
    /// The module the file defines.
    module: Vec<String>,
    /// The code, without comments and unit tests.
    code: String,
    /// The modules (each defined by a file) its `crate::`/`super::` paths
    /// name.
    uses: BTreeSet<Vec<String>>,
    /// The paths that name an item of the crate root (`crate::Error`).
    root_items: BTreeSet<String>,
}

/// The sources of `files` (path relative to `src/`, text), imports
/// resolved among them.
fn sources(files: &[(String, String)]) -> Vec<Source> {
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|(rel, _)| (module_of(rel), rel.clone()))
        .collect();
    files
        .iter()
        .map(|(rel, text)| {
            let module = module_of(rel);
            let code = code(text);
            let inline = inline_modules(&code);
            let mut uses = BTreeSet::new();
            let mut root_items = BTreeSet::new();
            for prefix in ["crate", "super"] {
                for (at, path) in paths(&code, prefix) {
                    // `super::` inside `mod x { … }` is the file's module.
                    let mut here = module.clone();
                    here.extend(
                        inline
                            .iter()
                            .filter(|(r, _)| r.contains(&at))
                            .map(|(_, n)| n.clone()),
                    );
                    let Some(abs) = resolve(&here, prefix, &path) else {
                        continue;
                    };
                    let defined_in = owner(&modules, &abs);
                    if defined_in.is_empty() {
                        root_items.insert(format!("crate::{}", abs.join("::")));
                    }
                    uses.insert(defined_in);
                }
            }
            Source {
                rel: rel.clone(),
                module,
                code,
                uses,
                root_items,
            }
        })
        .collect()
}

/// A directed graph by node name.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// For every folder under `src/` (not `src/` itself: that is the
/// top-level graph, without the `lib.rs` facade), the graph of its files:
/// a node is a file directly in the folder (its own file, `mod.rs`,
/// included) or a child folder (everything under it, named by its
/// `mod.rs`), an edge an import from one node into another.
fn folder_graphs(sources: &[Source]) -> BTreeMap<String, Graph> {
    let modules: BTreeMap<Vec<String>, String> = sources
        .iter()
        .map(|s| (s.module.clone(), s.rel.clone()))
        .collect();
    let name = |m: &[String]| {
        modules
            .get(m)
            .cloned()
            .unwrap_or_else(|| format!("{}/", m.join("/")))
    };
    let folders: BTreeSet<Vec<String>> = sources
        .iter()
        .map(|s| {
            let mut dir: Vec<String> = s.rel.split('/').map(str::to_owned).collect();
            dir.pop();
            dir
        })
        .filter(|dir| !dir.is_empty())
        .collect();
    folders
        .into_iter()
        .map(|folder| {
            // The node of a module under the folder: the folder's own file
            // for the folder itself, else the child the module is in.
            let node = |m: &[String]| {
                m.starts_with(&folder)
                    .then(|| name(&m[..m.len().min(folder.len() + 1)]))
            };
            let mut graph = Graph::new();
            for s in sources {
                let Some(from) = node(&s.module) else {
                    continue;
                };
                let deps = graph.entry(from.clone()).or_default();
                for u in &s.uses {
                    if let Some(to) = node(u)
                        && to != from
                    {
                        deps.insert(to);
                    }
                }
            }
            (folder.join("/"), graph)
        })
        .collect()
}

/// One line per folder whose files import each other in a circle:
/// `src/migrate/: job.rs → worker.rs → job.rs`.
fn folder_cycles(graphs: &BTreeMap<String, Graph>) -> Vec<String> {
    graphs
        .iter()
        .filter_map(|(folder, graph)| {
            let circle = cycle(graph)?;
            let inside = format!("{folder}/");
            let names: Vec<&str> = circle
                .iter()
                .map(|n| n.strip_prefix(inside.as_str()).unwrap_or(n.as_str()))
                .collect();
            Some(format!("src/{inside}: {}", names.join(" → ")))
        })
        .collect()
}

/// What `lib.rs` re-exports (`pub use client::{AuditSink, …}`, also inside
/// `pub mod action { pub use crate::client::… }`): each root path an item
/// is named by (`AuditSink`, `action::Find`, `CryptoError` for `crypto::Error
/// as CryptoError`) and the module it comes from. A root path such as
/// `crate::AuditSink` is no edge of the graphs above; this is how the
/// checks below still see which layer it belongs to.
fn reexports(lib: &Source) -> BTreeMap<String, Vec<String>> {
    let inline = inline_modules(&lib.code);
    let mut out = BTreeMap::new();
    let mut from = 0;
    while let Some(i) = lib.code[from..].find("pub use ").map(|i| from + i) {
        from = i + "pub use ".len();
        let end = lib.code[from..]
            .find(';')
            .map_or(lib.code.len(), |e| from + e);
        let statement = &lib.code[from..end];
        // `x as y` in the statement: the root name is `y`.
        let words: Vec<&str> = statement
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        let aliases: BTreeMap<&str, &str> = words
            .windows(3)
            .filter(|w| w[1] == "as")
            .map(|w| (w[0], w[2]))
            .collect();
        let (trees, _) = use_tree(statement);
        for path in trees {
            let path = if path.first().is_some_and(|s| s == "crate") {
                path[1..].to_vec()
            } else {
                path
            };
            let Some((name, module)) = path.split_last() else {
                continue;
            };
            let name = aliases.get(name.as_str()).copied().unwrap_or(name.as_str());
            let mut root: Vec<String> = inline
                .iter()
                .filter(|(r, _)| r.contains(&i))
                .map(|(_, n)| n.clone())
                .collect();
            root.push(name.to_owned());
            out.insert(root.join("::"), module.to_vec());
        }
    }
    out
}

/// The top-level modules a file imports: those its `crate::`/`super::`
/// paths name, and those the root items it names (`crate::AuditSink`) are
/// re-exported from.
fn layers_imported(s: &Source, reexports: &BTreeMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = s.uses.iter().filter_map(|u| u.first().cloned()).collect();
    for item in &s.root_items {
        let segments: Vec<&str> = item.split("::").skip(1).collect();
        // `crate::AuditSink::new`: the longest prefix that is re-exported.
        let module = (1..=segments.len())
            .rev()
            .find_map(|n| reexports.get(&segments[..n].join("::")));
        if let Some(first) = module.and_then(|m| m.first()) {
            out.insert(first.clone());
        }
    }
    out
}

/// The files of the crate's `src/` (binaries are crates of their own).
fn crate_sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let files: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&src)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_str().unwrap())
                .collect::<Vec<_>>()
                .join("/");
            (rel, std::fs::read_to_string(f).unwrap())
        })
        .filter(|(rel, _)| !rel.starts_with("bin/"))
        .collect();
    sources(&files)
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
fn layers_hold_and_no_top_level_module_imports_in_a_cycle() {
    let sources = crate_sources();
    let mut graph = Graph::new();
    let mut violations = Vec::new();
    for s in &sources {
        // `lib.rs` is the facade: re-exports and `__private`.
        let Some(m) = s.module.first() else {
            continue;
        };
        let pure = PURE.iter().find(|(p, _)| *p == m.as_str());
        graph.entry(m.clone()).or_default();
        for u in s.uses.iter().filter_map(|u| u.first()) {
            if u == m {
                continue;
            }
            graph.entry(m.clone()).or_default().insert(u.clone());
            if let Some((_, allowed)) = pure
                && !allowed.contains(&u.as_str())
            {
                violations.push(format!("{}: pure `{m}` imports `{u}`", s.rel));
            }
        }
        if pure.is_some() {
            // A root item (`crate::Error`, a re-export): the pure layers
            // name the module that defines what they use.
            for item in &s.root_items {
                violations.push(format!("{}: pure `{m}` uses root item `{item}`", s.rel));
            }
            for c in IO_CRATES {
                if s.code.contains(&format!("{c}::")) {
                    violations.push(format!("{}: pure `{m}` names `{c}`", s.rel));
                }
            }
        }
    }
    for (m, deps) in &graph {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("{m} -> {}", deps.join(", "));
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert_eq!(
        cycle(&graph),
        None,
        "import cycle between top-level modules"
    );
    // The check sees what it should: the graph is the crate's, not empty.
    for m in ["key", "crypto", "analysis", "keyvault", "client", "migrate"] {
        assert!(graph.contains_key(m), "{m} not found");
    }
    assert!(graph["crypto"].contains("key") && graph["client"].contains("keyvault"));
}

#[test]
fn no_files_of_a_folder_import_each_other_in_a_cycle() {
    let graphs = folder_graphs(&crate_sources());
    for (folder, graph) in &graphs {
        for (node, deps) in graph {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            println!("src/{folder}/: {node} -> {}", deps.join(", "));
        }
    }
    // The check sees what it should: every folder, and the imports in it.
    for folder in [
        "analysis",
        "client",
        "client/actions",
        "kms",
        "kms/kmip",
        "migrate",
        "qe",
        "qe/range",
    ] {
        assert!(graphs.contains_key(folder), "src/{folder}/ not found");
    }
    assert!(graphs["kms/kmip"]["kms/kmip/request.rs"].contains("kms/kmip/ttlv.rs"));
    let cycles = folder_cycles(&graphs);
    assert!(
        cycles.is_empty(),
        "files of a folder import each other in a cycle:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checker_finds_cycles_and_group_imports() {
    let g = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
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
    let found = |code: &str, prefix: &str| -> Vec<String> {
        paths(code, prefix)
            .into_iter()
            .map(|(_, p)| p.join("::"))
            .collect()
    };
    assert_eq!(
        found(
            "use crate::{key::{KeyId, self}, crypto as c};\nlet x = crate::nesting::check::<T>(d);\n\
             super::crate::no\npub(in crate::client) fn f() {}\nuse crate::kms::*;",
            "crate",
        ),
        ["key::KeyId", "key", "crypto", "nesting::check", "kms"]
    );
    assert_eq!(
        found(
            "use super::{\n    Error,\n    write::{self, Batch},\n};\nsuper::super::aead::open(k)",
            "super",
        ),
        ["Error", "write", "write::Batch", "super::aead::open"]
    );
}

/// A small tree: `a/x.rs` imports `a/y.rs` and, through a group, the child
/// folder `a/b/`; `a/b/z.rs` climbs back with `super::super::`; `a/b/mod.rs`
/// reaches `z` from an inline module; `a/y.rs` is `y`.
fn tree(y: &str) -> Vec<Source> {
    let files = [
        ("lib.rs", "pub mod a;\npub struct Error;\n"),
        (
            "a/mod.rs",
            "mod b;\nmod x;\nmod y;\npub use x::X;\nuse crate::Error;\n",
        ),
        (
            "a/x.rs",
            "use super::{y::{self, Y}, b::z};\npub struct X(Y);\n\
             fn g() {\n    z::f();\n    crate::a::b::z::f();\n}\n",
        ),
        ("a/y.rs", y),
        (
            "a/b/mod.rs",
            "mod z;\nmod inner {\n    use super::z::f;\n}\n",
        ),
        (
            "a/b/z.rs",
            "pub fn f() -> super::super::y::Y {\n    super::super::y::Y\n}\n",
        ),
    ];
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(rel, text)| ((*rel).to_owned(), (*text).to_owned()))
        .collect();
    sources(&files)
}

/// A graph from its edge lists.
fn edges(list: &[(&str, &[&str])]) -> Graph {
    list.iter()
        .map(|(from, to)| {
            (
                (*from).to_owned(),
                to.iter().map(|t| (*t).to_owned()).collect(),
            )
        })
        .collect()
}

#[test]
fn an_acyclic_folder_is_accepted() {
    // `y` names `x` only in a comment and in its unit tests.
    let graphs = folder_graphs(&tree(
        "pub struct Y;\n// use super::x::X;\n#[cfg(test)]\nmod tests {\n    use super::super::x::X;\n}\n",
    ));
    let expected = BTreeMap::from([
        (
            "a".to_owned(),
            edges(&[
                ("a/mod.rs", &[]),
                ("a/x.rs", &["a/b/mod.rs", "a/y.rs"]),
                ("a/y.rs", &[]),
                ("a/b/mod.rs", &["a/y.rs"]),
            ]),
        ),
        (
            "a/b".to_owned(),
            edges(&[("a/b/mod.rs", &["a/b/z.rs"]), ("a/b/z.rs", &[])]),
        ),
    ]);
    assert_eq!(graphs, expected);
    assert_eq!(folder_cycles(&graphs), Vec::<String>::new());
}

#[test]
fn a_cycle_inside_a_folder_is_refused() {
    // Between a file and a child folder, through a qualified path in code.
    let graphs = folder_graphs(&tree(
        "pub struct Y;\npub fn h() {\n    crate::a::b::z::f();\n}\n",
    ));
    assert_eq!(
        folder_cycles(&graphs),
        ["src/a/: b/mod.rs → y.rs → b/mod.rs"]
    );
    // Between two files, through `use super::…` (the shape of a `Ctx`
    // that one file defines and the other hands back).
    let files = [
        ("lib.rs", "mod m;\n"),
        ("m/mod.rs", "mod job;\nmod worker;\n"),
        ("m/job.rs", "use super::worker::Ctx;\npub struct Job;\n"),
        ("m/worker.rs", "pub struct Ctx(super::job::Job);\n"),
    ];
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(rel, text)| ((*rel).to_owned(), (*text).to_owned()))
        .collect();
    assert_eq!(
        folder_cycles(&folder_graphs(&sources(&files))),
        ["src/m/: job.rs → worker.rs → job.rs"]
    );
}

/// `error` is below the layers that return its `Error` (it wraps their
/// errors, never the reverse: `migrate::Error` holds a crate error), and
/// `driver` is the `mongodb` edge the key vault, the client and migration
/// share: neither may name a layer above it, by module path or through a
/// root re-export (`crate::ClientEncryption`).
#[test]
fn error_and_driver_import_no_layer_above_them() {
    let sources = crate_sources();
    let file = |rel: &str| {
        sources
            .iter()
            .find(|s| s.rel == rel)
            .unwrap_or_else(|| panic!("src/{rel} not found"))
    };
    let reexports = reexports(file("lib.rs"));
    // The check sees what it should: the root names of `client`, also
    // inside `pub mod action`, and the layers `error` wraps.
    let from = |name: &str| reexports.get(name).and_then(|m| m.first()).cloned();
    assert_eq!(from("ClientEncryption").as_deref(), Some("client"));
    assert_eq!(from("action::Find").as_deref(), Some("client"));
    assert_eq!(from("CryptoError").as_deref(), Some("crypto"));
    let error = layers_imported(file("error.rs"), &reexports);
    assert!(
        error.contains("keyvault") && error.contains("driver"),
        "{error:?}"
    );
    for (rel, above) in [
        ("error.rs", &["client", "migrate"][..]),
        ("driver.rs", &["client", "migrate", "keyvault"][..]),
    ] {
        let imported = layers_imported(file(rel), &reexports);
        let wrong: Vec<&str> = above
            .iter()
            .copied()
            .filter(|m| imported.contains(*m))
            .collect();
        assert!(
            wrong.is_empty(),
            "src/{rel} imports {wrong:?}, a layer above it (all it imports: {imported:?})"
        );
    }
}

#[test]
fn root_reexports_are_traced_to_their_layer() {
    let files = [
        (
            "lib.rs",
            "mod client;\nmod error;\npub use client::{Thing, Error as ClientError};\n\
             pub use error::Error;\npub mod action {\n    pub use crate::client::acts::Act;\n}\n",
        ),
        ("client/mod.rs", "pub struct Thing;\n"),
        (
            "error.rs",
            "fn f(_: crate::Thing, _: crate::action::Act) {}\nfn g() -> crate::ClientError {\n    \
             crate::ClientError::new()\n}\n",
        ),
    ];
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(rel, text)| ((*rel).to_owned(), (*text).to_owned()))
        .collect();
    let sources = sources(&files);
    let reexports = reexports(&sources[0]);
    let module = |m: &[&str]| Some(m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(reexports.get("Thing").cloned(), module(&["client"]));
    assert_eq!(reexports.get("ClientError").cloned(), module(&["client"]));
    assert_eq!(reexports.get("Error").cloned(), module(&["error"]));
    assert_eq!(
        reexports.get("action::Act").cloned(),
        module(&["client", "acts"])
    );
    let error = sources.iter().find(|s| s.rel == "error.rs").unwrap();
    assert_eq!(
        layers_imported(error, &reexports),
        BTreeSet::from(["client".to_owned()])
    );
}
