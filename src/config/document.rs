//! Checking a whole document: syntax, then the schema (serde), then `validate`.
//!
//! serde stops at the first error, so each error is recorded with its key and span, the
//! offending key (or unknown table, with everything in it) removed from the document, and
//! the document deserialized again. Removing keys keeps the spans of the others, so every
//! problem points into the original text.

use std::path::Path;

use serde::Deserialize;
use toml_edit::{DocumentMut, Item, Table};

use super::keys::{self, KeyIndex, Segment};
use super::raw::RawConfig;
use super::source::{Problems, Source};
use super::{syntax, validate, Config, Problem};

/// More schema errors than this in one file are not worth listing.
const MAX_SCHEMA_ERRORS: usize = 200;

/// Checks the text; returns the configuration only if the list of problems is empty.
pub(super) fn check(source: &Source<'_>, base_dir: &Path) -> (Option<Config>, Vec<Problem>) {
    let mut problems = Problems::new(source);
    let config = check_into(source, base_dir, &mut problems);
    if config.is_none() && problems.is_empty() {
        problems.add("(config)", None, "the configuration could not be checked");
    }
    (config, problems.into_sorted())
}

fn check_into(
    source: &Source<'_>,
    base_dir: &Path,
    problems: &mut Problems<'_, '_>,
) -> Option<Config> {
    let mut parsed = syntax::parse(source, problems)?;
    let syntax_problems = problems.len();
    let index = KeyIndex::build(&parsed.table);
    reject_arrays_of_tables(&mut parsed.table, &index, problems);
    let raw = deserialize(parsed.table, &index, problems);
    let config = validate::validate(raw, &index, base_dir, problems);
    for key in &parsed.broken_keys {
        // A blanked line's key is missing now: its syntax error says all there is to say.
        problems.drop_below(key, syntax_problems);
    }
    config
}

/// `[[server]]` where `[server]` is meant: serde would read the array as a tuple and
/// complain about its first field, so say what is wrong here and drop it.
fn reject_arrays_of_tables(table: &mut Table, index: &KeyIndex, problems: &mut Problems<'_, '_>) {
    let mut found = Vec::new();
    visit_arrays_of_tables(table, &mut Vec::new(), &mut found);
    for path in found {
        let key = keys::dotted(&path);
        let written = keys::names(&path).join(".");
        let message = format!("`{written}` is a table: write `[{written}]`, with single brackets");
        problems.add(key.clone(), index.place(&key), message);
        keys::remove(table, &path);
    }
}

fn visit_arrays_of_tables(table: &Table, path: &mut Vec<Segment>, found: &mut Vec<Vec<Segment>>) {
    for (key, item) in table.iter() {
        path.push(Segment::Key(key.to_owned()));
        match item {
            Item::ArrayOfTables(array) if path.len() == 1 && key == "upstream" => {
                for (at, element) in array.iter().enumerate() {
                    path.push(Segment::Index(at));
                    visit_arrays_of_tables(element, path, found);
                    path.pop();
                }
            }
            Item::ArrayOfTables(_) if is_known_table(path) => found.push(path.clone()),
            Item::Table(inner) => visit_arrays_of_tables(inner, path, found),
            _ => {}
        }
        path.pop();
    }
}

/// `server`, `store` or a section of an upstream (`upstream[1].retry`).
fn is_known_table(path: &[Segment]) -> bool {
    let names = keys::names(path);
    matches!(
        names.as_slice(),
        ["server" | "store"]
            | [
                "upstream",
                "limit" | "quota" | "queue" | "retry" | "breaker"
            ]
    )
}

/// Deserializes the document, reporting and removing each key serde rejects.
fn deserialize(mut table: Table, index: &KeyIndex, problems: &mut Problems<'_, '_>) -> RawConfig {
    let mut removed: Vec<Vec<Segment>> = Vec::new();
    for _ in 0..MAX_SCHEMA_ERRORS {
        let deserializer = toml_edit::de::Deserializer::from(DocumentMut::from(table.clone()));
        let err = match RawConfig::deserialize(deserializer) {
            Ok(raw) => return raw,
            Err(err) => err,
        };
        let entry = err.span().and_then(|span| index.locate(span.start));
        let Some(entry) = entry else {
            problems.add("(config)", err.span(), tidy(err.message(), ""));
            return RawConfig::default();
        };
        let key = entry.dotted();
        let again = removed.contains(&entry.path);
        if !again {
            problems.add(key.clone(), err.span(), tidy(err.message(), &key));
        }
        match keys::remove(&mut table, &entry.path) {
            Some(_) if !again => removed.push(entry.path.clone()),
            // Nothing left to remove: give up on the schema, keep what was reported.
            _ => return RawConfig::default(),
        }
    }
    problems.add(
        "(config)",
        None,
        format!("more than {MAX_SCHEMA_ERRORS} problems; stopped looking"),
    );
    RawConfig::default()
}

/// serde's wording, in the file's terms, with a suggestion for a misspelt key.
fn tidy(message: &str, key: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let mut out = format!("unknown key `{name}`");
        if let Some(close) = known.iter().find(|k| edit_distance(name, k) <= 2) {
            out.push_str(&format!(" (did you mean `{close}`?)"));
        } else if !key.contains('.') && is_upstream_section(name) {
            out.push_str(&format!(
                " (did you mean `[upstream.{name}]`, inside an upstream?)"
            ));
        }
        if !known.is_empty() {
            out.push_str(&format!("; expected one of {}", quoted_list(&known)));
        }
        return out;
    }
    if key == "upstream" && message.contains("expected a sequence") {
        return "`upstream` must be an array of tables: write `[[upstream]]`, with double brackets"
            .to_owned();
    }
    let mut out = message
        .replace("invalid type: map", "invalid type: table")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number such as 0.5")
        .replace("expected a string", "expected a string (in double quotes)");
    if let Some(at) = out.find(", expected struct ") {
        out.truncate(at);
        out.push_str(", expected a table");
    }
    out
}

fn is_upstream_section(name: &str) -> bool {
    matches!(
        name,
        "limit"
            | "quota"
            | "queue"
            | "retry"
            | "breaker"
            | "name"
            | "prefix"
            | "url"
            | "max_concurrency"
            | "connect_timeout"
            | "timeout"
            | "ca_file"
            | "rewrite_links"
    )
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
