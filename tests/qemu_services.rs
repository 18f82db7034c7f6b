//! Debian packages become running services under systemd, on QEMU, with nothing hand-wired:
//! `packages = ["nginx", "mosquitto", "chrony"]` gives nginx serving HTTP (checked from the host
//! through a forwarded port), mosquitto (its own system user and /var directory) and chrony (a user
//! and a config file its postinst makes with ucf); a `[[services]]` entry is a unit with its
//! environment. Then: the services survive a reboot; a switch that drops nginx and changes the
//! config's service stops nginx, restarts only that service and leaves mosquitto's process alone;
//! a rollback brings nginx back; `pideploy logs` reads a unit's journal from the laptop.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::guest::Guest;
use common::*;

fn config(public: &str, packages: &str, greeting: &str) -> String {
    format!(
        r#"board = "qemu-aarch64"
hostname = "svcpi"
timezone = "Europe/Berlin"
packages = [{packages}]

[[users]]
name = "pi"
uid = 1000
sudo = true
ssh_authorized_keys = ["{public}"]

[[files]]
path = "/var/www/html/index.html"
content = "hello from nginx on pideploy\n"

[[services]]
name = "greeter"
command = ["/bin/sh", "-c", "echo \"$GREETING\" > /tmp/greeting; exec sleep 100000"]
environment = {{ GREETING = "{greeting}" }}
user = "pi"

[[services]]
name = "ticker"
command = ["/bin/sh", "-c", "date +%s >> /tmp/ticks"]
user = "pi"
schedule = "*:*:0/10"
"#
    )
}

/// The body of `GET /` from 127.0.0.1:port, or None when nothing answers with HTTP.
fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: svcpi\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// Waits until `GET /` answers (or not), for a service that is still starting or stopping.
fn wait_http(port: u16, want: bool) -> Option<String> {
    let start = Instant::now();
    loop {
        let got = http_get(port);
        if got.is_some() == want || start.elapsed() > Duration::from_secs(60) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn packages_run_as_services_across_switch_reboot_and_rollback() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (key, public) = keypair(w);
    let cache = w.join("cache");
    let store = w.join("store");
    let (a_cfg, b_cfg) = (w.join("a/pi.toml"), w.join("b/pi.toml"));
    for c in [&a_cfg, &b_cfg] {
        fs::create_dir_all(c.parent().unwrap()).unwrap();
    }
    fs::write(
        &a_cfg,
        config(&public, "\"nginx\", \"mosquitto\", \"chrony\"", "hello"),
    )
    .unwrap();
    fs::write(
        &b_cfg,
        config(&public, "\"mosquitto\", \"chrony\"", "hi again"),
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
    // A time zone tzdata does not have is refused at build time, naming the field.
    let typo = w.join("typo/pi.toml");
    fs::create_dir_all(typo.parent().unwrap()).unwrap();
    fs::write(
        &typo,
        fs::read_to_string(&a_cfg)
            .unwrap()
            .replace("Europe/Berlin", "Europe/Berln"),
    )
    .unwrap();
    fs::copy(&a_lock, w.join("typo/pideploy.lock")).unwrap();
    let out = pd().arg("build").arg("-c").arg(&typo).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("timezone: \"Europe/Berln\" is not a time zone of tzdata"),
        "{err}"
    );

    let img = w.join("pi.img");
    run(pd().arg("image").arg("-c").arg(&a_cfg).arg("-o").arg(&img));

    let http = pideploy_qemu::free_port().unwrap();
    let mut vm = Guest::start_with(
        &img,
        w.join("console.log"),
        Duration::from_secs(600),
        4,
        &["--forward".into(), format!("{http}:80")],
    );
    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(200));
    let known = vm.known_hosts(w);
    let ssh = |vm: &Guest, cmd: &str| vm.ssh(&known, &key, "pi", cmd);

    // 1. Everything runs, as Debian would have set it up.
    let page = wait_http(http, true).expect("nginx answers on port 80");
    assert!(page.contains("hello from nginx on pideploy"), "{page}");
    assert!(page.contains("Server: nginx"), "{page}");
    // SSH is up before the boot's last start jobs are done (chrony may still be starting).
    assert_eq!(vm.system_state(&known, &key, "pi"), "running");
    assert_eq!(
        ssh(
            &vm,
            "sudo -n systemctl is-active nginx mosquitto chrony greeter"
        ),
        "active\nactive\nactive\nactive"
    );
    assert_eq!(ssh(&vm, "cat /tmp/greeting"), "hello");
    assert_eq!(
        ssh(
            &vm,
            "stat -c %U /proc/$(sudo -n systemctl show -P MainPID greeter)"
        ),
        "pi"
    );
    assert_eq!(ssh(&vm, "stat -c %U /var/lib/mosquitto"), "mosquitto");
    assert_eq!(
        ssh(
            &vm,
            "stat -c %U /proc/$(sudo -n systemctl show -P MainPID mosquitto)"
        ),
        "mosquitto"
    );
    assert!(ssh(&vm, "id _chrony").starts_with("uid="));
    assert!(ssh(&vm, "head -c 200 /etc/chrony/chrony.conf").contains("chrony"));
    assert!(ssh(&vm, "sudo -n journalctl -u nginx --no-pager").contains("Started nginx.service"));
    assert_eq!(
        ssh(&vm, "sudo -n systemctl --failed --no-legend --plain"),
        ""
    );

    // `pideploy logs` reads the journal from here.
    let logs = |unit: &str| {
        let mut c = pd();
        c.args([
            "logs",
            "--target",
            &format!("pi@127.0.0.1:{}", vm.port),
            "-i",
        ])
        .arg(&key)
        .arg("--known-hosts")
        .arg(&known)
        .arg(unit);
        String::from_utf8_lossy(&run(&mut c).stdout).into_owned()
    };
    assert!(logs("mosquitto").contains("Started mosquitto.service"));

    // 2. A reboot: the same services come back by themselves.
    vm.ssh_detached(&known, &key, "pi", "sudo -n reboot");
    vm.wait_for_nth("PIDEPLOY-READY", 2, Duration::from_secs(200));
    assert!(wait_http(http, true).is_some(), "nginx after a reboot");
    assert_eq!(vm.system_state(&known, &key, "pi"), "running");
    assert_eq!(
        ssh(
            &vm,
            "sudo -n systemctl is-active nginx mosquitto chrony greeter"
        ),
        "active\nactive\nactive\nactive"
    );

    // The configured time zone is the one programs use.
    assert_eq!(ssh(&vm, "cat /etc/timezone"), "Europe/Berlin");
    let zone = ssh(&vm, "date +%Z");
    assert!(zone == "CET" || zone == "CEST", "date +%Z: {zone}");

    // A package's empty /etc directories exist, as dpkg leaves them (where an admin adds files).
    assert_eq!(
        ssh(
            &vm,
            "stat -c '%F %U %a' /etc/nginx/conf.d /etc/dbus-1/system.d"
        ),
        "directory root 755\ndirectory root 755"
    );

    // A scheduled service runs from its timer (systemd's default accuracy is a minute).
    assert_eq!(
        ssh(&vm, "sudo -n systemctl is-active ticker.timer || true"),
        "active"
    );
    let mut ticks = String::new();
    for _ in 0..90 {
        ticks = ssh(&vm, "cat /tmp/ticks 2>/dev/null || true");
        if !ticks.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        ticks
            .lines()
            .next()
            .is_some_and(|l| l.parse::<u64>().is_ok()),
        "the ticker timer never ran: {ticks:?}\n{}",
        ssh(
            &vm,
            "sudo -n systemctl status ticker.timer ticker.service --no-pager || true"
        )
    );
    assert_eq!(
        ssh(&vm, "stat -c %U /tmp/ticks"),
        "pi",
        "the scheduled service runs as its user"
    );

    // 3. A switch that drops nginx and changes the greeter: nginx stops, the greeter restarts
    // with its new environment, mosquitto (unchanged) keeps its process.
    let mosquitto_pid = ssh(&vm, "sudo -n systemctl show -P MainPID mosquitto");
    let greeter_pid = ssh(&vm, "sudo -n systemctl show -P MainPID greeter");
    let target = format!("pi@127.0.0.1:{}", vm.port);
    let deploy = |verb: &str, cfg: Option<&std::path::Path>| {
        let mut c = pd();
        c.arg(verb);
        if let Some(cfg) = cfg {
            c.arg("-c").arg(cfg);
        }
        c.args(["--target", &target, "-i"])
            .arg(&key)
            .arg("--known-hosts")
            .arg(&known);
        String::from_utf8_lossy(&run(&mut c).stderr).into_owned()
    };
    let err = deploy("switch", Some(&b_cfg));
    assert!(
        err.contains("generation 2 is active and the default"),
        "{err}"
    );
    assert!(wait_http(http, false).is_none(), "nginx is stopped");
    assert_eq!(
        ssh(&vm, "sudo -n systemctl is-active nginx || true"),
        "inactive"
    );
    assert_eq!(ssh(&vm, "cat /tmp/greeting"), "hi again");
    assert_ne!(
        ssh(&vm, "sudo -n systemctl show -P MainPID greeter"),
        greeter_pid
    );
    assert_eq!(
        ssh(&vm, "sudo -n systemctl show -P MainPID mosquitto"),
        mosquitto_pid,
        "an unchanged service is not restarted"
    );

    // 4. Rollback: nginx is back, the greeter has its old environment.
    let mut rb = pd();
    rb.args(["rollback", "--target", &target, "-i"])
        .arg(&key)
        .arg("--known-hosts")
        .arg(&known);
    run(&mut rb);
    assert_eq!(
        ssh(&vm, "readlink /pideploy/var/profiles/system"),
        "system-1-link"
    );
    let page = wait_http(http, true).expect("nginx after the rollback");
    assert!(page.contains("hello from nginx on pideploy"), "{page}");
    assert_eq!(ssh(&vm, "cat /tmp/greeting"), "hello");

    // A clean power-off through systemd leaves a clean file system.
    vm.power_off(&known, &key, "pi");
    let parts = partitions(&img);
    let root = w.join("root.part");
    extract(&img, parts[1].0, parts[1].1, &root);
    run(Command::new("e2fsck").arg("-fn").arg(&root));
}
