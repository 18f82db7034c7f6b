//! `pideploy-qemu IMAGE [--ssh-port P] [--timeout S] [--tryboot] [--max-boots N] [--scratch DIR]`
//!
//! Boots a pideploy image under QEMU the way a Pi 5 would, across reboots, and exits with the
//! run's status: 0 when the guest powered off, 1 halted, 2 too many boots, 124 timed out,
//! 3 when the harness itself failed, 64 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pideploy_qemu::{Harness, HarnessOptions};

const USAGE: &str = "usage: pideploy-qemu IMAGE [--ssh-port P] [--timeout SECONDS] [--tryboot] [--max-boots N] [--scratch DIR]";

struct Args {
    image: PathBuf,
    scratch: PathBuf,
    opts: HarnessOptions,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut image = None;
    let mut scratch = None;
    let mut opts = HarnessOptions::default();
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--ssh-port" => {
                let v = value("--ssh-port")?;
                opts.ssh_port = Some(
                    v.parse()
                        .map_err(|_| format!("--ssh-port: `{v}` is not a port"))?,
                );
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout: `{v}` is not a number of seconds"))?;
                opts.timeout = Duration::from_secs(secs);
            }
            "--max-boots" => {
                let v = value("--max-boots")?;
                opts.max_boots = v
                    .parse()
                    .map_err(|_| format!("--max-boots: `{v}` is not a number"))?;
            }
            "--scratch" => scratch = Some(PathBuf::from(value("--scratch")?)),
            "--tryboot" => opts.tryboot_first = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other if other.starts_with('-') => {
                return Err(format!("unknown option {other}\n{USAGE}"))
            }
            other if image.is_none() => image = Some(PathBuf::from(other)),
            other => return Err(format!("unexpected argument {other}\n{USAGE}")),
        }
    }
    let image = image.ok_or(USAGE.to_string())?;
    let scratch = scratch.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("pideploy-qemu-{}", std::process::id()))
    });
    Ok(Args {
        image,
        scratch,
        opts,
    })
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(64);
        }
    };
    let mut harness = Harness::new(&args.image, &args.scratch, args.opts);
    match harness.run_to_end() {
        Ok(outcome) => {
            for b in &outcome.boots {
                eprintln!(
                    "boot {}: {}{} kernel={} initramfs={} -> {} (serial log {})",
                    b.boot,
                    b.selection.config_file,
                    if b.tryboot { " (tryboot)" } else { "" },
                    b.selection.kernel,
                    b.selection.initramfs.as_deref().unwrap_or("-"),
                    b.exit,
                    b.serial_log.display()
                );
                for note in &b.selection.notes {
                    eprintln!("  note: {note}");
                }
            }
            if let Some(last) = outcome.boots.last().filter(|b| b.exit.is_unexpected()) {
                let console = std::fs::read_to_string(&last.serial_log).unwrap_or_default();
                eprintln!(
                    "last console lines:\n{}",
                    pideploy_qemu::last_lines(&console, 15)
                );
            }
            eprintln!("run ended: {:?}", outcome.end);
            ExitCode::from(outcome.exit_code() as u8)
        }
        Err(e) => {
            eprintln!("pideploy-qemu: {e}");
            ExitCode::from(3)
        }
    }
}
