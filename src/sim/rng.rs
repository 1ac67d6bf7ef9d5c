//! The simulator's hashes of entries and states. Its random stream is the test kit's
//! [`TestRng`](crate::testkit::TestRng), which every choice of a run is drawn from, so a run
//! replays exactly from its seed.

/// The simulator's random stream (the test kit's generator).
pub type SimRng = crate::testkit::TestRng;

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
    fn hashes_tell_inputs_apart() {
        assert_ne!(hash_bytes(0, b"abc"), hash_bytes(0, b"abd"));
        assert_ne!(hash_bytes(0, b""), hash_bytes(0, b"\0"));
        assert_ne!(hash_bytes(0, b"abc"), hash_bytes(1, b"abc"));
        assert_ne!(mix64(1), mix64(2));
    }
}
