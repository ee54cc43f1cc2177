//! TOML syntax errors: each reported with its position and, when its line says, its key.
//!
//! The parser stops at the first error, so the line is blanked (replaced by spaces, keeping
//! every byte offset) and the text parsed again, to report several errors in one run. That
//! is only sound for a `key = value` line: after an error on a `[header]` or inside a
//! multi-line value the rest of the file cannot be trusted, and checking stops there.

use std::collections::HashMap;

use toml_edit::{ImDocument, Table};

use super::keys::{dotted, Segment};
use super::source::{Problems, Source};

/// More syntax errors than this in one file are not worth listing.
const MAX_SYNTAX_ERRORS: usize = 20;

/// A parsed document whose broken `key = value` lines, if any, were blanked.
pub(super) struct Parsed {
    pub table: Table,
    /// Keys of the blanked lines: problems found later about them are consequences.
    pub broken_keys: Vec<String>,
}

/// Parses the source, reporting every syntax error it can. `None` when the document cannot
/// be trusted for further checks.
pub(super) fn parse(source: &Source<'_>, problems: &mut Problems<'_, '_>) -> Option<Parsed> {
    let mut text = source.text().to_owned();
    let mut broken_keys = Vec::new();
    let mut last_line = None;
    for _ in 0..MAX_SYNTAX_ERRORS {
        let err = match ImDocument::parse(text.as_str()) {
            Ok(document) => {
                return Some(Parsed {
                    table: document.into_table(),
                    broken_keys,
                })
            }
            Err(err) => err,
        };
        let Some(span) = err.span() else {
            problems.add(
                "(syntax)",
                None,
                format!("invalid TOML: {}", flatten(err.message())),
            );
            return None;
        };
        let line_index = source.line_index(span.start);
        let line = source.line(line_index);
        let context = Context::of(source, line_index);
        if last_line.is_some_and(|last| line_index <= last)
            || (last_line.is_some() && context.statement != Statement::KeyValue)
        {
            // Most likely a consequence of the line blanked before: stop here.
            return None;
        }
        last_line = Some(line_index);
        let key = context.key.clone().unwrap_or_else(|| "(syntax)".to_owned());
        problems.add(key.clone(), Some(span), message(err.message(), line));
        if context.statement != Statement::KeyValue || context.key.is_none() {
            return None;
        }
        broken_keys.push(key);
        let range = source.line_range(line_index);
        text.replace_range(range.clone(), &" ".repeat(range.len()));
    }
    None
}

/// What a line of TOML is, judged by its first characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statement {
    Blank,
    Header,
    KeyValue,
    /// Anything else: the middle of a multi-line value, or garbage.
    Other,
}

impl Statement {
    fn of(line: &str) -> Statement {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            Statement::Blank
        } else if line.starts_with('[') {
            Statement::Header
        } else if leading_key(line).is_some() {
            Statement::KeyValue
        } else {
            Statement::Other
        }
    }
}

/// A line, what it is and the dotted key it belongs to.
struct Context {
    statement: Statement,
    key: Option<String>,
}

impl Context {
    /// Follows the `[table]` and `[[array]]` headers down to line `line_index`.
    fn of(source: &Source<'_>, line_index: usize) -> Context {
        let mut table: Vec<Segment> = Vec::new();
        let mut array_counts: HashMap<Vec<String>, usize> = HashMap::new();
        for index in 0..=line_index {
            let line = source.line(index).trim();
            let Some((names, is_array)) = header(line) else {
                continue;
            };
            if is_array {
                *array_counts.entry(names.clone()).or_insert(0) += 1;
            }
            table.clear();
            for depth in 1..=names.len() {
                table.push(Segment::Key(names[depth - 1].clone()));
                if let Some(count) = array_counts.get(&names[..depth]) {
                    table.push(Segment::Index(count.saturating_sub(1)));
                }
            }
        }
        let line = source.line(line_index);
        let statement = Statement::of(line);
        let key = match statement {
            Statement::KeyValue => leading_key(line.trim()).map(|names| {
                table.extend(names.into_iter().map(Segment::Key));
                dotted(&table)
            }),
            // The headers above were followed down to this one, if it reads as a header.
            Statement::Header => header(line.trim()).map(|_| dotted(&table)),
            _ => None,
        };
        Context { statement, key }
    }
}

/// `[a.b]` -> (`["a", "b"]`, false); `[[a]]` -> (`["a"]`, true).
fn header(line: &str) -> Option<(Vec<String>, bool)> {
    let line = line.split('#').next().unwrap_or("").trim();
    if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
        return Some((key_names(inner)?, true));
    }
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    Some((key_names(inner)?, false))
}

/// The key before `=` on a `key = value` line.
fn leading_key(line: &str) -> Option<Vec<String>> {
    let (key, _) = line.split_once('=')?;
    key_names(key)
}

/// `a.b`, `"a".b` -> names; `None` unless it looks like a TOML key.
fn key_names(key: &str) -> Option<Vec<String>> {
    let key = key.trim();
    let valid = |c: char| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c);
    if key.is_empty() || !key.chars().all(valid) {
        return None;
    }
    let names: Vec<String> = key
        .split('.')
        .map(|name| {
            name.trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned()
        })
        .collect();
    names.iter().all(|name| !name.is_empty()).then_some(names)
}

/// The parser's message on one line, with a hint for the usual mistake: an unquoted string.
fn message(parser_message: &str, line: &str) -> String {
    let mut out = format!("invalid TOML: {}", flatten(parser_message));
    if let Some((key, value)) = line.split_once('=') {
        let value = value.split(" #").next().unwrap_or("").trim();
        let looks_unquoted = !value.is_empty()
            && !value.starts_with(['"', '\'', '[', '{'])
            && !matches!(value, "true" | "false" | "inf" | "nan" | "+inf" | "-inf")
            && value
                .chars()
                .any(|c| !(c.is_ascii_digit() || "+-._eE".contains(c)));
        if looks_unquoted {
            out.push_str(&format!(
                "; strings and durations must be quoted: {} = \"{}\"",
                key.trim(),
                value
            ));
        }
    }
    out
}

/// The parser's multi-line message on one line.
fn flatten(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
