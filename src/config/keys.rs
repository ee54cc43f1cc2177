//! Dotted keys of a parsed document and where they are: from a byte offset (serde's error
//! span) to the key, from a key to its span, and removal of a key from the document.

use std::ops::Range;

use toml_edit::{Item, Table, TableLike, Value};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

/// One key or array element of the document.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub path: Vec<Segment>,
    /// The key itself (`limt` in `limt = 3` or in `[upstream.limt]`), if it has one.
    pub key_span: Option<Range<usize>>,
    /// The value, or the header of a `[table]` / `[[array]]` element.
    pub span: Option<Range<usize>>,
}

impl Entry {
    /// Where to point a reader at: the key if there is one, else the value or header.
    pub fn place(&self) -> Option<Range<usize>> {
        self.key_span.clone().or_else(|| self.span.clone())
    }

    pub fn dotted(&self) -> String {
        dotted(&self.path)
    }
}

/// Every key and array element of a document, in document order.
pub(super) struct KeyIndex {
    entries: Vec<Entry>,
}

impl KeyIndex {
    pub fn build(root: &Table) -> Self {
        let mut entries = Vec::new();
        walk_table(root, &mut Vec::new(), &mut entries);
        KeyIndex { entries }
    }

    /// The key at `offset`, else the innermost key whose value contains it. (A key comes
    /// first: in `[upstream.retry]`, `upstream` is at column 2 although the header, the
    /// "value" of `retry`, spans the whole line.)
    pub fn locate(&self, offset: usize) -> Option<&Entry> {
        let contains = |span: &Option<Range<usize>>| {
            span.as_ref()
                .is_some_and(|s| s.contains(&offset) || s.start == offset)
        };
        let innermost = |by_key: bool| {
            self.entries
                .iter()
                .filter(|e| contains(if by_key { &e.key_span } else { &e.span }))
                .max_by_key(|e| e.path.len())
        };
        innermost(true).or_else(|| innermost(false))
    }

    /// The entry for a dotted key such as `upstream[0].retry`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.dotted() == key)
    }

    /// Where to point at for `key`: the key itself, else the nearest enclosing key that the
    /// file has (a missing key is reported at its table's header).
    pub fn place(&self, key: &str) -> Option<Range<usize>> {
        let mut key = key;
        loop {
            if let Some(place) = self.get(key).and_then(Entry::place) {
                return Some(place);
            }
            key = &key[..key.rfind(['.', '['])?];
        }
    }
}

/// `upstream[1].retry.max_delay`
pub(super) fn dotted(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// The key names of a path, without array indices: `upstream[1].retry` -> `upstream`, `retry`.
pub(super) fn names(path: &[Segment]) -> Vec<&str> {
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Key(key) => Some(key.as_str()),
            Segment::Index(_) => None,
        })
        .collect()
}

fn walk_table(table: &dyn TableLike, path: &mut Vec<Segment>, out: &mut Vec<Entry>) {
    for (key, item) in table.iter() {
        path.push(Segment::Key(key.to_owned()));
        let key_span = table.key(key).and_then(|k| k.span());
        out.push(Entry {
            path: path.clone(),
            key_span,
            span: item.span(),
        });
        walk_item(item, path, out);
        path.pop();
    }
}

fn walk_item(item: &Item, path: &mut Vec<Segment>, out: &mut Vec<Entry>) {
    match item {
        Item::Table(table) => walk_table(table, path, out),
        Item::ArrayOfTables(array) => {
            for (index, table) in array.iter().enumerate() {
                path.push(Segment::Index(index));
                out.push(Entry {
                    path: path.clone(),
                    key_span: None,
                    span: table.span(),
                });
                walk_table(table, path, out);
                path.pop();
            }
        }
        Item::Value(value) => walk_value(value, path, out),
        Item::None => {}
    }
}

fn walk_value(value: &Value, path: &mut Vec<Segment>, out: &mut Vec<Entry>) {
    match value {
        Value::InlineTable(table) => walk_table(table, path, out),
        Value::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                path.push(Segment::Index(index));
                out.push(Entry {
                    path: path.clone(),
                    key_span: None,
                    span: element.span(),
                });
                walk_value(element, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Removes the key at `path` from the document; a path ending in an array element removes
/// the whole array (indices of the other elements must not shift). Returns what it removed.
pub(super) fn remove(root: &mut Table, path: &[Segment]) -> Option<Vec<Segment>> {
    let last_key = path
        .iter()
        .rposition(|segment| matches!(segment, Segment::Key(_)))?;
    let (parent, key) = (&path[..last_key], &path[last_key]);
    let Segment::Key(key) = key else {
        return None;
    };
    let mut node = Node::Table(root);
    for segment in parent {
        node = node.step(segment)?;
    }
    node.into_table_like()?.remove(key)?;
    Some(path[..=last_key].to_vec())
}

enum Node<'a> {
    Table(&'a mut dyn TableLike),
    Item(&'a mut Item),
    Value(&'a mut Value),
}

impl<'a> Node<'a> {
    fn step(self, segment: &Segment) -> Option<Node<'a>> {
        match (self, segment) {
            (Node::Table(table), Segment::Key(key)) => table.get_mut(key).map(Node::Item),
            (Node::Item(Item::Table(table)), Segment::Key(key)) => {
                table.get_mut(key).map(Node::Item)
            }
            (Node::Item(Item::ArrayOfTables(array)), Segment::Index(index)) => array
                .get_mut(*index)
                .map(|table| Node::Table(table as &mut dyn TableLike)),
            (Node::Item(Item::Value(value)), segment) => Node::Value(value).step(segment),
            (Node::Value(Value::InlineTable(table)), Segment::Key(key)) => {
                table.get_mut(key).map(Node::Value)
            }
            (Node::Value(Value::Array(array)), Segment::Index(index)) => {
                array.get_mut(*index).map(Node::Value)
            }
            _ => None,
        }
    }

    fn into_table_like(self) -> Option<&'a mut dyn TableLike> {
        match self {
            Node::Table(table) => Some(table),
            Node::Item(item) => item.as_table_like_mut(),
            Node::Value(Value::InlineTable(table)) => Some(table),
            Node::Value(_) => None,
        }
    }
}
