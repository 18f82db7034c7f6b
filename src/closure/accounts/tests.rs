//! The account planner on Debian's real tables (base-passwd 3.6.1, systemd 252 and dbus sysusers.d
//! files, postinst excerpts; see the fixture headers) and on crafted conflicts.

use super::*;
use crate::closure::maintainer::{from_postinst, parse_sysusers, GroupReq, UserReq};

macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!("../../../tests/fixtures/", $path))
    };
}

fn base() -> BasePasswd {
    BasePasswd {
        passwd_master: fixture!("base-passwd/passwd.master").into(),
        group_master: fixture!("base-passwd/group.master").into(),
    }
}

fn sysusers() -> Vec<(String, Vec<Sysusers>)> {
    [
        ("basic.conf", fixture!("sysusers/basic.conf")),
        (
            "systemd-journal.conf",
            fixture!("sysusers/systemd-journal.conf"),
        ),
        (
            "systemd-network.conf",
            fixture!("sysusers/systemd-network.conf"),
        ),
        ("dbus.conf", fixture!("sysusers/dbus.conf")),
    ]
    .into_iter()
    .map(|(f, t)| (f.to_string(), parse_sysusers(f, t).unwrap()))
    .collect()
}

fn postinsts() -> Vec<(String, MaintainerFacts)> {
    [
        ("mosquitto", fixture!("postinst/mosquitto.postinst")),
        ("chrony", fixture!("postinst/chrony.postinst")),
        ("avahi-daemon", fixture!("postinst/avahi-daemon.postinst")),
        (
            "dbus-system-bus-common",
            fixture!("postinst/dbus-system-bus-common.postinst"),
        ),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), from_postinst(p, t)))
    .collect()
}

fn pi() -> LoginUser {
    LoginUser {
        name: "pi".into(),
        uid: 1000,
        groups: vec!["sudo".into(), "netdev".into(), "gpio".into()],
        shell: "/bin/sh".into(),
    }
}

fn real() -> AccountInputs {
    AccountInputs {
        base_passwd: Some(base()),
        sysusers: sysusers(),
        postinst: postinsts(),
        login_users: vec![pi()],
    }
}

fn user<'a>(a: &'a Accounts, name: &str) -> &'a Account {
    a.users
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no user {name}"))
}

fn group<'a>(a: &'a Accounts, name: &str) -> &'a Group {
    a.groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name}"))
}

fn ids(a: &Accounts) -> BTreeMap<String, (Option<u32>, Option<u32>)> {
    let mut m: BTreeMap<String, (Option<u32>, Option<u32>)> = BTreeMap::new();
    for u in &a.users {
        m.entry(u.name.clone()).or_default().0 = Some(u.uid);
    }
    for g in &a.groups {
        m.entry(g.name.clone()).or_default().1 = Some(g.gid);
    }
    m
}

#[test]
fn debian_static_ids_and_package_accounts() {
    let a = plan_accounts(&real()).unwrap();
    assert!(
        a.passwd
            .starts_with("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:"),
        "{}",
        a.passwd
    );
    assert!(a.passwd.contains("\nsync:x:4:65534:sync:/bin:/bin/sync\n"));
    assert!(a
        .passwd
        .contains("\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"));
    assert!(a.passwd.ends_with("pi:x:1000:1000::/home/pi:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"));
    assert_eq!(group(&a, "nogroup").gid, 65534);
    assert_eq!(group(&a, "users").gid, 100);
    assert_eq!(group(&a, "sudo").members, ["pi"]);
    assert_eq!(group(&a, "pi").gid, 1000);
    // Each package user has its own group with the same dynamic id.
    for name in [
        "mosquitto",
        "_chrony",
        "avahi",
        "messagebus",
        "systemd-network",
    ] {
        let u = user(&a, name);
        assert!(DYNAMIC.contains(&u.uid), "{name}: {}", u.uid);
        assert_eq!(u.gid, u.uid, "{name}");
        assert_eq!(group(&a, name).gid, u.uid, "{name}");
    }
    // The postinst's home wins over the sysusers.d default `/`, as on Debian.
    assert_eq!(user(&a, "messagebus").home, "/nonexistent");
    assert_eq!(user(&a, "_chrony").gecos, "Chrony daemon");
    assert!(DYNAMIC.contains(&group(&a, "systemd-journal").gid));
    assert!(DYNAMIC.contains(&group(&a, "gpio").gid));
    assert_eq!(group(&a, "netdev").members, ["pi"]);
    // Sorted by id, one shadow line per user, every line well formed.
    let uids: Vec<u32> = a.users.iter().map(|u| u.uid).collect();
    assert!(uids.windows(2).all(|w| w[0] < w[1]), "{uids:?}");
    assert_eq!(a.shadow.lines().count(), a.users.len());
    assert!(a.shadow.lines().all(|l| l.ends_with(":*:1:0:99999:7:::")));
    assert_eq!(a.gshadow.lines().count(), a.groups.len());
    assert!(a.gshadow.contains("\nsudo:*::pi\n"));
}

#[test]
fn adding_a_package_does_not_renumber_others() {
    let before = plan_accounts(&real()).unwrap();
    let mut more = real();
    more.postinst.insert(
        0,
        (
            "newpkg".into(),
            MaintainerFacts {
                users: vec![UserReq {
                    name: "newsvc".into(),
                    uid: None,
                    group: None,
                    home: "/nonexistent".into(),
                    shell: "/usr/sbin/nologin".into(),
                    gecos: String::new(),
                }],
                groups: vec![GroupReq {
                    name: "aaa-extra".into(),
                    gid: None,
                }],
                ..MaintainerFacts::default()
            },
        ),
    );
    let after = plan_accounts(&more).unwrap();
    let (b, mut a) = (ids(&before), ids(&after));
    assert!(a.remove("newsvc").is_some() && a.remove("aaa-extra").is_some());
    assert_eq!(a, b);
}

#[test]
fn input_order_does_not_matter() {
    let mut shuffled = real();
    shuffled.postinst.reverse();
    shuffled.sysusers.reverse();
    assert_eq!(
        plan_accounts(&shuffled).unwrap(),
        plan_accounts(&real()).unwrap()
    );
}

#[test]
fn names_on_one_slot_probe_upwards_in_name_order() {
    // Two names whose hashes pick the same first slot.
    let mut seen = BTreeMap::new();
    let (first, second) = (0..10_000)
        .map(|i| format!("svc{i}"))
        .find_map(|n| seen.insert(slot(&n), n.clone()).map(|old| (old, n)))
        .unwrap();
    let (first, second) = if first < second {
        (first, second)
    } else {
        (second, first)
    };
    let groups = [&second, &first]
        .into_iter()
        .map(|n| GroupReq {
            name: n.clone(),
            gid: None,
        })
        .collect();
    let a = plan_accounts(&AccountInputs {
        postinst: vec![(
            "p".into(),
            MaintainerFacts {
                groups,
                ..Default::default()
            },
        )],
        ..Default::default()
    })
    .unwrap();
    let s = slot(&first);
    let next = if s == *DYNAMIC.end() {
        *DYNAMIC.start()
    } else {
        s + 1
    };
    assert_eq!(group(&a, &first).gid, s);
    assert_eq!(group(&a, &second).gid, next);
}

fn facts(
    groups: &[(&str, Option<u32>)],
    users: &[(&str, Option<u32>, Option<&str>)],
) -> MaintainerFacts {
    MaintainerFacts {
        groups: groups
            .iter()
            .map(|(n, g)| GroupReq {
                name: n.to_string(),
                gid: *g,
            })
            .collect(),
        users: users
            .iter()
            .map(|(n, u, g)| UserReq {
                name: n.to_string(),
                uid: *u,
                group: g.map(str::to_string),
                home: "/nonexistent".into(),
                shell: "/usr/sbin/nologin".into(),
                gecos: String::new(),
            })
            .collect(),
        ..Default::default()
    }
}

fn plan_err(input: AccountInputs) -> String {
    plan_accounts(&input).unwrap_err()
}

#[test]
fn conflicts_are_errors_naming_sources() {
    let e = plan_err(AccountInputs {
        postinst: vec![("pkg-a".into(), facts(&[("svc", Some(130))], &[]))],
        sysusers: vec![(
            "svc.conf".into(),
            parse_sysusers("svc.conf", "g svc 131\n").unwrap(),
        )],
        ..Default::default()
    });
    assert!(
        e.contains("pkg-a's postinst")
            && e.contains("svc.conf")
            && e.contains("130")
            && e.contains("131"),
        "{e}"
    );

    let e = plan_err(AccountInputs {
        base_passwd: Some(base()),
        postinst: vec![(
            "pkg-b".into(),
            facts(&[], &[("svc", Some(33), Some("nogroup"))]),
        )],
        ..Default::default()
    });
    assert!(
        e.contains("id 33") && e.contains("www-data") && e.contains("pkg-b"),
        "{e}"
    );

    let e = plan_err(AccountInputs {
        base_passwd: Some(base()),
        postinst: vec![("pkg-c".into(), facts(&[], &[("pi", None, None)]))],
        login_users: vec![pi()],
        ..Default::default()
    });
    assert!(e.contains("pkg-c's postinst creates user pi"), "{e}");

    let e = plan_err(AccountInputs {
        base_passwd: Some(base()),
        postinst: vec![("pkg-d".into(), facts(&[("big", Some(1000))], &[]))],
        login_users: vec![pi()],
        ..Default::default()
    });
    assert!(e.contains("id 1000"), "{e}");

    let e = plan_err(AccountInputs {
        login_users: vec![LoginUser { uid: 999, ..pi() }],
        ..Default::default()
    });
    assert!(e.contains("1000..=60000"), "{e}");

    let e = plan_err(AccountInputs {
        base_passwd: Some(base()),
        login_users: vec![LoginUser {
            name: "daemon".into(),
            ..pi()
        }],
        ..Default::default()
    });
    assert!(e.contains("login user daemon"), "{e}");
}

#[test]
fn missing_groups_and_users_are_errors() {
    let e = plan_err(AccountInputs {
        postinst: vec![("pkg".into(), facts(&[], &[("svc", None, Some("nogroup"))]))],
        ..Default::default()
    });
    assert!(
        e.contains("primary group nogroup, which nothing creates"),
        "{e}"
    );
    let e = plan_err(AccountInputs {
        sysusers: vec![(
            "m.conf".into(),
            parse_sysusers("m.conf", "m ghost audio\n").unwrap(),
        )],
        ..Default::default()
    });
    assert!(e.contains("m.conf adds user ghost to group audio"), "{e}");
    let mut bad = facts(&[], &[("svc", None, Some("nogroup"))]);
    bad.users[0].gecos = "a:b".into();
    let e = plan_err(AccountInputs {
        base_passwd: Some(base()),
        postinst: vec![("pkg".into(), bad)],
        ..Default::default()
    });
    assert!(e.contains("user svc") && e.contains("GECOS"), "{e}");
}
