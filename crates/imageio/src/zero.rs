//! Recognising all-zero blocks, which become holes.

/// Whether every byte of `block` is zero.
pub(crate) fn is_zero(block: &[u8]) -> bool {
    // Word-at-a-time via chunks lets the compiler vectorise; images are mostly zeros, so this is hot.
    let (chunks, rest) = block.split_at(block.len() / 16 * 16);
    chunks
        .chunks_exact(16)
        .all(|c| u128::from_ne_bytes(c.try_into().expect("16-byte chunk")) == 0)
        && rest.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::is_zero;

    #[test]
    fn finds_any_nonzero_byte() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 4096]));
        for i in [0, 15, 16, 4000, 4095] {
            let mut b = [0u8; 4096];
            b[i] = 1;
            assert!(!is_zero(&b), "byte {i}");
        }
        assert!(!is_zero(&[0, 0, 0, 9]));
    }
}
