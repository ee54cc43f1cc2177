//! Path-prefix routing: which upstream serves a request path, and what is left of the path.

use std::sync::Arc;

use crate::upstream::Upstream;

/// The routing table: longest matching prefix wins, on a path-segment boundary.
#[derive(Debug, Default)]
pub struct Router {
    /// Sorted by prefix length, longest first.
    routes: Vec<Arc<Upstream>>,
    /// In configuration order.
    ordered: Vec<Arc<Upstream>>,
}

impl Router {
    /// Builds the table from the configured upstreams.
    pub fn new(upstreams: impl IntoIterator<Item = Arc<Upstream>>) -> Self {
        let ordered: Vec<_> = upstreams.into_iter().collect();
        let mut routes = ordered.clone();
        routes.sort_by_key(|u| std::cmp::Reverse(u.prefix().len()));
        Self { routes, ordered }
    }

    /// The upstream for `path` and the rest of the path after its prefix (empty or starting
    /// with `/`).
    pub fn route<'p>(&self, path: &'p str) -> Option<(&Arc<Upstream>, &'p str)> {
        self.routes
            .iter()
            .find_map(|u| strip_prefix(path, u.prefix()).map(|rest| (u, rest)))
    }

    /// Every upstream, in configuration order.
    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.ordered.iter()
    }

    /// The upstream named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.routes.iter().find(|u| u.name() == name)
    }
}

/// `path` without `prefix` when `prefix` matches whole segments: `/a` matches `/a` and `/a/x`
/// but not `/ab`. The prefix `/` matches every path.
fn strip_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    if prefix == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::strip_prefix;

    #[test]
    fn prefix_matches_on_segment_boundaries_only() {
        let cases = [
            ("/a", "/a", Some("")),
            ("/a/", "/a", Some("/")),
            ("/a/x/y", "/a", Some("/x/y")),
            ("/ab/x", "/a", None),
            ("/b/a", "/a", None),
            ("/", "/a", None),
            ("/anything", "/", Some("/anything")),
            ("/a/b/c", "/a/b", Some("/c")),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(strip_prefix(path, prefix), want, "{path} under {prefix}");
        }
    }
}
