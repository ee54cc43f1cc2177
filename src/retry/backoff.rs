//! Capped exponential backoff with full jitter: `random(0, min(max, base * 2^n))`.

use std::time::Duration;

/// The ceiling of the `n`-th backoff (n = 0 for the first retry): `min(max, base * 2^n)`.
pub fn ceiling(n: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.checked_pow(n.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

/// Full jitter: `unit` (uniform in `[0, 1)`) scales the ceiling. Kept pure so tests pass the
/// random number in.
pub fn full_jitter(n: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ceiling(n, base, max).mul_f64(unit)
}

/// [`full_jitter`] with a random number from the thread's generator.
pub fn random_full_jitter(n: u32, base: Duration, max: Duration) -> Duration {
    full_jitter(n, base, max, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceiling_doubles_then_caps() {
        let cases = [
            (0, 200),
            (1, 400),
            (2, 800),
            (3, 1600),
            (7, 25_600),
            (8, 30_000),
            (40, 30_000),
        ];
        for (n, want) in cases {
            assert_eq!(ceiling(n, 200 * MS, 30_000 * MS), want * MS, "n = {n}");
        }
    }

    #[test]
    fn jitter_spans_zero_to_the_ceiling() {
        assert_eq!(full_jitter(2, 200 * MS, 30_000 * MS, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(2, 200 * MS, 30_000 * MS, 0.5), 400 * MS);
        assert_eq!(full_jitter(2, 200 * MS, 30_000 * MS, 1.0), 800 * MS);
        assert_eq!(
            full_jitter(2, 200 * MS, 30_000 * MS, f64::NAN),
            Duration::ZERO
        );
        for _ in 0..1000 {
            assert!(random_full_jitter(3, 200 * MS, 1000 * MS) <= 1000 * MS);
        }
    }
}
