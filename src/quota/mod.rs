//! The supplier's quota as Headroom learns it: [`headers`] turns one response's headers into
//! a [`QuotaObservation`].

pub mod headers;
pub mod observation;

pub use headers::parse;
pub use observation::{
    HeaderWarning, LeakyBucket, ParseOptions, QuotaObservation, Reason, ResetFormat, Source,
};
