//! One suite, every transport: the same tests against LocalTransport and SshTransport (a real sshd).

mod common;

use std::time::Instant;

use common::Sshd;
use pideploy_transport::{run, LocalTransport, SshTransport, Transport};
use rstest::rstest;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Local,
    Ssh,
}

struct Target {
    t: Box<dyn Transport>,
    // Dropped after the transport (field order), so the connection closes before sshd dies.
    _sshd: Option<Sshd>,
}

fn target(kind: Kind) -> Target {
    match kind {
        Kind::Local => Target {
            t: Box::new(LocalTransport::new()),
            _sshd: None,
        },
        Kind::Ssh => {
            let sshd = Sshd::start();
            let t = SshTransport::connect(&sshd.options())
                .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
            Target {
                t: Box::new(t),
                _sshd: Some(sshd),
            }
        }
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Deterministic bytes that compress badly and contain every byte value.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[rstest]
fn exit_codes_come_back(#[values(Kind::Local, Kind::Ssh)] kind: Kind) {
    let mut tg = target(kind);
    for code in [0, 1, 7, 42, 255] {
        let (got, _, _) =
            run(tg.t.as_mut(), &argv(&["sh", "-c", &format!("exit {code}")])).unwrap();
        assert_eq!(got, code, "{kind:?}");
    }
    let (got, _, _) = run(tg.t.as_mut(), &argv(&["false"])).unwrap();
    assert_eq!(got, 1);
    let (got, _, err) = run(tg.t.as_mut(), &argv(&["no-such-command-pideploy"])).unwrap();
    assert_eq!(got, 127, "{}", String::from_utf8_lossy(&err));
    // Killed by a signal: the shell convention 128 + n.
    let (got, _, _) = run(tg.t.as_mut(), &argv(&["sh", "-c", "kill -TERM $$"])).unwrap();
    assert_eq!(got, 143, "{kind:?}");
}

#[rstest]
fn stdout_and_stderr_stay_apart(#[values(Kind::Local, Kind::Ssh)] kind: Kind) {
    let mut tg = target(kind);
    let script = "echo out1; echo err1 >&2; printf out2; printf err2 >&2; exit 3";
    let (code, out, err) = run(tg.t.as_mut(), &argv(&["sh", "-c", script])).unwrap();
    assert_eq!(code, 3);
    assert_eq!(String::from_utf8(out).unwrap(), "out1\nout2");
    assert_eq!(String::from_utf8(err).unwrap(), "err1\nerr2");
}

#[rstest]
fn fifty_megabytes_of_stdin_echo_back_exactly(#[values(Kind::Local, Kind::Ssh)] kind: Kind) {
    let mut tg = target(kind);
    let data = noise(50 * 1024 * 1024);
    let mut out = Vec::with_capacity(data.len());
    let mut err = Vec::new();
    let started = Instant::now();
    let code =
        tg.t.exec(&argv(&["cat"]), &mut &data[..], &mut out, &mut err)
            .unwrap();
    eprintln!("{kind:?}: 50 MiB through cat in {:?}", started.elapsed());
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert_eq!(out.len(), data.len());
    assert!(out == data, "{kind:?}: echoed bytes differ");
    // And the far side saw every byte too, counted by another tool.
    let mut out = Vec::new();
    let code =
        tg.t.exec(
            &argv(&["wc", "-c"]),
            &mut &data[..1_000_003],
            &mut out,
            &mut err,
        )
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(String::from_utf8(out).unwrap().trim(), "1000003");
}

#[rstest]
fn a_command_that_ignores_stdin_does_not_hang(#[values(Kind::Local, Kind::Ssh)] kind: Kind) {
    let mut tg = target(kind);
    let data = noise(8 * 1024 * 1024);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code =
        tg.t.exec(
            &argv(&["head", "-c", "10"]),
            &mut &data[..],
            &mut out,
            &mut err,
        )
        .unwrap();
    assert_eq!(code, 0);
    assert_eq!(out, &data[..10]);
    let code =
        tg.t.exec(&argv(&["true"]), &mut &data[..], &mut out, &mut err)
            .unwrap();
    assert_eq!(code, 0);
    // The transport is still usable afterwards.
    let (code, out, _) = run(tg.t.as_mut(), &argv(&["echo", "still here"])).unwrap();
    assert_eq!((code, out), (0, b"still here\n".to_vec()));
}

#[rstest]
fn awkward_arguments_arrive_unchanged(#[values(Kind::Local, Kind::Ssh)] kind: Kind) {
    let mut tg = target(kind);
    let awkward = [
        "plain",
        "two words",
        "",
        "it's",
        "\"double\"",
        "$(touch /tmp/pideploy-pwned)",
        "`id`",
        "$HOME",
        "line\nbreak",
        "tab\there",
        "back\\slash",
        "*",
        "~",
        "A=b",
        "-n",
        ";|&<>(){}[]!#",
        "ünïcødé ✓",
        "'''",
        " leading and trailing ",
    ];
    let mut args = argv(&["printf", "%s\\0"]);
    args.extend(awkward.iter().map(|s| s.to_string()));
    let (code, out, err) = run(tg.t.as_mut(), &args).unwrap();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let mut got: Vec<String> = out
        .split(|b| *b == 0)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect();
    assert_eq!(got.pop().as_deref(), Some(""), "output ends with a NUL");
    assert_eq!(got, awkward);
    assert!(!std::path::Path::new("/tmp/pideploy-pwned").exists());
}

#[rstest]
fn many_commands_in_a_row(#[values(Kind::Local, Kind::Ssh)] kind: Kind) {
    let mut tg = target(kind);
    let started = Instant::now();
    // sshd needs ~0.1 s to start each command on this machine; fewer rounds keep the suite quick.
    let rounds = match kind {
        Kind::Local => 150,
        Kind::Ssh => 40,
    };
    for i in 0..rounds {
        let (code, out, _) = run(tg.t.as_mut(), &argv(&["echo", &i.to_string()])).unwrap();
        assert_eq!(
            (code, String::from_utf8(out).unwrap()),
            (0, format!("{i}\n"))
        );
    }
    eprintln!("{kind:?}: {rounds} execs in {:?}", started.elapsed());
}

#[rstest]
fn nul_in_an_argument_is_refused(#[values(Kind::Local, Kind::Ssh)] kind: Kind) {
    let mut tg = target(kind);
    let e = run(tg.t.as_mut(), &argv(&["echo", "a\0b"])).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    assert!(run(tg.t.as_mut(), &[]).is_err());
}

#[test]
fn describe_names_the_target() {
    assert_eq!(LocalTransport::new().describe(), "local");
    let sshd = Sshd::start();
    let t = SshTransport::connect(&sshd.options()).unwrap();
    assert_eq!(t.describe(), format!("root@127.0.0.1:{}", sshd.port));
}
