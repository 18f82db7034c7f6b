//! The agent's `nap` and `wake` (how `confirm` and the waiter hand each other the turn), run with
//! the host's sh and with busybox's: a wake cuts a nap short, and a PID that is not the agent's
//! named operation is never signalled.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The agent's functions `names`, cut out of the script (for tests that run one piece of the
/// agent with a chosen shell and tools).
pub(super) fn functions(names: &[&str]) -> String {
    let agent = super::AGENT;
    names
        .iter()
        .map(|name| {
            let start = agent.find(&format!("\n{name}() {{")).unwrap() + 1;
            let end = start + agent[start..].find("\n}\n").unwrap() + 3;
            agent[start..end].to_string()
        })
        .collect()
}

/// `sh` itself, or busybox's applets first on PATH.
fn shell(bb: Option<&Path>) -> Command {
    let mut c = Command::new(bb.map_or("sh".into(), |d| d.join("sh")));
    if let Some(d) = bb {
        c.env("PATH", d);
    }
    c
}

#[test]
fn a_wake_cuts_the_nap_short_and_a_stranger_is_left_alone() {
    let w = tempfile::tempdir().unwrap();
    let bb = w.path().join("bb");
    fs::create_dir(&bb).unwrap();
    for tool in ["sh", "sleep", "tr", "kill"] {
        std::os::unix::fs::symlink("/usr/bin/busybox", bb.join(tool))
            .or_else(|_| std::os::unix::fs::symlink("/bin/busybox", bb.join(tool)))
            .unwrap();
    }
    // A stand-in agent: naps up to 20 s in 0.1 s ticks, says whether a wake ended it.
    let agent = w.path().join("agent");
    fs::write(
        &agent,
        format!(
            "set -eu\n{}\ntrap : USR1\ni=0\nwhile [ $i -lt 200 ]; do nap || {{ echo woken; exit 0; }}; i=$((i + tick)); done\necho slept\n",
            functions(&["nap"])
        ),
    )
    .unwrap();
    for tools in [None, Some(bb.as_path())] {
        let napper = shell(tools)
            .arg(&agent)
            .arg("wait")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stranger = Command::new("sleep").arg("20").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let wake = |pid: u32, op: &str| {
            let script = format!(
                "set -eu\n{}\nself={}\nwake {pid} {op}",
                functions(&["wake"]),
                agent.display()
            );
            assert!(shell(tools)
                .arg("-c")
                .arg(script)
                .status()
                .unwrap()
                .success());
        };
        // Not the agent, or the agent but another operation: nothing is sent.
        wake(stranger.id(), "wait");
        wake(napper.id(), "confirm");
        wake(999_999_999, "wait");
        let mut stranger = stranger;
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "the stranger was signalled"
        );
        stranger.kill().unwrap();
        stranger.wait().unwrap();
        // The agent's own wait: woken, long before its 20 s.
        wake(napper.id(), "wait");
        let out = napper.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "woken\n",
            "tools: {tools:?}"
        );
    }
}
