//! End to end on QEMU over SSH: boot an image pideploy built, `switch` to a changed config (a new
//! file and a new package) as a sudo user with strict host-key checking, reboot into the new
//! generation (selected by the boot partition's config.txt, as the Pi firmware would), `rollback`,
//! reboot, and find the old generation running again.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Vm {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Vm {
    /// Waits until the console has shown `marker` `count` times in all.
    fn wait_for(&mut self, marker: &str, count: usize, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if text.matches(marker).count() >= count {
                return text;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("pideploy qemu ended ({st}) before {marker:?} #{count}:\n{text}");
            }
            assert!(
                start.elapsed() < limit,
                "no {marker:?} #{count} after {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn config(public: &str, top: &str, tables: &str) -> String {
    format!(
        "board = \"qemu-aarch64\"\nhostname = \"deploypi\"\n{top}\n[[users]]\nname = \"pi\"\nuid = 1000\nsudo = true\n\
         ssh_authorized_keys = [\"{public}\"]\n\n[[users]]\nname = \"bob\"\nuid = 1001\n\
         ssh_authorized_keys = [\"{public}\"]\n{tables}"
    )
}

fn ready_toplevel(console: &str, nth: usize) -> String {
    console
        .lines()
        .filter_map(|l| l.split("PIDEPLOY-READY ").nth(1))
        .nth(nth)
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn switch_reboot_rollback_reboot_on_qemu() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (key, public) = keypair(w);
    let cache = w.join("cache");
    let store = w.join("store");
    let (a_cfg, b_cfg) = (w.join("a/pi.toml"), w.join("b/pi.toml"));
    fs::create_dir_all(a_cfg.parent().unwrap()).unwrap();
    fs::create_dir_all(b_cfg.parent().unwrap()).unwrap();
    fs::write(&a_cfg, config(&public, "", "")).unwrap();
    fs::write(
        &b_cfg,
        config(
            &public,
            "packages = [\"tree\"]\n",
            "\n[[files]]\npath = \"/etc/motd\"\ncontent = \"generation two\\n\"\n",
        ),
    )
    .unwrap();
    let (a_lock, b_lock) = (w.join("a/pideploy.lock"), w.join("b/pideploy.lock"));
    lock_and_import(&a_cfg, &a_lock, &cache, &store);
    lock_and_import(&b_cfg, &b_lock, &cache, &store);
    let pd = || {
        let mut c = pideploy();
        env_for(&mut c, &cache, &store);
        c
    };
    let img = w.join("pi.img");
    run(pd().arg("image").arg("-c").arg(&a_cfg).arg("-o").arg(&img));

    let port = pideploy_qemu::free_port().unwrap();
    let log = w.join("console.log");
    let child = pideploy()
        .arg("qemu")
        .arg(&img)
        .args([
            "--ssh-port",
            &port.to_string(),
            "--timeout",
            "400",
            "--max-boots",
            "3",
        ])
        .stdout(fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut vm = Vm { child, log };
    let console = vm.wait_for("PIDEPLOY-READY", 1, Duration::from_secs(150));
    let a_top = ready_toplevel(&console, 0);
    let host_key = console
        .lines()
        .find_map(|l| l.split("ssh host key: ").nth(1))
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let known = w.join("known_hosts");
    fs::write(&known, format!("[127.0.0.1]:{port} {host_key}\n")).unwrap();
    let target = format!("pi@127.0.0.1:{port}");
    let conn = |c: &mut Command| {
        c.args(["--target", &target, "-i"])
            .arg(&key)
            .arg("--known-hosts")
            .arg(&known);
    };
    let ssh = |cmd: &str| -> String {
        let out = run(Command::new("ssh")
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .arg("-i")
            .arg(&key)
            .args(["-p", &port.to_string(), "pi@127.0.0.1", cmd]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    // reboot/poweroff end the connection under the command: its status is not the point.
    let ssh_detached = |cmd: &str| {
        let _ = Command::new("ssh")
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .arg("-i")
            .arg(&key)
            .args(["-p", &port.to_string(), "pi@127.0.0.1", cmd])
            .output();
    };

    // A user whose sudo needs a password gets one clear line, and nothing happens.
    let bob = format!("bob@127.0.0.1:{port}");
    let out = pd()
        .args(["generations", "--target", &bob, "-i"])
        .arg(&key)
        .arg("--known-hosts")
        .arg(&known)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a password") && err.lines().count() == 1,
        "{err}"
    );

    // An unknown host key is refused with its fingerprint.
    let empty_known = w.join("empty_known_hosts");
    fs::write(&empty_known, "").unwrap();
    let out = pd()
        .args(["generations", "--target", &target, "-i"])
        .arg(&key)
        .arg("--known-hosts")
        .arg(&empty_known)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHA256:"), "{err}");

    // switch over SSH: new file and package are live at once.
    let mut sw = pd();
    sw.arg("switch").arg("-c").arg(&b_cfg);
    conn(&mut sw);
    let out = run(&mut sw);
    let b_top = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation 2 is active and the default"),
        "{err}"
    );
    assert_eq!(ssh("cat /etc/motd"), "generation two");
    assert_eq!(ssh("readlink /run/current-system"), b_top);
    assert!(ssh("command -v tree").ends_with("/tree"));

    // The same closure again sends nothing and adds nothing.
    let mut again = pd();
    again.arg("switch").arg("-c").arg(&b_cfg);
    conn(&mut again);
    let err = String::from_utf8_lossy(&run(&mut again).stderr).into_owned();
    assert!(
        err.contains("copied 0 store paths") && err.contains("nothing changed"),
        "{err}"
    );

    // Reboot: the firmware rules pick gen-2 from config.txt.
    ssh_detached("sudo -n reboot");
    let console = vm.wait_for("PIDEPLOY-READY", 2, Duration::from_secs(150));
    assert_eq!(ready_toplevel(&console, 1), b_top, "generation 2 boots");
    assert_eq!(ssh("cat /etc/motd"), "generation two");

    // generations lists both, 2 current and default.
    let mut g = pd();
    g.args(["generations", "--json"]);
    conn(&mut g);
    let v: serde_json::Value = serde_json::from_slice(&run(&mut g).stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["current"], true);
    assert_eq!(v[1]["default"], true);

    // rollback, reboot: generation 1 again.
    let mut rb = pd();
    rb.args(["rollback", "--to", "1"]);
    conn(&mut rb);
    run(&mut rb);
    assert_eq!(ssh("readlink /run/current-system"), a_top);
    ssh_detached("sudo -n reboot");
    let console = vm.wait_for("PIDEPLOY-READY", 3, Duration::from_secs(150));
    assert_eq!(
        ready_toplevel(&console, 2),
        a_top,
        "generation 1 boots after rollback"
    );
    assert_eq!(
        ssh("readlink /pideploy/var/profiles/system"),
        "system-1-link"
    );
    ssh_detached("sudo -n poweroff");
    let start = Instant::now();
    while vm.child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "no power-off");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Path::new(&img);
}
