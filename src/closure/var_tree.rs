//! What a package ships under /var and /srv, as tmpfiles.d(5) lines. On the target /var is a real,
//! persistent directory rather than part of the read-only store, so a package's directories, files and
//! links there must be made on the target as dpkg would on first install: directories with their
//! packaged mode and the owner the postinst gives them, files copied from the store once and never
//! overwritten, links made if missing.

use super::maintainer::PathOwner;

/// What a data.tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeKind {
    /// A directory.
    Dir,
    /// A regular file (hard links count as files).
    File,
    /// A symbolic link to this target, verbatim.
    Symlink(String),
}

/// One entry of a package's data, relative to the root (`var/lib/mosquitto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Path without a leading `/` or `./`.
    pub path: String,
    /// Kind of entry.
    pub kind: TreeKind,
    /// Permission bits as packaged (`0o755`; the file type bits are ignored).
    pub mode: u32,
}

/// Returns the tmpfiles.d lines for `package`'s entries under `var/` and `srv/` (the top directories
/// themselves excepted: the system provides them), sorted by path so parents come first:
/// `d PATH MODE USER GROUP -` for a directory, `C PATH - - - - STORE/PATH` for a file (then a `z` line
/// when the postinst sets its owner or mode), `L PATH - - - - TARGET` for a link. Owner and mode come from
/// `ownership` (the postinst's `chown`, `chmod`, `dpkg-statoverride`; `chown -R` covers what is below),
/// else root, root and the packaged mode. `store_prefix` is the package's store path. Returns an empty
/// string when the package ships nothing there; an error names every path tmpfiles.d cannot express
/// (white space, control characters, quotes, backslashes).
pub fn var_tmpfiles(
    package: &str,
    store_prefix: &str,
    entries: &[TreeEntry],
    ownership: &[PathOwner],
) -> Result<String, String> {
    let mut picked: Vec<&TreeEntry> = entries
        .iter()
        .filter(|e| {
            let p = e.path.trim_end_matches('/');
            ["var/", "srv/"].iter().any(|top| p.starts_with(top))
        })
        .collect();
    if picked.is_empty() {
        return Ok(String::new());
    }
    picked.sort_by(|a, b| a.path.cmp(&b.path));
    picked.dedup_by(|a, b| a.path == b.path);

    let mut bad = Vec::new();
    let mut check = |what: &str| {
        if !expressible(what) {
            bad.push(format!("{what:?}"));
        }
    };
    check(store_prefix);
    for e in &picked {
        check(&e.path);
        if let TreeKind::Symlink(t) = &e.kind {
            check(t);
        }
    }
    for e in &picked {
        let owner = owner_of(&format!("/{}", e.path.trim_end_matches('/')), ownership);
        for name in owner.user.iter().chain(&owner.group) {
            check(name);
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "package {package}: tmpfiles.d cannot express {}; such paths under /var are not supported",
            bad.join(", ")
        ));
    }

    let mut out = format!(
        "# {package}: its files under /var and /srv (made by pideploy from the package data)\n"
    );
    for e in picked {
        let path = format!("/{}", e.path.trim_end_matches('/'));
        let owner = owner_of(&path, ownership);
        let user = owner.user.unwrap_or("root");
        let group = owner.group.unwrap_or("root");
        let mode = owner.mode.unwrap_or(e.mode) & 0o7777;
        let path_t = escape(&path);
        match &e.kind {
            TreeKind::Dir => out += &format!("d {path_t} {mode:04o} {user} {group} -\n"),
            TreeKind::File => {
                let src = escape(&format!("{}{path}", store_prefix.trim_end_matches('/')));
                out += &format!("C {path_t} - - - - {src}\n");
                if owner.user.is_some() || owner.group.is_some() || owner.mode.is_some() {
                    let mode = owner
                        .mode
                        .map_or("-".into(), |m| format!("{:04o}", m & 0o7777));
                    let user = owner.user.unwrap_or("-");
                    let group = owner.group.unwrap_or("-");
                    out += &format!("z {path_t} {mode} {user} {group} -\n");
                }
            }
            TreeKind::Symlink(target) => out += &format!("L {path_t} - - - - {}\n", escape(target)),
        }
    }
    Ok(out)
}

/// The owner fields that apply to `path`: its own entry, else the nearest `chown -R` above it.
struct Owner<'a> {
    user: Option<&'a str>,
    group: Option<&'a str>,
    mode: Option<u32>,
}

fn owner_of<'a>(path: &str, ownership: &'a [PathOwner]) -> Owner<'a> {
    let exact = ownership
        .iter()
        .find(|o| o.path.trim_end_matches('/') == path);
    let above = ownership
        .iter()
        .filter(|o| o.recursive && path.starts_with(&format!("{}/", o.path.trim_end_matches('/'))))
        .max_by_key(|o| o.path.len());
    let user = exact
        .and_then(|o| o.user.as_deref())
        .or(above.and_then(|o| o.user.as_deref()));
    let group = exact
        .and_then(|o| o.group.as_deref())
        .or(above.and_then(|o| o.group.as_deref()));
    // chmod -R gives directories and files one mode; only a path's own mode is taken.
    Owner {
        user,
        group,
        mode: exact.and_then(|o| o.mode),
    }
}

/// Whether tmpfiles.d can read `s` back as written: no white space, control characters, quotes or
/// backslashes (which it unquotes and unescapes), and not empty.
pub(super) fn expressible(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
}

/// `%` starts a specifier in tmpfiles.d; `%%` is a literal `%`.
fn escape(s: &str) -> String {
    s.replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: TreeKind, mode: u32) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind,
            mode,
        }
    }

    fn owner(path: &str, user: &str, recursive: bool, mode: Option<u32>) -> PathOwner {
        PathOwner {
            path: path.into(),
            user: Some(user.into()),
            group: None,
            mode,
            recursive,
        }
    }

    #[test]
    fn mosquitto_and_nginx_like_trees() {
        let entries = [
            entry("usr/sbin/mosquitto", TreeKind::File, 0o755),
            entry("var/lib/mosquitto/", TreeKind::Dir, 0o755),
            entry("var/", TreeKind::Dir, 0o755),
            entry("var/log/mosquitto", TreeKind::Dir, 0o755),
            entry("var/lib", TreeKind::Dir, 0o755),
            entry("var/www/html/index%.html", TreeKind::File, 0o644),
            entry(
                "var/lib/mosquitto/link",
                TreeKind::Symlink("../x".into()),
                0o777,
            ),
            entry("srv/data", TreeKind::Dir, 0o2775),
        ];
        let ownership = [
            owner("/var/lib/mosquitto", "mosquitto", false, None),
            owner("/var/log", "syslog", true, Some(0o700)),
            owner("/var/www/html/index%.html", "www-data", false, Some(0o640)),
        ];
        let got = var_tmpfiles("demo", "/pideploy/store/abc-demo-1", &entries, &ownership).unwrap();
        assert_eq!(
            got,
            "# demo: its files under /var and /srv (made by pideploy from the package data)\n\
             d /srv/data 2775 root root -\n\
             d /var/lib 0755 root root -\n\
             d /var/lib/mosquitto 0755 mosquitto root -\n\
             L /var/lib/mosquitto/link - - - - ../x\n\
             d /var/log/mosquitto 0755 syslog root -\n\
             C /var/www/html/index%%.html - - - - /pideploy/store/abc-demo-1/var/www/html/index%%.html\n\
             z /var/www/html/index%%.html 0640 www-data - -\n"
        );
    }

    #[test]
    fn nothing_under_var_gives_nothing() {
        let entries = [
            entry("usr/bin/x", TreeKind::File, 0o755),
            entry("var", TreeKind::Dir, 0o755),
        ];
        assert_eq!(var_tmpfiles("p", "/s", &entries, &[]).unwrap(), "");
    }

    #[test]
    fn inexpressible_paths_are_named() {
        let entries = [
            entry("var/lib/a b", TreeKind::Dir, 0o755),
            entry("var/lib/ok", TreeKind::Symlink("x\ny".into()), 0o777),
            entry("var/lib/q\"", TreeKind::File, 0o644),
        ];
        let e = var_tmpfiles("p", "/s", &entries, &[]).unwrap_err();
        assert!(
            e.contains("\"var/lib/a b\"") && e.contains("\"x\\ny\"") && e.contains("q\\\""),
            "{e}"
        );
        let e = var_tmpfiles(
            "p",
            "/s",
            &[entry("var/lib/x", TreeKind::Dir, 0o755)],
            &[owner("/var/lib/x", "bad user", false, None)],
        )
        .unwrap_err();
        assert!(e.contains("bad user"), "{e}");
    }
}
