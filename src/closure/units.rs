//! systemd unit files, pure: reading them (systemd.syntax(7)), what `systemctl enable` would link
//! for one of them, and writing the units for a `[[services]]` entry of pi.toml.
//!
//! Decisions, each following systemd 252 (Debian bookworm) unless said otherwise:
//! - [`parse_unit`] reads like systemd's `config_parse`: lines end at `\n`, `\r\n` or `\r`; a
//!   leading UTF-8 BOM is dropped; a line ending in an odd number of backslashes continues on the
//!   next, the backslash becoming a space, and blank or comment lines inside a continuation are
//!   skipped; after stripping whitespace, `#` and `;` start comments; `[Name]` opens a section and
//!   a `[` line without its `]` is an error, as for systemd. Lines systemd ignores with a warning
//!   (no `=`, no key, an assignment before any section) are ignored here too and listed in
//!   [`UnitFile::ignored`], because this module never prints. Text over [`MAX_UNIT_BYTES`] or with
//!   a NUL byte is refused.
//! - [`install_links`] follows `systemctl enable` for one file: `WantedBy=`/`RequiredBy=`/`UpheldBy=`
//!   give `<target>.wants|.requires|.upholds/<unit>`, `Alias=` gives `<alias>`, `Also=` names
//!   are returned for the caller; a name that breaks systemd's unit name grammar, an alias of
//!   another type, or a template alias of a non-template is an error (systemctl refuses those).
//!   Lists are whitespace-separated and an empty assignment empties
//!   the list so far. A template without an instance (neither in the name asked for nor by
//!   `DefaultInstance=`) gets no dependency links, which systemctl also skips (`serial-getty@`
//!   has `WantedBy=` but no default instance); those are reported in [`InstallPlan::skipped`].
//!   Of the specifiers systemctl expands in `[Install]` only the name ones are supported (`%n %N
//!   %p %i %j %%`); others are an error. A unit is static when it has no `WantedBy=`,
//!   `RequiredBy=`, `UpheldBy=`, `Alias=` nor `Also=` (an `[Install]` section holding only
//!   `DefaultInstance=` is static too, as systemctl reports it).
//! - [`exec_line`] quotes every argument that is not plain in double quotes with C escapes, and
//!   writes `%` as `%%` and `$` as `$$` everywhere, so neither specifiers nor variables are ever
//!   expanded. argv\[0\] must be an absolute, normalised path without quotes, backslashes or `$`:
//!   systemd runs argv\[0\] as the executable path unescaped and without `$` expansion, so only
//!   such a path means the same in both places.
//! - `Environment=` values are written as one `"NAME=value"` word with the same C escapes and
//!   `%%`, but `$` as is: systemd does not expand variables there.
//! - Both kinds of quoting are tested against a reader written from systemd.service(5) and, where
//!   the machine has systemd, against what `systemd --test` itself parsed.
//! - [`service_unit`] adds `StartLimitIntervalSec=0` to services that restart: systemd's default
//!   start limit (5 starts in 10 s) would otherwise give up on a crashing service after five
//!   1-second restarts, where pideploy's services before systemd were restarted for ever.
//!   Timers are not `Persistent=`: a Pi without a clock battery boots with a wrong clock, which
//!   would make missed runs look due at every boot.

use std::collections::HashSet;

use pideploy_config::rules::{self, UnitNameKind};
use pideploy_config::Restart;

/// The largest unit file [`parse_unit`] reads; real ones are a few KiB.
pub const MAX_UNIT_BYTES: usize = 1 << 20;

/// The longest `ExecStart=` value [`exec_line`] writes (systemd refuses longer unit file lines).
const MAX_EXEC_LINE: usize = 256 << 10;

/// One `Key=Value` assignment of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The section it is in, without brackets (`Install`).
    pub section: String,
    /// The key, whitespace-stripped.
    pub key: String,
    /// The value, whitespace-stripped; empty for `Key=`.
    pub value: String,
    /// 1-based line where the assignment starts.
    pub line: usize,
}

/// A parsed unit file: every assignment, in file order, repeated keys and empty ones kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// The name it was parsed under (for messages).
    pub name: String,
    /// The assignments in order.
    pub entries: Vec<Entry>,
    /// Lines systemd would ignore with a warning: (1-based line, why).
    pub ignored: Vec<(usize, String)>,
}

impl UnitFile {
    /// Every value of `key` in `section`, in order (across repeated sections).
    pub fn values<'a, 'k>(
        &'a self,
        section: &'k str,
        key: &'k str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'k> {
        self.entries
            .iter()
            .filter(move |e| e.section == section && e.key == key)
            .map(|e| e.value.as_str())
    }

    /// The last value of `key` in `section`, which is what a single-valued setting ends up as.
    pub fn last(&self, section: &str, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.section == section && e.key == key)
            .map(|e| e.value.as_str())
    }

    /// A list setting: the whitespace-separated words of every assignment, an empty assignment
    /// dropping the words before it.
    pub fn list(&self, section: &str, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for value in self.values(section, key) {
            if value.is_empty() {
                out.clear();
            }
            out.extend(value.split_whitespace().map(str::to_string));
        }
        out
    }

    /// Whether the file has a `[section]` header with at least one assignment.
    pub fn has_section(&self, section: &str) -> bool {
        self.entries.iter().any(|e| e.section == section)
    }
}

/// Parses unit file text (systemd.syntax(7)); `name` is used in messages only.
pub fn parse_unit(name: &str, text: &str) -> Result<UnitFile, String> {
    if text.len() > MAX_UNIT_BYTES {
        return Err(format!(
            "unit {name}: {} bytes is over the {} MiB a unit file may have",
            text.len(),
            MAX_UNIT_BYTES >> 20
        ));
    }
    if text.contains('\0') {
        return Err(format!("unit {name}: contains a NUL byte; not a unit file"));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut unit = UnitFile {
        name: name.to_string(),
        entries: Vec::new(),
        ignored: Vec::new(),
    };
    let mut section: Option<String> = None;
    // The joined text of a continued line and the line it started on.
    let mut continued: Option<(String, usize)> = None;
    for (i, raw) in lines(text).enumerate() {
        let number = i + 1;
        let (mut joined, start) = match continued.take() {
            Some((so_far, start)) => {
                // Blank and comment lines inside a continuation are skipped, as systemd does.
                let first = raw.trim_start_matches(is_unit_space).chars().next();
                if first.is_none_or(|c| c == '#' || c == ';') {
                    continued = Some((so_far, start));
                    continue;
                }
                (so_far + raw, start)
            }
            None => (raw.to_string(), number),
        };
        if ends_in_escape(&joined) {
            joined.pop();
            joined.push(' ');
            continued = Some((joined, start));
            continue;
        }
        parse_line(&mut unit, &mut section, &joined, start)?;
    }
    if let Some((joined, start)) = continued {
        parse_line(&mut unit, &mut section, &joined, start)?;
    }
    Ok(unit)
}

/// systemd's WHITESPACE: space, tab, newline, carriage return.
fn is_unit_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Lines split at `\n`, `\r\n` or a lone `\r`, as systemd's `read_line` does.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\n', '\r']) {
            Some(at) => {
                let skip = if s[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[at + skip..]).filter(|r| !r.is_empty());
                Some(&s[..at])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// Whether the line ends in a backslash that is not itself escaped.
fn ends_in_escape(line: &str) -> bool {
    let trailing = line.bytes().rev().take_while(|&b| b == b'\\').count();
    trailing % 2 == 1
}

fn parse_line(
    unit: &mut UnitFile,
    section: &mut Option<String>,
    line: &str,
    number: usize,
) -> Result<(), String> {
    let l = line.trim_matches(is_unit_space);
    if l.is_empty() || l.starts_with(['#', ';']) {
        return Ok(());
    }
    if let Some(inner) = l.strip_prefix('[') {
        let Some(name) = inner.strip_suffix(']') else {
            return Err(format!(
                "unit {}: line {number}: invalid section header {l:?}: write it as [Name]",
                unit.name
            ));
        };
        if name.chars().any(|c| c.is_control() || "\\\"'".contains(c)) {
            return Err(format!(
                "unit {}: line {number}: bad characters in section header {l:?}",
                unit.name
            ));
        }
        *section = Some(name.to_string());
        return Ok(());
    }
    let Some(section) = section else {
        unit.ignored
            .push((number, "assignment outside of a section".into()));
        return Ok(());
    };
    let Some((key, value)) = l.split_once('=') else {
        unit.ignored.push((number, "missing '='".into()));
        return Ok(());
    };
    let key = key.trim_matches(is_unit_space);
    if key.is_empty() {
        unit.ignored
            .push((number, "missing key name before '='".into()));
        return Ok(());
    }
    unit.entries.push(Entry {
        section: section.clone(),
        key: key.to_string(),
        value: value.trim_matches(is_unit_space).to_string(),
        line: number,
    });
    Ok(())
}

/// What enabling one unit file does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallPlan {
    /// Symlinks to make: (path relative to /etc/systemd/system, link target).
    pub links: Vec<(String, String)>,
    /// Units the caller must enable too (`Also=`).
    pub also: Vec<String>,
    /// No install rules at all: the unit is only ever started as a dependency.
    pub is_static: bool,
    /// Install rules systemctl would skip, each with why (one line).
    pub skipped: Vec<String>,
}

/// What `systemctl enable <unit_name>` would link for the unit file `unit` installed at
/// `unit_path` (the link target). `unit_name` is the file's name, or an instance of a template
/// file (`getty@tty2.service` for `getty@.service`) to enable that instance.
pub fn install_links(
    unit_name: &str,
    unit: &UnitFile,
    unit_path: &str,
) -> Result<InstallPlan, String> {
    let bad =
        |what: &str, name: &str, why: &str| format!("unit {unit_name}: {what} `{name}` {why}");
    let kind = rules::unit_name_kind(unit_name).ok_or_else(|| {
        bad(
            "name",
            unit_name,
            "is not a valid unit name (prefix[@instance].type)",
        )
    })?;
    let (prefix, suffix) = split_name(unit_name);
    let default_instance = match unit.last("Install", "DefaultInstance") {
        Some(d) if kind == UnitNameKind::Template && !d.is_empty() => {
            let d = expand(d, unit_name).map_err(|e| bad("DefaultInstance", d, &e))?;
            if !is_instance(&d) {
                return Err(bad("DefaultInstance", &d, "is not a valid instance name"));
            }
            Some(d)
        }
        _ => None,
    };
    // The name the links carry: an instance of a template, else the unit itself.
    let instance: Option<String> = match kind {
        UnitNameKind::Instance => split_instance(prefix).map(|(_, i)| i.to_string()),
        UnitNameKind::Template => default_instance,
        UnitNameKind::Plain => None,
    };
    let link_name = match (&kind, &instance) {
        (UnitNameKind::Template, Some(i)) => format!("{}{i}.{suffix}", prefix),
        _ => unit_name.to_string(),
    };
    let names = |key: &str| -> Result<Vec<String>, String> {
        unit.list("Install", key)
            .iter()
            .map(|w| expand(w, &link_name).map_err(|e| bad(key, w, &e)))
            .collect()
    };
    let mut plan = InstallPlan::default();
    let mut seen = HashSet::new();
    let mut add = |plan: &mut InstallPlan, path: String| {
        if seen.insert(path.clone()) {
            plan.links.push((path, unit_path.to_string()));
        }
    };
    let mut rules_found = false;
    for (key, dir) in [
        ("WantedBy", "wants"),
        ("RequiredBy", "requires"),
        ("UpheldBy", "upholds"),
    ] {
        for target in names(key)? {
            rules_found = true;
            let target_kind = rules::unit_name_kind(&target)
                .ok_or_else(|| bad(key, &target, "is not a valid unit name"))?;
            if kind == UnitNameKind::Template && instance.is_none() {
                plan.skipped.push(format!(
                    "{key}={target}: {unit_name} is a template without DefaultInstance=; enable an instance of it"
                ));
                continue;
            }
            // A template target gets the instance of the unit, as systemctl does.
            let target = match (target_kind, &instance) {
                (UnitNameKind::Template, Some(i)) => {
                    let (p, s) = split_name(&target);
                    format!("{p}{i}.{s}")
                }
                (UnitNameKind::Template, None) => {
                    plan.skipped.push(format!(
                        "{key}={target}: a template target needs an instance, and {unit_name} has none"
                    ));
                    continue;
                }
                _ => target,
            };
            add(&mut plan, format!("{target}.{dir}/{link_name}"));
        }
    }
    for alias in names("Alias")? {
        rules_found = true;
        let alias_kind = rules::unit_name_kind(&alias)
            .ok_or_else(|| bad("Alias", &alias, "is not a valid unit name"))?;
        if split_name(&alias).1 != suffix {
            return Err(bad(
                "Alias",
                &alias,
                &format!("must be a .{suffix} unit like the unit itself"),
            ));
        }
        let alias = match (kind, alias_kind) {
            (UnitNameKind::Template | UnitNameKind::Instance, UnitNameKind::Template) => {
                match &instance {
                    // Enabling an instance links the alias's instance of the same name.
                    Some(i) if kind == UnitNameKind::Instance => {
                        let (p, s) = split_name(&alias);
                        format!("{p}{i}.{s}")
                    }
                    _ => alias,
                }
            }
            (UnitNameKind::Plain, UnitNameKind::Plain) => alias,
            (UnitNameKind::Instance, UnitNameKind::Instance) => alias,
            _ => {
                return Err(bad(
                    "Alias",
                    &alias,
                    "must be a template exactly when the unit is one",
                ))
            }
        };
        if alias != unit_name {
            add(&mut plan, alias);
        }
    }
    for also in names("Also")? {
        rules_found = true;
        if rules::unit_name_kind(&also).is_none() {
            return Err(bad("Also", &also, "is not a valid unit name"));
        }
        if !plan.also.contains(&also) {
            plan.also.push(also);
        }
    }
    plan.is_static = !rules_found;
    Ok(plan)
}

/// `prefix` (with its `@` and instance, if any) and the type suffix of a valid unit name.
fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('.').unwrap_or((name, ""))
}

/// The prefix before `@` and the instance after it.
fn split_instance(stem: &str) -> Option<(&str, &str)> {
    stem.split_once('@')
}

/// An instance name systemd accepts: non-empty, of the unit name characters and `@`.
fn is_instance(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
}

/// Expands the name specifiers in an `[Install]` word for the unit `name` (systemd.unit(5)
/// "Specifiers"): `%n` full name, `%N` without type, `%p` prefix, `%i` instance, `%j` the part
/// of the prefix after its last `-`, `%%`.
fn expand(word: &str, name: &str) -> Result<String, String> {
    if !word.contains('%') {
        return Ok(word.to_string());
    }
    let (stem, _) = split_name(name);
    let (prefix, instance) = split_instance(stem).unwrap_or((stem, ""));
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('n') => out.push_str(name),
            Some('N') => out.push_str(stem),
            Some('p') => out.push_str(prefix),
            Some('i') => out.push_str(instance),
            Some('j') => out.push_str(prefix.rsplit('-').next().unwrap_or(prefix)),
            Some(other) => {
                return Err(format!(
                    "uses the specifier %{other}, which pideploy does not expand; only %n %N %p %i %j %% are"
                ))
            }
            None => return Err("ends in a lone %".into()),
        }
    }
    Ok(out)
}

/// An `ExecStart=` value that systemd splits back into exactly `argv`, with no specifier or
/// variable expansion (systemd.service(5) "Command lines").
pub fn exec_line(argv: &[String]) -> Result<String, String> {
    let Some(program) = argv.first() else {
        return Err("the command is empty; give the program and its arguments".into());
    };
    if let Some(problem) = program_problem(program) {
        return Err(format!("command[0] {program:?} {problem}"));
    }
    let mut words = Vec::with_capacity(argv.len());
    for (i, arg) in argv.iter().enumerate() {
        if arg.contains(['\0', '\n', '\r']) {
            return Err(format!(
                "command[{i}] contains a NUL or newline character, which a unit file cannot carry"
            ));
        }
        words.push(exec_word(arg));
    }
    let line = words.join(" ");
    if line.len() > MAX_EXEC_LINE {
        return Err(format!(
            "the command is {} bytes written out, over the {} KiB pideploy writes into a unit",
            line.len(),
            MAX_EXEC_LINE >> 10
        ));
    }
    Ok(line)
}

/// Why argv[0] cannot be the program of a generated unit, or `None`.
fn program_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some(
            "must be an absolute path (systemd runs no shell to search PATH): e.g. /usr/bin/foo",
        );
    }
    if p.ends_with('/')
        || p[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some(
            "must be a normalised path to a file: no empty, `.` or `..` components, no trailing /",
        );
    }
    if p.chars().any(|c| c.is_control() || "\"'\\$".contains(c)) {
        return Some("must not contain quotes, backslashes, `$` or control characters (systemd runs it unescaped)");
    }
    if p.len() >= 4096 || p.split('/').any(|c| c.len() > 255) {
        return Some("is longer than a Linux path may be");
    }
    None
}

/// One argument as an ExecStart word: bare when only plain characters, else double-quoted.
fn exec_word(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.,:=+@-".contains(&b));
    if plain {
        return arg.to_string();
    }
    format!("\"{}\"", escape_quoted(arg, true))
}

/// The inside of a double-quoted unit file word: C escapes for `\`, `"` and control characters,
/// `%%` for `%`, and (when `dollar`) `$$` for `$`.
fn escape_quoted(s: &str, dollar: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' if dollar => out.push_str("$$"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                // Only ASCII controls reach here as \xNN; other control characters are
                // written as \u escapes so the line stays printable.
                let n = u32::from(c);
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A pi.toml service is the spec of its units.
pub type ServiceSpec = pideploy_config::Service;

/// One generated unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedUnit {
    /// File name, e.g. `web.service`.
    pub name: String,
    /// The unit file text.
    pub text: String,
}

/// The units for one service: its `.service`, and a `.timer` when it is scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedUnits {
    /// `<name>.service`.
    pub service: GeneratedUnit,
    /// `<name>.timer`, for a scheduled service.
    pub timer: Option<GeneratedUnit>,
}

/// The unit files for a pi.toml service. `known(name)` answers whether an account of that name
/// exists on the built system; it is asked about the user (unless root) and the group.
pub fn service_unit(
    s: &ServiceSpec,
    known: &dyn Fn(&str) -> bool,
) -> Result<GeneratedUnits, String> {
    let at = format!("service {}", s.name);
    let service_name = format!("{}.service", s.name);
    if rules::unit_name_kind(&service_name) != Some(UnitNameKind::Plain) {
        return Err(format!("{at}: `{service_name}` is not a plain unit name"));
    }
    let value = |field: &str, v: &str| -> Result<String, String> {
        match rules::unit_value_problem(v) {
            Some(problem) => Err(format!("{at}: {field} {problem}")),
            None => Ok(v.replace('%', "%%")),
        }
    };
    let units = |field: &str, names: &[String]| -> Result<String, String> {
        for n in names {
            if rules::unit_name_kind(n).is_none() {
                return Err(format!("{at}: {field}: `{n}` is not a unit name"));
            }
        }
        Ok(names.join(" "))
    };
    let description = match &s.description {
        Some(d) => value("description", d)?,
        None => format!("{} (pi.toml service)", s.name),
    };
    let mut unit =
        format!("# Generated by pideploy from pi.toml.\n[Unit]\nDescription={description}\n");
    for (key, field, names) in [
        ("After", "after", &s.after),
        ("Wants", "wants", &s.wants),
        ("Requires", "requires", &s.requires),
    ] {
        if !names.is_empty() {
            unit += &format!("{key}={}\n", units(field, names)?);
        }
    }
    let scheduled = s.schedule.is_some();
    if !scheduled && s.restart() != Restart::No {
        unit += "StartLimitIntervalSec=0\n";
    }
    let exec = exec_line(&s.command).map_err(|e| format!("{at}: {e}"))?;
    unit += &format!(
        "\n[Service]\nType={}\nExecStart={exec}\n",
        if scheduled { "oneshot" } else { "simple" }
    );
    if !rules::is_account_name(&s.user) || (s.user != "root" && !known(&s.user)) {
        return Err(format!(
            "{at}: user `{}` does not exist on the system; add it to [[users]] or use a package's system user",
            s.user
        ));
    }
    unit += &format!("User={}\n", s.user);
    if let Some(group) = &s.group {
        if !rules::is_account_name(group) || !known(group) {
            return Err(format!(
                "{at}: group `{group}` does not exist on the system"
            ));
        }
        unit += &format!("Group={group}\n");
    }
    if let Some(dir) = &s.working_directory {
        if !dir.starts_with('/') || dir.contains('\\') {
            return Err(format!(
                "{at}: working_directory `{dir}` must be an absolute path without backslashes"
            ));
        }
        unit += &format!("WorkingDirectory={}\n", value("working_directory", dir)?);
    }
    for (key, val) in &s.environment {
        if !rules::is_env_name(key) || val.contains(['\0', '\n', '\r']) {
            return Err(format!(
                "{at}: environment {key}: names are [A-Za-z_][A-Za-z0-9_]*, values one line without NUL"
            ));
        }
        // Environment= values are not $-expanded, so `$` stays as it is.
        unit += &format!("Environment=\"{}={}\"\n", key, escape_quoted(val, false));
    }
    let restart = match s.restart() {
        Restart::Always => "always",
        Restart::OnFailure => "on-failure",
        Restart::No => "no",
    };
    unit += &format!("Restart={restart}\nRestartSec=1\nStandardOutput=journal\n");
    let timer = match &s.schedule {
        None => {
            unit += "\n[Install]\nWantedBy=multi-user.target\n";
            None
        }
        Some(calendar) => {
            if calendar.trim().is_empty() {
                return Err(format!("{at}: schedule is empty"));
            }
            Some(GeneratedUnit {
                name: format!("{}.timer", s.name),
                text: format!(
                    "# Generated by pideploy from pi.toml.\n[Unit]\nDescription=Runs {service_name} on schedule\n\n\
                     [Timer]\nOnCalendar={}\n\n[Install]\nWantedBy=timers.target\n",
                    value("schedule", calendar)?
                ),
            })
        }
    };
    Ok(GeneratedUnits {
        service: GeneratedUnit {
            name: service_name,
            text: unit,
        },
        timer,
    })
}

#[cfg(test)]
#[path = "units_tests.rs"]
mod tests;
