//! End to end on QEMU over SSH: boot an image pideploy built, `switch` to a changed config (a new
//! file and a new package) as a sudo user with strict host-key checking, reboot into the new
//! generation (selected by the boot partition's config.txt, as the Pi firmware would), `rollback`,
//! reboot, and find the old generation running again.

mod common;

use std::fs;

use std::process::Command;
use std::time::Duration;

use common::guest::Guest;
use common::*;

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

    let mut vm = Guest::start(&img, w.join("console.log"), Duration::from_secs(400), 3);
    let port = vm.port;
    let console = vm.wait_for("PIDEPLOY-READY", Duration::from_secs(150));
    let a_top = ready_toplevel(&console, 0);
    let known = vm.known_hosts(w);
    let target = format!("pi@127.0.0.1:{port}");
    let conn = |c: &mut Command| {
        c.args(["--target", &target, "-i"])
            .arg(&key)
            .arg("--known-hosts")
            .arg(&known);
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
    assert_eq!(
        vm.ssh(&known, &key, "pi", "cat /etc/motd"),
        "generation two"
    );
    assert_eq!(
        vm.ssh(&known, &key, "pi", "readlink /run/current-system"),
        b_top
    );
    assert!(vm
        .ssh(&known, &key, "pi", "command -v tree")
        .ends_with("/tree"));

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
    vm.ssh_detached(&known, &key, "pi", "sudo -n reboot");
    let console = vm.wait_for_nth("PIDEPLOY-READY", 2, Duration::from_secs(150));
    assert_eq!(ready_toplevel(&console, 1), b_top, "generation 2 boots");
    assert_eq!(
        vm.ssh(&known, &key, "pi", "cat /etc/motd"),
        "generation two"
    );

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
    assert_eq!(
        vm.ssh(&known, &key, "pi", "readlink /run/current-system"),
        a_top
    );
    vm.ssh_detached(&known, &key, "pi", "sudo -n reboot");
    let console = vm.wait_for_nth("PIDEPLOY-READY", 3, Duration::from_secs(150));
    assert_eq!(
        ready_toplevel(&console, 2),
        a_top,
        "generation 1 boots after rollback"
    );
    assert_eq!(
        vm.ssh(&known, &key, "pi", "readlink /pideploy/var/profiles/system"),
        "system-1-link"
    );
    vm.power_off(&known, &key, "pi");
}
