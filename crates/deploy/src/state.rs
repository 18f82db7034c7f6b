//! What the target reports (`query`), parsed into data; and the pure copy plan.

use std::collections::{BTreeMap, BTreeSet};

use pideploy_store::StorePath;

use crate::AnswerError;

/// The target's state as one `query` round trip reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetState {
    /// Valid store paths (base names).
    pub have: BTreeSet<String>,
    /// Generations: number → toplevel.
    pub generations: BTreeMap<u32, String>,
    /// `system` → `system-N-link`.
    pub default: Option<String>,
    /// Toplevel of the running system.
    pub current: Option<String>,
    /// Who holds the deploy lock, if anyone.
    pub locked: Option<String>,
    /// `root=` of the default boot entry.
    pub rootarg: Option<String>,
    /// Kernel boot id (live targets only).
    pub boot_id: Option<String>,
    /// A generation waiting for its confirmation: number and kind (live, test, tryboot).
    pub pending: Option<(u32, String)>,
    /// The target can decompress zstd (else the stream is xz, which busybox always reads).
    pub zstd: bool,
    /// Digest of the secret set in place ([`super::secrets::Bundle::digest`]).
    pub secrets: Option<String>,
}

impl TargetState {
    /// Parses the agent's `query` output; an output without its `end` line was cut short.
    pub fn parse(text: &str) -> Result<Self, AnswerError> {
        let mut s = TargetState::default();
        let mut ended = false;
        for line in text.lines() {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "have" => {
                    s.have.insert(rest.to_string());
                }
                "gen" => {
                    let (n, top) = rest
                        .split_once(' ')
                        .ok_or_else(|| AnswerError::BadQueryLine(line.to_string()))?;
                    let n: u32 = n.parse().map_err(|_| AnswerError::BadNumber {
                        what: "generation number",
                        line: line.to_string(),
                    })?;
                    s.generations.insert(n, top.to_string());
                }
                "default" => s.default = Some(rest.to_string()),
                "current" => s.current = Some(rest.to_string()),
                "locked" => s.locked = Some(rest.to_string()),
                "rootarg" => s.rootarg = Some(rest.to_string()),
                "bootid" => s.boot_id = Some(rest.to_string()),
                "pending" => {
                    let (n, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                    let n = n.parse().map_err(|_| AnswerError::BadNumber {
                        what: "pending generation",
                        line: line.to_string(),
                    })?;
                    s.pending = Some((n, kind.to_string()));
                }
                "codec" => s.zstd |= rest == "zstd",
                "secrets" => s.secrets = Some(rest.to_string()),
                "end" => ended = true,
                _ => {
                    return Err(AnswerError::Unexpected {
                        what: "query",
                        line: line.to_string(),
                    })
                }
            }
        }
        if !ended {
            return Err(AnswerError::CutShort);
        }
        Ok(s)
    }

    /// Whether `top` is both the default generation and the running system.
    pub fn runs_as_default(&self, top: &str) -> bool {
        let default_top = self
            .default_generation()
            .and_then(|n| self.generations.get(&n));
        self.current.as_deref() == Some(top) && default_top.map(String::as_str) == Some(top)
    }

    /// Number of the default generation.
    pub fn default_generation(&self) -> Option<u32> {
        let d = self.default.as_deref()?;
        d.strip_prefix("system-")?
            .strip_suffix("-link")?
            .parse()
            .ok()
    }
}

/// The paths of `closure` (dependencies first) the target lacks, in the same order.
pub fn to_send(state: &TargetState, closure: &[StorePath]) -> Vec<StorePath> {
    closure
        .iter()
        .filter(|p| !state.have.contains(&p.base_name()))
        .cloned()
        .collect()
}

/// Whether a `switch` of `toplevel` would make a new generation: the agent skips it when the
/// closure is already both the default and the running system (its no-op rule).
pub fn switch_makes_generation(state: &TargetState, toplevel: &str) -> bool {
    let default_top = state
        .default_generation()
        .and_then(|n| state.generations.get(&n));
    !(default_top.map(String::as_str) == Some(toplevel)
        && state.current.as_deref() == Some(toplevel))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "have 0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-x\ngen 1 /pideploy/store/aaa-pideploy-system-pi\n\
gen 2 /pideploy/store/bbb-pideploy-system-pi\ndefault system-2-link\ncurrent /pideploy/store/bbb-pideploy-system-pi\n\
rootarg PARTUUID=1234abcd-02\nend\n";

    #[test]
    fn parses_query() {
        let s = TargetState::parse(SAMPLE).unwrap();
        assert_eq!(s.generations.len(), 2);
        assert_eq!(s.default_generation(), Some(2));
        assert_eq!(s.rootarg.as_deref(), Some("PARTUUID=1234abcd-02"));
        assert!(s.locked.is_none());
        assert!(TargetState::parse("have x\n")
            .unwrap_err()
            .to_string()
            .contains("cut short"));
        assert!(TargetState::parse("bogus\nend\n").is_err());
    }

    #[test]
    fn switch_is_a_no_op_only_when_default_and_running() {
        let s = TargetState::parse(SAMPLE).unwrap();
        assert!(!switch_makes_generation(
            &s,
            "/pideploy/store/bbb-pideploy-system-pi"
        ));
        assert!(switch_makes_generation(
            &s,
            "/pideploy/store/aaa-pideploy-system-pi"
        ));
        let mut booted_other = s.clone();
        booted_other.current = Some("/pideploy/store/aaa-pideploy-system-pi".into());
        assert!(switch_makes_generation(
            &booted_other,
            "/pideploy/store/bbb-pideploy-system-pi"
        ));
    }

    #[test]
    fn sends_only_missing_in_order() {
        let a = StorePath::parse("0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-x").unwrap();
        let b = StorePath::parse("1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-y").unwrap();
        let s = TargetState::parse(SAMPLE).unwrap();
        assert_eq!(to_send(&s, &[a, b.clone()]), vec![b]);
    }
}
