//! Tests of unit parsing, install links, ExecStart quoting and generated service units.

use super::*;
use pideploy_config::Service;
use std::collections::BTreeMap;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

// ---- parse_unit ----

#[test]
fn parses_sections_comments_repeats_and_empty_assignments() {
    let text = "# comment\n; also a comment\n[Unit]\nDescription = A  thing \nAfter=a.target\n\
                After=b.target\n\n[Install]\nWantedBy=x.target\nWantedBy=\nWantedBy=y.target z.target\n";
    let u = parse_unit("t.service", text).unwrap();
    assert_eq!(u.last("Unit", "Description"), Some("A  thing"));
    assert_eq!(
        u.values("Unit", "After").collect::<Vec<_>>(),
        ["a.target", "b.target"]
    );
    assert_eq!(
        u.values("Install", "WantedBy").collect::<Vec<_>>(),
        ["x.target", "", "y.target z.target"]
    );
    // The empty assignment resets the list.
    assert_eq!(u.list("Install", "WantedBy"), ["y.target", "z.target"]);
    assert_eq!(u.entries[0].line, 4);
    assert!(u.ignored.is_empty());
}

#[test]
fn continuation_lines_join_with_a_space_and_skip_comments() {
    let text =
        "[Service]\nExecStart=/bin/foo \\\n  --a \\\n# skipped\n\n  --b\nX=y\\\\\nZ=1\r\nW=2\rV=3";
    let u = parse_unit("t.service", text).unwrap();
    assert_eq!(
        u.last("Service", "ExecStart"),
        Some("/bin/foo    --a    --b")
    );
    assert_eq!(u.entries[0].line, 2);
    // An escaped backslash does not continue the line.
    assert_eq!(u.last("Service", "X"), Some("y\\\\"));
    assert_eq!(u.last("Service", "Z"), Some("1"));
    assert_eq!(u.last("Service", "W"), Some("2"));
    assert_eq!(u.last("Service", "V"), Some("3"));
}

#[test]
fn continuation_at_end_of_file_is_still_parsed() {
    let u = parse_unit("t.service", "[Unit]\nA=b \\").unwrap();
    assert_eq!(u.last("Unit", "A"), Some("b"));
}

#[test]
fn ignored_lines_are_listed_and_bad_headers_refused() {
    let u = parse_unit("t.service", "\u{feff}A=1\n[Unit]\nnoequals\n=x\n").unwrap();
    assert!(u.entries.is_empty());
    let lines: Vec<usize> = u.ignored.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [1, 3, 4]);
    let err = parse_unit("t.service", "[Unit\nA=b\n").unwrap_err();
    assert!(
        err.contains("line 1") && err.contains("section header"),
        "{err}"
    );
    assert!(parse_unit("t.service", "[Un\"it]\n").is_err());
}

#[test]
fn oversized_and_nul_text_is_refused() {
    let big = "#".repeat(MAX_UNIT_BYTES + 1);
    assert!(parse_unit("t.service", &big).unwrap_err().contains("MiB"));
    assert!(parse_unit("t.service", "[Unit]\nA=\0\n")
        .unwrap_err()
        .contains("NUL"));
}

/// Excerpts of unit files from Debian bookworm packages.
#[test]
fn real_unit_files_parse() {
    // nginx 1.22.1-9+deb12u1, lib/systemd/system/nginx.service (excerpt).
    let nginx = "[Unit]\nDescription=A high performance web server and a reverse proxy server\n\
                 Documentation=man:nginx(8)\nAfter=network-online.target remote-fs.target nss-lookup.target\n\
                 Wants=network-online.target\n\n[Service]\nType=forking\nPIDFile=/run/nginx.pid\n\
                 ExecStartPre=/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'\n\
                 ExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;'\n\
                 ExecReload=/usr/sbin/nginx -g 'daemon on; master_process on;' -s reload\n\
                 ExecStop=-/sbin/start-stop-daemon --quiet --stop --retry QUIT/5 --pidfile /run/nginx.pid\n\
                 TimeoutStopSec=5\nKillMode=mixed\n\n[Install]\nWantedBy=multi-user.target\n";
    let u = parse_unit("nginx.service", nginx).unwrap();
    let plan = install_links("nginx.service", &u, "/lib/systemd/system/nginx.service").unwrap();
    assert_eq!(
        plan.links,
        [(
            "multi-user.target.wants/nginx.service".to_string(),
            "/lib/systemd/system/nginx.service".to_string()
        )]
    );
    assert!(!plan.is_static && plan.also.is_empty());
    // avahi-daemon 0.8-10+deb12u1, lib/systemd/system/avahi-daemon.service [Install].
    let avahi = "[Unit]\nDescription=Avahi mDNS/DNS-SD Stack\nRequires=avahi-daemon.socket\n\n\
                 [Service]\nType=dbus\nBusName=org.freedesktop.Avahi\nExecStart=/usr/sbin/avahi-daemon -s\n\n\
                 [Install]\nWantedBy=multi-user.target\nAlso=avahi-daemon.socket\nAlias=dbus-org.freedesktop.Avahi.service\n";
    let u = parse_unit("avahi-daemon.service", avahi).unwrap();
    let p = "/lib/systemd/system/avahi-daemon.service";
    let plan = install_links("avahi-daemon.service", &u, p).unwrap();
    let links: Vec<&str> = plan.links.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        links,
        [
            "multi-user.target.wants/avahi-daemon.service",
            "dbus-org.freedesktop.Avahi.service"
        ]
    );
    assert!(plan.links.iter().all(|(_, t)| t == p));
    assert_eq!(plan.also, ["avahi-daemon.socket"]);
}

// ---- install_links ----

fn plan_for(name: &str, install: &str) -> Result<InstallPlan, String> {
    let u = parse_unit(
        name,
        &format!("[Unit]\nDescription=x\n[Install]\n{install}"),
    )?;
    install_links(name, &u, "/u/file")
}

fn link_paths(p: &InstallPlan) -> Vec<&str> {
    p.links.iter().map(|(l, _)| l.as_str()).collect()
}

#[test]
fn every_dependency_kind_gets_its_directory() {
    let p = plan_for(
        "a.service",
        "WantedBy=x.target y.target\nRequiredBy=z.target\nUpheldBy=u.target\nWantedBy=x.target\n",
    )
    .unwrap();
    assert_eq!(
        link_paths(&p),
        [
            "x.target.wants/a.service",
            "y.target.wants/a.service",
            "z.target.requires/a.service",
            "u.target.upholds/a.service"
        ]
    );
}

#[test]
fn no_install_rules_is_static() {
    let u = parse_unit("a.service", "[Service]\nExecStart=/bin/true\n").unwrap();
    let p = install_links("a.service", &u, "/u/file").unwrap();
    assert!(p.is_static && p.links.is_empty());
    assert!(
        plan_for("a.service", "DefaultInstance=x\n")
            .unwrap()
            .is_static
    );
    assert!(!plan_for("a.service", "Also=b.socket\n").unwrap().is_static);
    // Reset to nothing is static again.
    assert!(
        plan_for("a.service", "WantedBy=x.target\nWantedBy=\n")
            .unwrap()
            .is_static
    );
}

#[test]
fn templates_use_their_default_instance() {
    // getty@.service from systemd 252: WantedBy=getty.target, DefaultInstance=tty1.
    let p = plan_for(
        "getty@.service",
        "WantedBy=getty.target\nDefaultInstance=tty1\n",
    )
    .unwrap();
    assert_eq!(link_paths(&p), ["getty.target.wants/getty@tty1.service"]);
    assert_eq!(p.links[0].1, "/u/file");
    // Enabling an explicit instance of the template.
    let u = parse_unit(
        "getty@.service",
        "[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n",
    )
    .unwrap();
    let p = install_links("getty@tty2.service", &u, "/u/getty@.service").unwrap();
    assert_eq!(link_paths(&p), ["getty.target.wants/getty@tty2.service"]);
    // serial-getty@.service has no DefaultInstance: systemctl links nothing for it.
    let p = plan_for("serial-getty@.service", "WantedBy=getty.target\n").unwrap();
    assert!(p.links.is_empty() && !p.is_static);
    assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
}

#[test]
fn aliases_and_specifiers() {
    let p = plan_for(
        "a.service",
        "Alias=b.service a.service\nWantedBy=%p.target\n",
    )
    .unwrap();
    assert_eq!(link_paths(&p), ["a.target.wants/a.service", "b.service"]);
    let p = plan_for(
        "foo@.service",
        "Alias=bar@.service\nDefaultInstance=x\nWantedBy=t@%i.target\n",
    )
    .unwrap();
    assert_eq!(
        link_paths(&p),
        ["t@x.target.wants/foo@x.service", "bar@.service"]
    );
    let err = plan_for("a.service", "WantedBy=%H.target\n").unwrap_err();
    assert!(err.contains("%H"), "{err}");
}

#[rstest::rstest]
#[case::bad_target("WantedBy=multi-user\n", "multi-user")]
#[case::bad_chars("WantedBy=a/b.target\n", "a/b.target")]
#[case::alias_type("Alias=b.socket\n", "b.socket")]
#[case::alias_template("Alias=b@.service\n", "b@.service")]
#[case::also("Also=nope\n", "nope")]
#[case::instance("DefaultInstance=a/b\n", "a/b")]
fn bad_names_are_errors(#[case] install: &str, #[case] quoted: &str) {
    let name = if install.starts_with("DefaultInstance") {
        "t@.service"
    } else {
        "a.service"
    };
    let err = plan_for(name, install).unwrap_err();
    assert!(err.contains(&format!("`{quoted}`")), "{err}");
    assert!(!err.contains('\n'));
}

#[test]
fn bad_unit_name_is_an_error() {
    let u = parse_unit("x", "[Install]\nWantedBy=a.target\n").unwrap();
    for name in ["a", "a.nope", "@a.service", "a b.service", ".service"] {
        assert!(install_links(name, &u, "/x").is_err(), "{name}");
    }
}

// ---- exec_line ----

/// systemd's reading of an ExecStart= value for one command (load-fragment.c config_parse_exec
/// with extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE), then `%%` → `%` from specifier
/// expansion and `$$` → `$` from variable expansion at exec time), written from systemd.service(5)
/// and systemd.syntax(7). Only what `exec_line` may produce is accepted: other specifiers,
/// variables, `;` separators and prefixes are errors here.
fn systemd_split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_unit_space(*c)) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == ';' {
            return Err("command separator".into());
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => word.push(unescape(&mut chars)?),
                ('"' | '\'', None) if word.is_empty() => quote = Some(c),
                (q, Some(open)) if q == open => {
                    quote = None;
                    if chars.peek().is_some_and(|c| !is_unit_space(*c)) {
                        return Err("closing quote not followed by whitespace".into());
                    }
                }
                (c, None) if is_unit_space(c) => break,
                ('"' | '\'', None) => return Err("quote inside a word".into()),
                (c, _) => word.push(c),
            }
        }
        if quote.is_some() {
            return Err("unbalanced quoting".into());
        }
        words.push(expand_percent_dollar(&word)?);
    }
    if words
        .first()
        .is_some_and(|w| w.starts_with(['-', '@', ':', '+', '!']))
    {
        return Err("prefix".into());
    }
    Ok(words)
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<char, String> {
    fn hex(chars: &mut std::iter::Peekable<std::str::Chars>, n: usize) -> Result<char, String> {
        let digits: String = (0..n).filter_map(|_| chars.next()).collect();
        let v = u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())?;
        char::from_u32(v)
            .filter(|c| *c != '\0')
            .ok_or("bad code point".to_string())
    }
    Ok(match chars.next().ok_or("trailing backslash")? {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        's' => ' ',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        c @ ('\\' | '"' | '\'') => c,
        c => return Err(format!("unknown escape \\{c}")),
    })
}

fn expand_percent_dollar(word: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' | '$' => match chars.next() {
                Some(d) if d == c => out.push(c),
                _ => return Err(format!("unescaped {c}")),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn tricky_argvs() -> Vec<Vec<String>> {
    vec![
        s(&["/bin/true"]),
        s(&["/usr/bin/web", "--port", "80", "--name=a,b:c+d@e"]),
        s(&["/bin/sh", "-c", "while true; do date; sleep 60; done"]),
        s(&["/bin/echo", ""]),
        s(&["/bin/echo", ";"]),
        s(&["/bin/echo", "\\;"]),
        s(&["/bin/echo", "a;", "--"]),
        s(&["/bin/echo", "it's", "\"q\"", "'", "\""]),
        s(&["/bin/echo", "100%", "%i", "%%", "$HOME", "${X}", "$$", "$"]),
        s(&["/bin/echo", "back\\slash", "\\", "\\\\n", "\\x41"]),
        s(&["/bin/echo", "tab\there", "  lead", "trail  ", "a\u{7}b"]),
        s(&["/bin/echo", "ünïcödé ✓", "-", "@x", "+y", "!z", ":w"]),
        s(&["/opt/my prog/run", "x"]),
        s(&["/opt/100%/run"]),
    ]
}

#[test]
fn exec_line_round_trips_through_systemds_rules() {
    for argv in tricky_argvs() {
        let line = exec_line(&argv).unwrap();
        assert!(!line.contains(['\n', '\r']), "{line}");
        assert!(!line.ends_with('\\'), "{line}");
        assert_eq!(systemd_split(&line).as_ref(), Ok(&argv), "{line}");
    }
}

/// Cases from systemd.service(5) "Command lines", read by the reference reader above, so that
/// it is itself checked against the manual.
#[test]
fn reference_reader_agrees_with_the_manual() {
    // `ExecStart=/bin/echo one ; /bin/echo "two two"` is two commands.
    assert!(systemd_split("/bin/echo one ; /bin/echo \"two two\"").is_err());
    // `Environment=... ExecStart=/bin/echo $ONE $TWO $THREE`: variables expand, so unescaped `$` is
    // something the reader refuses.
    assert!(systemd_split("/bin/echo $ONE").is_err());
    // "ExecStart=/bin/echo "foo bar"" passes one argument.
    assert_eq!(
        systemd_split("/bin/echo \"foo bar\""),
        Ok(s(&["/bin/echo", "foo bar"]))
    );
    // Single quotes work the same, and C escapes apply.
    assert_eq!(
        systemd_split("/bin/echo 'a\\tb' \\x41"),
        Ok(s(&["/bin/echo", "a\tb", "A"]))
    );
    // "%%" is a literal percent; "$$" a literal dollar.
    assert_eq!(
        systemd_split("/bin/echo %% $$"),
        Ok(s(&["/bin/echo", "%", "$"]))
    );
    assert!(systemd_split("/bin/echo \"unbalanced").is_err());
}

#[test]
fn exec_line_writes_plain_words_bare() {
    let line = exec_line(&s(&["/usr/bin/web", "--port", "80", "a b", "x%", "$y", ""])).unwrap();
    assert_eq!(line, r#"/usr/bin/web --port 80 "a b" "x%%" "$$y" """#);
}

#[rstest::rstest]
#[case::empty(&[], "empty")]
#[case::relative(&["sh", "-c", "x"], "absolute")]
#[case::dotdot(&["/bin/../sh"], "normalised")]
#[case::trailing(&["/bin/"], "normalised")]
#[case::dollar0(&["/opt/$x/run"], "`$`")]
#[case::quote0(&["/opt/\"x/run"], "quotes")]
#[case::newline(&["/bin/echo", "a\nb"], "newline")]
#[case::cr(&["/bin/echo", "a\rb"], "newline")]
#[case::nul(&["/bin/echo", "a\0b"], "NUL")]
fn exec_line_refuses(#[case] argv: &[&str], #[case] says: &str) {
    let err = exec_line(&s(argv)).unwrap_err();
    assert!(err.contains(says), "{err}");
}

// ---- service_unit ----

fn svc(name: &str, command: &[&str]) -> Service {
    Service {
        name: name.into(),
        command: s(command),
        restart_policy: Some(Restart::OnFailure),
        user: "root".into(),
        description: None,
        group: None,
        working_directory: None,
        environment: BTreeMap::new(),
        after: Vec::new(),
        wants: Vec::new(),
        requires: Vec::new(),
        schedule: None,
    }
}

fn everyone(_: &str) -> bool {
    true
}

#[test]
fn a_full_service_unit() {
    let mut sp = svc("web", &["/usr/bin/web", "--greet", "hello 100%"]);
    sp.restart_policy = Some(Restart::Always);
    sp.user = "pi".into();
    sp.group = Some("www-data".into());
    sp.description = Some("Web at 100%".into());
    sp.working_directory = Some("/srv/web".into());
    sp.environment
        .insert("MSG".into(), "a \"b\" $c %d \\e".into());
    sp.environment.insert("PORT".into(), "80".into());
    sp.after = s(&["network-online.target"]);
    sp.wants = s(&["network-online.target"]);
    sp.requires = s(&["var-lib.mount"]);
    let u = service_unit(&sp, &everyone).unwrap();
    assert!(u.timer.is_none());
    assert_eq!(u.service.name, "web.service");
    assert_eq!(
        u.service.text,
        "# Generated by pideploy from pi.toml.\n[Unit]\nDescription=Web at 100%%\n\
         After=network-online.target\nWants=network-online.target\nRequires=var-lib.mount\n\
         StartLimitIntervalSec=0\n\n[Service]\nType=simple\n\
         ExecStart=/usr/bin/web --greet \"hello 100%%\"\nUser=pi\nGroup=www-data\n\
         WorkingDirectory=/srv/web\nEnvironment=\"MSG=a \\\"b\\\" $c %%d \\\\e\"\nEnvironment=\"PORT=80\"\n\
         Restart=always\nRestartSec=1\nStandardOutput=journal\n\n[Install]\nWantedBy=multi-user.target\n"
    );
    // It reads back as what was meant.
    let parsed = parse_unit("web.service", &u.service.text).unwrap();
    assert!(parsed.ignored.is_empty());
    let exec = parsed.last("Service", "ExecStart").unwrap();
    assert_eq!(systemd_split(exec).unwrap(), sp.command);
    let plan = install_links("web.service", &parsed, "/etc/systemd/system/web.service").unwrap();
    assert_eq!(link_paths(&plan), ["multi-user.target.wants/web.service"]);
}

#[test]
fn a_scheduled_service_is_a_oneshot_started_by_its_timer() {
    let mut sp = svc("backup", &["/usr/bin/backup"]);
    sp.restart_policy = Some(Restart::No);
    sp.schedule = Some("*-*-* 03:00:00".into());
    let u = service_unit(&sp, &everyone).unwrap();
    let service = parse_unit("backup.service", &u.service.text).unwrap();
    assert_eq!(service.last("Service", "Type"), Some("oneshot"));
    assert_eq!(service.last("Service", "Restart"), Some("no"));
    assert!(service.last("Unit", "StartLimitIntervalSec").is_none());
    assert!(
        install_links("backup.service", &service, "/x")
            .unwrap()
            .is_static
    );
    let timer = u.timer.unwrap();
    assert_eq!(timer.name, "backup.timer");
    let t = parse_unit("backup.timer", &timer.text).unwrap();
    assert_eq!(t.last("Timer", "OnCalendar"), Some("*-*-* 03:00:00"));
    let plan = install_links("backup.timer", &t, "/etc/systemd/system/backup.timer").unwrap();
    assert_eq!(link_paths(&plan), ["timers.target.wants/backup.timer"]);
}

#[test]
fn restart_no_has_no_start_limit_change_and_root_is_not_asked_for() {
    let mut sp = svc("once", &["/bin/true"]);
    sp.restart_policy = Some(Restart::No);
    let asked = std::cell::RefCell::new(Vec::new());
    let known = |n: &str| {
        asked.borrow_mut().push(n.to_string());
        true
    };
    let u = service_unit(&sp, &known).unwrap();
    assert!(!u.service.text.contains("StartLimit"));
    assert!(u.service.text.contains("\nRestart=no\n"));
    assert!(u.service.text.contains("\nUser=root\n"));
    assert!(asked.borrow().is_empty());
}

#[test]
fn unknown_accounts_and_bad_values_are_refused() {
    let nobody = |_: &str| false;
    let mut sp = svc("web", &["/bin/true"]);
    sp.user = "ghost".into();
    assert!(service_unit(&sp, &nobody).unwrap_err().contains("`ghost`"));
    let mut sp = svc("web", &["/bin/true"]);
    sp.group = Some("ghosts".into());
    assert!(service_unit(&sp, &nobody).unwrap_err().contains("`ghosts`"));
    let mut sp = svc("web", &["web"]);
    assert!(service_unit(&sp, &everyone)
        .unwrap_err()
        .contains("absolute"));
    sp.command = s(&["/bin/web"]);
    sp.description = Some("ends in \\".into());
    assert!(service_unit(&sp, &everyone)
        .unwrap_err()
        .contains("backslash"));
    sp.description = None;
    sp.after = s(&["network-online"]);
    assert!(service_unit(&sp, &everyone)
        .unwrap_err()
        .contains("network-online"));
    sp.after.clear();
    sp.environment.insert("A".into(), "x\ny".into());
    assert!(service_unit(&sp, &everyone).is_err());
}

// ---- against the real systemd, when this machine has it ----

/// An environment value with everything that needs escaping, and tab.
const ENV_VALUE: &str = "a \"b\" $c %d \\e 'f' \tg ${h}";

/// Where systemd's manager binary is, if installed (only a test tool, never a dependency).
fn host_systemd() -> Option<&'static str> {
    ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// The values of one setting of `unit` in `systemd --test`'s dump, as printed.
fn dumped(dump: &str, unit: &str, setting: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let prefix = format!("{setting}: ");
    for line in dump.lines() {
        let line = line.trim_start();
        if let Some(name) = line.strip_prefix("-> Unit ") {
            inside = name.trim_end_matches(':') == unit;
        } else if let Some(value) = line.strip_prefix(&prefix) {
            if inside {
                out.push(value.to_string());
            }
        }
    }
    out
}

fn split_dump(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('t') => word.push('\t'),
                        Some('n') => word.push('\n'),
                        Some(e) => word.push(e),
                        None => {}
                    },
                    c => word.push(c),
                }
            }
        } else {
            word.push(c);
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    words
}

/// Runs the real systemd over generated units: `systemd-analyze verify` must accept them, and
/// `systemd --test` must have parsed each ExecStart= into exactly the argv (with `$` still
/// doubled: systemd stores `$$` and turns it into `$` only when it runs the command; its dump
/// quotes words shell-style: `"..."` with `\` before `"\`$`, and `\t`), and each Environment=
/// into exactly `NAME=value`.
#[test]
fn real_systemd_reads_generated_units_back() {
    let Some(systemd) = host_systemd() else {
        eprintln!("skipped: systemd is not installed on this machine");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    let mut expected = Vec::new();
    // systemd's dump cannot show control characters other than tab unambiguously.
    let argvs: Vec<Vec<String>> = tricky_argvs()
        .into_iter()
        .filter(|a| {
            a.iter()
                .all(|w| !w.chars().any(|c| c.is_control() && c != '\t'))
        })
        .collect();
    for (i, argv) in argvs.iter().enumerate() {
        let mut sp = svc(&format!("pdtest{i}"), &["/bin/true"]);
        sp.command = argv.clone();
        sp.environment.insert("V".into(), ENV_VALUE.into());
        sp.description = Some("100% test".into());
        let u = service_unit(&sp, &everyone).unwrap();
        std::fs::write(dir.path().join(&u.service.name), &u.service.text).unwrap();
        names.push(u.service.name);
        expected.push(
            argv.iter()
                .map(|a| a.replace('$', "$$"))
                .collect::<Vec<_>>(),
        );
    }
    let mut sp = svc("pdtimer", &["/bin/true"]);
    sp.restart_policy = Some(Restart::No);
    sp.schedule = Some("Mon..Fri *-*-* 03:00:00".into());
    let u = service_unit(&sp, &everyone).unwrap();
    let timer = u.timer.unwrap();
    std::fs::write(dir.path().join(&u.service.name), &u.service.text).unwrap();
    std::fs::write(dir.path().join(&timer.name), &timer.text).unwrap();

    // verify: no syntax complaints about our lines (it may still say a program does not exist).
    let mut files: Vec<String> = names
        .iter()
        .map(|n| dir.path().join(n).display().to_string())
        .collect();
    files.push(dir.path().join(&timer.name).display().to_string());
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .output();
    if let Ok(out) = out {
        let err = String::from_utf8_lossy(&out.stderr);
        for bad in [
            "Unbalanced",
            "escape",
            "specifier",
            "Invalid",
            "ignoring",
            "Failed",
        ] {
            let relevant: Vec<&str> = err
                .lines()
                .filter(|l| l.contains(bad) && !l.contains("is not executable"))
                .collect();
            assert!(relevant.is_empty(), "systemd-analyze verify: {relevant:?}");
        }
    }

    // systemd --test dumps what it parsed; it refuses to run test mode as root, so drop to nobody.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root && !std::path::Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: running as root and setpriv is missing");
        return;
    }
    let mut commands_seen = Vec::new();
    for name in &names {
        let mut cmd = std::process::Command::new(if root { "/usr/bin/setpriv" } else { systemd });
        if root {
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", systemd]);
        }
        let out = cmd
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
            .env("HOME", "/tmp")
            .args([
                "--test",
                "--system",
                "--no-pager",
                &format!("--unit={name}"),
            ])
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&out.stdout);
        let commands: Vec<Vec<String>> = dumped(&dump, name, "Command Line")
            .iter()
            .map(|c| split_dump(c))
            .collect();
        commands_seen.push(commands);
        assert_eq!(
            dumped(&dump, name, "Environment"),
            [format!("V={ENV_VALUE}")],
            "{name}"
        );
    }
    for ((name, want), got) in names.iter().zip(&expected).zip(&commands_seen) {
        assert_eq!(got, &vec![want.clone()], "{name}");
    }
}
