//! The known_hosts parser, matcher and decision on golden lines, plus a no-panic property run.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::file::{decide, entry_line, known_types, parse, Marker, Verdict};
use super::pattern::{hash_host, host_field_matches, wildcard_for_tests as wildcard};
use super::{fingerprint, key_type};

/// A syntactically valid ed25519 blob whose key bytes are all `b`.
fn key(b: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 11];
    v.extend_from_slice(b"ssh-ed25519");
    v.extend_from_slice(&[0, 0, 0, 32]);
    v.extend_from_slice(&[b; 32]);
    v
}

fn rsa_key(b: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 7];
    v.extend_from_slice(b"ssh-rsa");
    v.extend_from_slice(&[0, 0, 0, 3, 1, 0, 1, 0, 0, 0, 3, b, b, b]);
    v
}

fn line(prefix: &str, k: &[u8]) -> String {
    format!(
        "{prefix} {} {} comment here\n",
        key_type(k).unwrap(),
        STANDARD.encode(k)
    )
}

#[test]
fn fingerprint_has_openssh_format() {
    // Blob of a real ed25519 key; the fingerprint `ssh-keygen -lf` printed for it.
    let blob = STANDARD
        .decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
        .unwrap();
    assert_eq!(key_type(&blob).as_deref(), Some("ssh-ed25519"));
    let fp = fingerprint(&blob);
    assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
    assert_eq!(fp.len(), "SHA256:".len() + 43);
}

#[test]
fn key_type_rejects_garbage() {
    assert_eq!(key_type(&[0, 0, 0, 9, b'a']), None);
    assert_eq!(key_type(&[]), None);
}

#[test]
fn wildcards() {
    for (s, p, want) in [
        ("pi.lan", "pi.lan", true),
        ("pi.lan", "*", true),
        ("pi.lan", "*.lan", true),
        ("pi.lan", "p?.lan", true),
        ("pi.lan", "p?.la", false),
        ("pi.lan", "?i.lan*", true),
        ("[10.0.0.1]:2222", "[10.0.0.1]:*", true),
        ("10.0.0.1", "[10.0.0.1]:*", false),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
            "*a*a*a*a*a*a*a*a*c",
            false,
        ),
        ("", "*", true),
        ("", "?", false),
        ("abc", "", false),
        ("a*c", "a*c", true),
        ("mississippi", "m*iss*ppi", true),
        ("mississippi", "m*iss*ppx", false),
    ] {
        assert_eq!(wildcard(s, p), want, "{s:?} ~ {p:?}");
    }
}

#[test]
fn host_fields() {
    for (field, host, want) in [
        ("pi,pi.lan,10.0.0.5", "pi.lan", true),
        ("pi,pi.lan,10.0.0.5", "10.0.0.5", true),
        ("pi,pi.lan", "pi.lan.evil", false),
        ("PI.LAN", "pi.lan", true),
        ("pi.lan", "PI.lan", true),
        ("*.lan,!bad.lan", "good.lan", true),
        ("*.lan,!bad.lan", "bad.lan", false),
        ("!bad.lan,*.lan", "bad.lan", false),
        ("!bad.lan", "good.lan", false),
        ("[127.0.0.1]:*", "[127.0.0.1]:2200", true),
        ("[127.0.0.1]:*,![127.0.0.1]:2200", "[127.0.0.1]:2200", false),
        ("127.0.0.1", "[127.0.0.1]:2200", false),
        ("[127.0.0.1]:22", "127.0.0.1", false),
    ] {
        assert_eq!(
            host_field_matches(field, host),
            want,
            "{field:?} ~ {host:?}"
        );
    }
}

#[test]
fn hashed_names() {
    let salt = [7u8; 20];
    let h = hash_host("[127.0.0.1]:2200", &salt);
    assert!(host_field_matches(&h, "[127.0.0.1]:2200"));
    assert!(!host_field_matches(&h, "[127.0.0.1]:2201"));
    assert!(!host_field_matches(&h, "127.0.0.1"));
    // A hashed field is one name: no lists, no wildcards.
    assert!(!host_field_matches(&format!("{h},*"), "[127.0.0.1]:2200"));
    // Golden: `ssh-keygen -H` on a file with `pi.lan`, salt and hash as it wrote them.
    let golden = "|1|6F1pCjUU36MZjJVAxE8hR08ivYQ=|rv5wwzXz//v3Z6RIPgtFo4CjZlw=";
    assert!(host_field_matches(golden, "pi.lan"), "{golden}");
    assert!(!host_field_matches(golden, "pi.lam"));
    // Malformed hashed fields name nothing.
    for bad in [
        "|1|",
        "|2|LM2WwwNrT04GNeL0IXmwQu1QSms=|Gr2jsDtLNRjKqfT4N6J4WvxtGxo=",
        "|1|AAAA|AAAA",
        "|1|!!|??|",
    ] {
        assert!(!host_field_matches(bad, "pi.lan"), "{bad}");
    }
}

#[test]
fn parsing_markers_comments_and_junk() {
    let text = format!(
        "# comment\n\n   \n{}{}{}{}@unknown pi {} AAAA\npi ssh-ed25519 !!notbase64\npi ssh-rsa {}\nonlyhost\n{}",
        line("pi.lan", &key(1)),
        line("@revoked *", &key(2)),
        line("  @cert-authority *.lan", &key(3)),
        line("\t[pi]:2222,10.0.0.9", &rsa_key(4)),
        "ssh-ed25519",
        // the blob says ssh-ed25519, the field ssh-rsa: corrupt
        STANDARD.encode(key(5)),
        line("last", &key(6)).trim_end(),
    );
    let lines = parse(&text);
    let summary: Vec<(usize, Marker, &str, &str)> = lines
        .iter()
        .map(|l| (l.line_no, l.marker, l.hosts.as_str(), l.key_type.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (4, Marker::Plain, "pi.lan", "ssh-ed25519"),
            (5, Marker::Revoked, "*", "ssh-ed25519"),
            (6, Marker::CertAuthority, "*.lan", "ssh-ed25519"),
            (7, Marker::Plain, "[pi]:2222,10.0.0.9", "ssh-rsa"),
            (12, Marker::Plain, "last", "ssh-ed25519"),
        ]
    );
    assert_eq!(lines[0].key, key(1));
    // A marker alone, or a marker with hosts but no key, is no line.
    assert!(parse("@revoked\n@revoked * ssh-ed25519\n").is_empty());
}

#[test]
fn decisions() {
    let port = "[127.0.0.1]:2200";
    let d = |text: String, host: &str, k: &[u8]| decide(&parse(&text), host, k);
    // Known, unknown, changed.
    assert_eq!(d(line(port, &key(1)), port, &key(1)), Verdict::Known);
    assert_eq!(d(line("other", &key(1)), port, &key(1)), Verdict::Unknown);
    assert_eq!(d(String::new(), port, &key(1)), Verdict::Unknown);
    assert!(
        matches!(d(line(port, &key(2)), port, &key(1)), Verdict::Changed(l) if l[0].line_no == 1)
    );
    // A key of another type recorded for the host is a change too (OpenSSH: HOST_CHANGED).
    assert!(matches!(
        d(line(port, &rsa_key(2)), port, &key(1)),
        Verdict::Changed(_)
    ));
    // A wildcard line with another key blocks --accept-new.
    assert!(matches!(
        d(line("[127.0.0.1]:*", &key(2)), port, &key(1)),
        Verdict::Changed(_)
    ));
    // ... unless the host is negated on it.
    assert_eq!(
        d(
            line(&format!("[127.0.0.1]:*,!{port}"), &key(2)),
            port,
            &key(1)
        ),
        Verdict::Unknown
    );
    // Any matching line with the key wins over other lines with other keys.
    assert_eq!(
        d(
            line(port, &key(2)) + &line("[127.0.0.1]:*", &key(1)),
            port,
            &key(1)
        ),
        Verdict::Known
    );
    // Revoked: refused even when a plain line has the key, whichever host the line names.
    assert_eq!(
        d(
            line(port, &key(1)) + &line("@revoked *", &key(1)),
            port,
            &key(1)
        ),
        Verdict::Revoked(2)
    );
    assert_eq!(
        d(line("@revoked elsewhere", &key(1)), port, &key(1)),
        Verdict::Revoked(1)
    );
    // A revoked line vouches for nothing and blocks nothing else.
    assert_eq!(
        d(line(&format!("@revoked {port}"), &key(2)), port, &key(1)),
        Verdict::Unknown
    );
    // Cert authority: refused clearly unless a plain line decides.
    assert_eq!(
        d(line("@cert-authority *", &key(9)), port, &key(1)),
        Verdict::CertAuthority(1)
    );
    assert_eq!(
        d(
            line("@cert-authority *", &key(9)) + &line(port, &key(1)),
            port,
            &key(1)
        ),
        Verdict::Known
    );
    assert!(matches!(
        d(
            line("@cert-authority *", &key(9)) + &line(port, &key(2)),
            port,
            &key(1)
        ),
        Verdict::Changed(_)
    ));
    // The CA key itself presented as a plain host key is not trusted through the CA line.
    assert_eq!(
        d(line("@cert-authority *", &key(1)), port, &key(1)),
        Verdict::CertAuthority(1)
    );
    // Hashed.
    let hashed = hash_host(port, &[3u8; 20]);
    assert_eq!(d(line(&hashed, &key(1)), port, &key(1)), Verdict::Known);
    assert!(matches!(
        d(line(&hashed, &key(2)), port, &key(1)),
        Verdict::Changed(_)
    ));
}

#[test]
fn known_types_in_file_order() {
    let text = line("pi", &rsa_key(1))
        + &line("*", &key(2))
        + &line("@revoked pi", &key(3))
        + &line("other", &key(4))
        + &line("pi", &rsa_key(5));
    assert_eq!(
        known_types(&parse(&text), "pi"),
        vec!["ssh-rsa", "ssh-ed25519"]
    );
    assert!(known_types(&parse(&text), "x").contains(&"ssh-ed25519"));
}

#[test]
fn entry_lines_read_back_as_the_host_only() {
    let l = entry_line("[Pi.lan]:2200", "ssh-ed25519", &key(1)).unwrap();
    assert!(l.starts_with("[pi.lan]:2200 ssh-ed25519 ") && l.ends_with('\n'));
    let parsed = parse(&l);
    assert_eq!(decide(&parsed, "[pi.lan]:2200", &key(1)), Verdict::Known);
    assert_eq!(decide(&parsed, "[pi.lan]:2201", &key(1)), Verdict::Unknown);
    for bad in [
        "pi lan", "pi,evil", "*", "p?", "!x", "#x", "|1|x", "@revoked", "", "a\nb",
    ] {
        assert!(entry_line(bad, "ssh-ed25519", &key(1)).is_err(), "{bad:?}");
    }
}

/// xorshift64*: reproducible pseudo-random input without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

#[test]
fn random_lines_never_panic_and_decide_consistently() {
    let good = STANDARD.encode(key(1));
    let hashed = hash_host("pi", &[1u8; 20]);
    let atoms: Vec<&str> = vec![
        "@revoked",
        "@cert-authority",
        "@",
        "#",
        " ",
        "\t",
        "\n",
        ",",
        "!",
        "*",
        "?",
        "[",
        "]",
        ":",
        "|",
        "|1|",
        "pi",
        "PI",
        "[pi]:22",
        "ssh-ed25519",
        "ssh-rsa",
        &good,
        "AAAA",
        "=",
        "é",
        "\0",
        &hashed,
        "\r\n",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let n = rng.next() % 24;
        let text: String = (0..n).map(|_| rng.pick(&atoms)).collect();
        let host = rng.pick(&["pi", "[pi]:2200", "", "*", "PI"]);
        let lines = parse(&text);
        let v = decide(&lines, host, &key(1));
        // The decision never trusts a key no readable plain line holds.
        if v == Verdict::Known {
            assert!(
                lines
                    .iter()
                    .any(|l| l.marker == Marker::Plain && l.key == key(1)),
                "{text:?}"
            );
        }
        // Whatever a random host field is, matching it terminates and agrees with itself.
        let field = text.split_whitespace().next().unwrap_or("");
        assert_eq!(
            host_field_matches(field, host),
            host_field_matches(field, host)
        );
    }
}
