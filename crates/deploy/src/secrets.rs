//! Secrets from the config: read locally and sent as one set per generation, over the deploy's
//! connection on the switch step's stdin (never in argv, logs, the store or an image). The agent
//! keeps each generation's set root-only under `/var/lib/pideploy/secrets/N/` and puts the set of
//! the generation being activated in place (see `scripts/target.sh`, "Secrets"): a revert puts
//! the previous set back, a secret dropped from the config is removed, gc drops sets of removed
//! generations.

use std::collections::BTreeMap;

use pideploy_config::{wifi_psk_path, HostConfig, WifiSecurity};

use super::DeployError;

/// uid/gid for an owner or group name of the config (root, a configured user, its primary group).
fn ids(config: &HostConfig) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::from([("root".to_string(), 0)]);
    for u in &config.users {
        m.insert(u.name.clone(), u.uid);
    }
    m
}

/// A generation's secret set, packed for the agent.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The tar `switch` reads on stdin.
    pub tar: Vec<u8>,
    /// How many secrets it holds.
    pub count: usize,
    /// sha256 of the set (the tar before its `digest` member): the agent keeps it with the set,
    /// root-only, and `query` reports the one in place, so an unchanged switch needs no second call.
    pub digest: String,
}

/// The config's secret set as the agent's `switch` reads it: a tar holding `list` (one
/// `INDEX MODE UID GID TARGET` line per secret), the contents as files `0`, `1`, ... (root,
/// 0400), and `digest`.
pub fn bundle(config: &HostConfig) -> Result<Bundle, DeployError> {
    let ids = ids(config);
    let mut list = String::new();
    let mut tar = tar::Builder::new(Vec::new());
    let add = |tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o400);
        h.set_mtime(1);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, name, data)
            .map_err(|e| DeployError::Local(format!("packing the secrets: {e}")))
    };
    for (i, s) in config.secrets.iter().enumerate() {
        let id = |name: &str, what: &str| {
            ids.get(name).copied().ok_or_else(|| {
                DeployError::Local(format!(
                    "secret {}: {what} {name:?} is not root or a configured user; use one of those",
                    s.target
                ))
            })
        };
        let (uid, gid) = (id(&s.owner, "owner")?, id(&s.group, "group")?);
        if s.target.contains(['\n', '\r']) || s.target.trim() != s.target {
            return Err(DeployError::Local(format!(
                "secret {:?}: the target path has a line break or surrounding spaces; remove them",
                s.target
            )));
        }
        // Plaintext, or age-encrypted and decrypted here in memory.
        let data = pideploy_config::sealed::read_secret(&s.source)
            .map_err(|e| DeployError::Local(format!("secret {}: {e}", s.target)))?;
        add(&mut tar, &i.to_string(), &data)?;
        list += &format!("{i} {} {uid} {gid} {}\n", s.mode, s.target);
    }
    let mut count = config.secrets.len();
    for (n, (target, data)) in wifi_passphrases(config)?.into_iter().enumerate() {
        let i = config.secrets.len() + n;
        add(&mut tar, &i.to_string(), &data)?;
        list += &format!("{i} 0400 0 0 {target}\n");
        count += 1;
    }
    add(&mut tar, "list", list.as_bytes())?;
    let digest = { pideploy_store::Sha256::of(tar.get_ref()).to_hex() };
    add(&mut tar, "digest", digest.as_bytes())?;
    let out = tar
        .into_inner()
        .map_err(|e| DeployError::Local(format!("packing the secrets: {e}")))?;
    Ok(Bundle {
        tar: out,
        count,
        digest,
    })
}

/// The Wi-Fi passphrases of the config, read from their `psk_file`s, with the path each goes to
/// on the target (root's, 0400). One line break at the end of a file is not part of it. Refused
/// with one line: a passphrase wpa_supplicant would not take (WPA2: 8 to 63 printable ASCII
/// characters, IEEE 802.11i; WPA3: 1 to 128).
pub fn wifi_passphrases(config: &HostConfig) -> Result<Vec<(String, Vec<u8>)>, DeployError> {
    let mut out = Vec::new();
    let Some(wifi) = &config.network.wifi else {
        return Ok(out);
    };
    for (i, n) in wifi.networks.iter().enumerate() {
        let Some(file) = &n.psk_file else { continue };
        // Plaintext, or age-encrypted and decrypted here in memory.
        let mut data = pideploy_config::sealed::read_secret(file)
            .map_err(|e| DeployError::Local(format!("network.wifi.networks[{i}].psk_file: {e}")))?;
        for end in [&b"\n"[..], b"\r"] {
            if data.ends_with(end) {
                data.pop();
            }
        }
        let range = match n.security {
            WifiSecurity::Wpa3 => 1..=128,
            _ => 8..=63,
        };
        if !range.contains(&data.len()) || !data.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(DeployError::Local(format!(
                "network.wifi.networks[{i}].psk_file: {} must hold the passphrase of {:?}: {} to {} printable ASCII characters on one line",
                file.display(),
                n.ssid,
                range.start(),
                range.end()
            )));
        }
        out.push((wifi_psk_path(i), data));
    }
    Ok(out)
}
