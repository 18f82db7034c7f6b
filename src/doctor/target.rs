//! `pideploy doctor --target T`: SSH reachability and host key, `sudo -n`, free space for one more
//! generation, the deploy lock, a pending generation or trial boot, and the Pi's EEPROM bootloader.
//!
//! The target side is the agent's read-only `doctor` operation, sent on stdin to `sh -s` (nothing
//! is installed or written); it answers `key value` lines that [`parse_report`] reads.

use std::io;

use pideploy_transport::{Transport, TransportError};

use super::{human, Check};
use pideploy_deploy::{AgentCall, DeployError, AGENT};

/// How the connection went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Connected (host key known), or a local root.
    Ok,
    /// The host key is not in known_hosts (the message says how to add it).
    UnknownHostKey(String),
    /// The host key differs from the recorded one.
    HostKeyChanged(String),
    /// Anything else: resolve, connect, authentication.
    Failed(String),
}

/// What `sudo -n -- true` (or `sudo -S` with the asked password) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sudo {
    /// Not needed: a root login, or a local root.
    NotUsed,
    /// Works without a password.
    Ok,
    /// Works with the password given through `--ask-sudo-password`.
    WithPassword,
    /// Wants a password (none was given).
    NeedsPassword,
    /// Refused or missing; sudo's last line.
    Refused(String),
}

/// The agent's `doctor` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// KiB free on the store's filesystem (or its nearest existing parent's).
    pub store_free_kb: Option<u64>,
    /// KiB free on the boot partition; `None` without `/boot/firmware`.
    pub boot_free_kb: Option<u64>,
    /// The default generation.
    pub default: Option<u32>,
    /// KiB of the default generation's boot entry `gen-N/`.
    pub entry_kb: Option<u64>,
    /// Bytes of the default generation's closure (sum of nar sizes).
    pub closure_bytes: Option<u64>,
    /// First line of the lock's holder file.
    pub lock_holder: Option<String>,
    /// `Some(true)`: the lock's process lives; `Some(false)`: stale.
    pub lock_alive: Option<bool>,
    /// Generation waiting for its confirmation, and its kind (live, test, tryboot).
    pub pending: Option<(u32, String)>,
    /// os_prefix named by a tryboot.txt on the boot partition.
    pub tryboot: Option<String>,
    /// `/proc/device-tree/model`.
    pub model: Option<String>,
    /// `/chosen/bootloader/build-timestamp` (Unix seconds).
    pub dt_build_timestamp: Option<u64>,
    /// `/chosen/bootloader/tryboot` present: the firmware knows the tryboot flag.
    pub dt_tryboot: Option<u32>,
    /// `vcgencmd bootloader_version` lines.
    pub vcgencmd: Vec<String>,
    /// `rpi-eeprom-update` lines.
    pub eeprom_update: Vec<String>,
}

/// Everything [`gather`] learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFacts {
    /// The target as given.
    pub target: String,
    /// SSH reachability.
    pub reach: Reach,
    /// sudo.
    pub sudo: Sudo,
    /// The agent's answer (or why there is none).
    pub report: Option<Result<Report, String>>,
}

/// A big-endian integer from `od -tx1` hex (device-tree cells are big-endian).
fn be_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Parses the agent's `doctor` answer; one without its `end` line was cut short.
pub fn parse_report(text: &str) -> Result<Report, String> {
    let mut r = Report::default();
    let mut ended = false;
    let num = |line: &str, v: &str| -> Result<u64, String> {
        v.trim()
            .parse()
            .map_err(|_| format!("bad number in the target's answer: {line:?}"))
    };
    for line in text.lines() {
        let (key, v) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "store_free_kb" if !v.is_empty() => r.store_free_kb = Some(num(line, v)?),
            "boot_free_kb" if !v.is_empty() => r.boot_free_kb = Some(num(line, v)?),
            "store_free_kb" | "boot_free_kb" => {}
            "default" => r.default = Some(num(line, v)? as u32),
            "entry_kb" => r.entry_kb = Some(num(line, v)?),
            "closure_bytes" => r.closure_bytes = Some(num(line, v)?),
            "lock_holder" => r.lock_holder = Some(v.to_string()),
            "lock" => r.lock_alive = Some(v == "held"),
            "pending" => {
                let (n, kind) = v.split_once(' ').unwrap_or((v, ""));
                r.pending = Some((num(line, n)? as u32, kind.to_string()));
            }
            "tryboot" => r.tryboot = Some(v.to_string()),
            "model" => r.model = Some(v.to_string()),
            "dt_build_timestamp" => r.dt_build_timestamp = be_hex(v),
            "dt_tryboot" => r.dt_tryboot = be_hex(v).map(|x| x as u32),
            "vcgencmd" => r.vcgencmd.push(v.to_string()),
            "eeprom_update" => r.eeprom_update.push(v.to_string()),
            "end" => ended = true,
            _ => return Err(format!("unexpected line in the target's answer: {line:?}")),
        }
    }
    if !ended {
        return Err("the target's answer was cut short".into());
    }
    Ok(r)
}

/// The bootloader's build time from `vcgencmd bootloader_version`, whose documented output is
/// ```text
/// 2023/12/14 16:15:58
/// version 2f4ebe9e27a1d48fb58b0ef2c6bbfd8de44ae2c4 (release)
/// timestamp 1702570558
/// update-time 1702982160
/// capabilities 0x0000007f
/// ```
pub fn vcgencmd_timestamp(lines: &[String]) -> Option<u64> {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("timestamp ")?.trim().parse().ok())
}

/// The running bootloader's build time from `rpi-eeprom-update` (no arguments), which prints
/// `CURRENT: Thu 14 Dec 16:15:58 UTC 2023 (1702570558)` among its status lines.
pub fn eeprom_update_timestamp(lines: &[String]) -> Option<u64> {
    lines.iter().find_map(|l| {
        let rest = l.trim().strip_prefix("CURRENT:")?;
        let inner = rest.rsplit_once('(')?.1.split_once(')')?.0;
        inner.trim().parse().ok()
    })
}

/// The oldest Raspberry Pi 5 bootloader pideploy's trial boots rely on: 2023-12-14, the release
/// that fixed "the boot partition parameter in PM_RSTS was cleared before being checked" — the
/// reboot argument `0 tryboot` carries that partition number (rpi-eeprom
/// firmware-2712/release-notes.md). The tryboot mechanism itself ("Fail-safe OS updates
/// (TRYBOOT)": a one-shot flag set by `tryboot` after the partition number in the reboot command,
/// cleared before the firmware starts, so a crash or reset boots config.txt again) is documented
/// at https://www.raspberrypi.com/documentation/computers/raspberry-pi.html#fail-safe-os-updates-tryboot
/// and the bootloader's `/chosen/bootloader` device-tree properties (`build-timestamp`,
/// `tryboot`) at https://www.raspberrypi.com/documentation/computers/configuration.html#firmware-parameters .
pub const MIN_BOOTLOADER: u64 = 1_702_512_000;

/// `YYYY-MM-DD` of a Unix time (UTC).
pub fn date(secs: u64) -> String {
    let mut t = pideploy_debian::release::utc(i64::try_from(secs).unwrap_or(i64::MAX / 2));
    t.truncate(10);
    t
}

/// The verdicts on the EEPROM bootloader and tryboot.
pub fn bootloader_checks(r: &Report) -> Vec<Check> {
    let ts = r
        .dt_build_timestamp
        .or_else(|| vcgencmd_timestamp(&r.vcgencmd))
        .or_else(|| eeprom_update_timestamp(&r.eeprom_update));
    let is_pi = r
        .model
        .as_deref()
        .is_some_and(|m| m.contains("Raspberry Pi"));
    let Some(ts) = ts else {
        if is_pi {
            return vec![Check::warn(
                "bootloader",
                format!("{}: the bootloader version could not be read (no /proc/device-tree/chosen/bootloader, vcgencmd or rpi-eeprom-update)", r.model.as_deref().unwrap_or("")),
                "apt-get install rpi-eeprom, then run `vcgencmd bootloader_version`",
            )];
        }
        return vec![Check::ok(
            "bootloader",
            "no Raspberry Pi bootloader reported (not a Pi, or a --root directory): skipped",
        )];
    };
    let shown = format!("{} (build timestamp {ts})", date(ts));
    let mut out = Vec::new();
    let update = "sudo rpi-eeprom-update -a && sudo reboot (or flash Raspberry Pi Imager's bootloader image)";
    if ts < MIN_BOOTLOADER {
        out.push(Check::fail(
            "bootloader",
            format!("EEPROM bootloader {shown} is older than {}, the oldest pideploy's trial boots are tested against", date(MIN_BOOTLOADER)),
            update,
        ));
    } else {
        out.push(Check::ok(
            "bootloader",
            format!("EEPROM bootloader {shown}"),
        ));
    }
    if r.model.as_deref().is_some_and(|m| {
        m.contains("Raspberry Pi")
            && !m.contains("Raspberry Pi 5")
            && !m.contains("Compute Module 5")
            && !m.contains("Raspberry Pi 500")
    }) {
        out.push(Check::warn(
            "board",
            format!(
                "{}: pideploy's rpi5 board is for the Raspberry Pi 5 family",
                r.model.as_deref().unwrap_or("")
            ),
            "use a Raspberry Pi 5 (or a board file for this model)",
        ));
    }
    out.push(match (r.dt_tryboot, ts >= MIN_BOOTLOADER) {
        (Some(flag), true) => Check::ok(
            "tryboot",
            format!("supported: the bootloader reports its tryboot flag (now {flag})"),
        ),
        (None, true) => Check::ok(
            "tryboot",
            format!("supported by bootloaders from {} on", date(MIN_BOOTLOADER)),
        ),
        (_, false) => Check::fail(
            "tryboot",
            format!(
                "not dependable with a bootloader from {}: a failed trial might not fall back",
                date(ts)
            ),
            update,
        ),
    });
    out
}

/// The verdicts on the target.
pub fn checks(f: &TargetFacts) -> Vec<Check> {
    let mut out = Vec::new();
    let t = &f.target;
    match &f.reach {
        Reach::Ok if t.starts_with("local:") => out.push(Check::ok(
            "reachable",
            format!("{t}: a directory on this machine"),
        )),
        Reach::Ok => out.push(Check::ok(
            "reachable",
            format!("{t}: connected, host key known"),
        )),
        Reach::UnknownHostKey(m) => {
            out.push(Check::fail(
                "host key",
                m.split(". Check").next().unwrap_or(m).to_string(),
                "check the fingerprint on the Pi, then add it to known_hosts (`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`), or deploy once with --accept-new; doctor itself never records a key",
            ));
            return out;
        }
        Reach::HostKeyChanged(m) => {
            out.push(Check::fail(
                "host key",
                m.clone(),
                "if the Pi was reinstalled, remove its old key with `ssh-keygen -R HOST` and check the new one",
            ));
            return out;
        }
        Reach::Failed(m) => {
            out.push(Check::fail(
                "reachable",
                m.clone(),
                "check the address, that the Pi is up and runs sshd, and your key (-i)",
            ));
            return out;
        }
    }
    match &f.sudo {
        Sudo::NotUsed => {}
        Sudo::Ok => out.push(Check::ok("sudo", "sudo -n works (no password needed)")),
        Sudo::WithPassword => out.push(Check::ok("sudo", "sudo works with the password given")),
        Sudo::NeedsPassword => out.push(Check::fail(
            "sudo",
            "sudo -n refused: sudo there wants a password",
            "pass --ask-sudo-password to switch/boot/rollback (and doctor), or allow the deploy user NOPASSWD sudo",
        )),
        Sudo::Refused(m) => out.push(Check::fail(
            "sudo",
            format!("sudo refused: {m}"),
            "allow the deploy user sudo in /etc/sudoers.d, or deploy as root",
        )),
    }
    let r = match &f.report {
        None => return out,
        Some(Err(m)) => {
            out.push(Check::fail(
                "agent",
                format!("the read-only doctor operation failed: {m}"),
                "check that the target has a POSIX sh and coreutils/busybox (df, du, od, sed)",
            ));
            return out;
        }
        Some(Ok(r)) => r,
    };
    out.extend(space_checks(r));
    out.push(lock_check(r));
    out.extend(pending_checks(r));
    out.extend(bootloader_checks(r));
    out
}

/// Free space for one more generation: at most a whole new closure in the store, and a boot
/// entry the size of the current one on the boot partition.
pub fn space_checks(r: &Report) -> Vec<Check> {
    let mut out = Vec::new();
    let gc = "remove old generations: pideploy gc --target T --keep N";
    if let Some(free) = r.store_free_kb.map(|k| k * 1024) {
        match r.closure_bytes {
            Some(need) if free < need => out.push(Check::fail(
                "store free space",
                format!(
                    "{} free, but a new generation can need up to {} (the current closure)",
                    human(free),
                    human(need)
                ),
                gc,
            )),
            Some(need) => out.push(Check::ok(
                "store free space",
                format!(
                    "{} free; one more generation needs at most {}",
                    human(free),
                    human(need)
                ),
            )),
            None => out.push(Check::ok(
                "store free space",
                format!("{} free; no generation yet to estimate from", human(free)),
            )),
        }
    }
    match (r.boot_free_kb, r.entry_kb) {
        (None, _) => out.push(Check::warn(
            "boot free space",
            "no boot partition at /boot/firmware: generations cannot add boot entries",
            "mount the boot partition (FAT, partition 1) at /boot/firmware",
        )),
        (Some(free), Some(entry)) if free < entry => out.push(Check::fail(
            "boot free space",
            format!(
                "{} free on /boot/firmware, but a boot entry needs about {}",
                human(free * 1024),
                human(entry * 1024)
            ),
            gc,
        )),
        (Some(free), Some(entry)) => out.push(Check::ok(
            "boot free space",
            format!(
                "{} free on /boot/firmware; a boot entry takes about {} ({} more fit)",
                human(free * 1024),
                human(entry * 1024),
                free / entry.max(1)
            ),
        )),
        (Some(free), None) => out.push(Check::ok(
            "boot free space",
            format!("{} free on /boot/firmware", human(free * 1024)),
        )),
    }
    out
}

/// The deploy lock: held (a deploy would be refused now), stale (the next deploy removes it), or free.
pub fn lock_check(r: &Report) -> Check {
    let who = r.lock_holder.as_deref().unwrap_or("unknown");
    match r.lock_alive {
        None => Check::ok("deploy lock", "free"),
        Some(true) => Check::fail(
            "deploy lock",
            format!("held by {who}: a deploy now would be refused"),
            "wait for that deploy (or its confirmation window) to end, then run doctor again",
        ),
        Some(false) => Check::warn(
            "deploy lock",
            format!("stale: left by {who}, whose process is gone"),
            "nothing to do: the next deploy removes a stale lock (or remove /pideploy/var/lock)",
        ),
    }
}

/// A generation waiting for its confirmation, and a trial boot entry.
pub fn pending_checks(r: &Report) -> Vec<Check> {
    let mut out = Vec::new();
    match (&r.pending, r.lock_alive) {
        (None, _) => out.push(Check::ok("pending generation", "none")),
        (Some((n, kind)), Some(true)) => out.push(Check::fail(
            "pending generation",
            format!("generation {n} ({kind}) is waiting for its confirmation"),
            "let the deploy finish: it is committed when confirmed, reverted otherwise",
        )),
        (Some((n, kind)), _) => out.push(Check::fail(
            "pending generation",
            format!("generation {n} ({kind}) is pending, but no deploy is waiting for it (interrupted)"),
            "reboot the target: its boot tasks commit or drop the pending generation; then check `pideploy generations`",
        )),
    }
    if let Some(prefix) = &r.tryboot {
        if r.pending.is_none() {
            out.push(Check::warn(
                "trial boot",
                format!("tryboot.txt names {prefix} but no generation is pending"),
                "harmless (only `reboot '0 tryboot'` reads it; the next trial rewrites it); remove /boot/firmware/tryboot.txt to tidy up",
            ));
        } else {
            out.push(Check::warn(
                "trial boot",
                format!("tryboot.txt names {prefix}: a trial boot is set up"),
                "let the deploy finish",
            ));
        }
    }
    out
}

/// Runs `sudo -n -- true` (or `sudo -S` with the password) the way the agent is run.
fn probe_sudo(t: &mut dyn Transport, call: &AgentCall) -> Result<Sudo, TransportError> {
    if !call.sudo {
        return Ok(Sudo::NotUsed);
    }
    let mut argv = call.sudo_prefix();
    argv.push("true".into());
    let mut err = Vec::new();
    let code = t.exec(
        &argv,
        &mut call.stdin(&mut io::empty()),
        &mut io::sink(),
        &mut err,
    )?;
    let err = String::from_utf8_lossy(&err);
    Ok(if code == 0 {
        if call.sudo_password.is_some() {
            Sudo::WithPassword
        } else {
            Sudo::Ok
        }
    } else if err.contains("a password is required") || err.contains("a terminal is required") {
        Sudo::NeedsPassword
    } else {
        Sudo::Refused(
            err.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no error output")
                .trim()
                .to_string(),
        )
    })
}

/// The argv of the read-only `doctor` operation: the agent comes on stdin to `sh -s`, so nothing
/// is installed on the target.
pub fn doctor_argv(call: &AgentCall) -> Vec<String> {
    let mut v = call.sudo_prefix();
    v.extend(["sh", "-s", "--", "doctor"].map(String::from));
    v.push(call.root.clone());
    v
}

fn run_report(t: &mut dyn Transport, call: &AgentCall) -> Result<Report, String> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = t
        .exec(
            &doctor_argv(call),
            &mut call.stdin(&mut AGENT.as_bytes()),
            &mut out,
            &mut err,
        )
        .map_err(|e| e.to_string())?;
    if code != 0 {
        let err = String::from_utf8_lossy(&err);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no error output");
        return Err(format!("exit {code}: {}", last.trim()));
    }
    parse_report(&String::from_utf8_lossy(&out))
}

/// Connects (`connect` is the result of opening the transport) and asks the target.
pub fn gather(
    target: &str,
    connect: Result<Box<dyn Transport>, DeployError>,
    call: &AgentCall,
) -> TargetFacts {
    let mut facts = TargetFacts {
        target: target.to_string(),
        reach: Reach::Ok,
        sudo: Sudo::NotUsed,
        report: None,
    };
    let mut t = match connect {
        Ok(t) => t,
        Err(DeployError::Transport(e)) => {
            facts.reach = match *e {
                TransportError::UnknownHostKey { .. } => Reach::UnknownHostKey(e.to_string()),
                TransportError::HostKeyChanged { .. } => Reach::HostKeyChanged(e.to_string()),
                _ => Reach::Failed(e.to_string()),
            };
            return facts;
        }
        Err(e) => {
            facts.reach = Reach::Failed(e.to_string());
            return facts;
        }
    };
    facts.sudo = match probe_sudo(t.as_mut(), call) {
        Ok(s) => s,
        Err(e) => {
            facts.reach = Reach::Failed(e.to_string());
            return facts;
        }
    };
    // Without working sudo, still read what the login user may read.
    let call = match facts.sudo {
        Sudo::NeedsPassword | Sudo::Refused(_) => AgentCall::plain(call.root.clone()),
        _ => call.clone(),
    };
    facts.report = Some(run_report(t.as_mut(), &call));
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn report(text: &str) -> Report {
        parse_report(text).unwrap()
    }

    #[test]
    fn the_agent_answer_is_parsed_and_a_cut_one_refused() {
        let r = report(
            "store_free_kb 1000\nboot_free_kb 500\ndefault 3\nentry_kb 40\nclosure_bytes 123456\n\
             lock_holder pi@laptop\nlock stale\npending 4 tryboot\ntryboot gen-4/\n\
             model Raspberry Pi 5 Model B Rev 1.0\ndt_build_timestamp 6582e14e\ndt_tryboot 00000000\nend\n",
        );
        assert_eq!(r.store_free_kb, Some(1000));
        assert_eq!(r.default, Some(3));
        assert_eq!(r.closure_bytes, Some(123_456));
        assert_eq!(r.lock_alive, Some(false));
        assert_eq!(r.pending, Some((4, "tryboot".into())));
        assert_eq!(r.tryboot.as_deref(), Some("gen-4/"));
        assert_eq!(r.dt_build_timestamp, Some(0x6582_e14e));
        assert_eq!(r.dt_tryboot, Some(0));
        assert!(parse_report("store_free_kb 1\n").is_err());
        assert!(parse_report("what 1\nend\n").is_err());
        assert!(parse_report("store_free_kb x\nend\n").is_err());
        // df printed nothing: the line stays, the value is unknown.
        assert_eq!(report("store_free_kb \nend\n").store_free_kb, None);
    }

    #[test]
    fn vcgencmd_and_rpi_eeprom_update_outputs_give_the_build_time() {
        let v: Vec<String> = "2023/12/14 16:15:58\nversion 2f4ebe9e27a1d48fb58b0ef2c6bbfd8de44ae2c4 (release)\ntimestamp 1702570558\nupdate-time 1702982160\ncapabilities 0x0000007f"
            .lines().map(String::from).collect();
        assert_eq!(vcgencmd_timestamp(&v), Some(1_702_570_558));
        let u: Vec<String> = "BOOTLOADER: up to date\n   CURRENT: Thu 14 Dec 16:15:58 UTC 2023 (1702570558)\n    LATEST: Thu 14 Dec 16:15:58 UTC 2023 (1702570558)\n   RELEASE: default (/lib/firmware/raspberrypi/bootloader-2712/default)"
            .lines().map(String::from).collect();
        assert_eq!(eeprom_update_timestamp(&u), Some(1_702_570_558));
        assert_eq!(vcgencmd_timestamp(&["error".into()]), None);
        assert_eq!(eeprom_update_timestamp(&["CURRENT: soon".into()]), None);
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(date(MIN_BOOTLOADER), "2023-12-14");
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_698_684_310), "2023-10-30");
    }

    #[test]
    fn an_old_bootloader_fails_both_checks_and_a_current_one_passes() {
        let pi = |ts: Option<u64>, vc: &str| Report {
            model: Some("Raspberry Pi 5 Model B Rev 1.0".into()),
            dt_build_timestamp: ts,
            vcgencmd: vc.lines().map(String::from).collect(),
            ..Default::default()
        };
        let old = bootloader_checks(&pi(None, "2023/10/30 16:45:10\ntimestamp 1698684310"));
        assert!(old.iter().all(|c| c.status == Status::Fail), "{old:?}");
        assert!(old[0].detail.contains("2023-10-30"), "{}", old[0].detail);
        assert!(old[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("rpi-eeprom-update -a"));
        let new = bootloader_checks(&Report {
            dt_tryboot: Some(0),
            ..pi(Some(1_705_000_000), "")
        });
        assert!(new.iter().all(|c| c.status == Status::Ok), "{new:?}");
        let unreadable = bootloader_checks(&pi(None, ""));
        assert_eq!(unreadable[0].status, Status::Warn);
        let not_pi = bootloader_checks(&Report::default());
        assert_eq!(not_pi[0].status, Status::Ok);
        assert!(not_pi[0].detail.contains("skipped"));
    }

    #[test]
    fn space_for_one_more_generation() {
        let r = Report {
            store_free_kb: Some(100 * 1024),
            boot_free_kb: Some(30 * 1024),
            entry_kb: Some(40 * 1024),
            closure_bytes: Some(200 << 20),
            ..Default::default()
        };
        let c = space_checks(&r);
        assert_eq!(c[0].status, Status::Fail, "{c:?}");
        assert_eq!(c[1].status, Status::Fail, "{c:?}");
        let roomy = Report {
            store_free_kb: Some(1 << 30),
            boot_free_kb: Some(400 * 1024),
            ..r
        };
        assert!(space_checks(&roomy).iter().all(|c| c.status == Status::Ok));
        assert_eq!(space_checks(&Report::default())[0].status, Status::Warn);
    }

    #[test]
    fn lock_and_pending_verdicts() {
        let held = Report {
            lock_holder: Some("a@b".into()),
            lock_alive: Some(true),
            ..Default::default()
        };
        assert_eq!(lock_check(&held).status, Status::Fail);
        let stale = Report {
            lock_alive: Some(false),
            ..held.clone()
        };
        assert_eq!(lock_check(&stale).status, Status::Warn);
        assert_eq!(lock_check(&Report::default()).status, Status::Ok);
        let orphan = Report {
            pending: Some((5, "live".into())),
            ..Default::default()
        };
        let c = pending_checks(&orphan);
        assert_eq!(c[0].status, Status::Fail);
        assert!(c[0].fix.as_deref().unwrap().contains("reboot"));
        assert_eq!(pending_checks(&Report::default())[0].status, Status::Ok);
    }

    #[test]
    fn unknown_host_key_stops_with_the_fix_and_sudo_password_is_named() {
        let f = TargetFacts {
            target: "pi@h".into(),
            reach: Reach::UnknownHostKey(
                "the host key of h is not known: ssh-ed25519 SHA256:x (not in k). Check this"
                    .into(),
            ),
            sudo: Sudo::NotUsed,
            report: None,
        };
        let c = checks(&f);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::Fail);
        assert!(c[0].fix.as_deref().unwrap().contains("known_hosts"));
        let f = TargetFacts {
            reach: Reach::Ok,
            sudo: Sudo::NeedsPassword,
            ..f
        };
        let c = checks(&f);
        assert_eq!(c[1].status, Status::Fail);
        assert!(c[1].fix.as_deref().unwrap().contains("--ask-sudo-password"));
    }

    #[test]
    fn a_changed_key_or_no_connection_stops_there() {
        for reach in [
            Reach::HostKeyChanged("HOST KEY CHANGED for h".into()),
            Reach::Failed("connecting to h:22 failed".into()),
        ] {
            let c = checks(&TargetFacts {
                target: "pi@h".into(),
                reach,
                sudo: Sudo::NotUsed,
                report: None,
            });
            assert_eq!(c.len(), 1, "{c:?}");
            assert_eq!(c[0].status, Status::Fail);
        }
        let c = checks(&TargetFacts {
            target: "pi@h".into(),
            reach: Reach::Ok,
            sudo: Sudo::Refused("pi is not in the sudoers file".into()),
            report: Some(Err("exit 1: boom".into())),
        });
        assert_eq!(c[1].status, Status::Fail);
        assert_eq!(c[2].name, "agent");
        assert_eq!(c[2].status, Status::Fail);
    }

    #[test]
    fn the_doctor_argv_sends_the_agent_on_stdin() {
        let call = AgentCall {
            root: "/".into(),
            sudo: true,
            sudo_password: None,
        };
        assert_eq!(
            doctor_argv(&call),
            ["sudo", "-n", "--", "sh", "-s", "--", "doctor", "/"]
        );
    }
}
