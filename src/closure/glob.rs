//! Minimal path globbing for board files: `*` matches within one path segment.

/// Whether `path` (relative, '/'-separated) matches `pattern` segment by segment.
pub fn matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.trim_start_matches("./").split('/').collect();
    let s: Vec<&str> = path.trim_start_matches("./").split('/').collect();
    p.len() == s.len()
        && p.iter()
            .zip(&s)
            .all(|(p, s)| segment(p.as_bytes(), s.as_bytes()))
}

fn segment(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| segment(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && segment(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn segments() {
        assert!(matches("boot/vmlinuz-*", "boot/vmlinuz-6.1.0-56-arm64"));
        assert!(matches("boot/vmlinuz-*", "./boot/vmlinuz-6.1"));
        assert!(!matches("boot/vmlinuz-*", "boot/sub/vmlinuz-6.1"));
        assert!(matches(
            "usr/lib/linux-image-*/broadcom/*.dtb",
            "usr/lib/linux-image-6.6/broadcom/bcm2712-rpi-5-b.dtb"
        ));
        assert!(!matches("*.dtb", "x.dtbo"));
        assert!(matches("lib/modules/*", "lib/modules/6.1.0"));
    }
}
