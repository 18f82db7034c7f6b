//! POSIX shell quoting: every command pideploy hands to a shell is built from an argv list, each
//! argument quoted on its own, never by pasting strings.

/// Quotes one argument so a POSIX shell reads it back as exactly these bytes.
///
/// Arguments made only of characters that no shell treats specially are left bare, which keeps the
/// generated scripts readable; everything else is single-quoted with embedded quotes spelt `'\''`.
pub fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Joins an argv list into one shell command line, quoting every element.
pub fn join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::process::Command;

    #[rstest]
    #[case("plain", "plain")]
    #[case("/pideploy/store/x-y", "/pideploy/store/x-y")]
    #[case("", "''")]
    #[case("a b", "'a b'")]
    #[case("it's", r"'it'\''s'")]
    #[case("$HOME", "'$HOME'")]
    #[case("a;rm -rf /", "'a;rm -rf /'")]
    #[case("`x`", "'`x`'")]
    fn quoting(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(quote(input), expected);
    }

    /// The real shell must hand every argument back byte for byte.
    #[test]
    fn sh_round_trip() {
        let args = [
            "simple",
            "two words",
            "it's",
            "$(echo pwned)",
            "back\\slash",
            "new\nline",
            "*",
            "",
            "--flag=va lue",
        ];
        let script = format!("for a in {}; do printf '[%s]' \"$a\"; done", join(&args));
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let expected: String = args.iter().map(|a| format!("[{a}]")).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    }
}
