//! A tiny deterministic random number generator for election timeouts.
//!
//! SplitMix64: 8 bytes of state, output fixed by its definition (not by a library version), so
//! the same seed gives the same timeouts on every platform and release.

/// SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for node `id` of a group seeded with `seed`: each node of a group draws its
    /// own sequence.
    pub(crate) fn new(seed: u64, id: u64) -> Self {
        let mut r = Rng {
            state: seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        // Mix once so that nearby seeds and ids start far apart.
        r.next_u64();
        r
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[lo, lo + n)`; `n` must be > 0. Uses the high bits through a multiply, which
    /// avoids the bias of a plain modulo for small `n`.
    pub(crate) fn in_range(&mut self, lo: usize, n: usize) -> usize {
        debug_assert!(n > 0);
        let x = self.next_u64();
        lo + ((x as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = Rng::new(7, 1);
        let mut b = Rng::new(7, 1);
        let mut c = Rng::new(7, 2);
        let va: Vec<usize> = (0..100).map(|_| a.in_range(10, 10)).collect();
        let vb: Vec<usize> = (0..100).map(|_| b.in_range(10, 10)).collect();
        let vc: Vec<usize> = (0..100).map(|_| c.in_range(10, 10)).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        assert!(va.iter().all(|v| (10..20).contains(v)));
        // Every value of the range shows up.
        for v in 10..20 {
            assert!(va.contains(&v), "{v} never drawn");
        }
    }
}
