//! The config digest: a sha256 that changes exactly when the built system would.
//!
//! Local paths are deliberately left out: the same config checked out in two directories must
//! give the same digest. A board file and a file's `source` contribute the sha256 of its contents instead of its
//! path; a secret's source and the wifi psk file contribute only the fact that they are set,
//! because their contents never enter the store.

use std::io::Read;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ConfigError;
use crate::host::HostConfig;

/// Bumped whenever the canonical form changes, so old and new digests never collide.
const DOMAIN: &[u8] = b"pideploy-config-digest-v1\0";

/// Stands in for a secret's local path in the canonical form.
const SECRET_PLACEHOLDER: &str = "<secret>";

impl HostConfig {
    /// sha256 over a canonical serialisation (JSON with sorted keys) plus the contents of
    /// referenced source files (not secrets' contents): the "config digest" used for reproducible ids.
    pub fn digest(&self) -> Result<[u8; 32], ConfigError> {
        let canonical = self.canonical_json()?;
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(canonical.as_bytes());
        Ok(hasher.finalize().into())
    }

    /// [`HostConfig::digest`] as lower-case hex.
    pub fn digest_hex(&self) -> Result<String, ConfigError> {
        Ok(hex::encode(self.digest()?))
    }

    /// The canonical text the digest covers (exposed so a changed digest can be explained by a diff).
    pub fn canonical_json(&self) -> Result<String, ConfigError> {
        let mut value = serde_json::to_value(self).map_err(ConfigError::Canonical)?;
        if crate::board::is_board_path(&self.board) {
            // A board file counts by its contents, like a file source.
            let hash = hash_file(Path::new(&self.board))?;
            value["board"] = Value::String(format!("sha256:{hash}"));
        }
        for (i, file) in self.files.iter().enumerate() {
            if let Some(source) = &file.source {
                value["files"][i]["source"] =
                    Value::String(format!("sha256:{}", hash_file(source)?));
            }
        }
        for i in 0..self.secrets.len() {
            value["secrets"][i]["source"] = Value::String(SECRET_PLACEHOLDER.to_owned());
        }
        if let Some(wifi) = &self.network.wifi {
            for (i, n) in wifi.networks.iter().enumerate() {
                if n.psk_file.is_some() {
                    value["network"]["wifi"]["networks"][i]["psk_file"] =
                        Value::String(SECRET_PLACEHOLDER.to_owned());
                }
            }
        }
        let mut out = String::new();
        write_canonical(&value, &mut out);
        Ok(out)
    }
}

fn hash_file(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Compact JSON with object keys sorted by byte order, independent of serde_json's map feature
/// (`preserve_order` anywhere in the dependency graph would otherwise change the digest).
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::write_canonical;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": 1, "a": {"z": [true, null], "y": "x\"y"}});
        let mut out = String::new();
        write_canonical(&value, &mut out);
        assert_eq!(out, r#"{"a":{"y":"x\"y","z":[true,null]},"b":1}"#);
    }
}
