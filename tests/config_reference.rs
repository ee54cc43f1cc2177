//! `config/headroom.toml`, the README's configuration reference and the loader agree.
//!
//! The example shows optional keys that need something outside the file (`ca_file`,
//! `[store]`) commented out, as `# key = value` and `# [section]` lines; those count as
//! documented keys too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use headroom::config::{self, defaults};

const EXAMPLE: &str = include_str!("../config/headroom.toml");
const README: &str = include_str!("../README.md");

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/headroom.toml")
}

/// The example with its commented-out keys and section headers restored.
fn uncommented(example: &str) -> String {
    let is_entry = |text: &str| {
        let key_like = |key: &str| {
            let key = key.trim();
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        };
        text.starts_with('[') || text.split_once('=').is_some_and(|(key, _)| key_like(key))
    };
    example
        .lines()
        .map(|line| match line.strip_prefix('#').map(str::trim_start) {
            Some(entry) if is_entry(entry) => entry.to_owned(),
            _ => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

/// Dotted key (array indices dropped) -> TOML text of its first value.
fn example_keys() -> BTreeMap<String, String> {
    let table: toml::Table = toml::from_str(&uncommented(EXAMPLE)).expect("example is TOML");
    let mut keys = BTreeMap::new();
    collect(&table, "", &mut keys);
    keys
}

fn collect(table: &toml::Table, prefix: &str, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => collect(inner, &path, out),
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                for item in items.iter().filter_map(toml::Value::as_table) {
                    collect(item, &path, out);
                }
            }
            value => {
                out.entry(path).or_insert_with(|| value.to_string());
            }
        }
    }
}

/// Dotted key -> default cell, from the reference table of the README.
fn readme_keys() -> BTreeMap<String, String> {
    let section = README
        .split("## Configuration reference")
        .nth(1)
        .expect("README has a `## Configuration reference` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            assert!(cells.len() >= 6, "reference row needs 5 cells: {line}");
            let table = cells[1].trim_matches(['`', '[', ']']);
            let key = cells[2].trim_matches('`');
            let default = cells[4].trim_matches('`');
            (format!("{table}.{key}"), default.to_owned())
        })
        .collect()
}

#[test]
fn example_and_readme_document_the_same_keys() {
    let example: BTreeSet<String> = example_keys().into_keys().collect();
    let readme: BTreeSet<String> = readme_keys().into_keys().collect();
    let only_example: Vec<_> = example.difference(&readme).collect();
    let only_readme: Vec<_> = readme.difference(&example).collect();
    assert!(
        only_example.is_empty() && only_readme.is_empty(),
        "in config/headroom.toml but not in the README reference: {only_example:?}\n\
         in the README reference but not in config/headroom.toml: {only_readme:?}"
    );
    assert!(example.len() >= 20, "suspiciously few keys: {example:?}");
}

#[test]
fn readme_defaults_are_the_example_values() {
    let example = example_keys();
    for (key, default) in readme_keys() {
        if default == "required" || default == "none" {
            continue;
        }
        assert_eq!(example.get(&key), Some(&default), "default of `{key}`");
    }
}

#[test]
fn example_loads() {
    let config = config::load(&example_path()).unwrap_or_else(|err| panic!("{err}"));
    let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["supplier-a", "supplier-b"]);
    assert_eq!(config.upstreams[0].url.scheme(), "https");
    assert_eq!(config.upstreams[0].url.path(), "/api/v2");
    assert_eq!(config.upstreams[1].url.scheme(), "http");
}

/// The first upstream and `[server]` of the example spell out the defaults of the code.
#[test]
fn example_shows_the_code_defaults() {
    let config = config::load(&example_path()).unwrap_or_else(|err| panic!("{err}"));
    let server = &config.server;
    let default = config::ServerConfig::default();
    assert_eq!(server.listen, default.listen);
    assert_eq!(server.admin_listen, default.admin_listen);
    assert_eq!(server.drain_timeout, default.drain_timeout);
    assert_eq!(server.max_request_body, default.max_request_body);
    assert_eq!(server.max_header_bytes, default.max_header_bytes);
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.max_concurrency, defaults::MAX_CONCURRENCY);
    assert_eq!(upstream.connect_timeout, defaults::CONNECT_TIMEOUT);
    assert_eq!(upstream.timeout, defaults::TIMEOUT);
    assert_eq!(upstream.quota, config::QuotaConfig::default());
    assert_eq!(upstream.quota.reset_format, defaults::QUOTA_RESET_FORMAT);
    assert_eq!(upstream.retry.max_body, defaults::RETRY_MAX_BODY);
    assert_eq!(upstream.queue, config::QueueConfig::default());
    assert_eq!(upstream.retry, config::RetryConfig::default());
    assert_eq!(upstream.breaker, config::BreakerConfig::default());
    assert_eq!(upstream.breaker.failure_rate, None);
    assert_eq!(upstream.breaker.window, defaults::BREAKER_WINDOW);
    assert_eq!(upstream.breaker.min_calls, defaults::BREAKER_MIN_CALLS);
    assert_eq!(
        upstream.breaker.half_open_probes,
        defaults::BREAKER_HALF_OPEN_PROBES
    );
}

/// Commented-out keys are real keys with valid values: restored, the only problem left is
/// the example CA file, which does not exist.
#[test]
fn commented_out_keys_are_valid() {
    let text = uncommented(EXAMPLE);
    let err = config::from_str(&text, Some(&example_path())).expect_err("ca_file is absent");
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["upstream[0].ca_file"], "{err}");
    assert!(err.problems[0].message.contains("cannot read"), "{err}");
}

/// The commented-out `partition_by` of the example, restored, is read as a lowercase header.
#[test]
fn commented_out_partition_by_is_read() {
    let text = uncommented(EXAMPLE).replace("ca_file =", "# ca_file =");
    let config =
        config::from_str(&text, Some(&example_path())).unwrap_or_else(|err| panic!("{err}"));
    let expected = config::PartitionBy::Header(http::HeaderName::from_static("x-api-key"));
    assert_eq!(config.upstreams[0].quota.partition_by, Some(expected));
}

/// The commented-out `failure_rate` of the example, restored, is read.
#[test]
fn commented_out_failure_rate_is_read() {
    let text = uncommented(EXAMPLE).replace("ca_file =", "# ca_file =");
    let config =
        config::from_str(&text, Some(&example_path())).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.upstreams[0].breaker.failure_rate, Some(0.5));
}
