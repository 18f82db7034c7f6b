//! Wi-Fi on QEMU, configured only by pi.toml: the Debian kernel's mac80211_hwsim gives the guest two
//! simulated radios. The second (phy1) is moved into a network namespace of the guest and runs an
//! access point (hostapd, WPA2-PSK) with a DHCP server (busybox udhcpd); the first is the Pi's
//! wlan0, which only pideploy configures: wpa_supplicant joins with the passphrase the image
//! carried (root-only, outside the store), DHCP gives an address, and traffic crosses the simulated
//! air (the access point's side is in another namespace, so nothing short-cuts through loopback).
//! Then a switch with a wrong passphrase: wpa_supplicant restarts with it, says the key is wrong,
//! and the Pi stays reachable over Ethernet; a switch back reconnects; WPA3-SAE; a hidden network
//! preferred by priority, with a static address.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::guest::Guest;
use common::*;

const PASSPHRASE: &str = "correct horse battery staple";

fn config(public: &str, psk: &str, security: &str) -> String {
    config_with(public, psk, security, "")
}

/// [`config`] with more TOML after the network entry (fields of it, then other tables).
fn config_with(public: &str, psk: &str, security: &str, more: &str) -> String {
    format!(
        r#"board = "qemu-aarch64"
hostname = "wifipi"
packages = ["hostapd", "iw", "iproute2"]

[boot]
kernel_modules = ["mac80211_hwsim"]

[network.wifi]
country = "DE"

[[network.wifi.networks]]
ssid = "pideploy test"
psk_file = "{psk}"
security = "{security}"
{more}

[[users]]
name = "pi"
uid = 1000
sudo = true
ssh_authorized_keys = ["{public}"]
"#
    )
}

/// The access point on phy1 in the guest's namespace `ap`: hostapd (WPA2-PSK) and udhcpd. Full
/// paths: the guest's `sh` is busybox, which runs its own applets (a smaller `ip`) before PATH.
const AP_SETUP: &str = r#"set -e
cat > /tmp/hostapd.conf <<EOF
interface=wlan1
driver=nl80211
ssid=pideploy test
country_code=DE
hw_mode=g
channel=6
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase=correct horse battery staple
EOF
cat > /tmp/udhcpd.conf <<EOF
start 192.168.77.100
end 192.168.77.150
interface wlan1
option subnet 255.255.255.0
option router 192.168.77.1
lease_file /tmp/udhcpd.leases
pidfile /tmp/udhcpd.pid
EOF
touch /tmp/udhcpd.leases
/bin/ip netns add ap
/sbin/iw phy phy1 set netns name ap
/bin/ip netns exec ap /bin/ip link set lo up
/bin/ip netns exec ap /bin/ip addr add 192.168.77.1/24 dev wlan1
/bin/ip netns exec ap /usr/sbin/hostapd -B -P /tmp/hostapd.pid /tmp/hostapd.conf > /tmp/hostapd.log
/bin/ip netns exec ap /bin/ip link set wlan1 up
/bin/ip netns exec ap /run/busybox/udhcpd /tmp/udhcpd.conf
"#;

/// The same access point, WPA3-Personal only.
const AP_TO_SAE: &str = r#"set -e
kill "$(cat /tmp/hostapd.pid)"
sed -e 's/^wpa_key_mgmt=.*/wpa_key_mgmt=SAE/' -e 's/^wpa_passphrase=/sae_password=/' /tmp/hostapd.conf > /tmp/hostapd-sae.conf
echo ieee80211w=2 >> /tmp/hostapd-sae.conf
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /tmp/hostapd.pid ] || break; sleep 0.5; done
/bin/ip netns exec ap /usr/sbin/hostapd -B -P /tmp/hostapd.pid /tmp/hostapd-sae.conf > /tmp/hostapd-sae.log
"#;

/// The access point back to WPA2, its name hidden from beacons.
const AP_HIDDEN: &str = r#"set -e
kill "$(cat /tmp/hostapd.pid)"
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /tmp/hostapd.pid ] || break; sleep 0.5; done
cp /tmp/hostapd.conf /tmp/hostapd-hidden.conf
echo ignore_broadcast_ssid=1 >> /tmp/hostapd-hidden.conf
/bin/ip netns exec ap /usr/sbin/hostapd -B -P /tmp/hostapd.pid /tmp/hostapd-hidden.conf > /tmp/hostapd-hidden.log
"#;

/// Polls `cmd` over SSH until its output contains `want`; panics with `why` and the last output.
fn wait_for(vm: &Guest, ssh: &dyn Fn(&Guest, &str) -> String, cmd: &str, want: &str, why: &str) {
    let start = Instant::now();
    loop {
        let got = ssh(vm, cmd);
        if got.contains(want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{why}: {got}\n{}",
            ssh(
                vm,
                "sudo -n journalctl -u pideploy-wifi -u pideploy-wifi-dhcp --no-pager | tail -20"
            )
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn wifi_joins_gets_an_address_and_survives_a_wrong_passphrase() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (key, public) = keypair(w);
    let (good, bad, sae, hidden) = (
        w.join("good/pi.toml"),
        w.join("bad/pi.toml"),
        w.join("sae/pi.toml"),
        w.join("hidden/pi.toml"),
    );
    // The last: a hidden network preferred over another one in range, and a static address.
    let hidden_more = r#"hidden = true
priority = 5

[[network.wifi.networks]]
ssid = "pideploy other"
psk_file = "wifi.psk"
priority = 1

[network.wifi.ip]
dhcp = false
address = "192.168.77.50/24"
gateway = "192.168.77.1"
dns = ["192.168.77.1"]"#;
    for (cfg, psk, security, more) in [
        (&good, PASSPHRASE, "wpa2", ""),
        (&bad, "not the passphrase", "wpa2", ""),
        (&sae, PASSPHRASE, "wpa3", ""),
        (&hidden, PASSPHRASE, "wpa2", hidden_more),
    ] {
        let dir = cfg.parent().unwrap();
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("wifi.psk"), format!("{psk}\n")).unwrap();
        fs::write(cfg, config_with(&public, "wifi.psk", security, more)).unwrap();
    }
    let lock = w.join("good/pideploy.lock");
    let (cache, store) = (w.join("cache"), w.join("store"));
    lock_and_import(&good, &lock, &cache, &store);
    fs::copy(&lock, w.join("bad/pideploy.lock")).unwrap();
    fs::copy(&lock, w.join("sae/pideploy.lock")).unwrap();
    fs::copy(&lock, w.join("hidden/pideploy.lock")).unwrap();
    let pd = || {
        let mut c = pideploy();
        env_for(&mut c, &cache, &store);
        c
    };
    // A passphrase WPA2 cannot have is refused before anything is built, naming the field.
    let short = w.join("short");
    fs::create_dir_all(&short).unwrap();
    fs::write(short.join("wifi.psk"), "seven77\n").unwrap();
    fs::write(short.join("pi.toml"), config(&public, "wifi.psk", "wpa2")).unwrap();
    fs::copy(&lock, short.join("pideploy.lock")).unwrap();
    let out = pd()
        .args(["image", "-o"])
        .arg(short.join("x.img"))
        .arg("-c")
        .arg(short.join("pi.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("network.wifi.networks[0].psk_file")
            && err.contains("8 to 63"),
        "{err}"
    );
    assert!(!short.join("x.img").exists());

    let img = w.join("pi.img");
    run(pd().arg("image").arg("-c").arg(&good).arg("-o").arg(&img));
    // The passphrase is on the card (it has to be, for a headless first boot) but nowhere in the
    // store the image was built from.
    let grep = std::process::Command::new("grep")
        .args(["-rqF", PASSPHRASE])
        .arg(&store)
        .status()
        .unwrap();
    assert_eq!(grep.code(), Some(1), "the passphrase is in the store");

    let mut vm = Guest::start(&img, w.join("console.log"), Duration::from_secs(900), 3);
    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(200));
    let known = vm.known_hosts(w);
    let ssh = |vm: &Guest, cmd: &str| vm.ssh(&known, &key, "pi", cmd);
    assert_eq!(vm.system_state(&known, &key, "pi"), "running");
    assert_eq!(
        ssh(
            &vm,
            "sudo -n stat -c '%a %U' /var/lib/pideploy/wifi/psk-0 /var/lib/pideploy/wifi"
        ),
        "400 root\n700 root"
    );
    assert_eq!(
        ssh(&vm, "sudo -n systemctl is-active pideploy-wifi"),
        "active"
    );

    // 1. The access point comes up; wlan0 joins it and gets an address from it.
    ssh(
        &vm,
        &format!("sudo -n sh -c '{}'", AP_SETUP.replace('\'', "'\\''")),
    );
    // `|| true`: while wpa_supplicant restarts, wpa_cli has no one to ask.
    let status = "sudo -n wpa_cli -p /run/wpa_supplicant -i wlan0 status || true";
    wait_for(
        &vm,
        &ssh,
        status,
        "wpa_state=COMPLETED",
        "wlan0 never associated",
    );
    assert!(ssh(&vm, status).contains("ssid=pideploy test"));
    wait_for(
        &vm,
        &ssh,
        "/bin/ip -4 addr show wlan0",
        "inet 192.168.77.1",
        "wlan0 got no DHCP lease",
    );
    // Traffic over the simulated air, and the wired default route still first.
    assert!(ssh(&vm, "sudo -n ping -c 3 -W 5 -I wlan0 192.168.77.1").contains("3 packets received"));
    let routes = ssh(&vm, "/bin/ip route show default");
    assert!(
        routes.lines().next().unwrap_or("").contains("dev eth0"),
        "{routes}"
    );
    assert!(routes.contains("dev wlan0 metric 600"), "{routes}");
    // Never in argv (the pattern is written so that this command's own argv does not match).
    assert_eq!(
        ssh(
            &vm,
            "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -c 'battery[ ]staple' || true"
        ),
        "0"
    );

    // 2. A wrong passphrase: the switch succeeds over Ethernet, wpa_supplicant restarts with the
    // new one and says why it cannot join.
    let target = format!("pi@127.0.0.1:{}", vm.port);
    let deploy = |cfg: &Path| {
        let mut c = pd();
        c.arg("switch")
            .arg("-c")
            .arg(cfg)
            .args(["--target", &target, "-i"])
            .arg(&key)
            .arg("--known-hosts")
            .arg(&known)
            // Emulated on a shared CPU, a restart of wpa_supplicant can hold up sshd's handshake
            // for longer than a Pi ever would; this test is about Wi-Fi, not the window.
            .args(["--confirm-timeout", "90"]);
        String::from_utf8_lossy(&run(&mut c).stderr).into_owned()
    };
    deploy(&bad);
    wait_for(
        &vm,
        &ssh,
        "sudo -n journalctl -u pideploy-wifi --no-pager -n 50",
        "reason=WRONG_KEY",
        "no wrong-key line after the switch",
    );
    assert!(!ssh(&vm, status).contains("wpa_state=COMPLETED"));
    assert_eq!(
        ssh(&vm, "hostname"),
        "wifipi",
        "still reachable over Ethernet"
    );

    // 3. The right passphrase again: it joins again.
    deploy(&good);
    wait_for(&vm, &ssh, status, "wpa_state=COMPLETED", "no reconnection");

    // 4. WPA3: a switch to `security = "wpa3"` changes wpa_supplicant's unit, so activation
    // restarts it; then the access point goes SAE-only (with protected management frames) and it
    // joins. (In this order SAE's arithmetic, slow under emulation, runs after the deploy's
    // confirmation rather than starving it.)
    deploy(&sae);
    ssh(
        &vm,
        &format!("sudo -n sh -c '{}'", AP_TO_SAE.replace('\'', "'\\''")),
    );
    wait_for(
        &vm,
        &ssh,
        status,
        "key_mgmt=SAE",
        "no WPA3 (SAE) association",
    );
    assert!(ssh(&vm, status).contains("wpa_state=COMPLETED"));

    // 5. The access point hides its name (WPA2 again); a switch to a config where that network is
    // `hidden` (probed by name) and preferred over another, with a static address: joins, and the
    // lease from before gives way to the static address (DHCP unit stopped, address unit started).
    ssh(
        &vm,
        &format!("sudo -n sh -c '{}'", AP_HIDDEN.replace('\'', "'\\''")),
    );
    deploy(&hidden);
    wait_for(
        &vm,
        &ssh,
        status,
        "key_mgmt=WPA2-PSK",
        "no association with the hidden network",
    );
    assert!(ssh(&vm, status).contains("ssid=pideploy test"));
    wait_for(
        &vm,
        &ssh,
        "/bin/ip -4 addr show wlan0",
        "inet 192.168.77.50/24",
        "no static address on wlan0",
    );
    assert!(
        !ssh(&vm, "/bin/ip -4 addr show wlan0").contains("inet 192.168.77.1"),
        "the old lease stays"
    );
    assert_eq!(
        ssh(
            &vm,
            "sudo -n systemctl is-active pideploy-wifi-address pideploy-wifi-dhcp || true"
        ),
        "active\ninactive"
    );
    assert!(ssh(&vm, "sudo -n ping -c 2 -W 5 -I wlan0 192.168.77.1").contains("2 packets received"));
    assert!(ssh(&vm, "cat /run/resolv.conf").ends_with("nameserver 192.168.77.1"));
    vm.power_off(&known, &key, "pi");
}
