//! `RateLimit-Policy` members of every draft: -02..-07 `100;w=60`, -08+ `"name";q=100;w=60`.

use std::time::Duration;

use http::HeaderName;
use sfv::{BareItem, ListEntry};

use super::governing::PolicyState;
use super::reader::ResponseHeaders;
use super::structured::{item_name, param_count, param_window, sf_list, warn_field, KEY_Q, KEY_QU};
use super::values::Number;
use crate::quota::observation::Ignored;

/// One `RateLimit-Policy` member: -02..-07 `100;w=60`, or -08+ `"name";q=100;w=60`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy name (-08+), `None` for the -02..-07 integer form.
    pub name: Option<String>,
    /// Quota units per window.
    pub quota: u64,
    /// The window, when announced and at most `max_wait`.
    pub window: Option<Duration>,
    /// Whether the quota counts requests (`qu` absent or `"requests"`); `"content-bytes"` and
    /// `"concurrent-requests"` policies do not bound a request rate and never govern.
    pub counts_requests: bool,
}

/// Every member of a `RateLimit-Policy` field (any draft); bad members leave a warning.
pub fn read_policies(r: &mut ResponseHeaders<'_>, field: &'static HeaderName) -> Vec<Policy> {
    let Some(list) = sf_list(r, field, true) else {
        return Vec::new();
    };
    let mut policies = Vec::new();
    for entry in &list {
        let ListEntry::Item(item) = entry else {
            warn_field(r, field, Ignored::Malformed);
            continue;
        };
        let name = item_name(&item.bare_item);
        let quota = match (&item.bare_item, &name) {
            (BareItem::Integer(_), _) => match Number::from_sfv(&item.bare_item) {
                Ok(n) => Some(n.whole),
                Err(reason) => {
                    warn_field(r, field, reason);
                    None
                }
            },
            (_, Some(_)) => param_count(r, field, &item.params, KEY_Q),
            _ => {
                warn_field(r, field, Ignored::Malformed);
                None
            }
        };
        let Some(quota) = quota else { continue };
        let window = param_window(r, field, &item.params);
        let counts_requests = match item.params.get(KEY_QU) {
            None => true,
            Some(BareItem::String(s)) => s.as_str() == "requests",
            Some(BareItem::Token(t)) => t.as_str() == "requests",
            Some(_) => false,
        };
        policies.push(Policy {
            name: name.map(str::to_owned),
            quota,
            window,
            counts_requests,
        });
    }
    policies
}

/// The state of policy `p` with what a `RateLimit` item reported about it.
pub fn policy_state(p: &Policy, remaining: Option<u64>, reset: Option<Duration>) -> PolicyState {
    PolicyState {
        limit: Some(p.quota),
        remaining,
        reset_after: reset,
        window: p.window,
    }
}

/// The state a `RateLimit` item reports, with its policy's quota and window when it names a
/// listed one.
pub fn policy_state_or_bare(
    p: Option<&Policy>,
    remaining: u64,
    reset: Option<Duration>,
) -> PolicyState {
    match p {
        Some(p) => policy_state(p, Some(remaining), reset),
        None => PolicyState {
            remaining: Some(remaining),
            reset_after: reset,
            ..PolicyState::default()
        },
    }
}
