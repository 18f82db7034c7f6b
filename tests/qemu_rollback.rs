//! Rollback on a booted QEMU guest, over SSH as a sudo user:
//! - level 3: a switch that changes the boot entry boots it once through tryboot (`reboot "0
//!   tryboot"`, the harness applies the firmware's one-shot rule) and commits config.txt only when
//!   the new generation answers healthy; an entry that hangs at boot is left by a power cycle.
//! - level 2: a config that moves sshd off its port cannot be confirmed, and the target returns to
//!   the previous generation on its own; a power cut while a generation waits for its confirmation
//!   boots the committed one and drops the unconfirmed one.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::guest::Guest;
use common::*;

fn config(public: &str, extra: &str) -> String {
    format!(
        "board = \"qemu-aarch64\"\nhostname = \"rollpi\"\n\n[[users]]\nname = \"pi\"\nuid = 1000\nsudo = true\n\
         ssh_authorized_keys = [\"{public}\"]\n{extra}"
    )
}

struct Setup {
    _work: tempfile::TempDir,
    w: PathBuf,
    key: PathBuf,
    public: String,
    cache: PathBuf,
    store: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let work = tempfile::tempdir().unwrap();
        let w = work.path().to_path_buf();
        let (key, public) = keypair(&w);
        Setup {
            cache: w.join("cache"),
            store: w.join("store"),
            key,
            public,
            w,
            _work: work,
        }
    }

    fn pd(&self) -> Command {
        let mut c = pideploy();
        env_for(&mut c, &self.cache, &self.store);
        c
    }

    fn config(&self, name: &str, extra: &str) -> PathBuf {
        let cfg = self.w.join(name).join("pi.toml");
        fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        fs::write(&cfg, config(&self.public, extra)).unwrap();
        lock_and_import(
            &cfg,
            &cfg.with_file_name("pideploy.lock"),
            &self.cache,
            &self.store,
        );
        cfg
    }

    fn toplevel(&self, cfg: &Path) -> String {
        let out = run(self.pd().arg("build").arg("-c").arg(cfg));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn boot(&self, cfg: &Path, max_boots: u32) -> Guest {
        let img = self.w.join("pi.img");
        run(self
            .pd()
            .arg("image")
            .arg("-c")
            .arg(cfg)
            .arg("-o")
            .arg(&img));
        Guest::start(
            &img,
            self.w.join("console.log"),
            Duration::from_secs(1200),
            max_boots,
        )
    }

    fn switch(&self, vm: &Guest, known: &Path, cfg: &Path) -> Command {
        let mut c = self.pd();
        c.args(["switch", "-c"])
            .arg(cfg)
            .args(["--target", &format!("pi@127.0.0.1:{}", vm.port), "-i"])
            .arg(&self.key)
            .arg("--known-hosts")
            .arg(known);
        c
    }

    fn generations(&self, vm: &Guest, known: &Path) -> Vec<(u64, bool, bool)> {
        let out = run(self
            .pd()
            .args(["generations", "--json", "--target"])
            .arg(format!("pi@127.0.0.1:{}", vm.port))
            .arg("-i")
            .arg(&self.key)
            .arg("--known-hosts")
            .arg(known));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["generation"].as_u64().unwrap(),
                    g["current"].as_bool().unwrap(),
                    g["default"].as_bool().unwrap(),
                )
            })
            .collect()
    }
}

/// What the harness booted, one `booting …` line per boot (which entry, from which file).
fn boot_lines(vm: &Guest) -> Vec<String> {
    vm.harness_log()
        .lines()
        .filter(|l| l.starts_with("booting "))
        .map(String::from)
        .collect()
}

fn error_lines(err: &str) -> Vec<String> {
    err.lines()
        .filter(|l| l.starts_with("pideploy: error: "))
        .map(String::from)
        .collect()
}

#[test]
fn tryboot_commits_a_healthy_entry_and_a_hung_one_falls_back_by_the_watchdog() {
    let s = Setup::new();
    let a = s.config("a", "");
    // B boots differently (an extra kernel parameter) and must have sshd listening to be kept.
    let b = s.config(
        "b",
        "\n[boot]\ncmdline = [\"pideploy.note=b\"]\n\n[health]\ntcp_ports = [22]\ntimeout_secs = 30\n",
    );
    // C's kernel finds no init in its initramfs and waits forever for a root device it has no
    // driver for: a hang, as a bad kernel on a Pi would hang, until someone power-cycles it.
    let c = s.config(
        "c",
        "\n[boot]\ncmdline = [\"pideploy.note=b\", \"rdinit=/nonexistent\"]\n",
    );
    let b_top = s.toplevel(&b);
    let mut vm = s.boot(&a, 6);
    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(200));
    let known = vm.known_hosts(&s.w);
    let sh = |vm: &Guest, cmd: &str| vm.ssh(&known, &s.key, "pi", cmd);

    // B: tryboot, back up healthy, committed.
    let out = run(&mut s.switch(&vm, &known, &b));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rebooting into generation 2 once (tryboot)")
            && err.contains("generation 2 is active and the default"),
        "{err}"
    );
    assert!(vm
        .console()
        .contains("reboot: Restarting system with command '0 tryboot'"));
    let boots = boot_lines(&vm);
    assert_eq!(boots.len(), 2, "{boots:?}");
    assert!(boots[1].contains("tryboot.txt"), "{boots:?}");
    assert_eq!(sh(&vm, "readlink /run/current-system"), b_top);
    assert!(sh(&vm, "cat /proc/cmdline").contains("pideploy.note=b"));
    assert!(sh(&vm, "cat /boot/firmware/config.txt").contains("os_prefix=gen-2/"));
    assert_eq!(
        sh(
            &vm,
            "ls /boot/firmware/tryboot.txt /pideploy/var/pending 2>&1 | grep -c 'No such'"
        ),
        "2",
        "tryboot.txt and the pending record are gone"
    );
    assert_eq!(
        s.generations(&vm, &known),
        [(1, false, false), (2, true, true)]
    );

    // C: tried once, hangs. Nobody acts: tryboot.txt armed the hardware watchdog, which nothing
    // in the hung trial opens, so the firmware's watchdog resets it after 60 s; config.txt boots
    // (generation 2), its boot-check drops generation 3, and the waiting deployer says so.
    let out = s
        .switch(&vm, &known, &c)
        .args(["--boot-timeout", "180"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let errs = error_lines(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("generation 3 did not boot")
            && errs[0].contains("back on the committed generation"),
        "{errs:?}"
    );
    assert!(vm.console().contains("rdinit=/nonexistent"));
    let console = vm.wait_for_nth("PIDEPLOY-READY", 3, Duration::from_secs(60));
    assert!(console.contains("pideploy: generation 3 did not boot; the committed generation runs"));
    assert!(
        vm.harness_log().contains("hardware watchdog reset"),
        "{}",
        vm.harness_log()
    );
    let boots = boot_lines(&vm);
    assert_eq!(boots.len(), 4, "{boots:?}");
    assert!(
        boots[2].contains("tryboot.txt") && boots[3].contains("config.txt"),
        "{boots:?}"
    );
    assert_eq!(sh(&vm, "readlink /run/current-system"), b_top);
    assert_eq!(
        sh(
            &vm,
            "ls /boot/firmware | grep -c '^gen-3\\|^tryboot.txt' || true"
        ),
        "0"
    );
    assert_eq!(
        s.generations(&vm, &known),
        [(1, false, false), (2, true, true)]
    );

    // A re-run of B finds it running and committed.
    let err = String::from_utf8_lossy(&run(&mut s.switch(&vm, &known, &b)).stderr).into_owned();
    assert!(err.contains("nothing changed"), "{err}");

    // --reboot: committed first, then a plain reboot that config.txt already points at.
    let b2 = s.config("b2", "\n[boot]\ncmdline = [\"pideploy.note=b2\"]\n");
    let b2_top = s.toplevel(&b2);
    let out = run(s.switch(&vm, &known, &b2).arg("--reboot"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rebooting into generation 4\n")
            && err.contains("generation 4 is active and the default"),
        "{err}"
    );
    let boots = boot_lines(&vm);
    assert_eq!(boots.len(), 5, "{boots:?}");
    assert!(
        boots[4].contains("gen-4/") && boots[4].contains("config.txt"),
        "{boots:?}"
    );
    assert_eq!(sh(&vm, "readlink /run/current-system"), b2_top);
    assert!(sh(&vm, "cat /proc/cmdline").contains("pideploy.note=b2"));
    vm.power_off(&known, &s.key, "pi");
}

#[test]
fn a_config_that_cuts_ssh_reverts_itself_and_a_power_cut_drops_the_unconfirmed_generation() {
    let s = Setup::new();
    let a = s.config("a", "");
    // D moves sshd to a port the deployer cannot reach: the confirmation never comes.
    let d = s.config("d", "\n[ssh]\nport = 2222\n");
    // E is harmless, but its health check takes long enough to pull the plug meanwhile.
    let e = s.config(
        "e",
        "\n[[files]]\npath = \"/etc/motd\"\ncontent = \"e\\n\"\n\n[health]\ncommands = [[\"sleep\", \"600\"]]\ntimeout_secs = 700\n",
    );
    let a_top = s.toplevel(&a);
    let e_top = s.toplevel(&e);
    let mut vm = s.boot(&a, 3);
    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(200));
    let known = vm.known_hosts(&s.w);
    let sh = |vm: &Guest, cmd: &str| vm.ssh(&known, &s.key, "pi", cmd);

    let out = s
        .switch(&vm, &known, &d)
        .args(["--confirm-timeout", "20"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let errs = error_lines(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("could not reach") && errs[0].contains("by itself within 20 s"),
        "{errs:?}"
    );
    // The target brings sshd back on port 22 by itself.
    let start = std::time::Instant::now();
    while vm
        .ssh_cmd(&known, &s.key, "pi", "true")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "sshd did not come back"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(sh(&vm, "readlink /run/current-system"), a_top);
    assert_eq!(
        sh(&vm, "readlink /pideploy/var/profiles/system"),
        "system-1-link"
    );
    assert!(sh(&vm, "cat /pideploy/var/waiter.log")
        .contains("generation 2 reverted: no confirmation within 20 s"));
    assert_eq!(s.generations(&vm, &known), [(1, true, true)]);

    // E activates, then the power goes while the deployer waits for its health check.
    let log = s.w.join("switch-e.log");
    let mut deployer = s
        .switch(&vm, &known, &e)
        .args(["--confirm-timeout", "600"])
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !fs::read_to_string(&log)
        .unwrap()
        .contains("confirming over a new connection")
    {
        assert!(
            deployer.try_wait().unwrap().is_none(),
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        assert!(start.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sh(&vm, "readlink /run/current-system"),
        e_top,
        "E is active, unconfirmed"
    );
    vm.power_cut();
    let console = vm.wait_for_nth("PIDEPLOY-READY", 2, Duration::from_secs(300));
    let _ = deployer.kill();
    let _ = deployer.wait();
    assert!(
        console
            .contains("pideploy: generation 3 was never confirmed; the committed generation runs"),
        "{console}"
    );
    assert_eq!(
        sh(&vm, "readlink /run/current-system"),
        a_top,
        "the committed generation boots"
    );
    assert_eq!(sh(&vm, "ls /pideploy/var/pending 2>/dev/null | wc -l"), "0");
    assert_eq!(s.generations(&vm, &known), [(1, true, true)]);
    // Nothing half-copied is valid: every registered path is complete.
    let check = sh(
        &vm,
        "cd /pideploy/var/db/valid && for p in *; do [ -e /pideploy/store/$p ] || echo missing $p; done; ls -a /pideploy/store | grep -c '^\\.incoming' || true",
    );
    assert_eq!(check, "0", "{check}");
    // And the deploy goes through when run again without the endless health check.
    let f = s.config(
        "f",
        "\n[[files]]\npath = \"/etc/motd\"\ncontent = \"e\\n\"\n",
    );
    let err = String::from_utf8_lossy(&run(&mut s.switch(&vm, &known, &f)).stderr).into_owned();
    assert!(
        err.contains("generation 4 is active and the default"),
        "{err}"
    );
    assert_eq!(sh(&vm, "cat /etc/motd"), "e");
    vm.power_off(&known, &s.key, "pi");
}
