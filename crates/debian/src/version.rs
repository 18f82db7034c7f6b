//! Debian version ordering (Debian policy §5.6.12), the same algorithm dpkg uses.

use std::cmp::Ordering;

/// Compares two Debian version strings `[epoch:]upstream[-revision]`.
///
/// Epochs compare numerically (absent = 0); upstream and revision compare with dpkg's rule: alternating
/// non-digit runs (where `~` sorts before everything, even the end of the string, and letters sort before
/// non-letters) and digit runs compared numerically. A missing revision equals revision `0`.
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = Parts::split(a);
    let b = Parts::split(b);
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| fragment_cmp(a.upstream, b.upstream))
        .then_with(|| fragment_cmp(a.revision, b.revision))
}

/// Checks that `v` is a syntactically valid Debian version, returning why not.
pub fn validate(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("version is empty".into());
    }
    if let Some((epoch, _)) = v.split_once(':') {
        if epoch.is_empty() || !epoch.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("epoch `{epoch}` is not a number"));
        }
    }
    let parts = Parts::split(v);
    if !parts.upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "upstream version `{}` does not start with a digit",
            parts.upstream
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".+~-:".contains(c);
    if let Some(c) = v.chars().find(|&c| !allowed(c)) {
        return Err(format!("character `{c}` is not allowed in a version"));
    }
    Ok(())
}

struct Parts<'a> {
    epoch: u64,
    upstream: &'a str,
    revision: &'a str,
}

impl<'a> Parts<'a> {
    fn split(v: &'a str) -> Self {
        let v = v.trim();
        let (epoch, rest) = match v.split_once(':') {
            // A malformed epoch sorts as 0 rather than failing: compare() is total by contract.
            Some((e, rest)) => (e.parse().unwrap_or(0), rest),
            None => (0, v),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        Parts {
            epoch,
            upstream,
            revision,
        }
    }
}

/// Weight of one byte in a non-digit run; `None` stands for the end of the string or a digit.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn fragment_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (wa, wb) = (weight(a.get(i).copied()), weight(b.get(j).copied()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        // Equal-length digit runs compare by their first differing digit; a longer run is larger.
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use Ordering::{Equal, Greater, Less};

    #[rstest]
    #[case("1.0~rc1", "1.0", Less)]
    #[case("1.0~~", "1.0~", Less)]
    #[case("1.0~~a", "1.0~", Less)]
    #[case("1.0~", "1.0", Less)]
    #[case("1.0", "1.0a", Less)]
    #[case("1.0a", "1.0+", Less)]
    #[case("1.0+", "1.0.1", Less)]
    #[case("1:0.1", "2.0", Greater)]
    #[case("0:2.0", "2.0", Equal)]
    #[case("1.0-1", "1.0-1+deb12u1", Less)]
    #[case("2.36-9+deb12u4", "2.36-9+deb12u14", Less)]
    #[case("2.36-9+deb12u14", "2.36-9+deb12u4", Greater)]
    #[case("1.0", "1.0-0", Equal)]
    #[case("1.0", "1.00", Equal)]
    #[case("1.01", "1.1", Equal)]
    #[case("1.2", "1.10", Less)]
    #[case("1.0-1", "1.0-2", Less)]
    #[case("1.0-10", "1.0-9", Greater)]
    #[case("2:6.2.1+dfsg1-1.1", "2:6.2.1+dfsg1-1", Greater)]
    #[case("1:4.4.33-2", "1:4.1.0", Greater)]
    #[case("1.2.3-a-b", "1.2.3-a-c", Less)]
    #[case("1.0-1~bpo1", "1.0-1", Less)]
    #[case("a", "", Greater)]
    #[case("1.0", "1.0", Equal)]
    #[case("10", "9", Greater)]
    #[case("1.18.2-6", "1.18.2", Greater)]
    fn compare_table(#[case] a: &str, #[case] b: &str, #[case] want: Ordering) {
        assert_eq!(compare(a, b), want, "{a} vs {b}");
        assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
    }

    #[test]
    fn sorting_a_list_gives_policy_order() {
        let mut v = vec![
            "1.0", "1.0~rc1", "1:0.1", "1.0-1", "1.0~~", "1.0a", "1.0+b1", "0.9",
        ];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(
            v,
            ["0.9", "1.0~~", "1.0~rc1", "1.0", "1.0-1", "1.0a", "1.0+b1", "1:0.1"]
        );
    }

    #[rstest]
    #[case("1.0", true)]
    #[case("1:2.3-4+deb12u1", true)]
    #[case("", false)]
    #[case("x1.0", false)]
    #[case("a:1.0", false)]
    #[case("1.0 beta", false)]
    fn validate_cases(#[case] v: &str, #[case] ok: bool) {
        assert_eq!(validate(v).is_ok(), ok, "{v}: {:?}", validate(v));
    }
}
