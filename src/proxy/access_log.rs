//! One structured log line per request, written when its response body has been sent.

use tokio::time::Instant;

use crate::proxy::body::BodyObserver;

/// What the access log line says about one request.
#[derive(Debug)]
pub struct AccessLog {
    /// The request id sent upstream and returned to the client.
    pub request_id: http::HeaderValue,
    /// The upstream, when the request was routed.
    pub upstream: Option<std::sync::Arc<crate::upstream::Upstream>>,
    /// HTTP method.
    pub method: http::Method,
    /// The request target; only its path is logged (queries may carry secrets).
    pub uri: http::Uri,
    /// Status sent to the client.
    pub status: u16,
    /// Attempts made upstream.
    pub attempts: u32,
    /// Time spent queued, in milliseconds.
    pub queue_ms: u64,
    /// When the request arrived.
    pub started: Instant,
    /// Headroom's own error code, when it answered itself.
    pub error: Option<&'static str>,
    /// Where `headroom_requests_total` and the duration histogram are counted for a request
    /// that matched no upstream.
    pub unrouted: std::sync::Arc<crate::metrics::UpstreamHandles>,
    /// The client connection, told when this response is done.
    pub connection: std::sync::Arc<crate::proxy::idle::ReadEnd>,
}

impl BodyObserver for AccessLog {
    fn finished(&mut self, bytes: u64, complete: bool) {
        self.connection.response_finished();
        let elapsed = self.started.elapsed();
        let handles = self
            .upstream
            .as_ref()
            .map_or(&*self.unrouted, |upstream| upstream.handles());
        handles.count_request(self.status);
        handles.observe_duration(elapsed.as_secs_f64());
        if !tracing::enabled!(target: "headroom::access", tracing::Level::INFO) {
            return;
        }
        let line = Line {
            request_id: self.request_id.to_str().unwrap_or_default(),
            upstream: self
                .upstream
                .as_ref()
                .map_or("-", |upstream| upstream.name()),
            method: self.method.as_str(),
            path: self.uri.path(),
            status: self.status,
            duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            attempts: self.attempts,
            queue_ms: self.queue_ms,
            bytes_sent: bytes,
            complete,
            error: self.error.unwrap_or("-"),
        };
        if crate::logging::json_lines() {
            crate::logging::write_line(|out| line.write_json(out, crate::quota::clock::wall_now()));
        } else {
            line.trace();
        }
    }
}

/// The fields of one access line, written as JSON directly (see [`Line::write_json`]).
struct Line<'a> {
    request_id: &'a str,
    upstream: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    duration_us: u64,
    attempts: u32,
    queue_ms: u64,
    bytes_sent: u64,
    complete: bool,
    error: &'a str,
}

impl Line<'_> {
    /// The line as a `tracing` event (a terminal's human-readable log, or another
    /// subscriber's when Headroom is embedded).
    fn trace(&self) {
        tracing::info!(
            target: "headroom::access",
            request_id = self.request_id,
            upstream = self.upstream,
            method = self.method,
            path = self.path,
            status = self.status,
            duration_ms = self.duration_us as f64 / 1000.0,
            attempts = self.attempts,
            queue_ms = self.queue_ms,
            bytes_sent = self.bytes_sent,
            complete = self.complete,
            error = self.error,
            "request"
        );
    }

    /// The same JSON object the `tracing` JSON formatter writes for this event, written
    /// without it: that formatter's generic field visitors and escaping took about an eighth
    /// of the gateway's CPU with the access log on; this is one pass into a reused buffer.
    fn write_json(&self, out: &mut Vec<u8>, now: std::time::SystemTime) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        crate::logging::write_timestamp(out, now);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":");
        json_string(out, self.request_id.as_bytes());
        out.extend_from_slice(b",\"upstream\":");
        json_string(out, self.upstream.as_bytes());
        out.extend_from_slice(b",\"method\":");
        json_string(out, self.method.as_bytes());
        out.extend_from_slice(b",\"path\":");
        json_string(out, self.path.as_bytes());
        out.extend_from_slice(b",\"status\":");
        number(out, u64::from(self.status));
        // Milliseconds with three decimals, as before (microsecond precision).
        out.extend_from_slice(b",\"duration_ms\":");
        number(out, self.duration_us / 1000);
        // Three decimals, trailing zeros dropped but one kept (`12.34`, `1.0`), as the
        // `tracing` formatter writes the float.
        out.push(b'.');
        crate::logging::write_padded(out, self.duration_us % 1000, 3);
        while out.ends_with(b"0") && !out.ends_with(b".0") {
            out.pop();
        }
        out.extend_from_slice(b",\"attempts\":");
        number(out, u64::from(self.attempts));
        out.extend_from_slice(b",\"queue_ms\":");
        number(out, self.queue_ms);
        out.extend_from_slice(b",\"bytes_sent\":");
        number(out, self.bytes_sent);
        out.extend_from_slice(if self.complete {
            b",\"complete\":true,\"error\":"
        } else {
            b",\"complete\":false,\"error\":"
        });
        json_string(out, self.error.as_bytes());
        out.extend_from_slice(b",\"target\":\"headroom::access\"}\n");
    }
}

/// A decimal number.
fn number(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A JSON string: quotes, backslashes and control bytes escaped; other bytes as they are
/// (the values are ASCII tokens or paths; a byte that is not UTF-8 becomes U+FFFD).
fn json_string(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    let text = String::from_utf8_lossy(value);
    for byte in text.bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_json_with_every_field_and_escapes() {
        let line = Line {
            request_id: "id-\"1\"\\",
            upstream: "s",
            method: "GET",
            path: "/s/r\u{1}ecords/\u{e9}",
            status: 200,
            duration_us: 12_340,
            attempts: 2,
            queue_ms: 7,
            bytes_sent: 18_446_744_073_709_551_615,
            complete: true,
            error: "-",
        };
        let mut out = Vec::new();
        line.write_json(
            &mut out,
            std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_682_390_123_456),
        );
        assert_eq!(out.last(), Some(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(value["timestamp"], "2025-12-02T13:33:10.123456Z");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], "headroom::access");
        assert_eq!(value["message"], "request");
        assert_eq!(value["request_id"], "id-\"1\"\\");
        assert_eq!(value["path"], "/s/r\u{1}ecords/\u{e9}");
        assert_eq!(value["status"], 200);
        assert_eq!(value["duration_ms"], 12.34);
        assert_eq!(value["attempts"], 2);
        assert_eq!(value["queue_ms"], 7);
        assert_eq!(value["bytes_sent"], u64::MAX);
        assert_eq!(value["complete"], true);
        assert_eq!(value["error"], "-");
        for (us, ms) in [(0, 0.0), (1, 0.001), (1_000, 1.0), (999_999, 999.999)] {
            let mut out = Vec::new();
            Line {
                duration_us: us,
                ..line
            }
            .write_json(&mut out, std::time::UNIX_EPOCH);
            let value: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
            assert_eq!(value["duration_ms"], ms, "{us} us");
        }
    }
}
