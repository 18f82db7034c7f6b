//! The store's own base32: alphabet `0123456789abcdfghijklmnpqrsvwxyz` (no e, o, u, t).
//!
//! Bits are taken most significant first, five at a time, from the bytes in order, so the
//! encoding is easy to reproduce with ordinary tools (it is plain RFC 4648 bit order with a
//! different alphabet and no padding). Only whole multiples of 5 bytes are used by the store.

/// The 32 digits, in value order.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Encodes `bytes`; the output has `ceil(8 * len / 5)` characters, the last one zero-padded.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Whether `c` is one of the 32 digits.
pub fn is_digit(c: u8) -> bool {
    ALPHABET.contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes() {
        assert_eq!(encode(&[0; 20]), "0".repeat(32));
        assert_eq!(encode(&[0xff; 20]), "z".repeat(32));
    }

    #[test]
    fn bit_order_is_msb_first() {
        // Eight 5-bit groups with values 1..=8 packed into 40 bits must read back in order.
        let mut v: u64 = 0;
        for g in 1..=8u64 {
            v = (v << 5) | g;
        }
        let bytes = v.to_be_bytes();
        assert_eq!(encode(&bytes[3..]), "12345678");
    }

    #[test]
    fn alphabet_skips_e_o_u_t() {
        for c in [b'e', b'o', b'u', b't'] {
            assert!(!is_digit(c));
        }
        assert_eq!(ALPHABET.len(), 32);
    }
}
