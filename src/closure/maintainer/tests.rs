//! The postinst reader on excerpts of real Debian bookworm postinsts (fixtures name package and
//! version), and on crafted lines for each rule.

use super::*;

fn fixture(name: &str) -> &'static str {
    match name {
        "mosquitto" => include_str!("../../../tests/fixtures/postinst/mosquitto.postinst"),
        "chrony" => include_str!("../../../tests/fixtures/postinst/chrony.postinst"),
        "avahi-daemon" => include_str!("../../../tests/fixtures/postinst/avahi-daemon.postinst"),
        "nginx-common" => include_str!("../../../tests/fixtures/postinst/nginx-common.postinst"),
        "dbus-system-bus-common" => {
            include_str!("../../../tests/fixtures/postinst/dbus-system-bus-common.postinst")
        }
        other => panic!("no fixture {other}"),
    }
}

fn user(name: &str, group: Option<&str>, home: &str, gecos: &str) -> UserReq {
    UserReq {
        name: name.into(),
        uid: None,
        group: group.map(str::to_string),
        home: home.into(),
        shell: "/usr/sbin/nologin".into(),
        gecos: gecos.into(),
    }
}

fn owner(path: &str, user: Option<&str>, group: Option<&str>, mode: Option<u32>) -> PathOwner {
    PathOwner {
        path: path.into(),
        user: user.map(str::to_string),
        group: group.map(str::to_string),
        mode,
        recursive: false,
    }
}

#[test]
fn mosquitto_user_group_owners_and_unit() {
    let f = from_postinst("mosquitto", fixture("mosquitto"));
    assert_eq!(
        f.groups,
        [GroupReq {
            name: "mosquitto".into(),
            gid: None
        }]
    );
    assert_eq!(
        f.users,
        [user(
            "mosquitto",
            Some("mosquitto"),
            "/var/lib/mosquitto",
            ""
        )]
    );
    assert_eq!(
        f.ownership,
        [
            owner("/var/lib/mosquitto", Some("mosquitto"), None, None),
            owner("/var/log/mosquitto", Some("mosquitto"), None, None),
            owner(
                "/var/log/mosquitto/mosquitto.log",
                Some("mosquitto"),
                None,
                None
            ),
        ]
    );
    assert_eq!(f.enable_units, ["mosquitto.service"]);
    assert!(f.unsupported.is_empty(), "{:?}", f.unsupported);
}

#[test]
fn chrony_user_and_the_statoverride_loop() {
    let f = from_postinst("chrony", fixture("chrony"));
    assert_eq!(
        f.users,
        [user("_chrony", None, "/var/lib/chrony", "Chrony daemon")]
    );
    assert!(f.groups.is_empty());
    // chrony-wait.service is only re-enabled when it was installed before (dh_installsystemd --no-enable).
    assert_eq!(f.enable_units, ["chrony.service"]);
    // The loop runs once per directory; `[ "$d" = "/etc/chrony/chrony.keys" ]` picks the branch.
    assert_eq!(
        f.ownership,
        [
            owner(
                "/var/lib/chrony",
                Some("_chrony"),
                Some("_chrony"),
                Some(0o750)
            ),
            owner(
                "/var/log/chrony",
                Some("_chrony"),
                Some("_chrony"),
                Some(0o750)
            ),
            owner(
                "/etc/chrony/chrony.keys",
                Some("root"),
                Some("_chrony"),
                Some(0o640)
            ),
        ]
    );
    assert!(f.unsupported.is_empty(), "{:?}", f.unsupported);
}

#[test]
fn loops_over_unknown_words_and_undecidable_tests() {
    let f = from_postinst(
        "p",
        "for d in $(find /var/lib/x); do
  chown svc \"$d\"
done
         for f in /var/lib/*; do chown svc \"$f\"; done
         x=/var/a
         if [ \"$x\" != /var/a ]; then chown bad /var/never
         elif [ -e /y ]; then chown maybe /var/maybe
         else chown maybe2 /var/maybe2; fi
         if [ \"$x\" = /var/a ]; then chown one /var/one; elif [ -e /z ]; then chown no /var/no; else chown no /var/no2; fi
         for u in a b; do for v in 1 2; do chown $u /var/$v; done; done
         echo done
         chown after /var/after
",
    );
    let owners: Vec<(&str, &str)> = f
        .ownership
        .iter()
        .map(|o| (o.path.as_str(), o.user.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        owners,
        [
            ("/var/maybe", "maybe"),
            ("/var/maybe2", "maybe2"),
            ("/var/one", "one"),
            ("/var/1", "b"),
            ("/var/2", "b"),
            ("/var/after", "after"),
        ]
    );
    assert_eq!(f.unsupported.len(), 2, "{:?}", f.unsupported);
    assert!(
        f.unsupported[0].contains("line 2") && f.unsupported[1].contains("line 4"),
        "{:?}",
        f.unsupported
    );
}

#[test]
fn avahi_user_with_own_group_netdev_and_two_units() {
    let f = from_postinst("avahi-daemon", fixture("avahi-daemon"));
    assert_eq!(
        f.users,
        [user(
            "avahi",
            None,
            "/run/avahi-daemon",
            "Avahi mDNS daemon"
        )]
    );
    assert_eq!(
        f.groups,
        [GroupReq {
            name: "netdev".into(),
            gid: None
        }]
    );
    assert_eq!(
        f.enable_units,
        ["avahi-daemon.service", "avahi-daemon.socket"]
    );
    assert!(f.unsupported.is_empty(), "{:?}", f.unsupported);
}

#[test]
fn nginx_owners_come_from_variables_assigned_before() {
    let f = from_postinst("nginx-common", fixture("nginx-common"));
    assert_eq!(
        f.ownership,
        [
            owner("/var/log/nginx", Some("root"), Some("adm"), Some(0o755)),
            owner(
                "/var/log/nginx/access.log",
                Some("www-data"),
                Some("adm"),
                Some(0o640)
            ),
            owner(
                "/var/log/nginx/error.log",
                Some("www-data"),
                Some("adm"),
                Some(0o640)
            ),
        ]
    );
    assert_eq!(f.enable_units, ["nginx.service"]);
    assert!(f.users.is_empty() && f.groups.is_empty());
    assert!(f.unsupported.is_empty(), "{:?}", f.unsupported);
}

#[test]
fn dbus_messagebus_through_in_sysroot_and_a_variable() {
    let f = from_postinst("dbus-system-bus-common", fixture("dbus-system-bus-common"));
    assert_eq!(f.users, [user("messagebus", None, "/nonexistent", "")]);
    assert!(f.unsupported.is_empty(), "{:?}", f.unsupported);
}

/// Lines 41-51 of the postinst of systemd 252.39-1~deb12u2 (Debian bookworm).
const SYSTEMD_ENABLES: &str = r#"
# Enable getty and remote-fs.target by default on new installs
if [ -z "$2" ]; then
    systemctl ${DPKG_ROOT:+--root="$DPKG_ROOT"} enable getty@tty1.service || true
    systemctl ${DPKG_ROOT:+--root="$DPKG_ROOT"} enable remote-fs.target || true
fi

# Enable systemd-pstore by default on new installs and upgrades, see #952767
if dpkg --compare-versions "$2" lt "245.4-4~"; then
    systemctl ${DPKG_ROOT:+--root="$DPKG_ROOT"} enable systemd-pstore.service || true
fi
"#;

#[test]
fn systemd_enables_getty_through_systemctl() {
    let f = from_postinst("systemd", SYSTEMD_ENABLES);
    assert_eq!(
        f.enable_units,
        [
            "getty@tty1.service",
            "remote-fs.target",
            "systemd-pstore.service"
        ]
    );
    assert!(f.unsupported.is_empty(), "{:?}", f.unsupported);
    let f = from_postinst(
        "p",
        "systemctl --user enable a.service\nsystemctl ${X:+y} enable b\n",
    );
    assert!(f.enable_units.is_empty());
    assert_eq!(f.unsupported.len(), 1, "{:?}", f.unsupported);
}

#[test]
fn conditions_joined_by_or_are_not_judged_from_their_first_test() {
    let f = from_postinst(
        "p",
        "x=a\nif [ \"$x\" = b ] || [ -e /y ]; then chown u /var/1; fi\n\
         if [ \"$x\" = b ] && [ -e /y ]; then chown u /var/2; fi\n\
         if [ \"$x\" = a ] && [ -e /y ]; then chown u /var/3; else chown u /var/4; fi\n\
         y=${x:-z}${unset_is_unknown:-}\nchown u /var/$y\nchown u /var/${x:+q}${x-r}\n",
    );
    let paths: Vec<&str> = f.ownership.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(paths, ["/var/1", "/var/3", "/var/4", "/var/qa"]);
    assert_eq!(f.unsupported.len(), 1, "{:?}", f.unsupported);
}

#[test]
fn adduser_forms() {
    let f = from_postinst(
        "p",
        "adduser --system --uid 120 --shell=/bin/false --gecos 'A b' sys1\n\
         adduser --system --home /srv/x sys2\n\
         adduser sys1 dialout\n\
         addgroup --system --gid 130 g1\n\
         adduser --system --group --ingroup x bad1\n\
         adduser --system --gid 5 bad2\n\
         adduser alice\n\
         addgroup plain\n\
         adduser --system --frobnicate bad3\n\
         adduser --system \"$(whoami)\"\n",
    );
    assert_eq!(
        f.users,
        [
            UserReq {
                uid: Some(120),
                shell: "/bin/false".into(),
                ..user("sys1", Some("nogroup"), "/nonexistent", "A b")
            },
            user("sys2", Some("nogroup"), "/srv/x", ""),
        ]
    );
    assert_eq!(f.members, [("sys1".to_string(), "dialout".to_string())]);
    assert_eq!(
        f.groups,
        [GroupReq {
            name: "g1".into(),
            gid: Some(130)
        }]
    );
    let lines: Vec<&str> = f
        .unsupported
        .iter()
        .map(|u| u.split(':').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        lines,
        [
            " postinst line 5",
            " postinst line 6",
            " postinst line 7",
            " postinst line 8",
            " postinst line 9",
            " postinst line 10"
        ]
    );
    assert!(
        f.unsupported[0].ends_with("mutually exclusive"),
        "{}",
        f.unsupported[0]
    );
    assert!(
        f.unsupported[5].contains("$(whoami)"),
        "{}",
        f.unsupported[5]
    );
}

#[test]
fn useradd_groupadd_usermod() {
    let f = from_postinst(
        "p",
        "useradd -rM -g svc -d /var/lib/svc -s /bin/false -c 'Svc' -u 150 -G a,b svc\n\
         useradd --system plain\n\
         groupadd -r -g 160 svc\n\
         groupadd --system -f other\n\
         usermod -aG c svc\n\
         usermod -G d svc\n\
         useradd notsystem\n",
    );
    assert_eq!(
        f.users,
        [
            UserReq {
                name: "svc".into(),
                uid: Some(150),
                group: Some("svc".into()),
                home: "/var/lib/svc".into(),
                shell: "/bin/false".into(),
                gecos: "Svc".into(),
            },
            UserReq {
                name: "plain".into(),
                uid: None,
                group: None,
                home: "/home/plain".into(),
                shell: "/bin/sh".into(),
                gecos: String::new(),
            },
        ]
    );
    assert_eq!(
        f.groups,
        [
            GroupReq {
                name: "svc".into(),
                gid: Some(160)
            },
            GroupReq {
                name: "other".into(),
                gid: None
            }
        ]
    );
    let m: Vec<(&str, &str)> = f
        .members
        .iter()
        .map(|(u, g)| (u.as_str(), g.as_str()))
        .collect();
    assert_eq!(m, [("svc", "a"), ("svc", "b"), ("svc", "c")]);
    assert_eq!(f.unsupported.len(), 2, "{:?}", f.unsupported);
}

#[test]
fn alternatives_with_slaves() {
    let f = from_postinst(
        "p",
        "update-alternatives --quiet --install /usr/bin/editor editor /usr/bin/vim.tiny 15 \\\n\
           --slave /usr/share/man/man1/editor.1.gz editor.1.gz /usr/share/man/man1/vim.1.gz\n\
         update-alternatives --install /usr/bin/x x /usr/bin/y high\n\
         update-alternatives --remove x /usr/bin/y\n",
    );
    assert_eq!(
        f.alternatives,
        [Alternative {
            link: "/usr/bin/editor".into(),
            name: "editor".into(),
            path: "/usr/bin/vim.tiny".into(),
            priority: 15,
            slaves: vec![(
                "/usr/share/man/man1/editor.1.gz".into(),
                "editor.1.gz".into(),
                "/usr/share/man/man1/vim.1.gz".into()
            )],
        }]
    );
    assert_eq!(f.unsupported.len(), 1, "{:?}", f.unsupported);
    assert!(f.unsupported[0].contains("line 3"), "{:?}", f.unsupported);
}

#[test]
fn owners_merge_and_bad_paths_are_reported() {
    let f = from_postinst(
        "p",
        "chown -R svc:svc /var/lib/svc\nchmod 0750 /var/lib/svc\n\
         chgrp adm /var/log/svc\nchown svc relative\nchown svc /var/lib/*\nchmod u+x /x\n\
         dpkg-statoverride --list /y\n",
    );
    assert_eq!(
        f.ownership,
        [
            PathOwner {
                recursive: true,
                ..owner("/var/lib/svc", Some("svc"), Some("svc"), Some(0o750))
            },
            owner("/var/log/svc", None, Some("adm"), None),
        ]
    );
    assert_eq!(f.unsupported.len(), 3, "{:?}", f.unsupported);
}

#[test]
fn hostile_text_does_not_panic() {
    for s in [
        "adduser --system",
        "adduser --home",
        "if if if fi fi fi fi fi",
        "useradd -r -u",
        "update-alternatives --install a",
        "chown",
        "x=$(",
        "\u{0}\u{ff}adduser --system \u{1F600}",
    ] {
        let _ = from_postinst("p", s);
    }
}

#[test]
fn nested_and_long_loops_are_bounded() {
    let words: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let header = format!("for v in {}; do\n", words.join(" "));
    let script = format!("{}chown a /var/x\n{}", header.repeat(6), "done\n".repeat(6));
    let f = from_postinst("p", &script);
    assert_eq!(f.ownership.len(), 1);
    assert!(
        f.unsupported[0].contains("the rest is not read"),
        "{:?}",
        f.unsupported
    );
    let deep = format!("{}chown a /var/x\n", "for v in 1; do\n".repeat(100_000));
    let f = from_postinst("p", &deep);
    assert!(
        f.unsupported[0].contains("loops nest deeper"),
        "{:?}",
        f.unsupported
    );
}

#[test]
fn sysusers_lines() {
    let text = "# comment\n\
        g systemd-journal - -\n\
        u systemd-network - \"systemd Network Management\"\n\
        u sync 4:65534 - /bin /bin/sync\n\
        u root 0 - /root\n\
        u odd 200:kmem\n\
        m alice kmem\n\
        r - 500-900\n";
    let got = parse_sysusers("x.conf", text).unwrap();
    assert_eq!(
        got,
        [
            Sysusers::Group {
                name: "systemd-journal".into(),
                gid: None
            },
            Sysusers::User(SysUser {
                name: "systemd-network".into(),
                uid: None,
                group: None,
                gecos: "systemd Network Management".into(),
                home: "/".into(),
                shell: "/usr/sbin/nologin".into(),
            }),
            Sysusers::User(SysUser {
                name: "sync".into(),
                uid: Some(4),
                group: Some(PrimaryGroup::Id(65534)),
                gecos: String::new(),
                home: "/bin".into(),
                shell: "/bin/sync".into(),
            }),
            Sysusers::User(SysUser {
                name: "root".into(),
                uid: Some(0),
                group: None,
                gecos: String::new(),
                home: "/root".into(),
                shell: "/bin/sh".into(),
            }),
            Sysusers::User(SysUser {
                name: "odd".into(),
                uid: Some(200),
                group: Some(PrimaryGroup::Name("kmem".into())),
                gecos: String::new(),
                home: "/".into(),
                shell: "/usr/sbin/nologin".into(),
            }),
            Sysusers::Member {
                user: "alice".into(),
                group: "kmem".into()
            },
            Sysusers::Range {
                low: 500,
                high: 900
            },
        ]
    );
}

#[test]
fn sysusers_errors_name_file_and_line() {
    for (text, want) in [
        ("g ok -\nx name -\n", "x.conf:2: line type \"x\""),
        ("u bad:name -\n", "x.conf:1: \"bad:name\""),
        ("u n abc\n", "x.conf:1: \"abc\" is not a numeric id"),
        ("u n - \"open\n", "x.conf:1: unterminated"),
        ("u %b -\n", "x.conf:1: specifier"),
        ("r - 9-1\n", "x.conf:1: range 9-1 is empty"),
        ("m alice\n", "x.conf:1: `m` needs a group"),
    ] {
        let e = parse_sysusers("x.conf", text).unwrap_err();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}
