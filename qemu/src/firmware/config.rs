//! Reading `config.txt` / `tryboot.txt` the way the Pi firmware does: one `property=value` per
//! line, `#` comments and conditional filter sections (`include` is not followed: see below).
//!
//! Sources (Raspberry Pi documentation, `computers/config_txt`):
//! - "What is config.txt? / File format": <https://www.raspberrypi.com/documentation/computers/config_txt.html#file-format>
//!   (one `property=value` per line, `#` starts a comment, 98-character line limit, `include`).
//! - "Conditional filters": <https://www.raspberrypi.com/documentation/computers/config_txt.html#conditional-filters>
//!   (`[all]`, `[none]`, model filters, `[tryboot]`, `[board-type=..]`, filters of the same type
//!   replace each other, filters of different types combine).
//! - "initramfs": <https://www.raspberrypi.com/documentation/computers/config_txt.html#initramfs>
//!   (the one property written with a space instead of `=`).

use super::Model;

/// The firmware ignores every character of a line past this many.
pub const MAX_LINE_CHARS: usize = 98;

/// One setting that survived the conditional filters, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
}

/// The filter slots. The documentation says filters of one type replace each other and filters of
/// different types combine, and `[all]` resets them all.
#[derive(Debug, Default)]
struct FilterState {
    /// `[pi5]`, `[pi4]`, `[cm5]`, … — `None` when no model filter is in force.
    model: Option<bool>,
    /// `[board-type=0x..]`.
    board_type: Option<bool>,
    /// `[tryboot]`.
    tryboot: Option<bool>,
    /// Filters the harness cannot evaluate (`[EDID=..]`, `[gpioN=..]`, serial numbers, …),
    /// keyed by type so that a later filter of the same type replaces an earlier one.
    unknown: Vec<(String, bool)>,
    /// `[none]`: nothing applies until the next `[all]`.
    none: bool,
}

impl FilterState {
    fn active(&self) -> bool {
        !self.none
            && self.model.unwrap_or(true)
            && self.board_type.unwrap_or(true)
            && self.tryboot.unwrap_or(true)
            && self.unknown.iter().all(|(_, v)| *v)
    }

    fn set_unknown(&mut self, kind: &str, value: bool) {
        self.unknown.retain(|(k, _)| k != kind);
        self.unknown.push((kind.to_string(), value));
    }
}

/// What the parser needs from its caller.
pub(crate) struct ParseContext {
    pub tryboot: bool,
    pub model: Model,
}

/// Parses `file_name`, returning the settings that apply, in order.
pub(crate) fn parse(
    ctx: &ParseContext,
    file_name: &str,
    text: &str,
    notes: &mut Vec<String>,
) -> Vec<Entry> {
    let mut state = FilterState::default();
    let mut out = Vec::new();
    parse_into(ctx, file_name, text, &mut state, &mut out, notes);
    out
}

fn parse_into(
    ctx: &ParseContext,
    file_name: &str,
    text: &str,
    state: &mut FilterState,
    out: &mut Vec<Entry>,
    notes: &mut Vec<String>,
) {
    for (index, raw) in text.lines().enumerate() {
        let line = truncate_line(raw, file_name, index + 1, notes);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(filter) = line.strip_prefix('[') {
            let Some(filter) = filter.strip_suffix(']') else {
                notes.push(format!(
                    "{file_name}:{}: `{line}` has no closing `]`; ignored",
                    index + 1
                ));
                continue;
            };
            apply_filter(ctx, filter.trim(), state, notes);
            continue;
        }
        if !state.active() {
            continue;
        }
        if let Some(included) = directive_arg(line, "include") {
            // config.txt › Advanced features › `include`: "The `include` directive is not
            // supported by the bootcode.bin or EEPROM bootloaders"
            // (https://www.raspberrypi.com/documentation/computers/config_txt.html#include).
            // The Pi 5 has no start.elf: its EEPROM bootloader is what reads config.txt and
            // loads the kernel, so nothing of the included file applies.
            notes.push(format!(
                "{file_name}:{}: `include {included}` ignored: the Pi 5's EEPROM bootloader does not support `include`",
                index + 1
            ));
            continue;
        }
        if let Some(rest) = directive_arg(line, "initramfs") {
            out.push(Entry {
                key: "initramfs".into(),
                value: rest.to_string(),
            });
            continue;
        }
        match line.split_once('=') {
            Some((key, value)) => out.push(Entry {
                key: key.trim().to_ascii_lowercase(),
                value: value.trim().to_string(),
            }),
            None => notes.push(format!(
                "{file_name}:{}: `{line}` is not `property=value`; ignored",
                index + 1
            )),
        }
    }
}

/// Applies the documented 98-character limit, noting when it cut something.
fn truncate_line<'l>(raw: &'l str, file: &str, line_no: usize, notes: &mut Vec<String>) -> &'l str {
    match raw.char_indices().nth(MAX_LINE_CHARS) {
        Some((cut, _)) => {
            let kept = &raw[..cut];
            if !raw[cut..].trim().is_empty() {
                notes.push(format!(
                    "{file}:{line_no}: line longer than {MAX_LINE_CHARS} characters; the rest is ignored as the firmware does"
                ));
            }
            kept
        }
        None => raw,
    }
}

/// `include foo.txt` / `initramfs a b`: a word, whitespace, then the argument.
fn directive_arg<'l>(line: &'l str, word: &str) -> Option<&'l str> {
    let rest = line.strip_prefix(word)?;
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let rest = rest.trim();
    (!rest.is_empty()).then_some(rest)
}

fn apply_filter(
    ctx: &ParseContext,
    filter: &str,
    state: &mut FilterState,
    notes: &mut Vec<String>,
) {
    let lower = filter.to_ascii_lowercase();
    match lower.as_str() {
        "all" => *state = FilterState::default(),
        "none" => state.none = true,
        "tryboot" => state.tryboot = Some(ctx.tryboot),
        _ => {
            if let Some(value) = lower.strip_prefix("board-type=") {
                state.board_type = Some(ctx.model.matches_board_type(value));
            } else if let Some(matches) = ctx.model.matches_model_filter(&lower) {
                state.model = Some(matches);
            } else {
                let kind = lower
                    .split(['=', ':'])
                    .next()
                    .unwrap_or(&lower)
                    .trim_end_matches(|c: char| c.is_ascii_digit())
                    .to_string();
                notes.push(format!(
                    "filter `[{filter}]` cannot be evaluated under QEMU; treated as false"
                ));
                state.set_unknown(&kind, false);
            }
        }
    }
}
