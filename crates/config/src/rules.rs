//! Pure predicates for the string rules the config uses. Each takes the raw string and answers yes/no
//! (or parses), so they can be tested on their own and reused by the builder.

use std::net::Ipv4Addr;

/// A hostname: one RFC 1123 label (1..=63 of `[A-Za-z0-9-]`, no hyphen at either end).
pub fn is_hostname(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A user or group name: `[a-z_][a-z0-9_-]*`, at most 32 bytes (the useradd limit).
pub fn is_account_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_lowercase() || b == b'_' => {}
        _ => return false,
    }
    s.len() <= 32
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A time zone name by shape only: `UTC`, `Europe/Berlin`, `America/Argentina/Buenos_Aires`, `Etc/GMT+1`.
pub fn is_timezone(s: &str) -> bool {
    let segment_ok = |seg: &str| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
    };
    s.len() <= 64 && s.starts_with(|c: char| c.is_ascii_uppercase()) && s.split('/').all(segment_ok)
}

/// A locale name by shape: `language[_TERRITORY][.codeset][@modifier]` as glibc reads `LANG`
/// (setlocale(3)), e.g. `de_DE.UTF-8`, `C.UTF-8`, `sr_RS@latin`.
pub fn is_locale(s: &str) -> bool {
    let (rest, modifier) = s.split_once('@').unwrap_or((s, ""));
    let (name, codeset) = rest.split_once('.').unwrap_or((rest, ""));
    let (lang, territory) = name.split_once('_').unwrap_or((name, ""));
    let word = |w: &str| w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let lang_ok = if lang == "C" {
        territory.is_empty() && modifier.is_empty()
    } else {
        (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase())
    };
    s.len() <= 64 && lang_ok && word(territory) && word(codeset) && word(modifier)
}

/// The directory glibc looks a locale up in under /usr/lib/locale: the codeset normalised
/// (lower case, only letters and digits: `UTF-8` → `utf8`), as `_nl_normalize_codeset` does.
pub fn locale_dir(s: &str) -> String {
    let (rest, modifier) = match s.split_once('@') {
        Some((r, m)) => (r, format!("@{m}")),
        None => (s, String::new()),
    };
    match rest.split_once('.') {
        Some((name, codeset)) => {
            let norm: String = codeset
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            format!("{name}.{norm}{modifier}")
        }
        None => format!("{rest}{modifier}"),
    }
}

/// A console keymap name: `de`, `fr-latin1`, `de_CH-latin1`, `us` (a file name under
/// /usr/share/keymaps without `.kmap.gz`).
pub fn is_keymap(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.starts_with(['.', '-'])
}

/// An NTP server: a host name or an IP address, as systemd-timesyncd's `NTP=` takes them.
pub fn is_ntp_server(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
        || (1..=253).contains(&s.len()) && s.trim_end_matches('.').split('.').all(is_hostname)
}

/// Parses `a.b.c.d/len` (len 0..=32).
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    // `u8::from_str` accepts a leading '+', which a CIDR never has.
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some((addr, len))
}

/// Whether `ip` lies in the subnet `net/len`.
pub fn in_subnet(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// A wifi regulatory domain: two upper-case ASCII letters.
pub fn is_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// An octal file mode string: 3 or 4 octal digits (`"644"`, `"0644"`, `"4755"`).
pub fn parse_mode(s: &str) -> Option<u32> {
    if !(3..=4).contains(&s.len()) || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok()
}

/// A service name: `[a-z0-9][a-z0-9_.-]*`, at most 64 bytes.
pub fn is_service_name(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// A Debian package name (policy 5.6.1): lower-case letters, digits, `+ - .`; at least two
/// characters; starting with a letter or digit.
pub fn is_package_name(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}

/// Directories whose contents pideploy, the kernel or the store own, each with why a configured
/// file or secret may not go there (nor replace the directory itself).
pub const RESERVED_TARGET_DIRS: &[(&str, &str)] = &[
    ("/pideploy", "is managed by pideploy (store, generations); choose a path outside /pideploy"),
    ("/run", "is managed by pideploy and lost at every boot (/run/current-system is the store); choose a path outside /run"),
    ("/proc", "is a kernel file system; choose a path outside /proc"),
    ("/sys", "is a kernel file system; choose a path outside /sys"),
    ("/dev", "is a kernel file system; choose a path outside /dev"),
    ("/usr", "is in the read-only system (/usr is a link into the store); add a package, or use /etc, /var, /srv or /opt"),
    ("/bin", "is in the read-only system (/bin is a link into the store); add a package, or use /etc, /var, /srv or /opt"),
    ("/sbin", "is in the read-only system (/sbin is a link into the store); add a package, or use /etc, /var, /srv or /opt"),
    ("/lib", "is in the read-only system (/lib is a link into the store); add a package, or use /etc, /var, /srv or /opt"),
    ("/etc/static", "is in the read-only system (/etc/static is this generation's etc in the store); use another path under /etc"),
    ("/tmp", "is in a directory every user can write (anyone could put a link or directory there first); choose one only root can write"),
    ("/var/tmp", "is in a directory every user can write (anyone could put a link or directory there first); choose one only root can write"),
];

/// Directories activation makes and keeps; a file cannot take their place.
const KEPT_DIRS: &[&str] = &[
    "/etc",
    "/home",
    "/root",
    "/var",
    "/var/log",
    "/mnt",
    "/boot",
    "/boot/firmware",
];

/// Why a string is not an absolute, normalised path, or `None` if it is one.
pub fn absolute_path_problem(s: &str) -> Option<&'static str> {
    if !s.starts_with('/') {
        return Some("must be an absolute path");
    }
    if s == "/" || s.ends_with('/') {
        return Some("must name a file, not a directory");
    }
    if s.contains('\0') || s.contains('\n') {
        return Some("must not contain NUL or newline characters");
    }
    if s[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("must not contain empty, `.` or `..` components");
    }
    None
}

/// Why a target path of a configured file or secret is unacceptable, or `None` if it is fine.
pub fn target_path_problem(s: &str) -> Option<&'static str> {
    if let Some(problem) = absolute_path_problem(s) {
        return Some(problem);
    }
    let reserved = RESERVED_TARGET_DIRS.iter().find(|(dir, _)| {
        s == *dir
            || s.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if let Some((_, why)) = reserved {
        return Some(why);
    }
    KEPT_DIRS
        .contains(&s)
        .then_some("is a directory activation keeps; name a file inside it")
}

/// Key types OpenSSH accepts in authorized_keys.
const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// An authorized_keys line: optional options, a known key type, then base64 key data.
pub fn is_ssh_public_key(s: &str) -> bool {
    if s.contains('\n') || s.contains('\r') {
        return false;
    }
    let tokens: Vec<&str> = s.split_whitespace().collect();
    tokens.windows(2).any(|pair| {
        SSH_KEY_TYPES.contains(&pair[0])
            && pair[1].len() >= 16
            && pair[1]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    })
}

/// A device tree overlay spec: `name` or `name,param[=value],...` with no whitespace.
pub fn is_overlay(s: &str) -> bool {
    let name = s.split(',').next().unwrap_or("");
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        && !s.chars().any(char::is_whitespace)
}

/// A kernel module name as `modprobe` takes it (the kernel caps names at 55 bytes).
pub fn is_module_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 55
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert!(is_module_name("snd_bcm2835"));
        assert!(is_module_name("brcmfmac"));
        assert!(is_module_name("hid-generic"));
        assert!(!is_module_name(""));
        assert!(!is_module_name("../x"));
        assert!(!is_module_name("a b"));
        assert!(!is_module_name("x.ko"));
        assert!(!is_module_name(&"a".repeat(56)));
    }

    #[test]
    fn hostnames() {
        assert!(is_hostname("pi"));
        assert!(is_hostname("pi-5-kitchen"));
        assert!(is_hostname(&"a".repeat(63)));
        assert!(!is_hostname(&"a".repeat(64)));
        assert!(!is_hostname(""));
        assert!(!is_hostname("-pi"));
        assert!(!is_hostname("pi-"));
        assert!(!is_hostname("pi.local"));
        assert!(!is_hostname("pi_5"));
    }

    #[test]
    fn account_names() {
        assert!(is_account_name("pi"));
        assert!(is_account_name("_svc-1"));
        assert!(!is_account_name("1pi"));
        assert!(!is_account_name("Pi"));
        assert!(!is_account_name(""));
        assert!(!is_account_name(&"a".repeat(33)));
    }

    #[test]
    fn locales() {
        for ok in [
            "de_DE.UTF-8",
            "C.UTF-8",
            "en_GB.UTF-8",
            "sr_RS@latin",
            "ast_ES.UTF-8",
            "C",
        ] {
            assert!(is_locale(ok), "{ok}");
        }
        for bad in [
            "",
            "DE_de.UTF-8",
            "de_DE.UTF 8",
            "C_DE",
            "../etc",
            "de_DE/x",
            "x",
        ] {
            assert!(!is_locale(bad), "{bad}");
        }
        assert_eq!(locale_dir("de_DE.UTF-8"), "de_DE.utf8");
        assert_eq!(locale_dir("sr_RS.UTF-8@latin"), "sr_RS.utf8@latin");
        assert_eq!(locale_dir("C.UTF-8"), "C.utf8");
        assert_eq!(locale_dir("sr_RS@latin"), "sr_RS@latin");
    }

    #[test]
    fn keymaps_and_ntp_servers() {
        for ok in ["de", "fr-latin1", "de_CH-latin1", "us"] {
            assert!(is_keymap(ok), "{ok}");
        }
        for bad in ["", "../de", "de/x", "-x", "de us"] {
            assert!(!is_keymap(bad), "{bad}");
        }
        for ok in [
            "pool.ntp.org",
            "10.0.2.2",
            "ntp1",
            "time.example.com.",
            "::1",
        ] {
            assert!(is_ntp_server(ok), "{ok}");
        }
        for bad in ["", "-x.org", "a b", "host:123", "a..b"] {
            assert!(!is_ntp_server(bad), "{bad}");
        }
    }

    #[test]
    fn timezones() {
        for ok in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+1",
        ] {
            assert!(is_timezone(ok), "{ok}");
        }
        for bad in [
            "",
            "utc",
            "Europe/",
            "Europe//Berlin",
            "../etc/passwd",
            "Europe/Ber lin",
        ] {
            assert!(!is_timezone(bad), "{bad}");
        }
    }

    #[test]
    fn cidr_and_subnet() {
        assert_eq!(
            parse_cidr("192.168.1.10/24"),
            Some((Ipv4Addr::new(192, 168, 1, 10), 24))
        );
        assert_eq!(parse_cidr("10.0.0.1/33"), None);
        assert_eq!(parse_cidr("10.0.0.1"), None);
        assert_eq!(parse_cidr("10.0.0.1/+8"), None);
        assert_eq!(parse_cidr("10.0.0/8"), None);
        let net = Ipv4Addr::new(192, 168, 1, 10);
        assert!(in_subnet(Ipv4Addr::new(192, 168, 1, 1), net, 24));
        assert!(!in_subnet(Ipv4Addr::new(192, 168, 2, 1), net, 24));
        assert!(in_subnet(Ipv4Addr::new(8, 8, 8, 8), net, 0));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("755"), Some(0o755));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        assert_eq!(parse_mode("0648"), None);
        assert_eq!(parse_mode("64"), None);
        assert_eq!(parse_mode("00644"), None);
    }

    #[test]
    fn target_paths() {
        assert_eq!(target_path_problem("/etc/motd"), None);
        assert_eq!(target_path_problem("/running/x"), None);
        assert!(target_path_problem("etc/motd").is_some());
        assert!(target_path_problem("/").is_some());
        assert!(target_path_problem("/etc/").is_some());
        assert!(target_path_problem("/etc/../pideploy/x").is_some());
        assert!(target_path_problem("/run/x").is_some());
        assert!(target_path_problem("/pideploy/store/x").is_some());
        assert!(target_path_problem("/dev/null").is_some());
    }

    #[test]
    fn immutable_system_and_shared_dirs_are_refused() {
        for p in [
            "/usr/bin/x",
            "/usr",
            "/bin/sh",
            "/bin",
            "/sbin/init",
            "/lib/x.so",
            "/lib",
            "/etc/static/passwd",
            "/etc/static",
            "/pideploy",
            "/run/current-system/x",
            "/tmp/x",
            "/var/tmp/x",
            "/etc",
            "/home",
            "/boot/firmware",
        ] {
            assert!(target_path_problem(p).is_some(), "{p}");
        }
        for p in [
            "/usr2/x",
            "/libexec/x",
            "/etc/statics",
            "/etc/x",
            "/var/lib/x",
            "/home/pi/x",
            "/tmpfile",
        ] {
            assert_eq!(target_path_problem(p), None, "{p}");
        }
        assert!(target_path_problem("/etc/static/x")
            .unwrap()
            .contains("read-only system"));
        assert_eq!(absolute_path_problem("/bin/bash"), None);
    }

    #[test]
    fn names_of_services_packages_overlays() {
        assert!(is_service_name("web.server_1"));
        assert!(!is_service_name("-web"));
        assert!(is_package_name("libc6"));
        assert!(is_package_name("g++"));
        assert!(!is_package_name("a"));
        assert!(!is_package_name("Foo"));
        assert!(!is_package_name("foo:arm64"));
        assert!(is_overlay("vc4-kms-v3d"));
        assert!(is_overlay("dwc2,dr_mode=host"));
        assert!(!is_overlay("dwc2, dr_mode=host"));
        assert!(!is_overlay(",x"));
    }

    #[test]
    fn ssh_keys() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhc3YQ4uTmTsQwdYLq8Kh4r9l0Zp0L4Zl1eRZ7b7C4Q me@laptop";
        assert!(is_ssh_public_key(key));
        assert!(is_ssh_public_key(&format!("no-pty {key}")));
        assert!(!is_ssh_public_key("ssh-ed25519"));
        assert!(!is_ssh_public_key(
            "AAAAC3NzaC1lZDI1NTE5AAAAIGhc3YQ4uTmTsQwdYLq8"
        ));
        assert!(!is_ssh_public_key(&format!("{key}\nssh-rsa AAAA")));
    }
}

/// The unit types systemd 252 knows, i.e. the suffixes a unit name may end in (systemd.unit(5)).
pub const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// What kind of unit name a string is (systemd.unit(5): `foo.service`, `foo@.service`,
/// `foo@bar.service`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitNameKind {
    /// `prefix.type`.
    Plain,
    /// `prefix@.type`: instantiated as `prefix@instance.type`.
    Template,
    /// `prefix@instance.type`.
    Instance,
}

/// Classifies a unit name the way systemd's `unit_name_is_valid` does: at most 255 bytes of
/// `[A-Za-z0-9:_.\-\\@]`, a non-empty prefix, a known type suffix after the last dot; the first
/// `@` splits prefix and instance (the instance may contain further `@`). `None` if invalid.
pub fn unit_name_kind(s: &str) -> Option<UnitNameKind> {
    if s.is_empty() || s.len() > 255 {
        return None;
    }
    let (stem, suffix) = s.rsplit_once('.')?;
    if stem.is_empty() || !UNIT_TYPES.contains(&suffix) {
        return None;
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b);
    if !stem.bytes().all(valid) {
        return None;
    }
    match stem.split_once('@') {
        None => Some(UnitNameKind::Plain),
        Some(("", _)) => None,
        Some((_, "")) => Some(UnitNameKind::Template),
        Some(_) => Some(UnitNameKind::Instance),
    }
}

/// An environment variable name systemd accepts in `Environment=`: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Why `s` cannot be written as a one-line systemd unit setting (`Description=`, `OnCalendar=`,
/// `WorkingDirectory=`), or `None`: control characters would break the line, and a trailing
/// backslash would join it with the next one.
pub fn unit_value_problem(s: &str) -> Option<&'static str> {
    if s.chars().any(char::is_control) {
        Some("must be one line without control characters")
    } else if s.ends_with('\\') {
        Some("must not end in a backslash (systemd would join the next line to it)")
    } else {
        None
    }
}
