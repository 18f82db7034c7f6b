//! POSIX shell quoting: turning an argv into one command line that a remote `sh -c` splits back exactly.

/// Joins `argv` into a command line for a POSIX shell, quoting every argument that needs it.
///
/// Arguments made only of characters the shell never treats specially are kept as they are (so
/// logs stay readable); every other argument is wrapped in single quotes, with each `'` written as
/// `'\''`. An empty argument becomes `''`. The shell then splits the line back into exactly `argv`.
/// NUL bytes cannot be carried by any command line; [`crate::Transport::exec`] refuses them.
pub fn shell_join(argv: &[String]) -> String {
    let mut out = String::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_quoted(&mut out, arg);
    }
    out
}

/// Quotes one argument for a POSIX shell (see [`shell_join`]).
pub fn shell_quote(arg: &str) -> String {
    let mut out = String::new();
    push_quoted(&mut out, arg);
    out
}

fn push_quoted(out: &mut String, arg: &str) {
    if !arg.is_empty() && arg.bytes().all(is_plain) {
        out.push_str(arg);
        return;
    }
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            // Close the quote, add an escaped quote, reopen: the only way to put ' inside '…'.
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

/// Bytes that mean nothing to the shell in any position of a word. `=` is left out (a leading
/// `NAME=` word is an assignment) and so is `~` (tilde expansion).
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'-' | b'.' | b'/' | b':' | b'@' | b',' | b'+' | b'%'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(
            shell_join(&v(&["ls", "-la", "/pideploy/store"])),
            "ls -la /pideploy/store"
        );
    }

    #[test]
    fn special_words_are_single_quoted() {
        assert_eq!(
            shell_join(&v(&["echo", "a b", "", "it's", "$(x)"])),
            r#"echo 'a b' '' 'it'\''s' '$(x)'"#
        );
        assert_eq!(shell_quote("A=b"), "'A=b'");
        assert_eq!(shell_quote("~root"), "'~root'");
    }

    /// A real shell hands every argument back byte for byte.
    #[test]
    fn sh_splits_the_line_back_into_the_argv() {
        let args = v(&[
            "simple",
            "two words",
            "it's",
            "$(echo pwned)",
            "back\\slash",
            "new\nline",
            "*",
            "",
            "--flag=va lue",
            "NAME=value",
            "~root",
        ]);
        let script = format!(
            "for a in {}; do printf '[%s]' \"$a\"; done",
            shell_join(&args)
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let expected: String = args.iter().map(|a| format!("[{a}]")).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    }
}
