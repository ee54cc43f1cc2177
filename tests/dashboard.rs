//! The Grafana dashboard (`grafana/dashboards/headroom.json`) against the metrics contract:
//! it is a well-formed dashboard, every `headroom_*` metric its queries use is one of the
//! contract's (`../shared/CONTRACT.md` when present, else the copy below), and a running
//! gateway serves every one of them on its admin listener's `/metrics`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use headroom::sim::{self, Convention, SimArgs};
use serde_json::Value;
use support::{raw_request, upstream_config, Gateway};

const DASHBOARD: &str = "grafana/dashboards/headroom.json";
const CONTRACT: &str = "../shared/CONTRACT.md";

/// The contract's Metrics table (name, type), used when `../shared/CONTRACT.md` is absent
/// (a checkout of the repository alone). When the file is present, each must still be in it.
const CONTRACT_METRICS: &[(&str, &str)] = &[
    ("headroom_requests_total", "counter"),
    ("headroom_upstream_requests_total", "counter"),
    ("headroom_retries_total", "counter"),
    ("headroom_rejected_total", "counter"),
    ("headroom_request_duration_seconds", "histogram"),
    ("headroom_queue_wait_seconds", "histogram"),
    ("headroom_backoff_seconds", "histogram"),
    ("headroom_queue_depth", "gauge"),
    ("headroom_in_flight", "gauge"),
    ("headroom_quota_limit", "gauge"),
    ("headroom_quota_remaining", "gauge"),
    ("headroom_quota_reset_seconds", "gauge"),
    ("headroom_breaker_state", "gauge"),
];

const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard() -> Value {
    let path = root().join(DASHBOARD);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel, row panels and the panels nested in collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(nested) = panel.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every PromQL expression: panel targets' `expr` and the query variables' queries.
fn expressions(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push(expr.to_owned());
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        // Older schemas store the query as a string, newer ones as `{"query": ...}`.
        let query = &variable["query"];
        if let Some(q) = query.as_str().or_else(|| query["query"].as_str()) {
            out.push(q.to_owned());
        }
        if let Some(definition) = variable["definition"].as_str() {
            out.push(definition.to_owned());
        }
    }
    out
}

/// The `headroom_*` identifiers of a PromQL expression, string literals skipped.
fn metric_identifiers(expr: &str) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if is_ident(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word.starts_with("headroom_") {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The metric names the dashboard queries, as written (`..._bucket` included).
fn dashboard_series(dashboard: &Value) -> BTreeSet<String> {
    expressions(dashboard)
        .iter()
        .flat_map(|e| metric_identifiers(e))
        .collect()
}

/// The metric family a queried series belongs to: `_bucket`/`_sum`/`_count` stripped when
/// what remains is a histogram of `families`.
fn family(series: &str, families: &BTreeMap<String, String>) -> String {
    for suffix in HISTOGRAM_SUFFIXES {
        if let Some(base) = series.strip_suffix(suffix) {
            if families.get(base).map(String::as_str) == Some("histogram") {
                return base.to_owned();
            }
        }
    }
    series.to_owned()
}

/// Name -> type from the Metrics table of a CONTRACT.md: the backticked `headroom_*` names
/// of each row's first cell and the row's second cell.
fn contract_metrics(markdown: &str) -> BTreeMap<String, String> {
    let mut metrics = BTreeMap::new();
    let section = markdown
        .lines()
        .skip_while(|l| !l.starts_with("## Metrics"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "));
    let mut found = false;
    for line in section.filter(|l| l.trim_start().starts_with('|')) {
        found = true;
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        if cells.len() < 2 {
            continue;
        }
        let kind = cells[1].trim().to_owned();
        for (n, piece) in cells[0].split('`').enumerate() {
            if n % 2 == 1 && piece.starts_with("headroom_") {
                metrics.insert(piece.to_owned(), kind.clone());
            }
        }
    }
    assert!(found, "CONTRACT.md has no `## Metrics` table");
    metrics
}

/// The metrics Headroom adds to the contract, from the README's Metrics table (the README's
/// reference is where the contract is extended): name -> type.
fn readme_metrics() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    readme
        .lines()
        .filter(|l| l.starts_with("| `headroom_"))
        .flat_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let kind = cells.get(1).copied().unwrap_or_default().to_owned();
            cells[0]
                .split('`')
                .enumerate()
                .filter(|(n, piece)| n % 2 == 1 && piece.starts_with("headroom_"))
                .map(|(_, piece)| piece.split('{').next().unwrap_or(piece).to_owned())
                .map(move |name| (name, kind.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every metric the dashboard may query: the contract's and the README's additions.
fn known() -> BTreeMap<String, String> {
    let mut all = readme_metrics();
    all.extend(contract());
    all
}

fn contract() -> BTreeMap<String, String> {
    let embedded: BTreeMap<String, String> = CONTRACT_METRICS
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    let path = root().join(CONTRACT);
    let Ok(markdown) = std::fs::read_to_string(&path) else {
        eprintln!(
            "{} absent: using the contract's metrics copied into this test",
            path.display()
        );
        return embedded;
    };
    let parsed = contract_metrics(&markdown);
    for (name, kind) in &embedded {
        assert_eq!(
            parsed.get(name),
            Some(kind),
            "{name} ({kind}) is no longer in the Metrics table of {}",
            path.display()
        );
    }
    parsed
}

#[test]
fn the_contract_table_is_parsed() {
    let table = "## Metrics (names)\n| metric | type | labels |\n| --- | --- | --- |\n\
                 | `headroom_a_total` | counter | `upstream`, `status` (`error` ...) |\n\
                 | `headroom_b`, `headroom_c` | gauge | `upstream` |\n\n## Next\n| `headroom_x` | y | z |\n";
    let parsed = contract_metrics(table);
    let expected: BTreeMap<String, String> = [
        ("headroom_a_total", "counter"),
        ("headroom_b", "gauge"),
        ("headroom_c", "gauge"),
    ]
    .iter()
    .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
    .collect();
    assert_eq!(parsed, expected);
    assert_eq!(
        metric_identifiers(
            r#"histogram_quantile(0.95, sum by (le) (rate(headroom_x_bucket{a="headroom_no"}[5m]))) / headroom_y"#
        ),
        ["headroom_x_bucket", "headroom_y"]
    );
}

#[test]
fn it_is_a_grafana_dashboard() {
    let dashboard = dashboard();
    assert!(
        dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
        "no title"
    );
    assert!(dashboard["uid"].is_string(), "no uid");
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    let all = panels(&dashboard);
    assert!(!all.is_empty(), "no panels");
    let mut ids = BTreeSet::new();
    for panel in &all {
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel without id: {panel}"));
        assert!(ids.insert(id), "panel id {id} is used twice");
        assert!(panel["title"].is_string(), "panel {id} has no title");
        assert!(panel["type"].is_string(), "panel {id} has no type");
        let grid = &panel["gridPos"];
        for key in ["h", "w", "x", "y"] {
            assert!(grid[key].is_u64(), "panel {id}: gridPos.{key}");
        }
        assert!(
            grid["x"].as_u64().unwrap_or(0) + grid["w"].as_u64().unwrap_or(0) <= 24,
            "panel {id} is wider than the grid"
        );
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert!(
                target["expr"].is_string(),
                "panel {id}: target without expr"
            );
            assert!(
                refs.insert(target["refId"].as_str().expect("refId")),
                "panel {id}: refId used twice"
            );
            let uid = target["datasource"]["uid"]
                .as_str()
                .or_else(|| panel["datasource"]["uid"].as_str());
            assert!(
                matches!(uid, Some("${DS_PROMETHEUS}" | "prometheus")),
                "panel {id}: datasource {uid:?}"
            );
        }
    }

    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` variable"))
    };
    let datasource = variable("DS_PROMETHEUS");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let upstream = variable("upstream");
    assert_eq!(upstream["type"], "query");
    assert_eq!(
        upstream["query"]["query"],
        "label_values(headroom_requests_total, upstream)"
    );

    // The breaker panel names every state of the contract.
    let breaker = all
        .iter()
        .find(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("headroom_breaker_state"))
            })
        })
        .expect("a breaker state panel");
    let mappings = &breaker["fieldConfig"]["defaults"]["mappings"][0]["options"];
    for (value, text) in [
        ("0", "closed"),
        ("1", "half-open"),
        ("2", "open"),
        ("3", "forced open"),
    ] {
        assert_eq!(mappings[value]["text"], text, "breaker state {value}");
    }
}

#[test]
fn every_dashboard_metric_is_in_the_contract() {
    let contract = contract();
    let known = known();
    assert!(
        known.contains_key("headroom_store_requests_total"),
        "the README's metrics are read"
    );
    let series = dashboard_series(&dashboard());
    let families: BTreeSet<String> = series.iter().map(|s| family(s, &known)).collect();
    let unknown: Vec<_> = families
        .iter()
        .filter(|f| !known.contains_key(*f))
        .collect();
    assert!(
        unknown.is_empty(),
        "neither in the contract nor in the README: {unknown:?}"
    );
    // And the dashboard shows every metric of the contract.
    let unused: Vec<_> = contract.keys().filter(|m| !families.contains(*m)).collect();
    assert!(unused.is_empty(), "the dashboard does not show {unused:?}");
}

/// `GET /metrics` on the admin listener over HTTP/1.0 (no chunked framing): status line and
/// body.
async fn scrape(admin: std::net::SocketAddr) -> (String, String) {
    let answer = raw_request(admin, b"GET /metrics HTTP/1.0\r\nHost: headroom\r\n\r\n").await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_owned(), body.to_owned())
}

/// Sample names and `# TYPE` declarations of a Prometheus text exposition.
fn exposition(body: &str) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut samples = BTreeSet::new();
    let mut types = BTreeMap::new();
    for line in body.lines().map(str::trim) {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let mut words = declaration.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                types.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_owned());
        }
    }
    (samples, types)
}

/// The dashboard's series that the exposition neither has samples of nor declares (a family
/// declared with `# TYPE` but without a labelled sample yet counts as served).
fn missing(
    series: &BTreeSet<String>,
    contract: &BTreeMap<String, String>,
    body: &str,
) -> Vec<String> {
    let (samples, types) = exposition(body);
    series
        .iter()
        .filter(|s| !samples.contains(*s) && !types.contains_key(&family(s, contract)))
        .cloned()
        .collect()
}

#[test]
fn the_exposition_is_parsed() {
    let contract = contract();
    let body =
        "# HELP headroom_requests_total Responses.\n# TYPE headroom_requests_total counter\n\
                headroom_requests_total{upstream=\"ok\",status=\"200\"} 1\n\
                # TYPE headroom_backoff_seconds histogram\n\
                headroom_queue_wait_seconds_bucket{upstream=\"ok\",le=\"0.005\"} 1\n\
                headroom_in_flight 0\n";
    let wanted: BTreeSet<String> = [
        "headroom_requests_total",
        "headroom_backoff_seconds_bucket",
        "headroom_queue_wait_seconds_bucket",
        "headroom_in_flight",
        "headroom_queue_depth",
        "headroom_request_duration_seconds_bucket",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(
        missing(&wanted, &contract, body),
        [
            "headroom_queue_depth",
            "headroom_request_duration_seconds_bucket"
        ]
    );
}

/// Sends one request through the gateway and returns the status line.
async fn send(gateway: &Gateway, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: headroom\r\nConnection: close\r\n\r\n");
    let answer = raw_request(gateway.proxy, request.as_bytes()).await;
    answer.lines().next().unwrap_or_default().to_owned()
}

/// Needs the `/metrics` endpoint of the admin listener: fails until it exists.
#[tokio::test]
async fn the_gateway_serves_every_dashboard_metric() {
    let contract = known();
    // A fleet store too (a real redis-server), so the store metrics are served.
    let redis = support::redis::RedisServer::start().await;
    let series = dashboard_series(&dashboard());

    // A supplier announcing a quota (so the quota gauges have values), one upstream that
    // answers and one that always fails (retries, backoff, breaker, rejections).
    let supplier = sim::start(SimArgs {
        limit: 1000,
        window: Duration::from_secs(60),
        convention: Convention::Github,
        ..SimArgs::default()
    })
    .await
    .expect("simulator starts");
    let ok = upstream_config("ok", "/ok", &supplier.url());
    let mut failing = upstream_config("failing", "/failing", &supplier.url());
    failing.retry.max_attempts = 3;
    failing.retry.base_delay = Duration::from_millis(1);
    failing.retry.max_delay = Duration::from_millis(5);
    failing.breaker.failure_threshold = 3;
    failing.breaker.open_for = Duration::from_secs(60);
    let config = headroom::config::Config {
        server: support::server_config(),
        upstreams: vec![ok, failing],
        store: Some(headroom::config::StoreConfig {
            redis_url: redis.url(),
            nodes: vec![redis.url()],
            cluster: false,
            key_prefix: "dashboard".to_owned(),
            timeout: Duration::from_secs(1),
            reservation_ttl: Duration::from_secs(60),
        }),
    };
    let gateway = Gateway::start_config(config, None).await;

    let status = send(&gateway, "/ok/records").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    for _ in 0..2 {
        let status = send(&gateway, "/failing/status/500").await;
        assert!(status.starts_with("HTTP/1.1 5"), "{status}");
    }

    // Counters may be recorded once the response is on its way: allow a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (head, body) = loop {
        let (head, body) = scrape(gateway.admin).await;
        if (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"))
            && missing(&series, &contract, &body).is_empty()
            || tokio::time::Instant::now() >= deadline
        {
            break (head, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status_line = head.lines().next().unwrap_or_default();
    assert!(
        status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200"),
        "GET http://{}/metrics: {head}",
        gateway.admin
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "not the Prometheus text format: {head}"
    );
    let absent = missing(&series, &contract, &body);
    assert!(
        absent.is_empty(),
        "the dashboard queries {absent:?}, which /metrics does not serve:\n{body}"
    );

    // Declared types agree with the contract, and the dashboard's `upstream` variable finds
    // its values.
    let (_, types) = exposition(&body);
    for family in series.iter().map(|s| family(s, &contract)) {
        if let (Some(served), Some(agreed)) = (types.get(&family), contract.get(&family)) {
            assert_eq!(served, agreed, "# TYPE of {family}");
        }
    }
    assert!(
        body.lines()
            .any(|l| l.starts_with("headroom_requests_total{") && l.contains("upstream=\"ok\"")),
        "no headroom_requests_total series with upstream=\"ok\":\n{body}"
    );
    gateway.stop().await.expect("gateway stops");
}
