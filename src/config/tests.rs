//! Unit tests of loading and validation: defaults, one case per rule (key and place), several
//! problems at once, syntax errors, and the schema against the README reference.

use std::path::Path;
use std::time::Duration;

use super::*;

/// A valid upstream, lines 1 to 4; a case's extra line is line 5.
const UPSTREAM: &str =
    "[[upstream]]\nname = \"a\"\nprefix = \"/a\"\nurl = \"http://127.0.0.1:9000\"\n";

fn problems(text: &str) -> Vec<Problem> {
    match from_str(text, None) {
        Ok(config) => panic!("expected problems, got {config:?}\n--- text:\n{text}"),
        Err(err) => err.problems,
    }
}

fn ok(text: &str) -> Config {
    match from_str(text, None) {
        Ok(config) => config,
        Err(err) => panic!("expected no problem, got:\n{err}\n--- text:\n{text}"),
    }
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

/// Asserts one problem with this key, place and a message containing `message`.
fn assert_single(text: &str, key: &str, line: usize, column: usize, message: &str) {
    let found = problems(text);
    assert_eq!(
        found.len(),
        1,
        "expected one problem for {key}, got {found:#?}\n{text}"
    );
    let problem = &found[0];
    assert_eq!(problem.key, key, "{problem:#?}\n{text}");
    assert_eq!(
        problem.position,
        Some((line, column)),
        "{problem:#?}\n{text}"
    );
    assert!(
        problem.message.contains(message),
        "message {:?} lacks {message:?}",
        problem.message
    );
}

#[test]
fn empty_file_is_all_defaults() {
    let config = ok("");
    assert_eq!(
        config.server.listen,
        "127.0.0.1:8080".parse().expect("addr")
    );
    assert_eq!(
        config.server.admin_listen,
        "127.0.0.1:9090".parse().expect("addr")
    );
    assert_eq!(config.server.drain_timeout, Duration::from_secs(30));
    assert_eq!(config.server.max_request_body, 4_294_967_296);
    assert_eq!(config.server.max_header_bytes, 65_536);
    assert!(config.upstreams.is_empty());
    assert!(config.store.is_none());
}

#[test]
fn upstream_defaults_are_applied() {
    let config = ok(UPSTREAM);
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.name, "a");
    assert_eq!(upstream.prefix, "/a");
    assert_eq!(upstream.url.as_str(), "http://127.0.0.1:9000/");
    assert_eq!(upstream.max_concurrency, 8);
    assert_eq!(upstream.connect_timeout, Duration::from_secs(5));
    assert_eq!(upstream.timeout, Duration::from_secs(30));
    assert_eq!(upstream.ca_file, None);
    assert_eq!(upstream.limit, None);
    let queue = QueueConfig {
        max_depth: 1000,
        max_wait: Duration::from_secs(30),
    };
    assert_eq!(upstream.queue, queue);
    let retry = RetryConfig {
        max_attempts: 5,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(30),
        max_body: 1_048_576,
    };
    assert_eq!(upstream.retry, retry);
    let quota = QuotaConfig {
        reset_format: ResetFormat::Auto,
        partition_by: None,
        probes: 2,
        max_partitions: 1000,
    };
    assert_eq!(upstream.quota, quota);
    let breaker = BreakerConfig {
        failure_threshold: 5,
        open_for: Duration::from_secs(30),
        failure_rate: None,
        window: Duration::from_secs(60),
        min_calls: 20,
        half_open_probes: 1,
    };
    assert_eq!(upstream.breaker, breaker);
}

#[test]
fn with_defaults_matches_a_file_that_sets_nothing() {
    let read = ok(UPSTREAM).upstreams.remove(0);
    let url = url::Url::parse("http://127.0.0.1:9000").expect("url");
    let built = UpstreamConfig::with_defaults("a", "/a", url);
    assert_eq!(format!("{built:?}"), format!("{read:?}"));
    assert_eq!(built.quota, QuotaConfig::default());
    assert_eq!(built.retry.max_body, defaults::RETRY_MAX_BODY);
    assert_eq!(built.breaker, BreakerConfig::default());
    assert_eq!(built.breaker.failure_rate, None);
    assert_eq!(built.breaker.window, defaults::BREAKER_WINDOW);
    assert_eq!(built.breaker.min_calls, defaults::BREAKER_MIN_CALLS);
    assert_eq!(
        built.breaker.half_open_probes,
        defaults::BREAKER_HALF_OPEN_PROBES
    );
    assert_eq!(ResetFormat::default(), ResetFormat::Auto);
}

#[test]
fn every_key_set_is_read() {
    let text = format!(
        "[server]\nlisten = \"0.0.0.0:80\"\nadmin_listen = \"[::1]:81\"\ndrain_timeout = \"1m\"\n\
         max_request_body = 1\nmax_header_bytes = 1024\n{UPSTREAM}max_concurrency = 3\n\
         connect_timeout = \"250ms\"\ntimeout = \"2s\"\n\
         limit = {{ requests = 10, per = \"1s\" }}\nqueue = {{ max_depth = 7, max_wait = \"3s\" }}\n\
         retry = {{ max_attempts = 1, base_delay = \"1ms\", max_delay = \"1ms\", \
         max_body = 0 }}\n\
         quota = {{ reset_format = \"epoch\", partition_by = \"header:X-Api-Key\", probes = 1000, \
         max_partitions = 1000000 }}\n\
         breaker = {{ failure_threshold = 9, open_for = \"1h\", failure_rate = 0.25, \
         window = \"2m\", min_calls = 100000, half_open_probes = 1000 }}\n\
         [store]\nredis_url = \"rediss://cache.internal:6380/2\"\n"
    );
    let config = ok(&text);
    assert_eq!(config.server.listen, "0.0.0.0:80".parse().expect("addr"));
    assert_eq!(
        config.server.admin_listen,
        "[::1]:81".parse().expect("addr")
    );
    assert_eq!(config.server.drain_timeout, Duration::from_secs(60));
    assert_eq!(config.server.max_request_body, 1);
    assert_eq!(config.server.max_header_bytes, 1024);
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.max_concurrency, 3);
    assert_eq!(upstream.connect_timeout, Duration::from_millis(250));
    assert_eq!(upstream.timeout, Duration::from_secs(2));
    let limit = LimitConfig {
        requests: 10,
        per: Duration::from_secs(1),
    };
    assert_eq!(upstream.limit, Some(limit));
    assert_eq!(upstream.queue.max_depth, 7);
    assert_eq!(upstream.queue.max_wait, Duration::from_secs(3));
    assert_eq!(upstream.retry.max_attempts, 1);
    assert_eq!(upstream.retry.max_delay, Duration::from_millis(1));
    assert_eq!(upstream.retry.max_body, 0);
    let quota = QuotaConfig {
        reset_format: ResetFormat::Epoch,
        partition_by: Some(PartitionBy::Header(http::HeaderName::from_static(
            "x-api-key",
        ))),
        probes: 1000,
        max_partitions: 1_000_000,
    };
    assert_eq!(upstream.quota, quota);
    assert_eq!(upstream.breaker.failure_threshold, 9);
    assert_eq!(upstream.breaker.open_for, Duration::from_secs(3600));
    assert_eq!(upstream.breaker.failure_rate, Some(0.25));
    assert_eq!(upstream.breaker.window, Duration::from_secs(120));
    assert_eq!(upstream.breaker.min_calls, 100_000);
    assert_eq!(upstream.breaker.half_open_probes, 1000);
    let store = config.store.expect("store");
    assert_eq!(store.redis_url, "rediss://cache.internal:6380/2");
}

#[test]
fn prefixes_are_normalised() {
    let cases = [
        ("/a/", "/a"),
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/v1:x@y", "/v1:x@y"),
    ];
    for (written, normal) in cases {
        let config = ok(&UPSTREAM.replace("\"/a\"", &format!("{written:?}")));
        assert_eq!(config.upstreams[0].prefix, normal, "{written}");
    }
}

#[test]
fn urls_keep_their_base_path() {
    let text = UPSTREAM.replace("http://127.0.0.1:9000", "https://erp.example/api/v2/");
    let config = ok(&text);
    assert_eq!(
        config.upstreams[0].url.as_str(),
        "https://erp.example/api/v2/"
    );
}

#[test]
fn zero_upstreams_is_valid() {
    assert!(ok("[server]\nlisten = \"127.0.0.1:0\"\n")
        .upstreams
        .is_empty());
}

#[test]
fn port_zero_listeners_do_not_clash() {
    ok("[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n");
    ok("[server]\nlisten = \"127.0.0.1:80\"\nadmin_listen = \"127.0.0.2:80\"\n");
    ok("[server]\nlisten = \"0.0.0.0:80\"\nadmin_listen = \"[::1]:80\"\n");
}

/// One case per server rule: (text after `[server]`, key, line, column, message part).
#[test]
fn server_rules() {
    let cases = [
        (
            "listen = \"localhost:80\"",
            "server.listen",
            2,
            10,
            "not an IP address and port",
        ),
        (
            "admin_listen = \"9090\"",
            "server.admin_listen",
            2,
            16,
            "not an IP address",
        ),
        (
            "listen = \"127.0.0.1:9090\"",
            "server.listen",
            2,
            10,
            "same port",
        ),
        (
            "admin_listen = \"0.0.0.0:8080\"",
            "server.admin_listen",
            2,
            16,
            "same port",
        ),
        (
            "drain_timeout = \"0s\"",
            "server.drain_timeout",
            2,
            17,
            "greater than zero",
        ),
        (
            "drain_timeout = \"soon\"",
            "server.drain_timeout",
            2,
            17,
            "invalid duration",
        ),
        (
            "drain_timeout = \"400days\"",
            "server.drain_timeout",
            2,
            17,
            "at most",
        ),
        (
            "drain_timeout = 30",
            "server.drain_timeout",
            2,
            17,
            "duration string",
        ),
        (
            "max_request_body = 0",
            "server.max_request_body",
            2,
            20,
            "at least 1",
        ),
        (
            "max_header_bytes = 1000",
            "server.max_header_bytes",
            2,
            20,
            "between 1024",
        ),
        (
            "max_header_bytes = 2000000",
            "server.max_header_bytes",
            2,
            20,
            "1048576",
        ),
        (
            "max_header_bytes = \"64k\"",
            "server.max_header_bytes",
            2,
            20,
            "expected an integer",
        ),
        (
            "lisen = \"127.0.0.1:1\"",
            "server.lisen",
            2,
            1,
            "did you mean `listen`",
        ),
    ];
    for (line, key, l, c, message) in cases {
        assert_single(&format!("[server]\n{line}\n"), key, l, c, message);
    }
}

/// One case per upstream rule: (line 5 after a valid upstream, key, line, column, message).
#[test]
fn upstream_rules() {
    let cases = [
        (
            "max_concurrency = 0",
            "upstream[0].max_concurrency",
            5,
            19,
            "between 1 and 65536",
        ),
        (
            "max_concurrency = 70000",
            "upstream[0].max_concurrency",
            5,
            19,
            "between 1",
        ),
        (
            "max_concurrency = -1",
            "upstream[0].max_concurrency",
            5,
            19,
            "got -1",
        ),
        (
            "max_concurrency = \"8\"",
            "upstream[0].max_concurrency",
            5,
            19,
            "expected an integer",
        ),
        (
            "connect_timeout = \"0ms\"",
            "upstream[0].connect_timeout",
            5,
            19,
            "greater than zero",
        ),
        (
            "timeout = \"-1s\"",
            "upstream[0].timeout",
            5,
            11,
            "invalid duration",
        ),
        (
            "timeout = \"\"",
            "upstream[0].timeout",
            5,
            11,
            "invalid duration",
        ),
        (
            "ca_file = \"/nonexistent/ca.pem\"",
            "upstream[0].ca_file",
            5,
            11,
            "https",
        ),
        (
            "queue.max_depth = 0",
            "upstream[0].queue.max_depth",
            5,
            19,
            "between 1 and 1000000",
        ),
        (
            "queue.max_wait = \"0s\"",
            "upstream[0].queue.max_wait",
            5,
            18,
            "greater than zero",
        ),
        (
            "retry.max_attempts = 0",
            "upstream[0].retry.max_attempts",
            5,
            22,
            "between 1 and 100",
        ),
        (
            "retry.max_attempts = 101",
            "upstream[0].retry.max_attempts",
            5,
            22,
            "got 101",
        ),
        (
            "retry.base_delay = \"1m\"",
            "upstream[0].retry.base_delay",
            5,
            20,
            "must not be longer",
        ),
        (
            "retry.max_delay = \"100ms\"",
            "upstream[0].retry.max_delay",
            5,
            19,
            "must not be longer",
        ),
        (
            "breaker.failure_threshold = 0",
            "upstream[0].breaker.failure_threshold",
            5,
            29,
            "between 1 and",
        ),
        (
            "breaker.open_for = \"0s\"",
            "upstream[0].breaker.open_for",
            5,
            20,
            "greater than zero",
        ),
        (
            "retry.max_body = -1",
            "upstream[0].retry.max_body",
            5,
            18,
            "between 0 and 1073741824, got -1",
        ),
        (
            "retry.max_body = 1073741825",
            "upstream[0].retry.max_body",
            5,
            18,
            "got 1073741825",
        ),
        (
            "retry.max_body = \"1MiB\"",
            "upstream[0].retry.max_body",
            5,
            18,
            "expected an integer",
        ),
        (
            "quota.reset_format = \"seconds\"",
            "upstream[0].quota.reset_format",
            5,
            22,
            "must be \"auto\", \"delta\", \"delta_ms\" or \"epoch\", not \"seconds\"",
        ),
        (
            "quota.reset_format = \"Epoch\"",
            "upstream[0].quota.reset_format",
            5,
            22,
            "not \"Epoch\"",
        ),
        (
            "quota.reset_format = 1",
            "upstream[0].quota.reset_format",
            5,
            22,
            "expected a string",
        ),
        (
            "quota.partition_by = \"X-Api-Key\"",
            "upstream[0].quota.partition_by",
            5,
            22,
            "must be \"header:<Header-Name>\"",
        ),
        (
            "quota.probes = 0",
            "upstream[0].quota.probes",
            5,
            16,
            "between 1 and 1000, got 0",
        ),
        (
            "quota.probes = 1001",
            "upstream[0].quota.probes",
            5,
            16,
            "got 1001",
        ),
        (
            "quota.max_partitions = 0",
            "upstream[0].quota.max_partitions",
            5,
            24,
            "between 1 and 1000000, got 0",
        ),
        (
            "quota.max_partitions = 1000001",
            "upstream[0].quota.max_partitions",
            5,
            24,
            "got 1000001",
        ),
        (
            "quota.probs = 3",
            "upstream[0].quota.probs",
            5,
            7,
            "did you mean `probes`",
        ),
        ("quota = 3", "upstream[0].quota", 5, 9, "expected a table"),
        (
            "breaker.failure_rate = 0",
            "upstream[0].breaker.failure_rate",
            5,
            24,
            "greater than 0 and at most 1, got 0",
        ),
        (
            "breaker.failure_rate = 1.5",
            "upstream[0].breaker.failure_rate",
            5,
            24,
            "got 1.5",
        ),
        (
            "breaker.failure_rate = 50",
            "upstream[0].breaker.failure_rate",
            5,
            24,
            "not a percentage: write 0.5 for 50%",
        ),
        (
            "breaker.failure_rate = \"50%\"",
            "upstream[0].breaker.failure_rate",
            5,
            24,
            "expected a number",
        ),
        (
            "breaker.window = \"0s\"",
            "upstream[0].breaker.window",
            5,
            18,
            "greater than zero",
        ),
        (
            "breaker.window = 60",
            "upstream[0].breaker.window",
            5,
            18,
            "duration string",
        ),
        (
            "breaker.min_calls = 0",
            "upstream[0].breaker.min_calls",
            5,
            21,
            "between 1 and 100000, got 0",
        ),
        (
            "breaker.min_calls = 100001",
            "upstream[0].breaker.min_calls",
            5,
            21,
            "got 100001",
        ),
        (
            "breaker.half_open_probes = 0",
            "upstream[0].breaker.half_open_probes",
            5,
            28,
            "between 1 and 1000, got 0",
        ),
        (
            "breaker.half_open_probes = 1001",
            "upstream[0].breaker.half_open_probes",
            5,
            28,
            "got 1001",
        ),
        (
            "breaker.half_open_probes = 1.5",
            "upstream[0].breaker.half_open_probes",
            5,
            28,
            "expected an integer",
        ),
        (
            "breaker.windw = \"1m\"",
            "upstream[0].breaker.windw",
            5,
            9,
            "did you mean `window`",
        ),
        ("limt = 3", "upstream[0].limt", 5, 1, "did you mean `limit`"),
        ("retry = 3", "upstream[0].retry", 5, 9, "expected a table"),
        (
            "retry = { max_attemps = 3 }",
            "upstream[0].retry.max_attemps",
            5,
            11,
            "max_attempts",
        ),
        (
            "limit.requests = 5",
            "upstream[0].limit.per",
            5,
            1,
            "missing required key `per`",
        ),
    ];
    for (line, key, l, c, message) in cases {
        assert_single(&format!("{UPSTREAM}{line}\n"), key, l, c, message);
    }
}

/// Rules on `name`, `prefix` and `url`: (key, value, message part); the value is on line
/// 2, 3 or 4 of the upstream, at column 8, 10 or 7.
#[test]
fn name_prefix_url_rules() {
    let cases = [
        ("name", "Supplier", "'S'"),
        ("name", "a.b", "'.'"),
        ("name", "", "must not be empty"),
        ("prefix", "a", "must start with `/`"),
        ("prefix", "/a?b", "`?`"),
        ("prefix", "/a#b", "`#`"),
        ("prefix", "/a%20b", "`%`"),
        ("prefix", "/a b", "' '"),
        ("prefix", "/a/../b", "`..` segment"),
        ("prefix", "/a/.", "`.` segment"),
        ("prefix", "/a//b", "empty segment"),
        ("prefix", "//", "empty segment"),
        ("prefix", "", "must start with `/`"),
        ("url", "not a url", "not a valid URL"),
        ("url", "ftp://h/", "`http` or `https`"),
        ("url", "http://user:pw@h/", "user info"),
        ("url", "http://user@h/", "user info"),
        ("url", "http://h/?q=1", "query"),
        ("url", "http://h/?", "query"),
        ("url", "http://h/#top", "fragment"),
        ("url", "http://h:0/", "port 0"),
        ("url", "http://", "not a valid URL"),
    ];
    for (key, value, message) in cases {
        let (old, line, column) = match key {
            "name" => ("name = \"a\"", 2, 8),
            "prefix" => ("prefix = \"/a\"", 3, 10),
            _ => ("url = \"http://127.0.0.1:9000\"", 4, 7),
        };
        let text = UPSTREAM.replace(old, &format!("{key} = {value:?}"));
        assert_single(&text, &format!("upstream[0].{key}"), line, column, message);
    }
}

#[test]
fn required_keys_are_reported_at_the_upstream_header() {
    for key in ["name", "prefix", "url"] {
        let text: String = UPSTREAM
            .lines()
            .filter(|line| !line.starts_with(key))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_single(
            &text,
            &format!("upstream[0].{key}"),
            1,
            1,
            "missing required key",
        );
    }
}

#[test]
fn names_and_prefixes_are_unique() {
    let second = "[[upstream]]\nname = \"a\"\nprefix = \"/a/\"\nurl = \"http://h\"\n";
    let found = problems(&format!("{UPSTREAM}{second}"));
    assert_eq!(keys(&found), ["upstream[1].name", "upstream[1].prefix"]);
    assert_eq!(found[0].position, Some((6, 8)));
    assert!(found[0].message.contains("upstream[0]"));
    assert_eq!(found[1].position, Some((7, 10)));
}

/// `quota.partition_by`: the value and the message part of each bad one; good ones are
/// stored lowercase.
#[test]
fn partition_by_rules() {
    let cases = [
        ("X-Api-Key", "must be \"header:<Header-Name>\""),
        ("Header:X-Api-Key", "must be \"header:<Header-Name>\""),
        ("", "must be \"header:<Header-Name>\""),
        ("header:", "names no header"),
        ("header: X-Api-Key", "not a valid header name"),
        ("header:X Api Key", "not a valid header name"),
        ("header:X-Api-Key:", "not a valid header name"),
        ("header:é", "not a valid header name"),
        ("header:Connection", "`connection` is a hop-by-hop header"),
        ("header:te", "hop-by-hop"),
        ("header:Transfer-Encoding", "hop-by-hop"),
        ("header:Upgrade", "hop-by-hop"),
        ("header:Keep-Alive", "hop-by-hop"),
        (
            "header:Proxy-Authorization",
            "`proxy-authorization` is a hop-by-hop",
        ),
        ("header:proxy-connection", "hop-by-hop"),
        ("header:Trailer", "hop-by-hop"),
        ("header:Host", "`host` is set by Headroom"),
    ];
    for (value, message) in cases {
        let text = format!("{UPSTREAM}[upstream.quota]\npartition_by = {value:?}\n");
        assert_single(&text, "upstream[0].quota.partition_by", 6, 16, message);
    }
    for (value, name) in [
        ("header:X-Api-Key", "x-api-key"),
        ("header:authorization", "authorization"),
        ("header:X-Tenant_ID.2", "x-tenant_id.2"),
        ("header:proxy", "proxy"),
        ("header:Tenant", "tenant"),
    ] {
        let text = format!("{UPSTREAM}[upstream.quota]\npartition_by = {value:?}\n");
        let quota = ok(&text).upstreams.remove(0).quota;
        let expected = http::HeaderName::from_bytes(name.as_bytes()).expect("header name");
        assert_eq!(quota.partition_by, Some(PartitionBy::Header(expected)));
    }
}

/// `breaker.failure_rate`: in (0, 1]; an integer `1` is a rate too; `nan`, `inf` and
/// negative ones are refused.
#[test]
fn failure_rate_rules() {
    let key = "upstream[0].breaker.failure_rate";
    let with = |rate: &str| format!("{UPSTREAM}[upstream.breaker]\nfailure_rate = {rate}\n");
    for (written, rate) in [("1", 1.0), ("1.0", 1.0), ("0.5", 0.5), ("1e-3", 0.001)] {
        let breaker = ok(&with(written)).upstreams.remove(0).breaker;
        assert_eq!(breaker.failure_rate, Some(rate), "{written}");
    }
    let cases = [
        ("0.0", "got 0"),
        ("-0.0", "got -0"),
        ("-0.5", "got -0.5"),
        ("1.0001", "got 1.0001"),
        ("nan", "got NaN"),
        ("inf", "got inf"),
        ("-inf", "got -inf"),
        ("true", "expected a number"),
    ];
    for (written, message) in cases {
        assert_single(&with(written), key, 6, 16, message);
    }
}

#[test]
fn limit_rules() {
    let limit = |requests: &str, per: &str| {
        format!("{UPSTREAM}[upstream.limit]\nrequests = {requests}\nper = {per}\n")
    };
    let key = "upstream[0].limit.requests";
    assert_single(
        &limit("0", "\"1m\""),
        key,
        6,
        12,
        "between 1 and 4294967295",
    );
    assert_single(&limit("5000000000", "\"1m\""), key, 6, 12, "between 1");
    assert_single(&limit("1000000", "\"1us\""), key, 6, 12, "per nanosecond");
    assert_single(
        &limit("5", "\"0s\""),
        "upstream[0].limit.per",
        7,
        7,
        "greater than zero",
    );
    let missing = format!("{UPSTREAM}[upstream.limit]\nper = \"1m\"\n");
    assert_single(&missing, key, 5, 11, "missing required key `requests`");
}

#[test]
fn store_rules() {
    let cases = [
        (
            "redis_url = \"http://cache:6379\"",
            "`redis`, `rediss` or `unix`",
        ),
        ("redis_url = \"cache:6379\"", "`redis`, `rediss` or `unix`"),
        ("redis_url = \"not a url\"", "not a valid URL"),
        ("redis_url = \"redis://\"", "no host"),
    ];
    for (line, message) in cases {
        assert_single(
            &format!("[store]\n{line}\n"),
            "store.redis_url",
            2,
            13,
            message,
        );
    }
    assert_single("[store]\n", "store.redis_url", 1, 2, "missing required key");
    ok("[store]\nredis_url = \"unix:///run/redis.sock\"\n");
    ok("[store]\nredis_url = \"redis://127.0.0.1:6379/0\"\n");
    let url = "redis_url = \"redis://127.0.0.1:6379\"";
    for (line, key, message) in [
        (
            "key_prefix = \"\"",
            "store.key_prefix",
            "1 to 64 characters",
        ),
        (
            "key_prefix = \"a b\"",
            "store.key_prefix",
            "1 to 64 characters",
        ),
        (
            "key_prefix = \"{x}\"",
            "store.key_prefix",
            "1 to 64 characters",
        ),
        ("timeout = \"0s\"", "store.timeout", "greater than zero"),
        ("timeout = \"11s\"", "store.timeout", "at most 10s"),
        ("timeout = \"soon\"", "store.timeout", "invalid duration"),
        (
            "reservation_ttl = \"500ms\"",
            "store.reservation_ttl",
            "at least 1s",
        ),
        ("cluster = \"yes\"", "store.cluster", "boolean"),
    ] {
        let found = problems(&format!("[store]\n{url}\n{line}\n"));
        assert_eq!(found.len(), 1, "{line}: {found:#?}");
        assert_eq!(found[0].key, key, "{line}");
        assert_eq!(found[0].position.map(|p| p.0), Some(3), "{line}: the line");
        assert!(
            found[0].message.contains(message),
            "{line}: {}",
            found[0].message
        );
    }
    // Several nodes: a cluster, each node checked; a unix socket cannot be a cluster node.
    let config = ok("[store]\nredis_url = \"redis://10.0.0.1:7000, redis://10.0.0.2:7000\"\n");
    let store = config.store.expect("store");
    assert!(store.cluster);
    assert_eq!(
        store.nodes,
        ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]
    );
    assert_eq!(store.key_prefix, "headroom");
    assert_eq!(store.timeout, Duration::from_millis(100));
    assert_eq!(store.reservation_ttl, Duration::from_secs(60));
    assert_single(
        "[store]\nredis_url = \"redis://a:1,http://b:2\"\n",
        "store.redis_url",
        2,
        13,
        "`redis`, `rediss` or `unix`",
    );
    assert_single(
        "[store]\nredis_url = \"redis://a:1,unix:///s.sock\"\n",
        "store.redis_url",
        2,
        13,
        "cluster",
    );
    let one =
        ok("[store]\nredis_url = \"redis://a:1\"\ncluster = true\nkey_prefix = \"team-a:prod\"\n");
    let store = one.store.expect("store");
    assert!(store.cluster);
    assert_eq!(store.key_prefix, "team-a:prod");
}

#[test]
fn ca_file_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).expect("write");
    std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").expect("write");
    let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    std::fs::write(dir.path().join("junk.pem"), junk).expect("write");
    let file = dir.path().join("headroom.toml");
    let with = |ca: &str| {
        let text = UPSTREAM.replace("http://", "https://");
        format!("{text}ca_file = {ca:?}\n")
    };

    // Relative to the configuration file's directory.
    let config = from_str(&with("ca.pem"), Some(&file)).expect("valid ca_file");
    assert_eq!(config.upstreams[0].ca_file, Some(dir.path().join("ca.pem")));

    let cases = [
        ("missing.pem", "cannot read"),
        ("empty.pem", "no PEM certificate"),
        ("junk.pem", "cannot be parsed"),
        ("", "must not be empty"),
    ];
    for (ca, message) in cases {
        let found = from_str(&with(ca), Some(&file)).expect_err(ca).problems;
        assert_eq!(keys(&found), ["upstream[0].ca_file"], "{ca}");
        assert_eq!(found[0].position, Some((5, 11)));
        assert_eq!(found[0].file.as_deref(), Some(file.as_path()));
        assert!(
            found[0].message.contains(message),
            "{ca}: {}",
            found[0].message
        );
    }
}

#[test]
fn unknown_table_drops_its_whole_table() {
    let text =
        format!("{UPSTREAM}[upstream.limt]\nrequests = 5\nbogus = 1\n[server]\nlisen = \"x\"\n");
    let found = problems(&text);
    assert_eq!(keys(&found), ["upstream[0].limt", "server.lisen"]);
    assert_eq!(found[0].position, Some((5, 11)));
    assert!(found[0].message.contains("did you mean `limit`"));
    assert_eq!(found[1].position, Some((9, 1)));
}

#[test]
fn unknown_top_level_sections() {
    assert_single("[limit]\nrequests = 1\n", "limit", 1, 2, "[upstream.limit]");
    assert_single("[sever]\n", "sever", 1, 2, "did you mean `server`");
    assert_single("[quota]\nprobes = 1\n", "quota", 1, 2, "[upstream.quota]");
    assert_single(
        "[upstream]\nname = \"a\"\n",
        "upstream",
        1,
        1,
        "[[upstream]]",
    );
}

#[test]
fn wrong_brackets_are_explained() {
    assert_single(
        "[[server]]\nlisten = \"x\"\n",
        "server",
        1,
        3,
        "write `[server]`",
    );
    let text = format!("{UPSTREAM}[[upstream.retry]]\nmax_attempts = 1\n");
    assert_single(
        &text,
        "upstream[0].retry",
        5,
        12,
        "write `[upstream.retry]`",
    );
    // A section of an upstream, with no `[[upstream]]` before it.
    assert_single(
        "[upstream.retry]\nmax_attempts = 1\n",
        "upstream",
        1,
        2,
        "[[upstream]]",
    );
    assert_single("[[servers]]\n", "servers", 1, 3, "did you mean `server`");
}

#[test]
fn index_counts_upstreams_in_file_order() {
    let second = "[[upstream]]\nname = \"b\"\nprefix = \"/b\"\nurl = \"http://h\"\n[upstream.retry]\nmax_delay = \"1x\"\n";
    assert_single(
        &format!("{UPSTREAM}{second}"),
        "upstream[1].retry.max_delay",
        10,
        13,
        "1x",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "\
[server]
listen = \"nowhere\"
drain_timeout = \"forever\"
colour = \"blue\"

[[upstream]]
name = \"A\"
prefix = \"/a\"
url = \"ftp://h\"
timeout = \"0s\"
connect_timeout = \"5 fortnights\"
speed = 11

[upstream.retry]
max_attempts = 0
base_dalay = \"1s\"

[[upstream]]
name = \"b\"
prefix = \"/a/\"
url = \"http://h\"
max_concurrency = 0
";
    let found = problems(text);
    let expected = [
        ("server.listen", (2, 10)),
        ("server.drain_timeout", (3, 17)),
        ("server.colour", (4, 1)),
        ("upstream[0].name", (7, 8)),
        ("upstream[0].url", (9, 7)),
        ("upstream[0].timeout", (10, 11)),
        ("upstream[0].connect_timeout", (11, 19)),
        ("upstream[0].speed", (12, 1)),
        ("upstream[0].retry.max_attempts", (15, 16)),
        ("upstream[0].retry.base_dalay", (16, 1)),
        ("upstream[1].prefix", (20, 10)),
        ("upstream[1].max_concurrency", (22, 19)),
    ];
    let got: Vec<(&str, (usize, usize))> = found
        .iter()
        .map(|p| (p.key.as_str(), p.position.expect("position")))
        .collect();
    assert_eq!(got, expected, "{found:#?}");
}

#[test]
fn syntax_error_has_its_key_and_position() {
    let found = problems("[server]\nlisten = 127.0.0.1:8080\n");
    assert_eq!(keys(&found), ["server.listen"]);
    assert_eq!(found[0].position, Some((2, 15)));
    assert!(
        found[0].message.starts_with("invalid TOML"),
        "{}",
        found[0].message
    );
    assert!(
        found[0].message.contains("listen = \"127.0.0.1:8080\""),
        "{}",
        found[0].message
    );
}

#[test]
fn several_syntax_errors_and_the_rest_are_reported() {
    let text =
        format!("{UPSTREAM}timeout = 30s\nmax_concurrency = 0\nqueue.max_wait = 1m\nlimt = 1\n");
    let found = problems(&text);
    let got: Vec<(&str, Option<(usize, usize)>)> =
        found.iter().map(|p| (p.key.as_str(), p.position)).collect();
    assert_eq!(
        got,
        [
            ("upstream[0].timeout", Some((5, 13))),
            ("upstream[0].max_concurrency", Some((6, 19))),
            ("upstream[0].queue.max_wait", Some((7, 19))),
            ("upstream[0].limt", Some((8, 1))),
        ]
    );
}

#[test]
fn a_broken_header_stops_checking() {
    let found = problems("[server\nlisten = 3\n[[upstream]]\nname = 5\n");
    assert_eq!(keys(&found), ["(syntax)"]);
    assert_eq!(found[0].position, Some((1, 8)));
}

#[test]
fn a_repeated_table_is_named() {
    let found = problems("[server]\n[store]\nredis_url = \"redis://h\"\n[server]\n");
    assert_eq!(keys(&found), ["server"]);
    assert_eq!(found[0].position.map(|(line, _)| line), Some(4));
    let found = problems("[server]\nlisten = \"127.0.0.1:1\"\n[upstream\n");
    assert_eq!(keys(&found), ["(syntax)"]);
}

#[test]
fn duplicate_key_is_a_syntax_error_at_its_line() {
    let found = problems(&format!("{UPSTREAM}name = \"b\"\n"));
    assert_eq!(keys(&found), ["upstream[0].name"]);
    assert_eq!(found[0].position, Some((5, 1)));
    assert!(found[0].message.contains("duplicate key"));
}

#[test]
fn unterminated_string_is_reported_once() {
    let found = problems("[server]\nlisten = \"127.0.0.1:8080\ndrain_timeout = \"30s\"\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].position.map(|(line, _)| line), Some(2));
}

#[test]
fn load_reports_an_unreadable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let found = load(&path).expect_err("absent").problems;
    assert_eq!(keys(&found), ["(file)"]);
    assert_eq!(found[0].position, None);
    assert!(
        found[0].message.contains("No such file"),
        "{}",
        found[0].message
    );
    let shown = ConfigError { problems: found }.to_string();
    assert!(
        shown.starts_with(&format!("{}: `(file)`: cannot read", path.display())),
        "{shown}"
    );
}

#[test]
fn problems_display_file_line_column_key_message() {
    let err = from_str(
        "[server]\nmax_request_body = 0\n",
        Some(Path::new("h.toml")),
    )
    .expect_err("bad");
    assert_eq!(
        err.to_string(),
        "h.toml:2:20: `server.max_request_body`: must be at least 1, got 0"
    );
    let err = from_str("[server]\nmax_request_body = 0\n", None).expect_err("bad");
    assert_eq!(
        err.to_string(),
        "2:20: `server.max_request_body`: must be at least 1, got 0"
    );
}

#[test]
fn schema_matches_the_readme_reference() {
    use super::raw::*;
    let sections: [(&str, Vec<&'static str>); 8] = [
        ("server", fields::<RawServer>()),
        ("upstream", fields::<RawUpstream>()),
        ("upstream.limit", fields::<RawLimit>()),
        ("upstream.quota", fields::<RawQuota>()),
        ("upstream.queue", fields::<RawQueue>()),
        ("upstream.retry", fields::<RawRetry>()),
        ("upstream.breaker", fields::<RawBreaker>()),
        ("store", fields::<RawStore>()),
    ];
    let tables: Vec<&str> = sections.iter().map(|(name, _)| *name).collect();
    let mut schema: Vec<String> = sections
        .iter()
        .flat_map(|(section, fields)| fields.iter().map(move |f| format!("{section}.{f}")))
        .filter(|key| !tables.contains(&key.as_str()))
        .collect();
    schema.sort();
    assert_eq!(fields::<RawConfig>(), ["server", "upstream", "store"]);

    let readme = include_str!("../../README.md");
    let mut documented: Vec<String> = readme
        .lines()
        .filter(|line| line.starts_with("| `["))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let section = cells[1].trim_matches(['`', '[', ']']);
            format!("{section}.{}", cells[2].trim_matches('`'))
        })
        .collect();
    documented.sort();
    assert_eq!(schema, documented);
}

/// The field names a serde struct accepts.
fn fields<'de, T: serde::Deserialize<'de>>() -> Vec<&'static str> {
    match T::deserialize(FieldNames) {
        Err(FieldNamesError(Some(fields))) => fields.to_vec(),
        _ => panic!("not a struct"),
    }
}

struct FieldNames;

#[derive(Debug)]
struct FieldNamesError(Option<&'static [&'static str]>);

impl std::fmt::Display for FieldNamesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for FieldNamesError {}

impl serde::de::Error for FieldNamesError {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        FieldNamesError(None)
    }
}

impl<'de> serde::Deserializer<'de> for FieldNames {
    type Error = FieldNamesError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(FieldNamesError(None))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        Err(FieldNamesError(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Mangled versions of the example never panic, and every problem they give has a key and
/// a position inside the text.
#[test]
fn mangled_files_never_panic() {
    let example = include_str!("../../config/headroom.toml");
    let lines: Vec<&str> = example.lines().collect();
    let pieces = [
        "[",
        "]",
        "[[",
        "]]",
        "=",
        "\"",
        "'",
        "\"\"\"",
        "{",
        "}",
        ",",
        ".",
        "#",
        "\n",
        " ",
        "0",
        "-1",
        "x",
        "é",
        "\r\n",
        "[upstream.x]",
        "[[upstream]]",
        "a = [1,",
        "\\",
    ];
    // A small deterministic generator: the test is the same on every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % bound.max(1)
    };
    for round in 0..400 {
        let mut text: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
        for _ in 0..1 + round % 4 {
            let at = next(text.len());
            match next(4) {
                0 => {
                    text.remove(at);
                }
                1 => {
                    let copy = text[next(text.len())].clone();
                    text.insert(at, copy);
                }
                _ => {
                    let line = &mut text[at];
                    let cut = (0..=line.len())
                        .filter(|&i| line.is_char_boundary(i))
                        .nth(next(line.chars().count() + 1))
                        .unwrap_or(0);
                    line.insert_str(cut, pieces[next(pieces.len())]);
                }
            }
        }
        let text = text.join("\n");
        let line_count = text.split('\n').count();
        if let Err(err) = from_str(&text, None) {
            assert!(!err.problems.is_empty());
            for problem in &err.problems {
                assert!(
                    !problem.key.is_empty() && !problem.message.is_empty(),
                    "{problem:?}"
                );
                if let Some((line, column)) = problem.position {
                    assert!(
                        line >= 1 && line <= line_count && column >= 1,
                        "{problem:?}\n{text}"
                    );
                }
            }
        }
    }
}
