//! `pideploy logs`: a target's systemd journal, read by `journalctl` on the target over the same
//! connection and sudo as every other target command, and streamed to stdout as it arrives.
//!
//! journalctl runs with sudo (the whole journal is readable by root only) from an argv list
//! built by [`journalctl_argv`], never a pasted command line. A UNIT without a type suffix gets
//! `.service`, as journalctl does itself. For a target applied to a directory (`local:DIR`,
//! `--root DIR`) the journal under that root is read (`--root`). Whether the target has
//! journalctl at all is asked first, because a generation from before systemd has none, and
//! sudo's own "command not found" would be a confusing answer to that.

use std::io;

use clap::Args;
use pideploy_config::rules;

use super::conn::{connect, Conn};
use super::CmdResult;

/// `pideploy logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    conn: Conn,
    /// Only this unit's messages: `nginx`, `web.service`, `backup.timer` (no type means .service).
    #[arg(value_name = "UNIT")]
    unit: Option<String>,
    /// Show only the last N lines.
    #[arg(short = 'n', long = "lines", value_name = "N")]
    lines: Option<u32>,
    /// Keep printing new messages as they arrive (stop with Ctrl-C).
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only messages of the current boot.
    #[arg(short = 'b', long)]
    boot: bool,
}

/// What to ask journalctl for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LogsQuery {
    unit: Option<String>,
    lines: Option<u32>,
    follow: bool,
    boot: bool,
}

/// The unit name journalctl gets for UNIT: as given when it is a unit name, else with
/// `.service` appended (journalctl's own rule).
fn journal_unit(name: &str) -> Result<String, String> {
    if rules::unit_name_kind(name).is_some() {
        return Ok(name.to_string());
    }
    let service = format!("{name}.service");
    if rules::unit_name_kind(&service).is_some() {
        return Ok(service);
    }
    Err(format!(
        "`{name}` is not a unit name: use letters, digits and `:-_.@\\`, e.g. `nginx` or `backup.timer`"
    ))
}

/// The argv that runs journalctl for `q` on a target: `sudo` (its prefix, possibly empty) and
/// the journal of the system applied at `root`.
fn journalctl_argv(sudo: &[String], root: &str, q: &LogsQuery) -> Result<Vec<String>, String> {
    let mut argv = sudo.to_vec();
    argv.extend(["journalctl", "--no-pager", "-o", "short-iso"].map(String::from));
    if !root.trim_end_matches('/').is_empty() {
        argv.push(format!("--root={root}"));
    }
    if let Some(unit) = &q.unit {
        argv.push("-u".into());
        argv.push(journal_unit(unit)?);
    }
    if let Some(n) = q.lines {
        argv.push("-n".into());
        argv.push(n.to_string());
    }
    if q.follow {
        argv.push("-f".into());
    }
    if q.boot {
        argv.push("-b".into());
    }
    Ok(argv)
}

/// Asks the target's shell whether `journalctl` is on its PATH (no sudo needed to look).
fn probe_argv() -> Vec<String> {
    ["sh", "-c", "command -v journalctl >/dev/null"]
        .map(String::from)
        .to_vec()
}

/// Runs `pideploy logs`.
pub fn logs(a: LogsArgs) -> CmdResult {
    let q = LogsQuery {
        unit: a.unit,
        lines: a.lines,
        follow: a.follow,
        boot: a.boot,
    };
    // Checked before connecting, so a typo costs no SSH round trip.
    if let Some(unit) = &q.unit {
        journal_unit(unit)?;
    }
    let (mut t, call) = connect(&a.conn.target, &a.conn.opts)?;
    let who = t.describe();
    let (code, _, err) = pideploy_transport::run(t.as_mut(), &probe_argv())?;
    match code {
        0 => {}
        1 | 127 => {
            return Err(format!(
                "{who} has no journalctl: it runs a generation from before systemd; switch it first"
            )
            .into())
        }
        _ => {
            let err = String::from_utf8_lossy(&err);
            let last = err.lines().last().unwrap_or("no error output");
            return Err(
                format!("{who}: looking for journalctl failed (exit {code}): {last}").into(),
            );
        }
    }
    let argv = journalctl_argv(&call.sudo_prefix(), &call.root, &q)?;
    let code = t.exec(
        &argv,
        &mut call.stdin(&mut io::empty()),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn plain_query_reads_everything_as_root() {
        let argv = journalctl_argv(&v(&["sudo", "-n", "--"]), "/", &LogsQuery::default()).unwrap();
        assert_eq!(
            argv,
            v(&[
                "sudo",
                "-n",
                "--",
                "journalctl",
                "--no-pager",
                "-o",
                "short-iso"
            ])
        );
    }

    #[test]
    fn every_option_in_order() {
        let q = LogsQuery {
            unit: Some("nginx".into()),
            lines: Some(50),
            follow: true,
            boot: true,
        };
        let argv = journalctl_argv(&[], "/", &q).unwrap();
        assert_eq!(
            argv,
            v(&[
                "journalctl",
                "--no-pager",
                "-o",
                "short-iso",
                "-u",
                "nginx.service",
                "-n",
                "50",
                "-f",
                "-b"
            ])
        );
    }

    #[test]
    fn a_directory_target_reads_the_journal_under_its_root() {
        let argv = journalctl_argv(&[], "/mnt/card", &LogsQuery::default()).unwrap();
        assert_eq!(argv.last().map(String::as_str), Some("--root=/mnt/card"));
    }

    #[test]
    fn unit_names_get_service_only_without_a_type() {
        assert_eq!(journal_unit("web").unwrap(), "web.service");
        assert_eq!(journal_unit("backup.timer").unwrap(), "backup.timer");
        assert_eq!(journal_unit("getty@tty1").unwrap(), "getty@tty1.service");
        assert_eq!(journal_unit("-.mount").unwrap(), "-.mount");
        assert_eq!(journal_unit("my.app").unwrap(), "my.app.service");
        for bad in ["", "a b", "x;rm -rf /", "$(id)", "a/b", "@x"] {
            let err = journal_unit(bad).unwrap_err();
            assert!(err.contains("not a unit name"), "{bad}: {err}");
        }
        let q = LogsQuery {
            unit: Some("a b".into()),
            ..LogsQuery::default()
        };
        assert!(journalctl_argv(&[], "/", &q).is_err());
    }

    #[test]
    fn the_probe_is_a_fixed_command() {
        assert_eq!(
            probe_argv(),
            v(&["sh", "-c", "command -v journalctl >/dev/null"])
        );
    }
}
