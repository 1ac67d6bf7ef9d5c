//! The simulator's one source of randomness: SplitMix64, defined here so that its stream can
//! never change under a dependency upgrade. Every choice a run makes is drawn from it, so a run
//! replays exactly from its seed.

/// A SplitMix64 generator with the small helpers the simulator needs.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut r = SimRng {
            state: seed ^ 0x5EED_0F5E_ED0F_5EED,
        };
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
        self.next_u64() & 1 == 1
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
    /// must not shift when another stream draws more or less).
    pub fn fork(&self, salt: u64) -> SimRng {
        SimRng::new(self.state ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93))
    }
}

/// A 64-bit mixing function (the SplitMix64 finaliser): the building block of the hashes the
/// checker keeps of entries and of the applied state.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of a byte string (8 bytes at a time through [`mix64`]).
pub fn hash_bytes(seed: u64, data: &[u8]) -> u64 {
    let mut h = mix64(seed ^ (data.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = mix64(h ^ w).wrapping_add(0x9E37_79B9_7F4A_7C15);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = mix64(h ^ u64::from_le_bytes(b));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_fixed() {
        let mut r = SimRng::new(1);
        let a: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        let mut r = SimRng::new(1);
        let b: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let mut r = SimRng::new(2);
        assert!((0..1000).all(|_| r.range(3, 7) <= 7 && r.range(3, 7) >= 3));
        assert_ne!(hash_bytes(0, b"abc"), hash_bytes(0, b"abd"));
        assert_ne!(hash_bytes(0, b""), hash_bytes(0, b"\0"));
    }
}
