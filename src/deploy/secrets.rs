//! Secrets from the config: read locally, sent over the deploy's connection on stdin (never in argv,
//! logs, the store or an image), written on the target with their owner and mode via temp + rename.

use std::collections::BTreeMap;
use std::io;

use pideploy_config::HostConfig;
use pideploy_transport::Transport;

use super::{AgentCall, DeployError};

/// Writes stdin to ROOT+PATH: created 0600 under umask 077, owned and moded, then renamed.
const WRITE_SECRET: &str = r#"umask 077
f=$1$2
mkdir -p "${f%/*}"
t=$f.pideploy-tmp.$$
cat > "$t" && chown "$4:$5" "$t" && chmod "$3" "$t" && mv -f "$t" "$f" || { rm -f "$t"; exit 1; }"#;

/// uid/gid for an owner or group name of the config (root, a configured user, its primary group).
fn ids(config: &HostConfig) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::from([("root".to_string(), 0)]);
    for u in &config.users {
        m.insert(u.name.clone(), u.uid);
    }
    m
}

/// Sends every secret of the config; returns how many were written.
pub fn send(
    t: &mut dyn Transport,
    a: &AgentCall,
    config: &HostConfig,
) -> Result<usize, DeployError> {
    let ids = ids(config);
    let root = if a.root == "/" {
        String::new()
    } else {
        a.root.trim_end_matches('/').to_string()
    };
    for s in &config.secrets {
        let id = |name: &str, what: &str| {
            ids.get(name).copied().ok_or_else(|| {
                DeployError::Local(format!(
                    "secret {}: {what} {name:?} is not root or a configured user; use one of those",
                    s.target
                ))
            })
        };
        let (uid, gid) = (id(&s.owner, "owner")?, id(&s.group, "group")?);
        let data = std::fs::read(&s.source).map_err(|e| {
            DeployError::Local(format!("reading secret source {}: {e}", s.source.display()))
        })?;
        let mut argv = a.sudo_prefix();
        argv.extend(["sh", "-c", WRITE_SECRET, "pideploy-secret"].map(String::from));
        argv.extend([
            root.clone(),
            s.target.clone(),
            s.mode.clone(),
            uid.to_string(),
            gid.to_string(),
        ]);
        let mut err = Vec::new();
        let code = t.exec(
            &argv,
            &mut a.stdin(&mut io::Cursor::new(data)),
            &mut io::sink(),
            &mut err,
        )?;
        if code != 0 {
            return Err(DeployError::Agent {
                step: "writing secrets",
                target: t.describe(),
                message: format!("{}: {}", s.target, String::from_utf8_lossy(&err).trim()),
                output: String::new(),
            });
        }
    }
    Ok(config.secrets.len())
}
