//! The random stream of the test kit and the simulator: rand's Xoshiro256++ (a generator whose
//! output rand documents as fixed by its definition, seeded through SplitMix64), so a run
//! replays exactly from its seed on every platform, with the small helpers tests need.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, SeedableRng as _};

/// A seeded generator with the small helpers the test kit and the simulator need. Only
/// [`next_u64`](Self::next_u64) draws from the underlying generator, and every helper is
/// defined here, so the stream of a seed does not depend on how a rand release samples
/// ranges.
#[derive(Debug, Clone)]
pub struct TestRng {
    inner: Xoshiro256PlusPlus,
}

impl TestRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        TestRng {
            inner: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A value in `[0, n)`; 0 when `n` is 0. Multiply-shift, no modulo bias to speak of.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A value in `[lo, hi]` (inclusive); `lo` when `hi <= lo`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `ppm` / 1,000,000.
    pub fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.below(1_000_000) < ppm as u64
    }

    /// True with probability 1/2.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// An index into a slice of length `n` (which must not be 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A delay drawn around `mean`: uniform in `[0, 2 * mean]`, at least 1.
    pub fn around(&mut self, mean: u64) -> u64 {
        self.range(1, mean.saturating_mul(2).max(1))
    }

    /// An independent generator derived from this one and `salt` (for a stream whose draws
    /// must not shift when another stream draws more or less). This generator does not move.
    pub fn fork(&self, salt: u64) -> TestRng {
        let base = self.inner.clone().next_u64();
        TestRng::new(base ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_fixed_and_helpers_stay_in_range() {
        let mut r = TestRng::new(1);
        let a: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        let mut r = TestRng::new(1);
        let b: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a, {
            let mut r = TestRng::new(2);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        });
        let mut r = TestRng::new(2);
        let drawn: Vec<u64> = (0..1000).map(|_| r.range(3, 7)).collect();
        assert!(drawn.iter().all(|v| (3..=7).contains(v)));
        assert!((3..=7).all(|v| drawn.contains(&v)), "every value shows up");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.range(9, 4), 9);
        assert!(!r.chance(0));
        assert!(r.chance(1_000_000));
        let heads = (0..1000).filter(|_| r.coin()).count();
        assert!((400..600).contains(&heads), "{heads} heads in 1000");
        // A fork does not move its parent, and two salts give two streams.
        let before = r.clone().next_u64();
        let (mut f1, mut f2) = (r.fork(1), r.fork(2));
        assert_eq!(r.next_u64(), before);
        assert_ne!(f1.next_u64(), f2.next_u64());
    }

    #[test]
    fn seed_zero_is_a_stream_like_any_other() {
        let mut r = TestRng::new(0);
        let v: Vec<u64> = (0..8).map(|_| r.next_u64()).collect();
        assert!(v.iter().any(|&x| x != 0));
        assert_ne!(v[0], v[1]);
    }
}
