//! The code's layers: no file of `src/` imports, directly or round about, a file that imports
//! it back (data flows one way: handler -> scheduler -> client -> quota -> retry policy ->
//! handler, and no room below reaches back up). Read from the `crate::` and `super::` paths
//! of each file's non-test code, comments left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`["scheduler", "grant"]`) of every source file, and its non-test text.
fn modules() -> BTreeMap<Vec<String>, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut modules = BTreeMap::new();
    for path in files {
        let module = module_of(&root, &path);
        if module.iter().any(|part| part == "tests") || module.first().is_some_and(|m| m == "main")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read file");
        // Unit tests sit at the end of a file, behind `#[cfg(test)]`; comments (doc links
        // among them) import nothing.
        let code = text
            .find("#[cfg(test)]")
            .map_or(text.as_str(), |at| &text[..at]);
        let code: String = code
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        modules.insert(module, code);
    }
    modules
}

fn module_of(root: &Path, path: &Path) -> Vec<String> {
    let relative = path
        .strip_prefix(root)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        parts.pop();
    }
    parts
}

/// The files `code` (of `module`) names: the longest known module each path reaches.
fn imports(module: &[String], code: &str, known: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let path: Vec<&str> = code[at..]
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or_default()
            .split("::")
            .filter(|part| !part.is_empty())
            .collect();
        let mut target: Vec<String> = match path.first() {
            Some(&"crate") => Vec::new(),
            // `super::` in `a/b.rs` (module a::b) names module a.
            _ => module[..module.len().saturating_sub(1)].to_vec(),
        };
        let mut reached = None;
        for part in path.iter().skip(1) {
            if part.starts_with(|c: char| c.is_uppercase()) {
                break;
            }
            target.push((*part).to_owned());
            if known.contains(&target) {
                reached = Some(target.clone());
            }
        }
        if let Some(reached) = reached.filter(|reached| reached.as_slice() != module) {
            // A module's own submodules are its rooms, not a way back up.
            if !reached.starts_with(module) {
                found.insert(reached);
            }
        }
    }
    found
}

/// The groups of modules that import each other round about (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        groups: Vec<Vec<Vec<String>>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a Vec<String>) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            for next in self.edges.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut group = Vec::new();
                while let Some(member) = self.stack.pop() {
                    group.push(member.clone());
                    if member == node {
                        break;
                    }
                }
                if group.len() > 1 {
                    self.groups.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        groups: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.groups
}

fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules = modules();
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, code)| (module.clone(), imports(module, code, &known)))
        .collect()
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let graph = graph();
    assert!(graph.len() > 50, "the walk found {} files", graph.len());
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles: {found:?}");
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let mut top: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, imported) in graph() {
        let from = module[..1.min(module.len())].to_vec();
        let entry = top.entry(from.clone()).or_default();
        entry.extend(
            imported
                .into_iter()
                .map(|to| to[..1].to_vec())
                .filter(|to| *to != from),
        );
    }
    let found = cycles(&top);
    assert!(found.is_empty(), "import cycles: {found:?}");
}

#[test]
fn the_check_sees_a_cycle() {
    let known: BTreeSet<Vec<String>> = [vec!["a".to_owned()], vec!["b".to_owned()]].into();
    let a = imports(&["a".to_owned()], "use crate::b::Thing;", &known);
    let b = imports(&["b".to_owned()], "use crate::a::{self, Other};", &known);
    let graph = BTreeMap::from([(vec!["a".to_owned()], a), (vec!["b".to_owned()], b)]);
    assert_eq!(cycles(&graph).len(), 1, "{graph:?}");
}

/// Every file and folder the README's code map names exists.
#[test]
fn the_readme_code_map_names_real_places() {
    let readme = include_str!("../README.md");
    let map = readme
        .split("## Where the code lives")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a `## Where the code lives` section");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut places = vec!["src/".to_owned()];
    let mut dirs = vec![root.join("src"), root.join("tests"), root.join("config")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let relative = path.strip_prefix(root).expect("under the root").to_owned();
            if path.is_dir() {
                places.push(format!("{}/", relative.display()));
                dirs.push(path);
            } else {
                places.push(relative.display().to_string());
            }
        }
    }
    let named: Vec<&str> = map
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| name.ends_with(".rs") || name.ends_with('/') || name.contains('.'))
        .collect();
    assert!(named.len() > 20, "{named:?}");
    for name in named {
        assert!(
            places.iter().any(|place| place.ends_with(name)),
            "the README's code map names `{name}`, which is not in src/, tests/ or config/"
        );
    }
}
