//! What Headroom does with a client's request head, on arbitrary bytes: the target's route
//! and upstream URI, the hop-by-hop rules, `Via`, the request id, link rewriting of the
//! answer; the raw head scan for `Content-Length` with `Transfer-Encoding`, whole and in
//! pieces (same verdict either way). No input may panic.
#![no_main]

use headroom::proxy::head_scan::HeadScan;
use headroom::proxy::headers;
use headroom::proxy::links;
use headroom::upstream::target::TargetBase;
use headroom::quota::state::route_of;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut whole = HeadScan::default();
    let used = whole.feed(data);
    assert!(used <= data.len());
    let mut pieces = HeadScan::default();
    for piece in data.chunks(7) {
        pieces.feed(piece);
    }
    assert_eq!(whole.ambiguous_length(), pieces.ambiguous_length());
    assert_eq!(whole.done(), pieces.done());
    let (first, mut request) = common::lines(data);
    let target = String::from_utf8_lossy(first);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target.as_ref(), None),
    };
    let _ = route_of(path);
    if let Ok(url) = url::Url::parse("https://api.supplier.example/v2/") {
        if let Ok(base) = TargetBase::from_url(&url) {
            let _ = base.uri(path, query);
        }
    }
    let _ = headers::asks_to_close(&request);
    let id = headers::request_id(&request);
    let mut response = request.clone();
    headers::prepare_upstream_request(&mut request, std::net::Ipv4Addr::LOCALHOST.into(), &id);
    let _ = headers::head_size(&http::Method::GET, &http::Uri::from_static("/x"), &request);
    headers::strip_hop_by_hop(&mut response);
    headers::add_via(&mut response);
    links::rewrite(&mut response, "https://api.supplier.example/v2", "/supplier-a");
});
