//! Verified downloads: stream into a temp file inside the cache while hashing; only a file whose
//! size and sha256 match what was pinned is moved into the cache.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::cache::Cache;
use crate::error::CacheError;
use crate::sha::{copy_hashing, normalise_sha256};

/// Give up connecting after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Give up when a read stalls this long (not a limit on the whole download).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Cache {
    /// Downloads `url` (http/https), streaming to a temp file while hashing and reporting
    /// `progress(done, total)`. If the size or sha256 differ from what is expected, the error
    /// names the URL, expected and actual values, and nothing enters the cache. Already cached
    /// contents are returned without any network access.
    pub fn fetch(
        &self,
        url: &str,
        expected_sha256: &str,
        expected_size: Option<u64>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<PathBuf, CacheError> {
        let expected = normalise_sha256(expected_sha256)?;
        if let Some(path) = self.path_of(&expected) {
            return Ok(path);
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CacheError::UnsupportedUrl {
                url: url.to_owned(),
            });
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .build();
        let response = agent.get(url).call().map_err(|e| match e {
            ureq::Error::Status(status, _) => CacheError::HttpStatus {
                url: url.to_owned(),
                status,
            },
            ureq::Error::Transport(t) => CacheError::Transport {
                url: url.to_owned(),
                source: Box::new(t),
            },
        })?;
        let announced = response
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(want), Some(got)) = (expected_size, announced) {
            if want != got {
                return Err(size_mismatch(url, want, got));
            }
        }
        let total = expected_size.or(announced);
        progress(0, total);

        let mut temp = self.temp_file()?;
        let mut body = response.into_reader();
        let result = download(&mut body, temp.as_file_mut(), expected_size, &mut |done| {
            progress(done, total)
        });
        let (actual, size) = match result {
            Ok(done) => done,
            Err(Failure::TooLong(got)) => {
                return Err(size_mismatch(url, expected_size.unwrap_or(0), got))
            }
            Err(Failure::Io(source)) => {
                return Err(CacheError::Body {
                    url: url.to_owned(),
                    source,
                })
            }
        };
        // `temp` is deleted on every early return below: nothing unverified is ever renamed into place.
        if let Some(want) = expected_size {
            if want != size {
                return Err(size_mismatch(url, want, size));
            }
        }
        if actual != expected {
            return Err(CacheError::HashMismatch {
                url: url.to_owned(),
                expected,
                actual,
            });
        }
        let path = self.commit(temp, &expected)?;
        self.record_name(&expected, file_name_of(url))?;
        Ok(path)
    }
}

enum Failure {
    /// More bytes arrived than pinned (a wrong or hostile mirror); stop early.
    TooLong(u64),
    Io(std::io::Error),
}

fn download(
    body: &mut dyn Read,
    out: &mut dyn Write,
    limit: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<(String, u64), Failure> {
    let mut too_long = None;
    let result = copy_hashing(body, out, &mut |done| {
        if limit.is_some_and(|max| done > max) {
            too_long = Some(done);
            return Err(std::io::Error::other("more data than expected"));
        }
        progress(done);
        Ok(())
    });
    match (result, too_long) {
        (_, Some(got)) => Err(Failure::TooLong(got)),
        (Ok(done), None) => Ok(done),
        (Err(e), None) => Err(Failure::Io(e)),
    }
}

fn size_mismatch(url: &str, expected: u64, actual: u64) -> CacheError {
    CacheError::SizeMismatch {
        url: url.to_owned(),
        expected,
        actual,
    }
}

/// The last path segment of a URL, without query or fragment (the name shown by `cache list`).
fn file_name_of(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::file_name_of;

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            file_name_of(
                "http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1_arm64.deb"
            ),
            "busybox-static_1_arm64.deb"
        );
        assert_eq!(file_name_of("https://x/a.deb?sig=1#frag"), "a.deb");
        assert_eq!(file_name_of("https://x/"), "");
    }
}
