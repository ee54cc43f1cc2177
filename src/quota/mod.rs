//! The quota engine: what each supplier's headers say ([`headers`] turns one response into a
//! [`QuotaObservation`]), what that leaves to send ([`tracker`] over the [`model`]s, [`state`]),
//! and when ([`clock`]).

pub mod clock;
pub mod headers;
pub mod model;
pub mod observation;
pub mod state;
pub mod tracker;

pub use headers::parse;
pub use observation::{
    HeaderWarning, Ignored, LeakyBucket, ParseOptions, QuotaObservation, ResetFormat, Source,
};
