//! Downloading an apt repository's `Packages` index (for `pideploy lock` online).

use pideploy_debian::packages::Package;

/// Why an index could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The HTTP request failed.
    #[error("downloading {url}: {reason}; check the network, or pass --index SOURCE=FILE with a local copy")]
    Http {
        /// The index URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
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

/// `<url>/dists/<suite>/<component>/binary-<arch>/Packages.xz`.
pub fn index_url(base: &str, suite: &str, component: &str, arch: &str) -> String {
    format!(
        "{}/dists/{suite}/{component}/binary-{arch}/Packages.xz",
        base.trim_end_matches('/')
    )
}

/// Downloads and parses one index.
pub fn download(url: &str) -> Result<Vec<Package>, IndexError> {
    let resp = ureq::get(url).call().map_err(|e| IndexError::Http {
        url: url.into(),
        reason: e.to_string(),
    })?;
    // Bounded: a server that never stops sending is an error, not an exhausted memory.
    let bytes = pideploy_debian::packages::read_capped(resp.into_reader(), url).map_err(|e| {
        IndexError::Http {
            url: url.into(),
            reason: e.to_string(),
        }
    })?;
    pideploy_debian::packages::parse_bytes(&bytes).map_err(|source| IndexError::Parse {
        url: url.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_layout() {
        assert_eq!(
            super::index_url("http://deb.debian.org/debian/", "bookworm", "main", "arm64"),
            "http://deb.debian.org/debian/dists/bookworm/main/binary-arm64/Packages.xz"
        );
    }
}
