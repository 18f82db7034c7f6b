//! sysusers.d(5) files (systemd 252): `u`, `g`, `m` and `r` lines.

/// A `u` line: a system user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysUser {
    /// User name.
    pub name: String,
    /// Explicit uid, or `None` for "any free system id".
    pub uid: Option<u32>,
    /// Primary group; `None` means a group named like the user, created with it (same id if free).
    pub group: Option<PrimaryGroup>,
    /// GECOS field (empty for `-`).
    pub gecos: String,
    /// Home directory (`/` for `-`, as sysusers does).
    pub home: String,
    /// Shell (`/usr/sbin/nologin` for `-`, `/bin/sh` for uid 0, as sysusers does on Debian).
    pub shell: String,
}

/// The primary group of a `u NAME UID:GID` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryGroup {
    /// A numeric gid (`u sync 4:65534`).
    Id(u32),
    /// A group name (`u name 123:groupname`).
    Name(String),
}

/// One sysusers.d line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sysusers {
    /// `u NAME ID "GECOS" HOME SHELL`.
    User(SysUser),
    /// `g NAME ID`: a system group, `None` for "any free system id".
    Group {
        /// Group name.
        name: String,
        /// Explicit gid.
        gid: Option<u32>,
    },
    /// `m USER GROUP`: supplementary membership.
    Member {
        /// User name.
        user: String,
        /// Group name.
        group: String,
    },
    /// `r - LOW-HIGH`: a range dynamic ids may come from.
    Range {
        /// Lowest id.
        low: u32,
        /// Highest id.
        high: u32,
    },
}

/// Parses a sysusers.d file; `file` names it in errors (`file:line: what is wrong`).
///
/// An ID given as a path (sysusers' "owner of this file") is read as "any free id": on a freshly built
/// system there is no earlier file whose owner should be kept. Specifiers (`%…`) are refused.
pub fn parse_sysusers(file: &str, text: &str) -> Result<Vec<Sysusers>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{file}:{}", i + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_fields(line).map_err(|e| format!("{at}: {e}"))?;
        let field =
            |n: usize| -> Option<&str> { fields.get(n).map(String::as_str).filter(|f| *f != "-") };
        if let Some(f) = fields.iter().find(|f| f.contains('%')) {
            return Err(format!(
                "{at}: specifier in {f:?} is not supported; write the value out"
            ));
        }
        let ty = fields[0].as_str();
        // `r` lines have no name (`r - 500-900`).
        let name = match (ty, field(1)) {
            ("r", _) => "",
            (_, Some(name)) => {
                check_name(name).map_err(|e| format!("{at}: {e}"))?;
                name
            }
            (_, None) => return Err(format!("{at}: the name field is missing")),
        };
        let entry = match ty {
            "u" => {
                let (uid, group) = match field(2) {
                    None => (None, None),
                    Some(id) if id.starts_with('/') => (None, None),
                    Some(id) => match id.split_once(':') {
                        Some((u, g)) => {
                            let uid = if u == "-" {
                                None
                            } else {
                                Some(number(u, &at)?)
                            };
                            let group = match g.parse::<u32>() {
                                Ok(n) => PrimaryGroup::Id(n),
                                Err(_) => {
                                    check_name(g).map_err(|e| format!("{at}: {e}"))?;
                                    PrimaryGroup::Name(g.to_string())
                                }
                            };
                            (uid, Some(group))
                        }
                        None => (Some(number(id, &at)?), None),
                    },
                };
                let default_shell = if uid == Some(0) {
                    "/bin/sh"
                } else {
                    "/usr/sbin/nologin"
                };
                Sysusers::User(SysUser {
                    name: name.to_string(),
                    uid,
                    group,
                    gecos: field(3).unwrap_or_default().to_string(),
                    home: field(4).unwrap_or("/").to_string(),
                    shell: field(5).unwrap_or(default_shell).to_string(),
                })
            }
            "g" => Sysusers::Group {
                name: name.to_string(),
                gid: match field(2) {
                    Some(id) if !id.starts_with('/') => Some(number(id, &at)?),
                    _ => None,
                },
            },
            "m" => {
                let group = field(2).ok_or(format!("{at}: `m` needs a group"))?;
                check_name(group).map_err(|e| format!("{at}: {e}"))?;
                Sysusers::Member {
                    user: name.to_string(),
                    group: group.to_string(),
                }
            }
            "r" => {
                let range = field(2).ok_or(format!("{at}: `r` needs LOW-HIGH"))?;
                let (low, high) = match range.split_once('-') {
                    Some((l, h)) => (number(l, &at)?, number(h, &at)?),
                    None => (number(range, &at)?, number(range, &at)?),
                };
                if low > high {
                    return Err(format!("{at}: range {range} is empty"));
                }
                Sysusers::Range { low, high }
            }
            other => {
                return Err(format!(
                    "{at}: line type {other:?} is not supported (only u, g, m, r)"
                ))
            }
        };
        out.push(entry);
    }
    Ok(out)
}

fn number(s: &str, at: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("{at}: {s:?} is not a numeric id"))
}

/// Names end up in colon-separated files: no colons, white space, control characters or leading `-`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 32
        || name.starts_with('-')
        || name
            .chars()
            .any(|c| c == ':' || c == ',' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("{name:?} is not a valid user or group name"));
    }
    Ok(())
}

/// Splits a line into white-space separated fields; double or single quotes group, as in sysusers.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&c) = chars.peek() else {
            break;
        };
        let mut field = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            loop {
                match chars.next() {
                    Some(q) if q == c => break,
                    Some('\\') => field.extend(chars.next()),
                    Some(ch) => field.push(ch),
                    None => return Err(format!("unterminated {c} quote")),
                }
            }
        } else {
            while let Some(ch) = chars.next_if(|c| !c.is_whitespace()) {
                field.push(ch);
            }
        }
        out.push(field);
    }
    Ok(out)
}
