//! Downloading an apt source's `Packages` indexes for `pideploy lock`, verified as apt verifies
//! them: the suite's `InRelease` (or `Release` + `Release.gpg`) signed by a key of the source's
//! keyring, and each index matching the size and SHA256 the signed Release gives it.

use std::io::Read;

use pideploy_config::AptSource;
use pideploy_debian::packages::Package;
use pideploy_debian::release::{self, Keyring, Release, ReleaseError};

/// A signed Release above this is not one (Debian's largest are a few hundred KiB).
const RELEASE_CAP: u64 = 16 << 20;

/// Why an index could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The HTTP request failed.
    #[error("downloading {url}: {reason}; check the network, or pass --index SOURCE=FILE with a local copy")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Neither `InRelease` nor `Release` with `Release.gpg` is there.
    #[error("{url}: the archive offers no InRelease and no Release.gpg, so nothing vouches for its indexes; pideploy locks only from signed archives (or pass --index SOURCE=FILE with an index you trust)")]
    Unsigned {
        /// The suite's URL.
        url: String,
    },
    /// The Release or an index failed verification.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The index did not parse.
    #[error("parsing {url}: {source}")]
    Parse {
        /// The index URL.
        url: String,
        /// Cause.
        #[source]
        source: pideploy_debian::DebError,
    },
}

/// `<url>/dists/<suite>`.
pub fn suite_url(base: &str, suite: &str) -> String {
    format!("{}/dists/{suite}", base.trim_end_matches('/'))
}

/// The index of one component, relative to the suite: `<component>/binary-<arch>/Packages.xz`.
pub fn index_path(component: &str, arch: &str) -> String {
    format!("{component}/binary-{arch}/Packages.xz")
}

/// Downloads the source's signed Release and its `Packages` indexes (one per component), checks
/// them against `keys` at time `now` (seconds since the epoch), and parses them. `on_get` hears
/// each URL before it is fetched.
pub fn download(
    src: &AptSource,
    arch: &str,
    keys: &Keyring,
    now: i64,
    on_get: &mut dyn FnMut(&str),
) -> Result<Vec<Package>, IndexError> {
    let suite = suite_url(&src.url, &src.suite);
    let release = signed_release(&suite, keys, now, on_get)?;
    let mut pkgs = Vec::new();
    for comp in &src.components {
        let path = index_path(comp, arch);
        let url = format!("{suite}/{path}");
        on_get(&url);
        let bytes = get(&url, pideploy_debian::packages::MAX_INDEX_BYTES)?.ok_or_else(|| {
            IndexError::Http {
                url: url.clone(),
                reason: "not found (404)".into(),
            }
        })?;
        release.check(&format!("{suite}/InRelease"), &path, &bytes)?;
        pkgs.extend(
            pideploy_debian::packages::parse_bytes(&bytes)
                .map_err(|source| IndexError::Parse { url, source })?,
        );
    }
    Ok(pkgs)
}

/// The suite's Release, verified: `InRelease`, else `Release` with `Release.gpg`.
fn signed_release(
    suite: &str,
    keys: &Keyring,
    now: i64,
    on_get: &mut dyn FnMut(&str),
) -> Result<Release, IndexError> {
    let url = format!("{suite}/InRelease");
    on_get(&url);
    if let Some(bytes) = get(&url, RELEASE_CAP)? {
        return Ok(release::verify_inrelease(&bytes, keys, now, &url)?);
    }
    let url = format!("{suite}/Release");
    on_get(&url);
    let Some(text) = get(&url, RELEASE_CAP)? else {
        return Err(IndexError::Unsigned { url: suite.into() });
    };
    let sig_url = format!("{url}.gpg");
    on_get(&sig_url);
    let Some(sig) = get(&sig_url, RELEASE_CAP)? else {
        return Err(IndexError::Unsigned { url: suite.into() });
    };
    Ok(release::verify_detached(&text, &sig, keys, now, &url)?)
}

/// The body of `url` (at most `cap` bytes), or None where the server has no such file.
fn get(url: &str, cap: u64) -> Result<Option<Vec<u8>>, IndexError> {
    let http = |reason: String| IndexError::Http {
        url: url.into(),
        reason,
    };
    let resp = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(404 | 410, _)) => return Ok(None),
        Err(e) => return Err(http(e.to_string())),
    };
    // Bounded: a server that never stops sending is an error, not an exhausted memory.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader().take(cap + 1), &mut bytes)
        .map_err(|e| http(e.to_string()))?;
    if bytes.len() as u64 > cap {
        return Err(http(format!(
            "more than {} MiB; not what an apt archive serves there",
            cap >> 20
        )));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_layout() {
        let suite = super::suite_url("http://deb.debian.org/debian/", "bookworm");
        assert_eq!(suite, "http://deb.debian.org/debian/dists/bookworm");
        assert_eq!(
            super::index_path("main", "arm64"),
            "main/binary-arm64/Packages.xz"
        );
    }
}
