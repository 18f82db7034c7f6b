//! What a Debian package's maintainer scripts would do, read from their text instead of run (pideploy
//! never runs arm64 code on the build host): the system users and groups a postinst creates, the units
//! it enables, the alternatives it installs and the owners and modes it sets, plus sysusers.d(5) files.
//!
//! The postinst reader is deliberately narrow. It recognises `adduser`, `addgroup`, `useradd`,
//! `groupadd`, `usermod -a -G`, `deb-systemd-helper enable`, `systemctl enable`,
//! `update-alternatives --install`, `chown`, `chgrp`, `chmod` (octal) and `dpkg-statoverride --add`,
//! wherever they appear (inside functions and every `case` branch too), as if the script ran
//! `configure` on a fresh install; every other command is ignored. Words may use variables assigned
//! earlier with known values (`logdir="/var/log/x"`, `${DPKG_ROOT:+…}` with DPKG_ROOT empty as dpkg
//! sets it); `for VAR in WORDS` loops over known words run once per word. An `if` branch is skipped
//! only when its condition is a `[ A = B ]`/`[ A != B ]` test with both sides known and false (or
//! `deb-systemd-helper debian-installed`, false on a fresh install, for enables); every other
//! condition counts as possibly true. A recognised command with something it cannot resolve
//! (`$(...)`, `$1`, a loop over unknown words) lands in [`MaintainerFacts::unsupported`] with the
//! reason, never silently dropped. Crafted scripts are bounded: loops nest at most 8 deep and at most
//! 100 000 commands are run.

mod lex;
mod sysusers;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use lex::{Command, End, Part, Word};
pub use sysusers::{parse_sysusers, PrimaryGroup, SysUser, Sysusers};

/// What one package's postinst does to accounts, units, alternatives and file owners.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaintainerFacts {
    /// System groups it creates (`addgroup --system`, `groupadd -r`).
    pub groups: Vec<GroupReq>,
    /// System users it creates (`adduser --system`, `useradd -r`).
    pub users: Vec<UserReq>,
    /// Supplementary memberships `(user, group)` it adds (`adduser USER GROUP`, `usermod -a -G`).
    pub members: Vec<(String, String)>,
    /// Units enabled on a fresh install (`deb-systemd-helper enable 'x.service'` outside a
    /// `deb-systemd-helper debian-installed` test, which is how `dh_installsystemd --no-enable` looks).
    pub enable_units: Vec<String>,
    /// Alternatives it installs.
    pub alternatives: Vec<Alternative>,
    /// Owners and modes it sets on absolute paths, one entry per path, later commands overriding
    /// earlier ones field by field.
    pub ownership: Vec<PathOwner>,
    /// Files, links and directories it makes from what the package ships (`ucf`, `cp`, `ln -s`,
    /// `mkdir -p`): a default configuration copied into /etc, a default web page into /var.
    pub files: Vec<FileOp>,
    /// `PACKAGE: postinst line N: COMMAND: WHY` for each recognised command that could not be fully read.
    pub unsupported: Vec<String>,
}

/// A file a postinst makes on a fresh install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// `cp SRC DEST`, `ucf SRC DEST`: DEST starts as a copy of SRC.
    Copy {
        /// Source, an absolute path the package ships.
        src: String,
        /// Destination, absolute.
        dest: String,
    },
    /// `ln -s TARGET LINK`.
    Link {
        /// The link, absolute.
        link: String,
        /// Its target, verbatim.
        target: String,
    },
    /// `mkdir [-p] [-m MODE] DIR`.
    Dir {
        /// The directory, absolute.
        path: String,
        /// Mode, 0755 by default.
        mode: u32,
    },
}

/// A system group a package asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReq {
    /// Group name.
    pub name: String,
    /// Explicit id, or `None` for "any free system id".
    pub gid: Option<u32>,
}

/// A system user a package asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReq {
    /// User name.
    pub name: String,
    /// Explicit id, or `None` for "any free system id".
    pub uid: Option<u32>,
    /// Primary group by name; `None` means a group named like the user, created with it (adduser
    /// `--group`, useradd's default user group). adduser `--system` without `--group`/`--ingroup`
    /// gives `Some("nogroup")`, as adduser does.
    pub group: Option<String>,
    /// Home directory as written to passwd (adduser's default for system users is `/nonexistent`).
    pub home: String,
    /// Login shell (adduser's default for system users is `/usr/sbin/nologin`).
    pub shell: String,
    /// GECOS field.
    pub gecos: String,
}

/// One `update-alternatives --install` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// The generic name's link, e.g. `/usr/bin/editor`.
    pub link: String,
    /// The alternative's name, e.g. `editor`.
    pub name: String,
    /// The provider, e.g. `/usr/bin/vim.tiny`.
    pub path: String,
    /// Priority; the highest wins in automatic mode.
    pub priority: i64,
    /// `--slave LINK NAME PATH` triples.
    pub slaves: Vec<(String, String, String)>,
}

/// Owner and mode a postinst gives an absolute path (`None`: left as packaged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathOwner {
    /// Absolute path.
    pub path: String,
    /// Owner name (or number as written).
    pub user: Option<String>,
    /// Group name (or number as written).
    pub group: Option<String>,
    /// Permission bits.
    pub mode: Option<u32>,
    /// Whether it was applied recursively (`chown -R`).
    pub recursive: bool,
}

/// adduser(8)'s defaults for `--system` users (Debian bookworm, adduser 3.134).
const ADDUSER_SYSTEM_HOME: &str = "/nonexistent";
const ADDUSER_SYSTEM_SHELL: &str = "/usr/sbin/nologin";
const ADDUSER_SYSTEM_GROUP: &str = "nogroup";
/// useradd's defaults on Debian (`/etc/default/useradd`: HOME=/home, SHELL=/bin/sh).
const USERADD_SHELL: &str = "/bin/sh";

/// Bounds for crafted scripts: real postinsts run a few hundred commands and nest loops twice at most.
const MAX_COMMANDS: usize = 100_000;
const MAX_LOOP_DEPTH: usize = 8;

/// Reads a POSIX sh postinst and returns what it would do on a fresh `configure`. `package` only
/// labels the [`MaintainerFacts::unsupported`] messages.
pub fn from_postinst(package: &str, text: &str) -> MaintainerFacts {
    let mut st = State {
        package,
        // dpkg sets DPKG_ROOT to "" when it installs into the running system, which is what the
        // image is to the script (`${DPKG_ROOT:+--root=...}` then vanishes).
        vars: BTreeMap::from([("DPKG_ROOT".to_string(), Some(String::new()))]),
        frames: Vec::new(),
        budget: MAX_COMMANDS,
        facts: MaintainerFacts::default(),
    };
    st.run(&lex::commands(text), 0);
    st.facts
}

/// One open `if`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The current branch's condition is `deb-systemd-helper debian-installed`, false on a fresh install.
    installed_test: bool,
    /// The current branch may run (false only when its condition is known to be false).
    live: bool,
    /// An earlier branch is known to be taken, so later `elif`/`else` branches are not.
    decided: bool,
}

/// A `for VAR in WORDS` header: the loop variable and its values, when every word is known.
struct Loop {
    var: String,
    values: Option<Vec<String>>,
}

struct State<'a> {
    package: &'a str,
    /// Variables assigned so far; `None` when the value is unknowable (a loop variable, `$(...)`).
    vars: BTreeMap<String, Option<String>>,
    /// The open `if`s, innermost last.
    frames: Vec<Frame>,
    /// Commands that may still be run (loops repeat their bodies).
    budget: usize,
    facts: MaintainerFacts,
}

/// A command's words after decorations are stripped, resolved where possible.
struct Args<'c> {
    line: usize,
    words: &'c [Word],
    /// Each word's value, or the expansion that could not be resolved.
    values: Vec<Result<String, String>>,
}

impl Args<'_> {
    fn shown(&self) -> String {
        let raws: Vec<&str> = self.words.iter().map(|w| w.raw.as_str()).collect();
        raws.join(" ")
    }
}

impl State<'_> {
    /// Runs commands in order; a `for` loop over known words runs its body once per word. `depth`
    /// counts enclosing loops: a crafted script must not nest or repeat without bound.
    fn run(&mut self, cmds: &[Command], depth: usize) {
        let mut i = 0;
        while i < cmds.len() {
            if self.budget == 0 {
                return;
            }
            if depth > MAX_LOOP_DEPTH || self.budget == 1 {
                // Said once: the budget is spent from here on.
                self.facts.unsupported.push(format!(
                    "{}: postinst line {}: loops nest deeper than {MAX_LOOP_DEPTH} or run more than {MAX_COMMANDS} commands; the rest is not read",
                    self.package, cmds[i].line
                ));
                self.budget = 0;
                return;
            }
            self.budget -= 1;
            let header = self.command(&cmds[i]);
            i += 1;
            let Some(header) = header else {
                continue;
            };
            let end = loop_end(cmds, i);
            let body = &cmds[i..end];
            match header.values {
                Some(values) => {
                    for v in values {
                        self.vars.insert(header.var.clone(), Some(v));
                        self.run(body, depth + 1);
                    }
                }
                None => {
                    // The loop variable takes values nobody can know: uses of it are unsupported.
                    self.vars.insert(header.var.clone(), None);
                    self.run(body, depth + 1);
                }
            }
            i = end;
        }
    }

    /// Handles one command; returns the loop header when it starts a `for` loop.
    fn command(&mut self, cmd: &Command) -> Option<Loop> {
        let mut words = cmd.words.as_slice();
        let mut condition: Option<bool> = None;
        let mut negated = false;
        // Leading keywords and decorations that do not change what the command itself does.
        while let Some((first, rest)) = words.split_first() {
            match first.keyword() {
                Some("if") => {
                    let live = self.live();
                    self.frames.push(Frame {
                        installed_test: false,
                        live,
                        decided: !live,
                    });
                    condition = Some(true);
                }
                Some("elif") => condition = Some(false),
                Some("else") => {
                    if let Some(top) = self.frames.last_mut() {
                        top.installed_test = false;
                        top.live = !top.decided;
                    }
                }
                Some("fi") => {
                    self.frames.pop();
                }
                Some("!") => negated = !negated,
                Some("for") => {
                    let var = rest.first().and_then(Word::keyword)?.to_string();
                    let list = match rest.get(1).and_then(Word::keyword) {
                        Some("in") => &rest[2..],
                        _ => &[],
                    };
                    let values = list
                        .iter()
                        .map(|w| {
                            self.resolve(w)
                                .ok()
                                .filter(|v| !v.contains(['*', '?', '[']))
                        })
                        .collect::<Option<Vec<String>>>()
                        .filter(|v| !v.is_empty());
                    return Some(Loop { var, values });
                }
                Some("case") => return None,
                Some(
                    "then" | "do" | "done" | "esac" | "while" | "until" | "{" | "}" | "in_sysroot"
                    | "command",
                ) => {}
                _ => break,
            }
            words = rest;
        }
        if let Some(is_if) = condition {
            let dsh = words.first().and_then(Word::keyword) == Some("deb-systemd-helper");
            let installed_test = dsh
                && words[1..]
                    .iter()
                    .any(|w| w.keyword() == Some("debian-installed"));
            // `A && B` is false when A is; `A || B` and pipes cannot be judged from A alone.
            let known = match (self.test(words).map(|b| b != negated), cmd.end) {
                (known, End::List) => known,
                (Some(false), End::And) => Some(false),
                _ => None,
            };
            let outer_live = self.frames.len() < 2
                || self.frames[..self.frames.len() - 1].iter().all(|f| f.live);
            if let Some(top) = self.frames.last_mut() {
                top.installed_test = installed_test;
                if is_if || !top.decided {
                    top.live = outer_live && known != Some(false);
                    top.decided |= known == Some(true) || !outer_live;
                } else {
                    top.live = false;
                }
            }
        }
        if !self.live() {
            return None;
        }
        // Assignments: alone they set variables, before a command they only set its environment.
        let assignments = words.iter().take_while(|w| assignment(w).is_some()).count();
        if assignments == words.len() {
            for w in words {
                if let Some((name, value)) = assignment(w) {
                    let value = self.resolve_parts(&value).ok();
                    self.vars.insert(name, value);
                }
            }
            return None;
        }
        let words = &words[assignments..];
        let values = words.iter().map(|w| self.resolve(w)).collect();
        let args = Args {
            line: cmd.line,
            words,
            values,
        };
        let Some(Ok(name)) = args.values.first() else {
            return None;
        };
        let program = name.rsplit('/').next().unwrap_or(name).to_string();
        let result = match program.as_str() {
            "adduser" | "addgroup" => self.adduser(&program, &args),
            "useradd" => self.useradd(&args),
            "groupadd" => self.groupadd(&args),
            "usermod" => self.usermod(&args),
            "deb-systemd-helper" => self.systemd_helper(&args),
            "systemctl" => self.systemctl(&args),
            "update-alternatives" => self.alternatives(&args),
            "chown" | "chgrp" | "chmod" => self.chown(&program, &args),
            "dpkg-statoverride" => self.statoverride(&args),
            "ucf" | "cp" | "ln" | "mkdir" => self.file_op(&program, &args),
            _ => Ok(()),
        };
        if let Err(why) = result {
            let message = format!(
                "{}: postinst line {}: {}: {why}",
                self.package,
                args.line,
                args.shown()
            );
            // A loop body runs once per value; say each problem once.
            if !self.facts.unsupported.contains(&message) {
                self.facts.unsupported.push(message);
            }
        }
        None
    }

    /// Whether the current branch of every open `if` may run.
    fn live(&self) -> bool {
        self.frames.iter().all(|f| f.live)
    }

    /// The value of `[ A = B ]`, `[ A != B ]`, `test A = B` when both sides are known.
    fn test(&self, words: &[Word]) -> Option<bool> {
        let inner = match words.first()?.keyword()? {
            "[" if words.last()?.keyword() == Some("]") => &words[1..words.len() - 1],
            "test" => &words[1..],
            _ => return None,
        };
        let [a, op, b] = inner else {
            return None;
        };
        let (a, b) = (self.resolve(a).ok()?, self.resolve(b).ok()?);
        match op.keyword()? {
            "=" | "==" => Some(a == b),
            "!=" => Some(a != b),
            _ => None,
        }
    }

    fn resolve(&self, w: &Word) -> Result<String, String> {
        self.resolve_parts(&w.parts)
    }

    fn resolve_parts(&self, parts: &[Part]) -> Result<String, String> {
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Lit(s) => out += s,
                Part::Var(v) => match self.vars.get(v) {
                    Some(Some(value)) => out += value,
                    Some(None) => return Err(format!("${v} has no single known value")),
                    None => return Err(format!("${v} is not assigned a literal value before")),
                },
                Part::Alt {
                    name,
                    op,
                    colon,
                    word,
                } => {
                    let value = match self.vars.get(name) {
                        Some(Some(value)) => value,
                        Some(None) => return Err(format!("${name} has no single known value")),
                        None => {
                            return Err(format!("${name} is not assigned a literal value before"))
                        }
                    };
                    // Only set variables are tracked, so the colon-less forms see "set".
                    let set = !(*colon && value.is_empty());
                    let use_word = (*op == '+') == set;
                    if !use_word {
                        if *op == '-' {
                            out += value;
                        }
                    } else if word.contains(['$', '`', '\\', '"', '\'']) {
                        return Err(format!("the word in ${{{name}…}} is not a plain literal"));
                    } else {
                        out += word;
                    }
                }
                Part::Opaque(s) => return Err(format!("{s} cannot be known without running it")),
            }
        }
        Ok(out)
    }

    /// The resolved arguments after the program name, or the first reason one cannot be resolved.
    fn operands(args: &Args) -> Result<Vec<String>, String> {
        args.values[1..].iter().cloned().collect()
    }

    fn adduser(&mut self, program: &str, args: &Args) -> Result<(), String> {
        let mut system = false;
        let mut group_opt = false;
        let mut opts: BTreeMap<&str, String> = BTreeMap::new();
        let mut names = Vec::new();
        let operands = Self::operands(args)?;
        let mut it = operands.iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            match flag {
                "--system" => system = true,
                "--group" => group_opt = true,
                "--quiet"
                | "-q"
                | "--no-create-home"
                | "--disabled-password"
                | "--disabled-login"
                | "--force-badname"
                | "--allow-badname"
                | "--allow-bad-names" => {}
                "--ingroup" | "--home" | "--shell" | "--gecos" | "--comment" | "--uid"
                | "--gid" => {
                    let key = if flag == "--comment" { "--gecos" } else { flag };
                    let value = match inline {
                        Some(v) => v,
                        None => it.next().cloned().ok_or(format!("{flag} needs a value"))?,
                    };
                    opts.insert(key, value);
                }
                f if f.starts_with('-') => return Err(format!("option {f} is not understood")),
                _ => names.push(a.clone()),
            }
        }
        let id = |key: &str| numeric_id(key, opts.get(key));
        match names.as_slice() {
            [user, group] if program == "adduser" && !system && !group_opt && opts.is_empty() => {
                self.facts.members.push((user.clone(), group.clone()));
                Ok(())
            }
            [name] if program == "addgroup" || (group_opt && !system) => {
                let gid = id("--gid")?;
                if !system && gid.is_none() {
                    return Err(
                        "a non-system group without a fixed id; only --system groups or groups with --gid are created from packages".into(),
                    );
                }
                self.facts.groups.push(GroupReq {
                    name: name.clone(),
                    gid,
                });
                Ok(())
            }
            [name] => {
                if !system {
                    return Err("a login user; declare login users in the config".into());
                }
                let choices = usize::from(group_opt)
                    + usize::from(opts.contains_key("--ingroup"))
                    + usize::from(opts.contains_key("--gid"));
                if choices > 1 {
                    return Err("--group, --ingroup and --gid are mutually exclusive".into());
                }
                if opts.contains_key("--gid") {
                    return Err(
                        "a primary group given by number (--gid) is not supported; use --ingroup"
                            .into(),
                    );
                }
                let group = if group_opt {
                    None
                } else {
                    Some(
                        opts.get("--ingroup")
                            .cloned()
                            .unwrap_or(ADDUSER_SYSTEM_GROUP.into()),
                    )
                };
                self.facts.users.push(UserReq {
                    name: name.clone(),
                    uid: id("--uid")?,
                    group,
                    home: opts
                        .get("--home")
                        .cloned()
                        .unwrap_or(ADDUSER_SYSTEM_HOME.into()),
                    shell: opts
                        .get("--shell")
                        .cloned()
                        .unwrap_or(ADDUSER_SYSTEM_SHELL.into()),
                    gecos: opts.get("--gecos").cloned().unwrap_or_default(),
                });
                Ok(())
            }
            _ => Err(format!("expected one or two names, found {}", names.len())),
        }
    }

    fn useradd(&mut self, args: &Args) -> Result<(), String> {
        let parsed = short_options(
            &Self::operands(args)?,
            &[
                ("-r", "--system", false),
                ("-M", "--no-create-home", false),
                ("-g", "--gid", true),
                ("-d", "--home-dir", true),
                ("-s", "--shell", true),
                ("-c", "--comment", true),
                ("-u", "--uid", true),
                ("-G", "--groups", true),
            ],
        )?;
        let [name] = parsed.operands.as_slice() else {
            return Err("expected exactly one user name".into());
        };
        if !parsed.flags.contains_key("--system") {
            return Err("a login user; declare login users in the config".into());
        }
        let get = |k: &str| parsed.flags.get(k).cloned();
        let group = get("--gid");
        if group.as_deref().is_some_and(|g| g.parse::<u32>().is_ok()) {
            return Err(
                "a primary group given by number (-g N) is not supported; use a name".into(),
            );
        }
        let uid = numeric_id("-u", parsed.flags.get("--uid"))?;
        for g in get("--groups").iter().flat_map(|g| g.split(',')) {
            self.facts.members.push((name.clone(), g.to_string()));
        }
        self.facts.users.push(UserReq {
            name: name.clone(),
            uid,
            group,
            home: get("--home-dir").unwrap_or(format!("/home/{name}")),
            shell: get("--shell").unwrap_or(USERADD_SHELL.into()),
            gecos: get("--comment").unwrap_or_default(),
        });
        Ok(())
    }

    fn groupadd(&mut self, args: &Args) -> Result<(), String> {
        let parsed = short_options(
            &Self::operands(args)?,
            &[
                ("-r", "--system", false),
                ("-f", "--force", false),
                ("-g", "--gid", true),
            ],
        )?;
        let [name] = parsed.operands.as_slice() else {
            return Err("expected exactly one group name".into());
        };
        let gid = numeric_id("-g", parsed.flags.get("--gid"))?;
        // A group with its own fixed id (passwd's `groupadd -g 42 shadow`) is a static group.
        if !parsed.flags.contains_key("--system") && gid.is_none() {
            return Err(
                "a non-system group without a fixed id; only system groups (-r) or groups with -g are created from packages".into(),
            );
        }
        self.facts.groups.push(GroupReq {
            name: name.clone(),
            gid,
        });
        Ok(())
    }

    fn usermod(&mut self, args: &Args) -> Result<(), String> {
        let parsed = short_options(
            &Self::operands(args)?,
            &[("-a", "--append", false), ("-G", "--groups", true)],
        )?;
        let [user] = parsed.operands.as_slice() else {
            return Err("expected exactly one user name".into());
        };
        let Some(groups) = parsed.flags.get("--groups") else {
            return Err("only `usermod -a -G GROUPS USER` is understood".into());
        };
        if !parsed.flags.contains_key("--append") {
            return Err(
                "-G without -a replaces the user's groups; only -a -G is understood".into(),
            );
        }
        for g in groups.split(',').filter(|g| !g.is_empty()) {
            self.facts.members.push((user.clone(), g.to_string()));
        }
        Ok(())
    }

    fn systemd_helper(&mut self, args: &Args) -> Result<(), String> {
        let mut rest = args.values[1..].iter();
        let action = loop {
            match rest.next() {
                Some(Ok(a)) if a == "--quiet" => continue,
                Some(Ok(a)) if a == "--user" => return Ok(()),
                Some(Ok(a)) => break a.clone(),
                Some(Err(why)) => return Err(why.clone()),
                None => return Ok(()),
            }
        };
        if action != "enable" || self.frames.iter().any(|f| f.installed_test) {
            return Ok(());
        }
        for unit in rest {
            self.facts.enable_units.push(unit.clone()?);
        }
        Ok(())
    }

    /// `systemctl enable UNIT…` (the systemd package enables getty@tty1.service this way).
    fn systemctl(&mut self, args: &Args) -> Result<(), String> {
        let words: Vec<String> = Self::operands(args)?
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect();
        if words.iter().any(|w| w == "--user" || w == "--global") {
            return Ok(());
        }
        let mut rest = words.iter().filter(|w| !w.starts_with('-'));
        if rest.next().map(String::as_str) != Some("enable")
            || self.frames.iter().any(|f| f.installed_test)
        {
            return Ok(());
        }
        self.facts.enable_units.extend(rest.cloned());
        Ok(())
    }

    fn alternatives(&mut self, args: &Args) -> Result<(), String> {
        let values = &args.values[1..];
        let Some(at) = values.iter().position(|v| v.as_deref() == Ok("--install")) else {
            return Ok(());
        };
        let words: Vec<String> = values[at + 1..].iter().cloned().collect::<Result<_, _>>()?;
        let [link, name, path, priority, slaves @ ..] = words.as_slice() else {
            return Err("--install needs LINK NAME PATH PRIORITY".into());
        };
        let priority = priority
            .parse::<i64>()
            .map_err(|_| format!("priority {priority:?} is not a number"))?;
        let mut out = Vec::new();
        let mut rest = slaves;
        while let Some((opt, tail)) = rest.split_first() {
            match (opt.as_str(), tail) {
                ("--slave", [l, n, p, more @ ..]) => {
                    out.push((l.clone(), n.clone(), p.clone()));
                    rest = more;
                }
                _ => {
                    return Err(format!(
                        "{opt:?} after --install is not `--slave LINK NAME PATH`"
                    ))
                }
            }
        }
        for p in [link, path]
            .into_iter()
            .chain(out.iter().flat_map(|(l, _, p)| [l, p]))
        {
            if !p.starts_with('/') {
                return Err(format!("{p:?} is not an absolute path"));
            }
        }
        self.facts.alternatives.push(Alternative {
            link: link.clone(),
            name: name.clone(),
            path: path.clone(),
            priority,
            slaves: out,
        });
        Ok(())
    }

    fn chown(&mut self, program: &str, args: &Args) -> Result<(), String> {
        let mut recursive = false;
        let mut operands = Vec::new();
        for v in &args.values[1..] {
            let v = v.clone()?;
            match v.as_str() {
                "-R" | "--recursive" => recursive = true,
                "-h" | "-f" | "-v" | "-c" | "--no-dereference" | "--silent" | "--quiet" => {}
                o if o.starts_with('-') && program != "chmod" => {
                    return Err(format!("option {o} is not understood"))
                }
                _ => operands.push(v),
            }
        }
        let Some((what, paths)) = operands.split_first() else {
            return Err("no owner or mode".into());
        };
        if paths.is_empty() {
            return Err("no path".into());
        }
        let (user, group, mode) = match program {
            "chown" => {
                let (u, g) = match what.split_once(':') {
                    Some((_, "")) => {
                        return Err(
                            "`USER:` (the user's login group) is not supported; name the group"
                                .into(),
                        )
                    }
                    Some((u, g)) => (u, Some(g.to_string())),
                    None => (what.as_str(), None),
                };
                (
                    Some(u).filter(|u| !u.is_empty()).map(str::to_string),
                    g,
                    None,
                )
            }
            "chgrp" => (None, Some(what.clone()), None),
            _ => (None, None, Some(octal_mode(what)?)),
        };
        for path in paths {
            self.set_owner(path, user.clone(), group.clone(), mode, recursive)?;
        }
        Ok(())
    }

    /// `ucf [--three-way] [--debconf-ok] NEW DEST`, `cp [-a|-p|-f] SRC DEST`, `ln -s[f|n|T] TARGET
    /// LINK`, `mkdir [-p] [-m MODE] DIR…`, all with literal absolute paths.
    fn file_op(&mut self, program: &str, args: &Args) -> Result<(), String> {
        let words = Self::operands(args)?;
        let spec: &[(&str, &str, bool)] = match program {
            "ucf" => &[
                ("", "--three-way", false),
                ("", "--debconf-ok", false),
                ("", "--sum-file", true),
            ],
            "cp" => &[
                ("-a", "--archive", false),
                ("-p", "--preserve", false),
                ("-f", "--force", false),
            ],
            "ln" => &[
                ("-s", "--symbolic", false),
                ("-f", "--force", false),
                ("-n", "--no-dereference", false),
                ("-T", "--no-target-directory", false),
            ],
            _ => &[("-p", "--parents", false), ("-m", "--mode", true)],
        };
        let parsed = short_options(&words, spec)?;
        let absolute = |p: &String| -> Result<String, String> {
            if p.starts_with('/')
                && !p.contains(['*', '?', '['])
                && !p.split('/').any(|c| c == "..")
            {
                Ok(p.clone())
            } else {
                Err(format!("{p:?} is not a literal absolute path"))
            }
        };
        match program {
            "mkdir" => {
                let mode = match parsed.flags.get("--mode") {
                    Some(m) => octal_mode(m)?,
                    None => 0o755,
                };
                for d in &parsed.operands {
                    let path = absolute(d)?;
                    self.facts.files.push(FileOp::Dir { path, mode });
                }
            }
            "ln" => {
                if !parsed.flags.contains_key("--symbolic") {
                    return Err("only symbolic links (ln -s) are made from packages".into());
                }
                let [target, link] = parsed.operands.as_slice() else {
                    return Err("expected ln -s TARGET LINK".into());
                };
                let link = absolute(link)?;
                self.facts.files.push(FileOp::Link {
                    link,
                    target: target.clone(),
                });
            }
            _ => {
                let [src, dest] = parsed.operands.as_slice() else {
                    return Err(format!("expected {program} SOURCE DESTINATION"));
                };
                let (src, dest) = (absolute(src)?, absolute(dest)?);
                self.facts.files.push(FileOp::Copy { src, dest });
            }
        }
        Ok(())
    }

    fn statoverride(&mut self, args: &Args) -> Result<(), String> {
        let values = &args.values[1..];
        if !values.iter().any(|v| v.as_deref() == Ok("--add")) {
            return Ok(());
        }
        let words: Vec<String> = values.iter().cloned().collect::<Result<_, _>>()?;
        let operands: Vec<&String> = words.iter().filter(|w| !w.starts_with("--")).collect();
        let [user, group, mode, path] = operands.as_slice() else {
            return Err("expected --add USER GROUP MODE PATH".into());
        };
        let mode = octal_mode(mode)?;
        self.set_owner(
            path,
            Some(user.to_string()),
            Some(group.to_string()),
            Some(mode),
            false,
        )
    }

    fn set_owner(
        &mut self,
        path: &str,
        user: Option<String>,
        group: Option<String>,
        mode: Option<u32>,
        recursive: bool,
    ) -> Result<(), String> {
        if !path.starts_with('/') || path.contains(['*', '?', '[']) {
            return Err(format!("{path:?} is not a literal absolute path"));
        }
        let list = &mut self.facts.ownership;
        let at = match list.iter().position(|o| o.path == path) {
            Some(i) => i,
            None => {
                list.push(PathOwner {
                    path: path.to_string(),
                    user: None,
                    group: None,
                    mode: None,
                    recursive: false,
                });
                list.len() - 1
            }
        };
        let o = &mut list[at];
        o.user = user.or(o.user.take());
        o.group = group.or(o.group.take());
        o.mode = mode.or(o.mode);
        o.recursive |= recursive;
        Ok(())
    }
}

/// The index of the command holding the `done` that closes the loop whose body starts at `start`
/// (the end of the script if none does).
fn loop_end(cmds: &[Command], start: usize) -> usize {
    let mut depth = 1usize;
    for (i, cmd) in cmds.iter().enumerate().skip(start) {
        // Only leading keywords count: `echo done` does not end a loop.
        for w in &cmd.words {
            match w.keyword() {
                Some("for" | "while" | "until") => {
                    depth += 1;
                    break;
                }
                Some("done") => {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                    break;
                }
                Some("then" | "do" | "else" | "elif" | "if" | "fi" | "!" | "{" | "}") => {}
                _ => break,
            }
        }
    }
    cmds.len()
}

/// `NAME=value` split into the name and the value's parts.
fn assignment(w: &Word) -> Option<(String, Vec<Part>)> {
    let Some(Part::Lit(first)) = w.parts.first() else {
        return None;
    };
    let (name, rest) = first.split_once('=')?;
    // Quoted text is not an assignment (`"a=b"`): the name must be written bare.
    if !lex::is_name(name) || !w.raw.starts_with(&format!("{name}=")) {
        return None;
    }
    let mut parts = Vec::new();
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    parts.extend(w.parts[1..].iter().cloned());
    Some((name.to_string(), parts))
}

/// The value of an id option (`--uid 120`), if given.
fn numeric_id(option: &str, value: Option<&String>) -> Result<Option<u32>, String> {
    value
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| format!("{option} {v:?} is not a number"))
        })
        .transpose()
}

/// An octal mode like `0755` or `640`; symbolic modes are not supported.
fn octal_mode(s: &str) -> Result<u32, String> {
    if s.is_empty() || s.len() > 5 {
        return Err(format!("mode {s:?} is not an octal number"));
    }
    u32::from_str_radix(s, 8).map_err(|_| format!("mode {s:?} is not an octal number"))
}

/// Options as parsed by getopt_long: flags by long name (value or empty), then the operands.
struct ParsedOptions {
    flags: BTreeMap<String, String>,
    operands: Vec<String>,
}

/// Parses `-rM`, `-g G`, `-gG`, `--gid G`, `--gid=G` against `(short, long, takes_value)` specs; an
/// unknown option is an error, because it might change what the command does.
fn short_options(words: &[String], spec: &[(&str, &str, bool)]) -> Result<ParsedOptions, String> {
    let mut flags = BTreeMap::new();
    let mut operands = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if let Some(long) = w.strip_prefix("--").filter(|l| !l.is_empty()) {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let name = format!("--{name}");
            let Some((_, _, takes)) = spec.iter().find(|(_, l, _)| *l == name) else {
                return Err(format!("option {name} is not understood"));
            };
            let value = match (takes, inline) {
                (true, Some(v)) => v,
                (true, None) => it.next().cloned().ok_or(format!("{name} needs a value"))?,
                (false, _) => String::new(),
            };
            flags.insert(name, value);
        } else if let Some(letters) = w.strip_prefix('-').filter(|l| !l.is_empty()) {
            for (i, c) in letters.char_indices() {
                let short = format!("-{c}");
                let Some((_, long, takes)) = spec.iter().find(|(s, _, _)| *s == short) else {
                    return Err(format!("option {short} is not understood"));
                };
                if *takes {
                    let rest = &letters[i + c.len_utf8()..];
                    let value = if rest.is_empty() {
                        it.next().cloned().ok_or(format!("{short} needs a value"))?
                    } else {
                        rest.to_string()
                    };
                    flags.insert(long.to_string(), value);
                    break;
                }
                flags.insert(long.to_string(), String::new());
            }
        } else {
            operands.push(w.clone());
        }
    }
    Ok(ParsedOptions { flags, operands })
}
