//! Which compression an output file gets, chosen by its name.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::IoError;

/// How an image file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Compression {
    /// A raw (sparse) disk image.
    None,
    /// xz (LZMA2), CRC64 check, multi-threaded with a fixed block size.
    Xz,
    /// Zstandard, level 3.
    Zstd,
}

impl Compression {
    /// Chooses by file name: `.img` gives [`Compression::None`], `.img.xz`/`.xz` gives
    /// [`Compression::Xz`], `.img.zst`/`.zst` gives [`Compression::Zstd`]; anything else is an
    /// error that lists the accepted endings. Case is ignored.
    pub fn from_path(p: &Path) -> Result<Self, IoError> {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        // A bare ".xz" is a hidden file with no stem, not an xz image of something.
        let has = |suffix: &str| name.len() > suffix.len() && name.ends_with(suffix);
        if has(".xz") {
            Ok(Compression::Xz)
        } else if has(".zst") {
            Ok(Compression::Zstd)
        } else if has(".img") {
            Ok(Compression::None)
        } else {
            Err(IoError::UnknownEnding {
                path: p.to_path_buf(),
            })
        }
    }

    /// The usual file ending for this compression (after `.img`), e.g. `".xz"`; empty for `None`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("pi.img", Some(Compression::None))]
    #[case("out/pi.img.xz", Some(Compression::Xz))]
    #[case("pi.xz", Some(Compression::Xz))]
    #[case("PI.IMG.ZST", Some(Compression::Zstd))]
    #[case("pi.zst", Some(Compression::Zstd))]
    #[case("pi.img.gz", None)]
    #[case("pi", None)]
    #[case(".xz", None)]
    #[case("pi.raw", None)]
    #[case("pi.img.zstd", None)]
    fn by_name(#[case] name: &str, #[case] want: Option<Compression>) {
        let got = Compression::from_path(Path::new(name));
        match want {
            Some(c) => assert_eq!(got.unwrap(), c),
            None => {
                let msg = got.unwrap_err().to_string();
                assert!(msg.contains(".img.xz") && msg.contains(".zst"), "{msg}");
            }
        }
    }
}
