//! Which of several announced policies governs (IETF lists, HubSpot, Salesforce).

use std::cmp::Ordering;
use std::time::Duration;

use crate::quota::observation::{QuotaObservation, Source};

/// One policy's announced state; `None` is "not announced".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyState {
    /// Requests per window.
    pub limit: Option<u64>,
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Until the window resets.
    pub reset_after: Option<Duration>,
    /// The window length.
    pub window: Option<Duration>,
}

impl PolicyState {
    /// Whether anything is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// An observation from `source` carrying this state.
    #[must_use]
    pub fn into_observation(self, source: Source) -> QuotaObservation {
        QuotaObservation {
            limit: self.limit,
            remaining: self.remaining,
            reset_after: self.reset_after,
            window: self.window,
            ..QuotaObservation::new(source)
        }
    }
}

/// The governing policy: the one that runs out first, then the one that blocks longest.
///
/// 1. The lowest `remaining` (a known value beats an unknown one): sending that many
///    requests stays inside every other policy too, and each response re-decides.
/// 2. On a tie, the longest `reset_after` (unknown last): if both run out now, the one that
///    blocks longest is what the caller must wait for.
/// 3. Then the lowest sustained rate `limit / window` (a daily 1000 is tighter than a
///    per-minute 100), which is all there is when no remaining count is announced.
/// 4. Then the longest window; then the first announced.
pub fn governing(policies: impl IntoIterator<Item = PolicyState>) -> Option<PolicyState> {
    policies
        .into_iter()
        .filter(|p| !p.is_empty())
        .min_by(tightness)
}

/// `Less` when `a` is tighter than `b`.
fn tightness(a: &PolicyState, b: &PolicyState) -> Ordering {
    let remaining = match (a.remaining, b.remaining) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    remaining
        .then_with(|| b.reset_after.cmp(&a.reset_after))
        .then_with(|| rate(a, b))
        .then_with(|| b.window.cmp(&a.window))
}

/// Compares `limit / window` without division: `a.limit * b.window` vs `b.limit * a.window`.
fn rate(a: &PolicyState, b: &PolicyState) -> Ordering {
    match (a.limit, a.window, b.limit, b.window) {
        (Some(la), Some(wa), Some(lb), Some(wb)) => {
            let lhs = u128::from(la).saturating_mul(wb.as_nanos());
            let rhs = u128::from(lb).saturating_mul(wa.as_nanos());
            lhs.cmp(&rhs)
        }
        _ => Ordering::Equal,
    }
}
