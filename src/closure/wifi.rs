//! Wi-Fi on wlan0: Debian's wpa_supplicant joins the configured networks, DHCP (or a static
//! address) follows, the regulatory domain is set for cfg80211. Nothing secret is here: each
//! network's passphrase is a secret file at [`pideploy_config::wifi_psk_path`] (root, 0400), put
//! there by the image builder or a switch's secret set, and wpa_supplicant's configuration is
//! assembled from it at start into /run, root-only.

use pideploy_config::{Ethernet, HostConfig, Wifi, WifiSecurity, WIFI_PSK_DIR as PSK_DIR};

use sha2::Digest;

use super::etc::GenFile;

/// The device unit systemd has for wlan0 once the driver made it (udev tags network devices).
const WLAN0_DEVICE: &str = "sys-subsystem-net-devices-wlan0.device";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line per network for the `wpa-conf` script: `INDEX SSID-AS-HEX PRIORITY HIDDEN SECURITY`
/// (hex: an SSID may hold any byte, and wpa_supplicant takes `ssid=` in hex unquoted).
fn network_lines(wifi: &Wifi) -> String {
    wifi.networks
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let sec = match n.security {
                WifiSecurity::Wpa2 => "wpa2",
                WifiSecurity::Wpa3 => "wpa3",
                WifiSecurity::Open => "open",
            };
            format!(
                "{i} {} {} {} {sec}\n",
                hex(n.ssid.as_bytes()),
                n.priority,
                u8::from(n.hidden)
            )
        })
        .collect()
}

/// wpa_supplicant.conf(5) from the network lines and the passphrase files, written to /run with a
/// umask that keeps it root's. A network whose passphrase has not arrived is left out with a line.
fn conf_script(busybox: &str, country: &str) -> String {
    format!(
        r#"# wpa-conf: assembles wpa_supplicant's configuration (pideploy, from pi.toml [network.wifi]).
set -eu
umask 077
bb={busybox}
out=/run/pideploy/wpa_supplicant.conf
$bb mkdir -p /run/pideploy
{{
    echo "ctrl_interface=/run/wpa_supplicant"
    echo "country={country}"
    while read -r i ssid prio hidden sec; do
        psk={dir}/psk-$i
        if [ "$sec" != open ] && [ ! -s "$psk" ]; then
            echo "pideploy: Wi-Fi network $i: no passphrase at $psk (it comes with the image or a switch); skipped" >&2
            continue
        fi
        echo "network={{"
        echo "	ssid=$ssid"
        echo "	priority=$prio"
        [ "$hidden" != 1 ] || echo "	scan_ssid=1"
        case $sec in
            wpa2) echo "	key_mgmt=WPA-PSK WPA-PSK-SHA256"; echo "	psk=\"$($bb cat "$psk")\"" ;;
            wpa3) echo "	key_mgmt=SAE"; echo "	ieee80211w=2"; echo "	sae_password=\"$($bb cat "$psk")\"" ;;
            *) echo "	key_mgmt=NONE" ;;
        esac
        echo "}}"
    done < /etc/pideploy/wifi.networks
}} > "$out.tmp"
$bb mv -f "$out.tmp" "$out"
"#,
        dir = PSK_DIR,
    )
}

/// The address unit: DHCP, or the static address applied by the same script a lease would be.
fn address_unit(ip: &Ethernet) -> (String, String) {
    let unit = |description: &str, service: &str| {
        format!(
            "[Unit]\n\
             Description={description}\n\
             BindsTo={WLAN0_DEVICE}\n\
             After={WLAN0_DEVICE} pideploy-wifi.service\n\
             Before=shutdown.target\n\
             Conflicts=shutdown.target\n\
             \n\
             [Service]\n\
             Environment=METRIC=600\n\
             {service}\
             StandardOutput=journal+console\n"
        )
    };
    if ip.dhcp {
        (
            "pideploy-wifi-dhcp.service".into(),
            unit(
                "DHCP client on wlan0 (busybox udhcpc)",
                "ExecStart=/bin/udhcpc -f -i wlan0 -A 5 -s /run/current-system/udhcpc.script\n\
                 Restart=always\n\
                 RestartSec=1\n",
            ),
        )
    } else {
        let address = ip.address.clone().unwrap_or_default();
        let (addr, len) = address.split_once('/').unwrap_or((&address, "24"));
        let env = [
            ("interface", "wlan0".to_string()),
            ("ip", addr.to_string()),
            ("mask", len.to_string()),
            ("router", ip.gateway.clone().unwrap_or_default()),
            ("dns", ip.dns.join(" ")),
            ("how", "static".into()),
        ];
        let env: String = env
            .iter()
            .map(|(k, v)| format!("Environment=\"{k}={v}\"\n"))
            .collect();
        (
            "pideploy-wifi-address.service".into(),
            unit(
                "Static address on wlan0",
                &format!(
                    "{env}Type=oneshot\n\
                     RemainAfterExit=yes\n\
                     ExecStart=/run/current-system/udhcpc.script bound\n"
                ),
            ),
        )
    }
}

/// Files under /etc for Wi-Fi, by path relative to /etc (none without `[network.wifi]`).
pub fn plan(cfg: &HostConfig, busybox: &str) -> Vec<(String, GenFile)> {
    let Some(wifi) = &cfg.network.wifi else {
        return Vec::new();
    };
    let mut out = vec![
        (
            "pideploy/wifi.networks".to_string(),
            GenFile::text(network_lines(wifi)),
        ),
        (
            "pideploy/wpa-conf".into(),
            GenFile::text(conf_script(busybox, &wifi.country)),
        ),
        // The regulatory domain as cfg80211 loads (wpa_supplicant's `country=` sets it again):
        // https://raspberrypi.github.io/rpi-image-gen/layer/wireless-regulatory.html
        (
            "modprobe.d/pideploy-wifi.conf".into(),
            GenFile::text(format!(
                "# Generated by pideploy from pi.toml [network.wifi].\noptions cfg80211 ieee80211_regdom={}\n",
                wifi.country
            )),
        ),
    ];
    // The unit names a digest of what wpa-conf reads from /etc, so a switch that changes the
    // networks changes the unit, and activation restarts it (the passphrases are not in it: a
    // change to them restarts it through pideploy-wifi-psk.path).
    let digest = hex(&sha2::Sha256::digest(
        format!("{}\n{}", network_lines(wifi), wifi.country).as_bytes(),
    ));
    let supplicant = format!(
        "# networks {digest}\n\
         [Unit]\n\
         Description=Wi-Fi on wlan0 (wpa_supplicant)\n\
         BindsTo={WLAN0_DEVICE}\n\
         After={WLAN0_DEVICE}\n\
         Wants=network.target\n\
         Before=network.target shutdown.target\n\
         Conflicts=shutdown.target\n\
         \n\
         [Service]\n\
         ExecStartPre={busybox} sh /etc/pideploy/wpa-conf\n\
         ExecStart=/sbin/wpa_supplicant -i wlan0 -D nl80211 -c /run/pideploy/wpa_supplicant.conf\n\
         Restart=always\n\
         RestartSec=2\n"
    );
    // A switch that changes a passphrase writes it under PSK_DIR (the secret set); wpa_supplicant
    // reads passphrases only at start, so a change there restarts it (systemd.path(5): a directory
    // watch sees the rename that puts a secret in place).
    out.push((
        "systemd/system/pideploy-wifi-psk.path".into(),
        GenFile::text(format!(
            "[Unit]\n\
             Description=pideploy: Wi-Fi passphrases changed\n\
             \n\
             [Path]\n\
             PathChanged={PSK_DIR}\n\
             Unit=pideploy-wifi-reload.service\n"
        )),
    ));
    out.push((
        "systemd/system/pideploy-wifi-reload.service".into(),
        GenFile::text(
            "[Unit]\n\
             Description=pideploy: wpa_supplicant restarted for new passphrases\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             ExecStart=/bin/systemctl try-restart pideploy-wifi.service\n",
        ),
    ));
    out.push((
        "systemd/system/multi-user.target.wants/pideploy-wifi-psk.path".into(),
        GenFile::Link("/etc/systemd/system/pideploy-wifi-psk.path".into()),
    ));
    let (addr_name, addr_text) = address_unit(&wifi.ip);
    // Started when the driver makes wlan0 (udev, at boot or later), stopped when it goes.
    for (name, text) in [
        ("pideploy-wifi.service".to_string(), supplicant),
        (addr_name, addr_text),
    ] {
        out.push((
            format!("systemd/system/{WLAN0_DEVICE}.wants/{name}"),
            GenFile::Link(format!("/etc/systemd/system/{name}")),
        ));
        out.push((format!("systemd/system/{name}"), GenFile::text(text)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> HostConfig {
        HostConfig::from_toml_str(
            &format!("hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\n{extra}"),
            "test",
            std::path::Path::new("/cfg"),
        )
        .unwrap()
    }

    fn text(files: &[(String, GenFile)], path: &str) -> String {
        match &files.iter().find(|(p, _)| p == path).unwrap().1 {
            GenFile::File { data, .. } => String::from_utf8(data.clone()).unwrap(),
            GenFile::Link(l) => l.clone(),
        }
    }

    #[test]
    fn networks_are_lines_with_hex_ssids_and_no_passphrase() {
        let cfg = config(
            "[[network.wifi.networks]]\nssid = \"my net\\\"\"\npsk_file = \"p\"\npriority = 3\nhidden = true\n\
             [[network.wifi.networks]]\nssid = \"cafe\"\nsecurity = \"open\"\n",
        );
        let files = plan(&cfg, "/bb");
        assert_eq!(
            text(&files, "pideploy/wifi.networks"),
            "0 6d79206e657422 3 1 wpa2\n1 63616665 0 0 open\n"
        );
        assert!(text(&files, "modprobe.d/pideploy-wifi.conf").contains("ieee80211_regdom=DE\n"));
        assert!(text(&files, "pideploy/wpa-conf").contains("country=DE"));
        assert_eq!(
            text(
                &files,
                "systemd/system/sys-subsystem-net-devices-wlan0.device.wants/pideploy-wifi-dhcp.service"
            ),
            "/etc/systemd/system/pideploy-wifi-dhcp.service"
        );
        assert!(!files.iter().any(|(p, _)| p.contains("address")));
    }

    #[test]
    fn the_unit_changes_with_the_networks_so_a_switch_restarts_it() {
        let unit = |extra: &str| {
            text(
                &plan(
                    &config(&format!(
                        "[[network.wifi.networks]]\nssid = \"x\"\npsk_file = \"p\"\n{extra}"
                    )),
                    "/bb",
                ),
                "systemd/system/pideploy-wifi.service",
            )
        };
        assert_eq!(unit(""), unit(""));
        assert_ne!(unit(""), unit("priority = 2"));
        assert_ne!(unit(""), unit("security = \"wpa3\""));
    }

    #[test]
    fn static_address_goes_through_the_lease_script() {
        let cfg = config(
            "[[network.wifi.networks]]\nssid = \"x\"\nsecurity = \"open\"\n\
             [network.wifi.ip]\ndhcp = false\naddress = \"192.168.7.5/24\"\ngateway = \"192.168.7.1\"\ndns = [\"192.168.7.1\", \"9.9.9.9\"]\n",
        );
        let unit = text(
            &plan(&cfg, "/bb"),
            "systemd/system/pideploy-wifi-address.service",
        );
        for want in [
            "Environment=\"ip=192.168.7.5\"",
            "Environment=\"mask=24\"",
            "Environment=\"router=192.168.7.1\"",
            "Environment=\"dns=192.168.7.1 9.9.9.9\"",
            "Environment=METRIC=600",
            "ExecStart=/run/current-system/udhcpc.script bound",
        ] {
            assert!(unit.contains(want), "{want}: {unit}");
        }
    }

    #[test]
    fn no_wifi_no_files() {
        let cfg =
            HostConfig::from_toml_str("hostname = \"pi\"", "t", std::path::Path::new("/")).unwrap();
        assert!(plan(&cfg, "/bb").is_empty());
    }
}
