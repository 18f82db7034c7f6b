//! Exit codes for commands that died from a signal.

/// The shell convention for a command killed by signal `n`.
pub(crate) fn code_for_signal_number(n: i32) -> i32 {
    128 + n
}

/// Maps the signal name SSH reports ("TERM", "KILL", …; RFC 4254 §6.10) to the shell's exit code.
/// Unknown names give 255, which is also what OpenSSH's client returns when it cannot tell.
pub(crate) fn code_for_signal_name(name: &str) -> i32 {
    // Linux numbering, which is what a Pi runs.
    let n = match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "SEGV" => 11,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "USR1" => 10,
        "USR2" => 12,
        _ => return 255,
    };
    code_for_signal_number(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_shell_codes() {
        assert_eq!(code_for_signal_name("KILL"), 137);
        assert_eq!(code_for_signal_name("SIGTERM"), 143);
        assert_eq!(code_for_signal_name("WEIRD"), 255);
    }
}
