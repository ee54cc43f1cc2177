//! `headroom check-config` and `headroom --config` on real files, through the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HEADROOM: &str = env!("CARGO_BIN_EXE_headroom");

/// A valid upstream, lines 1 to 4.
const UPSTREAM: &str =
    "[[upstream]]\nname = \"a\"\nprefix = \"/a\"\nurl = \"http://127.0.0.1:9000\"\n";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(HEADROOM)
        .args(args)
        .env_remove("HEADROOM_ADMIN_TOKEN")
        .output()
        .expect("run headroom");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("headroom.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn check_config(text: &str) -> (Run, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), text);
    let path_arg = path.to_str().expect("utf-8 path");
    (run(&["check-config", path_arg]), path, dir)
}

#[test]
fn good_file_exits_0() {
    let (run, path, _dir) = check_config(UPSTREAM);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        format!("{}: ok (1 upstream)", path.display())
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn empty_file_is_valid_with_zero_upstreams() {
    let (run, _, _dir) = check_config("");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("ok (0 upstreams)"), "{}", run.stdout);
}

#[test]
fn example_file_exits_0() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/headroom.toml");
    let run = run(&["check-config", example.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("ok (2 upstreams)"), "{}", run.stdout);
}

/// The quota keys and `retry.max_body` at the ends of their ranges are accepted.
#[test]
fn quota_and_max_body_limits_are_accepted() {
    let texts = [
        "[upstream.quota]\nreset_format = \"delta\"\npartition_by = \"header:X-Api-Key\"\n\
         probes = 1\nmax_partitions = 1\n[upstream.retry]\nmax_body = 0\n",
        "[upstream.quota]\nreset_format = \"epoch\"\nprobes = 1000\nmax_partitions = 1000000\n\
         [upstream.retry]\nmax_body = 1073741824\n",
    ];
    for extra in texts {
        let (run, _, _dir) = check_config(&format!("{UPSTREAM}{extra}"));
        assert_eq!(run.code, Some(0), "{extra}\n{}", run.stderr);
    }
}

/// The breaker keys at the ends of their ranges are accepted; `failure_rate = 1` (an
/// integer) too.
#[test]
fn breaker_limits_are_accepted() {
    let texts = [
        "[upstream.breaker]\nfailure_rate = 1\nwindow = \"1ms\"\nmin_calls = 1\n\
         half_open_probes = 1\n",
        "[upstream.breaker]\nfailure_rate = 0.001\nwindow = \"366days\"\n\
         min_calls = 100000\nhalf_open_probes = 1000\n",
    ];
    for extra in texts {
        let (run, _, _dir) = check_config(&format!("{UPSTREAM}{extra}"));
        assert_eq!(run.code, Some(0), "{extra}\n{}", run.stderr);
    }
}

/// Each bad file: exit 2, and stderr names the key at `line:col`.
#[test]
fn bad_files_exit_2_with_key_and_position() {
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("{UPSTREAM}limt = 3\n"), "upstream[0].limt", "5:1"),
        (
            format!("{UPSTREAM}timeout = \"30 parsecs\"\n"),
            "upstream[0].timeout",
            "5:11",
        ),
        (
            format!("{UPSTREAM}timeout = 30s\n"),
            "upstream[0].timeout",
            "5:13",
        ),
        (
            format!("{UPSTREAM}[upstream.limt]\nrequests = 1\n"),
            "upstream[0].limt",
            "5:11",
        ),
        (
            format!("{UPSTREAM}[upstream.retry]\nmax_delay = \"1ms\"\n"),
            "upstream[0].retry.max_delay",
            "6:13",
        ),
        (
            format!("{UPSTREAM}max_concurrency = 0\n"),
            "upstream[0].max_concurrency",
            "5:19",
        ),
        (
            UPSTREAM.replace("http://127.0.0.1:9000", "ftp://h"),
            "upstream[0].url",
            "4:7",
        ),
        (
            UPSTREAM.replace("\"a\"", "\"A\""),
            "upstream[0].name",
            "2:8",
        ),
        (
            UPSTREAM.replace("\"/a\"", "\"a\""),
            "upstream[0].prefix",
            "3:10",
        ),
        (
            UPSTREAM.replace("url = \"http://127.0.0.1:9000\"\n", ""),
            "upstream[0].url",
            "1:1",
        ),
        (
            "[server]\nlisten = \"localhost:8080\"\n".to_owned(),
            "server.listen",
            "2:10",
        ),
        (
            "[server]\nadmin_listen = \"127.0.0.1:8080\"\n".to_owned(),
            "server.admin_listen",
            "2:16",
        ),
        (
            "[store]\nredis_url = \"http://x\"\n".to_owned(),
            "store.redis_url",
            "2:13",
        ),
        ("[server\n".to_owned(), "(syntax)", "1:8"),
        (
            format!("{UPSTREAM}[upstream.retry]\nmax_body = -1\n"),
            "upstream[0].retry.max_body",
            "6:12",
        ),
        (
            format!("{UPSTREAM}[upstream.retry]\nmax_body = 2000000000\n"),
            "upstream[0].retry.max_body",
            "6:12",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\nreset_format = \"ms\"\n"),
            "upstream[0].quota.reset_format",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\npartition_by = \"X-Api-Key\"\n"),
            "upstream[0].quota.partition_by",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\npartition_by = \"header:X Api Key\"\n"),
            "upstream[0].quota.partition_by",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\npartition_by = \"header:Connection\"\n"),
            "upstream[0].quota.partition_by",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\npartition_by = \"header:Proxy-Authorization\"\n"),
            "upstream[0].quota.partition_by",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\npartition_by = \"header:Host\"\n"),
            "upstream[0].quota.partition_by",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\nprobes = 0\n"),
            "upstream[0].quota.probes",
            "6:10",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\nprobes = 1001\n"),
            "upstream[0].quota.probes",
            "6:10",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\nmax_partitions = 0\n"),
            "upstream[0].quota.max_partitions",
            "6:18",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\nmax_partitions = 1000001\n"),
            "upstream[0].quota.max_partitions",
            "6:18",
        ),
        (
            format!("{UPSTREAM}[upstream.quota]\nprobs = 3\n"),
            "upstream[0].quota.probs",
            "6:1",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nfailure_rate = 0\n"),
            "upstream[0].breaker.failure_rate",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nfailure_rate = 1.5\n"),
            "upstream[0].breaker.failure_rate",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nfailure_rate = \"50%\"\n"),
            "upstream[0].breaker.failure_rate",
            "6:16",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nwindow = \"0s\"\n"),
            "upstream[0].breaker.window",
            "6:10",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nwindow = \"a minute\"\n"),
            "upstream[0].breaker.window",
            "6:10",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nmin_calls = 0\n"),
            "upstream[0].breaker.min_calls",
            "6:13",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nmin_calls = 100001\n"),
            "upstream[0].breaker.min_calls",
            "6:13",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nhalf_open_probes = 0\n"),
            "upstream[0].breaker.half_open_probes",
            "6:20",
        ),
        (
            format!("{UPSTREAM}[upstream.breaker]\nhalf_open_probes = 1001\n"),
            "upstream[0].breaker.half_open_probes",
            "6:20",
        ),
    ];
    for (text, key, position) in cases {
        let (run, path, _dir) = check_config(&text);
        assert_eq!(run.code, Some(2), "{text}\n{}", run.stderr);
        let expected = format!("{}:{position}: `{key}`: ", path.display());
        assert!(
            run.stderr.contains(&expected),
            "want {expected:?} in:\n{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

#[test]
fn every_problem_is_printed_one_per_line() {
    let text = format!(
        "[server]\ndrain_timeout = \"0s\"\ncolour = \"blue\"\n{UPSTREAM}timeout = \"soon\"\n\
         speed = 11\n[upstream.queue]\nmax_depth = 0\n"
    );
    let (run, _, _dir) = check_config(&text);
    assert_eq!(run.code, Some(2));
    let lines: Vec<&str> = run.stderr.lines().collect();
    let expected = [
        ":2:17: `server.drain_timeout`: must be greater than zero",
        ":3:1: `server.colour`: unknown key `colour`",
        ":8:11: `upstream[0].timeout`: invalid duration \"soon\"",
        ":9:1: `upstream[0].speed`: unknown key `speed`",
        ":11:13: `upstream[0].queue.max_depth`: must be between 1 and 1000000, got 0",
    ];
    assert_eq!(lines.len(), expected.len(), "{}", run.stderr);
    for (line, expected) in lines.iter().zip(expected) {
        assert!(line.contains(expected), "want {expected:?} in {line:?}");
    }
}

/// `ca_file` is relative to the configuration file, not to the current directory.
#[test]
fn relative_ca_file_is_found_next_to_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::create_dir(dir.path().join("certs")).expect("mkdir");
    std::fs::write(dir.path().join("certs/ca.pem"), cert.cert.pem()).expect("write cert");
    let text = UPSTREAM.replace("http://", "https://") + "ca_file = \"certs/ca.pem\"\n";
    let path = write(dir.path(), &text);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let output = Command::new(HEADROOM)
        .args(["check-config", path.to_str().expect("utf-8 path")])
        .current_dir(elsewhere.path())
        .output()
        .expect("run headroom");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    std::fs::remove_file(dir.path().join("certs/ca.pem")).expect("remove cert");
    let (run, _, _dir) = check_config(&text);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains(":5:11: `upstream[0].ca_file`: cannot read"),
        "{}",
        run.stderr
    );
}

#[test]
fn unreadable_file_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let run = run(&["check-config", path.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("`(file)`: cannot read"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("No such file"), "{}", run.stderr);
}

/// The gateway loads its configuration before binding anything, so a bad file stops it.
#[test]
fn gateway_refuses_a_bad_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), &format!("{UPSTREAM}retry.max_attempts = 0\n"));
    let path = path.to_str().expect("utf-8 path");
    for args in [["--config", path, "", ""], ["run", "--config", path, ""]] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let run = run(&args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        let expected = format!("{path}:5:22: `upstream[0].retry.max_attempts`: must be between");
        assert!(run.stderr.contains(&expected), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn check_config_does_not_need_redis() {
    // Nothing listens on port 1: a config naming a Redis that is down is still valid.
    let (run, _path, _dir) = check_config(&format!(
        "{UPSTREAM}\n[store]\nredis_url = \"redis://127.0.0.1:1\"\ntimeout = \"50ms\"\n"
    ));
    assert_eq!(
        run.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    let (bad, _path, _dir) = check_config(&format!(
        "{UPSTREAM}\n[store]\nredis_url = \"redis://127.0.0.1:1\"\nreservation_ttl = \"10ms\"\n"
    ));
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("store.reservation_ttl") && bad.stderr.contains(":8"),
        "names the key and its line: {}",
        bad.stderr
    );
}
