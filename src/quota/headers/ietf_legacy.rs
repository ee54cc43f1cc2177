//! IETF drafts -00..-06 (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, from -02
//! an optional `RateLimit-Policy: 100;w=60`), also sent by Zendesk, and GitLab's variant of
//! them. Limit and remaining are Structured Fields (`sfv`).
//!
//! `RateLimit-Reset` is delta seconds in the drafts but an epoch at GitLab, so it is read by
//! the reset rule of `quota.reset_format` (by magnitude in `auto`), not as a plain delta.

use http::HeaderName;
use sfv::{Item, ListEntry, Parser};

use super::ietf_policy::read_policies;
use super::names;
use super::reader::ResponseHeaders;
use super::structured::{param_window, sf_list, warn_field};
use super::values::Number;
use crate::quota::observation::{Ignored, QuotaObservation, Source};

/// The -00..-06 fields. `RateLimit-Limit` may be a list (-00/-01
/// `RateLimit-Limit: 100, 100;w=10`): its first member is the current limit, the others are
/// policies; the window is the `w` of the first member, else of a policy with the same quota.
pub fn parse_ietf_06(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    parse_fields(r, Source::Ietf06)
}

/// GitLab: the -06 names (reset as an epoch) plus `RateLimit-ResetTime` (an HTTP-date, used
/// when `RateLimit-Reset` is absent or unusable), told apart by `RateLimit-Observed`,
/// `RateLimit-Name` or `RateLimit-ResetTime`.
pub fn parse_gitlab(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    let is_gitlab = r.has(&names::RATELIMIT_OBSERVED)
        || r.has(&names::RATELIMIT_NAME)
        || r.has(&names::RATELIMIT_RESETTIME);
    if !is_gitlab {
        return None;
    }
    let mut obs =
        parse_fields(r, Source::Gitlab).unwrap_or_else(|| QuotaObservation::new(Source::Gitlab));
    if obs.reset_after.is_none() {
        obs.reset_after = r.date(&names::RATELIMIT_RESETTIME);
    }
    obs.has_quota().then_some(obs)
}

fn parse_fields(r: &mut ResponseHeaders<'_>, source: Source) -> Option<QuotaObservation> {
    let present = r.has(&names::RATELIMIT_LIMIT)
        || r.has(&names::RATELIMIT_REMAINING)
        || r.has(&names::RATELIMIT_RESET);
    if !present {
        return None;
    }
    let mut obs = QuotaObservation::new(source);
    if r.has(&names::RATELIMIT_LIMIT) {
        if let Some((limit, window)) = read_limit(r) {
            obs.limit = Some(limit);
            obs.window = window;
        }
    }
    obs.remaining = sf_count(r, &names::RATELIMIT_REMAINING);
    obs.reset_after = r.reset(&names::RATELIMIT_RESET);
    if let (Some(limit), None) = (obs.limit, obs.window) {
        if r.has(&names::RATELIMIT_POLICY) {
            let policies = read_policies(r, &names::RATELIMIT_POLICY);
            obs.window = policies
                .iter()
                .find(|p| p.name.is_none() && p.quota == limit)
                .and_then(|p| p.window);
        }
    }
    obs.has_quota().then_some(obs)
}

/// `RateLimit-Limit`: the first member's value, and a window from its `w` or from a later
/// member with the same quota.
fn read_limit(r: &mut ResponseHeaders<'_>) -> Option<(u64, Option<std::time::Duration>)> {
    let field = &names::RATELIMIT_LIMIT;
    let list = sf_list(r, field, true)?;
    let mut members = list.iter().filter_map(|e| match e {
        ListEntry::Item(item) => Some(item),
        ListEntry::InnerList(_) => None,
    });
    let Some(first) = members.next() else {
        warn_field(r, field, Ignored::Empty);
        return None;
    };
    let limit = match Number::from_sfv(&first.bare_item) {
        Ok(n) => n.whole,
        Err(reason) => {
            warn_field(r, field, reason);
            return None;
        }
    };
    let mut window = param_window(r, field, &first.params);
    if window.is_none() {
        let same = members.find(|i| Number::from_sfv(&i.bare_item).is_ok_and(|n| n.whole == limit));
        if let Some(policy) = same {
            window = param_window(r, field, &policy.params);
        }
    }
    Some((limit, window))
}

/// A count sent as a Structured Field Item (Integer, or Decimal floored).
fn sf_count(r: &mut ResponseHeaders<'_>, field: &'static HeaderName) -> Option<u64> {
    let value = r.lines(field).next()?;
    let parsed = Parser::new(value.as_bytes())
        .parse_item::<Item>()
        .map_err(|_| {
            if value.as_bytes().iter().all(|b| *b == b' ' || *b == b'\t') {
                Ignored::Empty
            } else {
                Ignored::Malformed
            }
        })
        .and_then(|item| Number::from_sfv(&item.bare_item));
    match parsed {
        Ok(n) => Some(n.whole),
        Err(reason) => {
            r.warn(field, value.as_bytes(), reason);
            None
        }
    }
}
