//! The supplier endpoints, reached once a request has passed the quota and the faults.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::json;

use super::body::SimBody;
use super::fnv::Fnv1a64;

/// Largest `/bytes/<n>`.
pub const MAX_BYTES: u64 = 64 << 30;

/// `/echo` returns the body when it is shorter than this.
pub const ECHO_BODY_LIMIT: usize = 64 * 1024;

/// What the endpoints know about the request besides itself.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Requests admitted in the current window, this one included.
    pub window_admitted: u32,
    /// The request's sequence number since start (or the last stats reset).
    pub seq: u64,
    /// Now, since the Unix epoch.
    pub now: Duration,
}

/// Dispatches to the endpoint for the request's path.
pub async fn route<B>(req: Request<B>, context: &Context) -> Response<SimBody>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let path = req.uri().path();
    if path == "/echo" {
        echo(req).await
    } else if path == "/upload" {
        if req.method() == Method::POST || req.method() == Method::PUT {
            upload(req).await
        } else {
            method_not_allowed("POST, PUT")
        }
    } else if let Some(len) = path.strip_prefix("/bytes/") {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            bytes(len)
        } else {
            method_not_allowed("GET, HEAD")
        }
    } else if let Some(code) = path.strip_prefix("/status/") {
        status(code)
    } else {
        record(&req, context)
    }
}

/// A JSON response.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<SimBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(SimBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn bad_request(message: String) -> Response<SimBody> {
    json(
        StatusCode::BAD_REQUEST,
        &json!({"error": "bad_request", "message": message}),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<SimBody> {
    let mut response = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({"error": "method_not_allowed", "allow": allow}),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The default endpoint: the request line and a small FSMA 204 traceability record.
fn record<B>(req: &Request<B>, context: &Context) -> Response<SimBody> {
    const EVENTS: [&str; 6] = [
        "harvesting",
        "cooling",
        "initial_packing",
        "shipping",
        "receiving",
        "transformation",
    ];
    const PRODUCTS: [&str; 4] = [
        "romaine lettuce, whole head",
        "cucumbers",
        "fresh-cut cantaloupe",
        "shell eggs",
    ];
    let seq = context.seq;
    json(
        StatusCode::OK,
        &json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query(),
            "window_admitted": context.window_admitted,
            "record": {
                "traceability_lot_code": format!("HRSIM-{seq:08}"),
                "critical_tracking_event": EVENTS[(seq % EVENTS.len() as u64) as usize],
                "product": PRODUCTS[(seq % PRODUCTS.len() as u64) as usize],
                "quantity": 1 + seq % 48,
                "unit_of_measure": "case",
                "location_gln": "0614141000012",
                "event_time_ms": u64::try_from(context.now.as_millis()).unwrap_or(u64::MAX),
            },
        }),
    )
}

/// `GET /bytes/<n>`: `n` bytes of the pattern, streamed.
fn bytes(len: &str) -> Response<SimBody> {
    let len = match len.parse::<u64>() {
        Ok(len) if len <= MAX_BYTES => len,
        Ok(_) => return bad_request(format!("at most {MAX_BYTES} bytes")),
        Err(_) => return bad_request(format!("`{len}` is not a byte count")),
    };
    let mut response = Response::new(SimBody::pattern(len));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// `GET /status/<code>`: that status, with a JSON body (none for 204, 205, 304).
fn status(code: &str) -> Response<SimBody> {
    let status = match code.parse::<u16>().map(StatusCode::from_u16) {
        Ok(Ok(status)) if (200..=599).contains(&status.as_u16()) => status,
        _ => return bad_request(format!("`{code}` is not a status in 200..=599")),
    };
    if matches!(status.as_u16(), 204 | 205 | 304) {
        let mut response = Response::new(SimBody::empty());
        *response.status_mut() = status;
        return response;
    }
    json(status, &json!({"status": status.as_u16()}))
}

/// Reads the whole body, feeding each chunk to `each`; the byte count, or the read error.
async fn read_body<B>(mut body: B, mut each: impl FnMut(&[u8])) -> Result<u64, String>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| err.to_string())?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            each(&data);
        }
    }
    Ok(total)
}

/// `POST|PUT /upload`: `{"bytes": n, "fnv1a64": "<hex>"}` of the body, read streaming.
async fn upload<B>(req: Request<B>) -> Response<SimBody>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut hash = Fnv1a64::default();
    match read_body(req.into_body(), |chunk| hash.update(chunk)).await {
        Ok(bytes) => json(
            StatusCode::OK,
            &json!({"bytes": bytes, "fnv1a64": hash.hex()}),
        ),
        Err(err) => bad_request(format!("reading the body failed: {err}")),
    }
}

/// `* /echo`: the request as received: method, path, raw query, headers, body.
async fn echo<B>(req: Request<B>) -> Response<SimBody>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (parts, body) = req.into_parts();
    let mut headers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let (mut kept, mut seen) = (Vec::new(), 0usize);
    let read = read_body(body, |chunk| {
        seen = seen.saturating_add(chunk.len());
        if seen < ECHO_BODY_LIMIT {
            kept.extend_from_slice(chunk);
        } else if !kept.is_empty() {
            kept = Vec::new();
        }
    })
    .await;
    let body_len = match read {
        Ok(len) => len,
        Err(err) => return bad_request(format!("reading the body failed: {err}")),
    };
    let body =
        (body_len < ECHO_BODY_LIMIT as u64).then(|| String::from_utf8_lossy(&kept).into_owned());
    json(
        StatusCode::OK,
        &json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_len": body_len,
            "body": body,
        }),
    )
}
