//! Fault dice: a lock-free, seedable stream of rolls in `[0, 1)` (SplitMix64 over a counter),
//! so runs with `--seed` are reproducible request by request.

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A stream of uniform rolls; roll `i` depends only on the seed and `i`.
#[derive(Debug)]
pub struct Dice {
    seed: u64,
    rolls: AtomicU64,
}

impl Dice {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rolls: AtomicU64::new(0),
        }
    }

    /// The next roll, uniform in `[0, 1)`.
    pub fn roll(&self) -> f64 {
        let i = self.rolls.fetch_add(1, Ordering::Relaxed);
        let x = splitmix64(
            self.seed
                .wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA)),
        );
        // 53 random bits as a fraction.
        (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `share` (always for 1.0, never for 0.0, without rolling then).
    pub fn hits(&self, share: f64) -> bool {
        share > 0.0 && self.roll() < share
    }
}

/// The SplitMix64 output function.
fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The statuses `--fail-rate` answers with, in rotation.
pub const FAILURE_STATUSES: [StatusCode; 3] = [
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
];

/// Hands out [`FAILURE_STATUSES`] in turn.
#[derive(Debug, Default)]
pub struct FailureRotation(AtomicU64);

impl FailureRotation {
    /// The status for the next simulated failure.
    pub fn next(&self) -> StatusCode {
        let i = self.0.fetch_add(1, Ordering::Relaxed);
        FAILURE_STATUSES[(i % FAILURE_STATUSES.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rolls() {
        let (a, b) = (Dice::new(42), Dice::new(42));
        let ra: Vec<f64> = (0..100).map(|_| a.roll()).collect();
        let rb: Vec<f64> = (0..100).map(|_| b.roll()).collect();
        assert_eq!(ra, rb);
        let c = Dice::new(43);
        assert_ne!(ra, (0..100).map(|_| c.roll()).collect::<Vec<_>>());
    }

    #[test]
    fn rolls_are_in_range_and_roughly_uniform() {
        let dice = Dice::new(7);
        let n = 100_000;
        let mut hits = 0;
        for _ in 0..n {
            let r = dice.roll();
            assert!((0.0..1.0).contains(&r));
            if r < 0.25 {
                hits += 1;
            }
        }
        // Binomial(100000, 0.25): sd ~ 137; 10 sd of slack.
        assert!((23_600..=26_400).contains(&hits), "{hits}");
    }

    #[test]
    fn extreme_shares() {
        let dice = Dice::new(1);
        assert!((0..1000).all(|_| dice.hits(1.0)));
        assert!((0..1000).all(|_| !dice.hits(0.0)));
    }

    #[test]
    fn failures_rotate() {
        let rotation = FailureRotation::default();
        let got: Vec<u16> = (0..4).map(|_| rotation.next().as_u16()).collect();
        assert_eq!(got, [500, 502, 503, 500]);
    }
}
