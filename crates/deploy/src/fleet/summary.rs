//! The table printed after a fleet deploy: one row per host with its generation, result and time.

use std::time::Duration;

/// What a deploy did to one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostResult {
    /// A new generation is active and the default (`switch`).
    Switched,
    /// A new generation is the default from the next boot (`boot`).
    NextBoot,
    /// Activated for testing; a reboot returns to the default (`test`).
    Tested,
    /// The host already ran this system; nothing changed.
    Unchanged,
    /// The deploy failed; the error is reported beside the table.
    Failed,
}

impl HostResult {
    /// The word in the table.
    pub fn word(self) -> &'static str {
        match self {
            HostResult::Switched => "switched",
            HostResult::NextBoot => "next boot",
            HostResult::Tested => "tested",
            HostResult::Unchanged => "unchanged",
            HostResult::Failed => "FAILED",
        }
    }
}

/// One host's line of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Host name.
    pub host: String,
    /// Where it was deployed.
    pub target: String,
    /// The generation made, when one was.
    pub generation: Option<u32>,
    /// What happened.
    pub result: HostResult,
    /// How long its deploy took.
    pub elapsed: Duration,
}

/// The table, one line per row in the given order, columns aligned, ending in a newline.
pub fn table(rows: &[Row]) -> String {
    let header = ["HOST", "TARGET", "GENERATION", "RESULT", "TIME"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.host.clone(),
                r.target.clone(),
                r.generation.map_or("-".into(), |g| g.to_string()),
                r.result.word().to_string(),
                format!("{:.1}s", r.elapsed.as_secs_f64()),
            ]
        })
        .collect();
    let mut width = header.map(|h| h.chars().count());
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |c: [&str; 5]| {
        let l = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {:>w4$}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3],
            w4 = width[4]
        );
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for c in &cells {
        line([&c[0], &c[1], &c[2], &c[3], &c[4]]);
    }
    out
}

/// One closing line: how many hosts succeeded and failed, and the wall time.
pub fn totals(rows: &[Row], wall: Duration) -> String {
    let failed = rows
        .iter()
        .filter(|r| r.result == HostResult::Failed)
        .count();
    let hosts = if rows.len() == 1 { "host" } else { "hosts" };
    format!(
        "{} of {} {hosts} deployed, {failed} failed, in {:.1}s",
        rows.len() - failed,
        rows.len(),
        wall.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, target: &str, generation: Option<u32>, result: HostResult, ms: u64) -> Row {
        Row {
            host: host.into(),
            target: target.into(),
            generation,
            result,
            elapsed: Duration::from_millis(ms),
        }
    }

    #[test]
    fn columns_line_up() {
        let rows = [
            row(
                "web-1",
                "pi@10.0.0.11",
                Some(12),
                HostResult::Switched,
                3_450,
            ),
            row("db", "local:/srv/r", None, HostResult::Failed, 120),
            row("web-10", "root@h:2222", None, HostResult::Unchanged, 61_000),
        ];
        assert_eq!(
            table(&rows),
            "\
HOST    TARGET        GENERATION  RESULT      TIME
web-1   pi@10.0.0.11          12  switched    3.5s
db      local:/srv/r           -  FAILED      0.1s
web-10  root@h:2222            -  unchanged  61.0s
"
        );
        assert_eq!(
            totals(&rows, Duration::from_millis(61_250)),
            "2 of 3 hosts deployed, 1 failed, in 61.2s"
        );
    }

    #[test]
    fn every_result_has_a_word() {
        let words: Vec<_> = [
            HostResult::Switched,
            HostResult::NextBoot,
            HostResult::Tested,
            HostResult::Unchanged,
            HostResult::Failed,
        ]
        .map(HostResult::word)
        .into();
        assert_eq!(
            words,
            ["switched", "next boot", "tested", "unchanged", "FAILED"]
        );
        let one = [row("a", "t", Some(1), HostResult::Tested, 0)];
        assert_eq!(
            totals(&one, Duration::ZERO),
            "1 of 1 host deployed, 0 failed, in 0.0s"
        );
        assert_eq!(table(&[]), "HOST  TARGET  GENERATION  RESULT  TIME\n");
    }
}
