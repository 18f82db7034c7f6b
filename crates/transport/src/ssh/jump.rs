//! Which jump hosts lie between us and a target: `ProxyJump` followed the way OpenSSH follows it.
//! Pure apart from reading the ssh config.
//!
//! OpenSSH turns `ProxyJump j1,j2` into "reach j2 with `-J j1`", so the last entry is the hop
//! next to the target and the entries before it replace that hop's own ProxyJump. A single
//! entry is reached with its own config, ProxyJump included. Every jump host gets the target's
//! identities, known_hosts, `accept_new`, passphrase and timeouts, but not its user or port:
//! those come from the entry or from the jump host's own config, as with OpenSSH.

use super::options::{self, Environment, Resolved};
use crate::{SshOptions, TransportError};

/// More hops than this is taken for a loop in the config rather than a network.
const MAX_HOPS: usize = 8;

/// The jump hosts to go through to reach `target`, the first one to connect to first; empty
/// when the target is reached directly.
pub(crate) fn plan(
    o: &SshOptions,
    target: &Resolved,
    env: &Environment,
) -> Result<Vec<Resolved>, TransportError> {
    let mut chain = Vec::new();
    if let Some(list) = &target.proxy_jump {
        let mut path = vec![target.alias.clone()];
        let to = target.describe();
        expand(o, env, &to, &target.alias, list, &mut path, &mut chain)?;
    }
    Ok(chain)
}

/// Appends to `chain` the hosts that `list` (the ProxyJump in effect for `host`) goes through.
/// `path` holds the hosts being expanded, to tell a loop from a long chain; `target` is the
/// final target, for messages.
fn expand(
    o: &SshOptions,
    env: &Environment,
    target: &str,
    host: &str,
    list: &str,
    path: &mut Vec<String>,
    chain: &mut Vec<Resolved>,
) -> Result<(), TransportError> {
    let bad = |reason: String| TransportError::BadProxyJump {
        host: host.to_string(),
        jump: list.to_string(),
        reason,
    };
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if entries.iter().any(|e| e.is_empty()) {
        return Err(bad("it has an empty entry".into()));
    }
    let (last, before) = entries
        .split_last()
        .expect("split yields at least one entry");
    let hop = jump_options(o, last).map_err(|e| bad(e.to_string()))?;
    if path.contains(&hop.host) {
        return Err(bad(format!(
            "it leads back to {} ({} -> {})",
            hop.host,
            path.join(" -> "),
            hop.host
        )));
    }
    if path.len() + chain.len() > MAX_HOPS {
        return Err(bad(format!(
            "it needs more than {MAX_HOPS} jump hosts, which looks like a loop in the config"
        )));
    }
    let resolved = options::resolve(&hop, env).map_err(|e| TransportError::JumpHost {
        target: target.to_string(),
        jump: hop.host.clone(),
        source: Box::new(e),
    })?;
    path.push(hop.host.clone());
    if !before.is_empty() {
        expand(
            o,
            env,
            target,
            &resolved.alias,
            &before.join(","),
            path,
            chain,
        )?;
    } else if let Some(own) = &resolved.proxy_jump {
        expand(o, env, target, &resolved.alias, own, path, chain)?;
    }
    path.pop();
    chain.push(resolved);
    Ok(())
}

/// The options for one ProxyJump entry, `[ssh://][user@]host[:port]`.
fn jump_options(o: &SshOptions, entry: &str) -> Result<SshOptions, TransportError> {
    let entry = entry.strip_prefix("ssh://").unwrap_or(entry);
    let mut hop = SshOptions::parse_target(entry)?;
    hop.identities = o.identities.clone();
    hop.known_hosts = o.known_hosts.clone();
    hop.accept_new = o.accept_new;
    hop.ssh_config = o.ssh_config.clone();
    hop.connect_timeout = o.connect_timeout;
    hop.keepalive = o.keepalive;
    hop.passphrase = o.passphrase.clone();
    Ok(hop)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn env(home: &Path) -> Environment {
        Environment {
            home: Some(home.to_path_buf()),
            local_user: Some("me".into()),
        }
    }

    /// (alias, user, hostname, port) of each hop for `host` under `config`.
    fn hops(
        config: &str,
        host: &str,
    ) -> Result<Vec<(String, String, String, u16)>, TransportError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, config).unwrap();
        let mut o = SshOptions::parse_target(host).unwrap();
        o.ssh_config = Some(path);
        o.identities = vec![PathBuf::from("/keys/explicit")];
        let env = env(dir.path());
        let target = options::resolve(&o, &env)?;
        let chain = plan(&o, &target, &env)?;
        for hop in &chain {
            // The user's explicit key is offered to every hop.
            assert_eq!(hop.identities[0].path, PathBuf::from("/keys/explicit"));
        }
        Ok(chain
            .into_iter()
            .map(|r| (r.alias, r.user, r.hostname, r.port))
            .collect())
    }

    fn hop(alias: &str, user: &str, hostname: &str, port: u16) -> (String, String, String, u16) {
        (alias.into(), user.into(), hostname.into(), port)
    }

    #[test]
    fn no_proxy_jump_means_no_hops() {
        assert_eq!(
            hops("Host pi\n  HostName 10.0.0.2\n", "pi").unwrap(),
            vec![]
        );
        assert_eq!(
            hops("Host pi\n  ProxyJump none\n", "pi").unwrap(),
            vec![],
            "`none` switches jumping off"
        );
    }

    #[test]
    fn each_jump_host_is_resolved_through_the_config() {
        let config = "Host pi\n  HostName 10.0.0.2\n  User pi\n  ProxyJump bastion\n\
                      Host bastion\n  HostName 192.0.2.1\n  Port 2222\n  User ops\n";
        assert_eq!(
            hops(config, "root@pi:22").unwrap(),
            vec![hop("bastion", "ops", "192.0.2.1", 2222)],
            "the target's user and port do not carry over to the jump host"
        );
    }

    #[test]
    fn entries_carry_user_and_port_and_chain_in_order() {
        let config = "Host pi\n  ProxyJump alice@first:2201,ssh://second,[::1]:2203\n\
                      Host second\n  HostName 198.51.100.7\n";
        assert_eq!(
            hops(config, "pi").unwrap(),
            vec![
                hop("first", "alice", "first", 2201),
                hop("second", "me", "198.51.100.7", 22),
                hop("::1", "me", "::1", 2203),
            ]
        );
    }

    #[test]
    fn a_jump_hosts_own_proxy_jump_is_followed_unless_the_list_overrides_it() {
        let config = "Host pi\n  ProxyJump inner\nHost inner\n  ProxyJump outer\n\
                      Host listed\n  ProxyJump other,inner\n";
        let names = |host| -> Vec<String> {
            hops(config, host)
                .unwrap()
                .into_iter()
                .map(|h| h.0)
                .collect()
        };
        assert_eq!(names("pi"), ["outer", "inner"]);
        // The list says `inner` is reached through `other`: its own ProxyJump does not apply.
        assert_eq!(names("listed"), ["other", "inner"]);
    }

    #[test]
    fn a_jump_host_that_cannot_be_resolved_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "Host pi\n  User pi\n  ProxyJump bastion\n").unwrap();
        let mut o = SshOptions::new("pi");
        o.ssh_config = Some(path);
        // No local user name: the jump host has no user to log in as.
        let env = Environment {
            home: Some(dir.path().to_path_buf()),
            local_user: None,
        };
        let target = options::resolve(&o, &env).unwrap();
        let e = plan(&o, &target, &env).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("connecting to pi@pi:22 via jump host bastion: invalid ssh target"),
            "{e}"
        );
    }

    #[test]
    fn loops_and_bad_entries_are_reported() {
        let e = hops("Host *\n  ProxyJump bastion\n", "pi").unwrap_err();
        assert!(matches!(e, TransportError::BadProxyJump { .. }), "{e}");
        assert!(e.to_string().contains("leads back to bastion"), "{e}");

        let e = hops("Host pi\n  ProxyJump a,,b\n", "pi").unwrap_err();
        assert!(e.to_string().contains("empty entry"), "{e}");
        let e = hops("Host pi\n  ProxyJump bastion:99999\n", "pi").unwrap_err();
        assert!(
            matches!(&e, TransportError::BadProxyJump { host, .. } if host == "pi"),
            "{e}"
        );
        assert!(e.to_string().contains("99999"), "{e}");
    }
}
