//! shell_join checked by the real /bin/sh: whatever the arguments, sh must split the line back
//! into exactly them.

use std::process::Command;

use pideploy_transport::shell_join;

fn through_sh(args: &[String]) -> Vec<String> {
    let mut argv = vec!["printf".to_string(), "%s\\0".to_string()];
    argv.extend(args.iter().cloned());
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(shell_join(&argv))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parts: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect();
    assert_eq!(parts.pop().as_deref(), Some(""));
    parts
}

#[test]
fn hand_picked_arguments_round_trip() {
    let args: Vec<String> = [
        "", " ", "'", "''", "\\", "\\'", "$x", "${x:-y}", "$(id)", "`id`", "a\nb", "\t", "*", "?",
        "[a]", "~", "~/x", "A=1", "#c", "!", "-e", "--", "ü", "%s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(through_sh(&args), args);
}

#[test]
fn random_arguments_round_trip() {
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', ' ', '\t', '\n', '\'', '"', '\\', '$', '`', '(', ')', '{', '}', '[', ']',
        '*', '?', '~', '=', '#', '!', '&', '|', ';', '<', '>', '%', '-', '/', '.', ',', ':', '@',
        '+', '^', 'é', '✓',
    ];
    let mut x: u32 = 0x1234_5678;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for _round in 0..20 {
        let args: Vec<String> = (0..15)
            .map(|_| {
                let len = next() % 12;
                (0..len)
                    .map(|_| ALPHABET[(next() as usize) % ALPHABET.len()])
                    .collect()
            })
            .collect();
        assert_eq!(through_sh(&args), args);
    }
}
