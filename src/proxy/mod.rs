//! The proxy path: route a client request to its upstream and stream the answer back.

pub mod access_log;
pub mod attempts;
pub mod body;
pub mod connection;
pub mod forward;
pub mod handler;
pub mod head_scan;
pub mod headers;
pub mod idle;
pub mod links;
pub mod replay;
pub mod router;

pub use handler::Proxy;
pub use router::Router;
