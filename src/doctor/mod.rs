//! `pideploy doctor`: gathers facts about this machine, a target or an image (the I/O halves of
//! [`machine`], [`target`] and [`image`]) and turns them into [`Check`]s with pure functions, so
//! every verdict is unit-tested on data. Only `cli/` prints them.

pub mod image;
pub mod machine;
pub mod target;

use serde::Serialize;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth knowing (does not fail the run).
    Warn,
    /// Broken: pideploy will fail here until it is fixed.
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (short, stable: scripts may match on it).
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A warning with its fix.
    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A failure with its fix.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// True when any check failed (the run then exits non-zero).
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

/// Bytes as a person reads them (MiB below a GiB).
pub fn human(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes.div_ceil(MIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_failure_fails_the_run_and_warnings_do_not() {
        let ok = Check::ok("a", "fine");
        let warn = Check::warn("b", "meh", "do x");
        assert!(!any_failed(&[ok.clone(), warn.clone()]));
        assert!(any_failed(&[ok, warn, Check::fail("c", "bad", "do y")]));
    }

    #[test]
    fn sizes_read_as_mib_or_gib() {
        assert_eq!(human(1), "1 MiB");
        assert_eq!(human(5 << 20), "5 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
