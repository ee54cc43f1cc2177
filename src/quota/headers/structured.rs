//! Structured Field helpers shared by the IETF parsers: whole fields over several lines,
//! parameters as counts, resets and windows, warnings that quote the field.

use std::time::Duration;

use http::HeaderName;
use sfv::{BareItem, Dictionary, KeyRef, List, Parameters, Parser};

use super::reader::ResponseHeaders;
use super::values::Number;
use crate::quota::observation::Ignored;

/// The name of a -08+ item (a String or a Token).
pub fn item_name(bare: &BareItem) -> Option<&str> {
    match bare {
        BareItem::String(s) => Some(s.as_str()),
        BareItem::Token(t) => Some(t.as_str()),
        _ => None,
    }
}

/// A required count parameter (`q`, `r`): missing or invalid leaves a warning.
pub fn param_count(
    r: &mut ResponseHeaders<'_>,
    field: &'static HeaderName,
    params: &Parameters,
    name: &KeyRef,
) -> Option<u64> {
    let Some(value) = params.get(name) else {
        warn_field(r, field, Ignored::MissingParameter);
        return None;
    };
    match Number::from_sfv(value) {
        Ok(n) => Some(n.whole),
        Err(reason) => {
            warn_field(r, field, reason);
            None
        }
    }
}

/// An optional reset parameter (`t`): delta seconds unless `reset_format` says otherwise.
pub fn param_reset(
    r: &mut ResponseHeaders<'_>,
    field: &'static HeaderName,
    params: &Parameters,
    name: &KeyRef,
) -> Option<Duration> {
    let value = params.get(name)?;
    match Number::from_sfv(value).and_then(|n| r.sf_reset(n)) {
        Ok(d) => Some(d),
        Err(reason) => {
            warn_field(r, field, reason);
            None
        }
    }
}

/// The optional `w` parameter: window seconds.
pub fn param_window(
    r: &mut ResponseHeaders<'_>,
    field: &'static HeaderName,
    params: &Parameters,
) -> Option<Duration> {
    let value = params.get(KEY_W)?;
    match Number::from_sfv(value).and_then(|n| r.cap(n.as_secs())) {
        Ok(d) => Some(d),
        Err(reason) => {
            warn_field(r, field, reason);
            None
        }
    }
}

/// All lines of `field` as one List (a failing line fails the field, as RFC 9651 says of the
/// combined value); the failure is reported when `report` is set.
pub fn sf_list(
    r: &mut ResponseHeaders<'_>,
    field: &'static HeaderName,
    report: bool,
) -> Option<List> {
    let mut list = List::new();
    for line in r.lines(field) {
        match Parser::new(line.as_bytes()).parse_list_with_visitor(list) {
            Ok(l) => list = l,
            Err(_) => {
                if report {
                    r.warn(field, line.as_bytes(), Ignored::Malformed);
                }
                return None;
            }
        }
    }
    Some(list)
}

/// All lines of `field` as one Dictionary (later keys win, as RFC 9651 says); no warning.
pub fn sf_dict(r: &ResponseHeaders<'_>, field: &'static HeaderName) -> Option<Dictionary> {
    let mut dict = Dictionary::new();
    for line in r.lines(field) {
        dict = Parser::new(line.as_bytes())
            .parse_dictionary_with_visitor(dict)
            .ok()?;
    }
    Some(dict)
}

/// A warning about `field`, quoting its first line.
pub fn warn_field(r: &mut ResponseHeaders<'_>, field: &'static HeaderName, reason: Ignored) {
    let raw = r
        .lines(field)
        .next()
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    r.warn(field, &raw, reason);
}

/// Parameter and member keys of the IETF fields.
pub const KEY_R: &KeyRef = KeyRef::constant("r");
pub const KEY_T: &KeyRef = KeyRef::constant("t");
pub const KEY_Q: &KeyRef = KeyRef::constant("q");
pub const KEY_W: &KeyRef = KeyRef::constant("w");
pub const KEY_QU: &KeyRef = KeyRef::constant("qu");
pub const KEY_LIMIT: &KeyRef = KeyRef::constant("limit");
pub const KEY_REMAINING: &KeyRef = KeyRef::constant("remaining");
pub const KEY_RESET: &KeyRef = KeyRef::constant("reset");
