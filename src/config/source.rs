//! The configuration text being checked, and the list of problems found in it.
//!
//! Every span handled while checking is a byte range into the original text; this module is
//! the one place that turns it into a 1-based line and column.

use std::ops::Range;
use std::path::Path;

use super::Problem;

/// The text of a configuration file and where it came from.
pub(super) struct Source<'a> {
    text: &'a str,
    file: Option<&'a Path>,
    /// Byte offset of the first character of each line.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub(super) fn new(text: &'a str, file: Option<&'a Path>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            text,
            file,
            line_starts,
        }
    }

    pub(super) fn text(&self) -> &'a str {
        self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = match self.text.get(start..offset) {
            Some(prefix) => prefix.chars().count(),
            None => offset - start,
        };
        (line.max(1), column + 1)
    }

    /// The 0-based index of the line holding a byte offset.
    pub(super) fn line_index(&self, offset: usize) -> usize {
        self.position(offset).0 - 1
    }

    /// The byte range of a 0-based line, without its line break.
    pub(super) fn line_range(&self, index: usize) -> Range<usize> {
        let start = self
            .line_starts
            .get(index)
            .copied()
            .unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(index + 1)
            .map_or(self.text.len(), |next| next - 1);
        let end = end.max(start);
        let line = &self.text[start..end];
        start..start + line.strip_suffix('\r').unwrap_or(line).len()
    }

    /// The text of a 0-based line, without its line break.
    pub(super) fn line(&self, index: usize) -> &'a str {
        &self.text[self.line_range(index)]
    }
}

/// Problems found so far, each with its key and, where known, its place in the file.
pub(super) struct Problems<'s, 'a> {
    source: &'s Source<'a>,
    found: Vec<(Option<usize>, Problem)>,
}

impl<'s, 'a> Problems<'s, 'a> {
    pub(super) fn new(source: &'s Source<'a>) -> Self {
        Problems {
            source,
            found: Vec::new(),
        }
    }

    /// Records a problem at the start of `span` (if any).
    pub(super) fn add(
        &mut self,
        key: impl Into<String>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) {
        let offset = span.map(|span| span.start);
        let problem = Problem {
            file: self.source.file.map(Path::to_path_buf),
            key: key.into(),
            position: offset.map(|offset| self.source.position(offset)),
            message: message.into(),
        };
        self.found.push((offset, problem));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.found.len()
    }

    /// Drops the problems about `key` or anything below it, except the first `keep` found.
    pub(super) fn drop_below(&mut self, key: &str, keep: usize) {
        let mut index = 0;
        self.found.retain(|(_, problem)| {
            index += 1;
            index <= keep || !is_at_or_below(&problem.key, key)
        });
    }

    /// The problems in file order; those without a position come last, in the order found.
    pub(super) fn into_sorted(self) -> Vec<Problem> {
        let mut found = self.found;
        found.sort_by_key(|(offset, _)| offset.unwrap_or(usize::MAX));
        found.into_iter().map(|(_, problem)| problem).collect()
    }
}

/// Whether dotted key `key` is `parent` or a key inside it (`a.b` and `a[0]` are inside `a`).
pub(super) fn is_at_or_below(key: &str, parent: &str) -> bool {
    match key.strip_prefix(parent) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('['),
        None => false,
    }
}
