//! IETF `draft-ietf-httpapi-ratelimit-headers` -07 and -08..-11: the `RateLimit` field
//! (Cloudflare spells it `Ratelimit`; Jira prefixes both fields with `Beta-`) and
//! `RateLimit-Policy`, parsed as Structured Fields with `sfv`.
//!
//! -07 sends a Dictionary `RateLimit: limit=100, remaining=50, reset=5`; -08+ a List of
//! named items `RateLimit: "default";r=50;t=30` whose names refer to
//! `RateLimit-Policy: "default";q=100;w=60`. A token-named -08 item (`default;r=50`) is also
//! a valid Dictionary, so the form is told by the keys present, not by which parse succeeds.

use http::HeaderName;
use sfv::{BareItem, Dictionary, KeyRef, List, ListEntry};

use super::governing::{governing, PolicyState};
use super::ietf_policy::{policy_state, policy_state_or_bare, read_policies, Policy};
use super::names;
use super::reader::ResponseHeaders;
use super::structured::{
    item_name, param_count, param_reset, sf_dict, sf_list, warn_field, KEY_LIMIT, KEY_R,
    KEY_REMAINING, KEY_RESET, KEY_T,
};
use super::values::Number;
use crate::quota::observation::{Ignored, QuotaObservation, Source};

/// The IETF -07 or -08..-11 fields, `RateLimit` first, then Jira's `Beta-RateLimit`.
/// Needs the `RateLimit` field, or a `RateLimit-Policy` of named (-08+) policies alone.
pub fn parse_ietf(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    let pairs = [
        (&names::RATELIMIT, &names::RATELIMIT_POLICY),
        (&names::BETA_RATELIMIT, &names::BETA_RATELIMIT_POLICY),
    ];
    for (field, policy) in pairs {
        if r.has(field) || (r.has(policy) && !has_ietf_06_fields(r)) {
            if let Some(obs) = parse_pair(r, field, policy) {
                return Some(obs);
            }
        }
    }
    None
}

fn parse_pair(
    r: &mut ResponseHeaders<'_>,
    field: &'static HeaderName,
    policy_field: &'static HeaderName,
) -> Option<QuotaObservation> {
    let policies = if r.has(policy_field) {
        read_policies(r, policy_field)
    } else {
        Vec::new()
    };
    if !r.has(field) {
        // Policies alone: only the named form is this parser's (the integer form belongs to
        // the -02..-06 fields).
        let named = policies
            .iter()
            .filter(|p| p.name.is_some() && p.counts_requests);
        let state = governing(named.map(|p| policy_state(p, None, None)))?;
        return Some(state.into_observation(Source::Ietf));
    }
    let list = sf_list(r, field, false);
    if list.as_ref().is_some_and(List::is_empty) {
        warn_field(r, field, Ignored::Empty);
        return None;
    }
    if let Some(list) = list.as_ref().filter(|l| is_named_form(l)) {
        return named_form(r, field, list, &policies);
    }
    if let Some(dict) = sf_dict(r, field).filter(is_dictionary_form) {
        return dictionary_form(r, field, &dict, &policies);
    }
    match list {
        Some(list) => named_form(r, field, &list, &policies),
        None => {
            // Neither form: report it once, as the field it is.
            sf_list(r, field, true);
            None
        }
    }
}

/// Whether the -00..-06 fields are present (then an integer `RateLimit-Policy` is theirs).
fn has_ietf_06_fields(r: &ResponseHeaders<'_>) -> bool {
    r.has(&names::RATELIMIT_LIMIT)
        || r.has(&names::RATELIMIT_REMAINING)
        || r.has(&names::RATELIMIT_RESET)
}

fn is_named_form(list: &List) -> bool {
    list.iter().any(|e| match e {
        ListEntry::Item(i) => {
            matches!(i.bare_item, BareItem::String(_)) || i.params.contains_key(KEY_R)
        }
        ListEntry::InnerList(_) => false,
    })
}

fn is_dictionary_form(dict: &Dictionary) -> bool {
    [KEY_LIMIT, KEY_REMAINING, KEY_RESET]
        .iter()
        .any(|k| dict.contains_key(*k))
}

/// -08..-11: every named item is a policy's state; the tightest governs.
fn named_form(
    r: &mut ResponseHeaders<'_>,
    field: &'static HeaderName,
    list: &List,
    policies: &[Policy],
) -> Option<QuotaObservation> {
    let mut states = Vec::new();
    for entry in list {
        let ListEntry::Item(item) = entry else {
            warn_field(r, field, Ignored::Malformed);
            continue;
        };
        let name = item_name(&item.bare_item);
        let policy = policies
            .iter()
            .find(|p| name.is_some() && p.name.as_deref() == name);
        if policy.is_some_and(|p| !p.counts_requests) {
            continue;
        }
        let Some(remaining) = param_count(r, field, &item.params, KEY_R) else {
            continue;
        };
        let reset = param_reset(r, field, &item.params, KEY_T);
        states.push(policy_state_or_bare(policy, remaining, reset));
    }
    // Policies without a state line still bound the rate (they lose to any known remaining).
    let unreported = policies.iter().filter(|p| {
        p.name.is_some()
            && p.counts_requests
            && !list.iter().any(
                |e| matches!(e, ListEntry::Item(i) if item_name(&i.bare_item) == p.name.as_deref()),
            )
    });
    states.extend(unreported.map(|p| policy_state(p, None, None)));
    governing(states).map(|s| s.into_observation(Source::Ietf))
}

/// -07: the Dictionary names the governing policy directly; its window comes from the
/// `RateLimit-Policy` member with the same quota.
fn dictionary_form(
    r: &mut ResponseHeaders<'_>,
    field: &'static HeaderName,
    dict: &Dictionary,
    policies: &[Policy],
) -> Option<QuotaObservation> {
    let mut member = |k: &KeyRef| match dict.get(k) {
        Some(ListEntry::Item(item)) => match Number::from_sfv(&item.bare_item) {
            Ok(n) => Some(n),
            Err(reason) => {
                warn_field(r, field, reason);
                None
            }
        },
        Some(ListEntry::InnerList(_)) => {
            warn_field(r, field, Ignored::Malformed);
            None
        }
        None => None,
    };
    let (limit, remaining, reset) = (member(KEY_LIMIT), member(KEY_REMAINING), member(KEY_RESET));
    let reset_after = reset.and_then(|n| match r.sf_reset(n) {
        Ok(d) => Some(d),
        Err(reason) => {
            warn_field(r, field, reason);
            None
        }
    });
    let limit = limit.map(|n| n.whole);
    let window = limit.and_then(|l| policies.iter().find(|p| p.quota == l)?.window);
    let state = PolicyState {
        limit,
        remaining: remaining.map(|n| n.whole),
        reset_after,
        window,
    };
    (!state.is_empty()).then(|| state.into_observation(Source::Ietf07))
}
