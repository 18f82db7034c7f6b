//! A small POSIX sh lexer for maintainer scripts: it splits a script into simple commands (at newlines,
//! `;`, `&`, `|`, `(`, `)`) made of words, and keeps each word's expansions apart so the caller can
//! resolve `$var` against assignments it has seen. It never executes anything and never fails: text
//! it does not understand (command substitutions, `$1`, `${x:-y}`) becomes an [`Part::Opaque`] part.

/// One piece of a word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text (quotes and backslashes already removed).
    Lit(String),
    /// `$name` or `${name}`.
    Var(String),
    /// `${name:-word}`, `${name:+word}` (and without the colon): the default or alternative `word`,
    /// as written, is used depending on `name`'s value.
    Alt {
        /// The variable.
        name: String,
        /// `-` (default) or `+` (alternative).
        op: char,
        /// Whether the colon form was used (an empty value counts as unset).
        colon: bool,
        /// The word as written.
        word: String,
    },
    /// An expansion whose value cannot be known without running the script, as written.
    Opaque(String),
}

/// A shell word: its parts and its source text (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The parts, in order.
    pub parts: Vec<Part>,
    /// The word as written in the script.
    pub raw: String,
}

impl Word {
    /// The word when it is a plain unquoted literal (keywords such as `if` only count then).
    pub fn keyword(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Lit(s)] if s == &self.raw => Some(s),
            _ => None,
        }
    }
}

/// What ends a simple command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A newline, `;`, `&`, a parenthesis or the end of the script.
    List,
    /// `&&`: the next command runs only if this one succeeds.
    And,
    /// `||`: the next command runs only if this one fails.
    Or,
    /// `|`: the output goes to the next command.
    Pipe,
}

/// A simple command: its words, the 1-based line it starts on, and what ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// 1-based line of the first word.
    pub line: usize,
    /// The words; never empty.
    pub words: Vec<Word>,
    /// The operator after it.
    pub end: End,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    /// Here-document delimiters waiting for the end of the current line (`true`: `<<-`).
    heredocs: Vec<(String, bool)>,
}

/// Splits `text` into simple commands. Redirections (`>/dev/null`, `2>&1`) and here-document bodies are
/// dropped; comments are skipped.
pub fn commands(text: &str) -> Vec<Command> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        heredocs: Vec::new(),
    };
    let mut out = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut start_line = 1;
    let mut finish = |words: &mut Vec<Word>, line: usize, end: End| {
        if !words.is_empty() {
            out.push(Command {
                line,
                words: std::mem::take(words),
                end,
            });
        }
    };
    while let Some(c) = lx.peek() {
        match c {
            ' ' | '\t' | '\r' => lx.pos += 1,
            '\\' if lx.peek_at(1) == Some('\n') => {
                lx.pos += 2;
                lx.line += 1;
            }
            '\n' => {
                finish(&mut words, start_line, End::List);
                lx.pos += 1;
                lx.line += 1;
                lx.skip_heredoc_bodies();
            }
            '#' => {
                while lx.peek().is_some_and(|c| c != '\n') {
                    lx.pos += 1;
                }
            }
            ';' | '&' | '|' | '(' | ')' => {
                let doubled = lx.peek_at(1) == Some(c);
                let end = match (c, doubled) {
                    ('&', true) => End::And,
                    ('|', true) => End::Or,
                    ('|', false) => End::Pipe,
                    _ => End::List,
                };
                finish(&mut words, start_line, end);
                lx.pos += if doubled && matches!(c, '&' | '|') {
                    2
                } else {
                    1
                };
            }
            '<' | '>' => lx.redirection(),
            _ => {
                if words.is_empty() {
                    start_line = lx.line;
                }
                let word = lx.word();
                // `2>/dev/null`: a word of digits right before a redirection is its file descriptor.
                if matches!(lx.peek(), Some('<' | '>'))
                    && !word.raw.is_empty()
                    && word.raw.chars().all(|c| c.is_ascii_digit())
                {
                    lx.redirection();
                } else {
                    words.push(word);
                }
            }
        }
    }
    finish(&mut words, start_line, End::List);
    out
}

fn is_meta(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
    )
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `s` is a shell variable name.
pub fn is_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(is_name_start) && cs.all(is_name_char)
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    /// Advances one char, counting lines.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Consumes a redirection operator and its target word; a here-document's delimiter is remembered
    /// so its body is skipped after the line ends.
    fn redirection(&mut self) {
        let mut op = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| matches!(c, '<' | '>' | '&' | '-' | '|'))
        {
            op.push(c);
            self.pos += 1;
        }
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        if self.peek().is_none_or(is_meta) {
            return;
        }
        let target = self.word();
        if let Some(rest) = op.strip_prefix("<<") {
            if !rest.starts_with('<') {
                let delim: String = target
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Lit(s) | Part::Opaque(s) => s.clone(),
                        Part::Var(v) => format!("${v}"),
                        Part::Alt { .. } => String::new(),
                    })
                    .collect();
                self.heredocs.push((delim, rest.starts_with('-')));
            }
        }
    }

    /// Skips the bodies of here-documents opened on the line just ended.
    fn skip_heredoc_bodies(&mut self) {
        for (delim, strip_tabs) in std::mem::take(&mut self.heredocs) {
            while self.peek().is_some() {
                let start = self.pos;
                while self.peek().is_some_and(|c| c != '\n') {
                    self.pos += 1;
                }
                let line: String = self.chars[start..self.pos].iter().collect();
                self.bump();
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if line == delim {
                    break;
                }
            }
        }
    }

    /// Reads one word up to an unquoted metacharacter.
    fn word(&mut self) -> Word {
        let start = self.pos;
        let mut parts = Vec::new();
        let mut lit = String::new();
        while let Some(c) = self.peek() {
            if is_meta(c) {
                break;
            }
            self.pos += 1;
            match c {
                '\'' => {
                    while let Some(c) = self.bump() {
                        if c == '\'' {
                            break;
                        }
                        lit.push(c);
                    }
                }
                '"' => self.double_quoted(&mut parts, &mut lit),
                '\\' => match self.bump() {
                    Some('\n') | None => {}
                    Some(c) => lit.push(c),
                },
                '$' => self.dollar(&mut parts, &mut lit),
                '`' => {
                    let raw = self.backticks();
                    push_part(&mut parts, &mut lit, Part::Opaque(raw));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Word {
            parts,
            raw: self.chars[start..self.pos].iter().collect(),
        }
    }

    fn double_quoted(&mut self, parts: &mut Vec<Part>, lit: &mut String) {
        while let Some(c) = self.bump() {
            match c {
                '"' => return,
                '\\' => match self.peek() {
                    Some('\n') => {
                        self.bump();
                    }
                    Some(n @ ('$' | '`' | '"' | '\\')) => {
                        self.pos += 1;
                        lit.push(n);
                    }
                    _ => lit.push('\\'),
                },
                '$' => self.dollar(parts, lit),
                '`' => {
                    let raw = self.backticks();
                    push_part(parts, lit, Part::Opaque(raw));
                }
                c => lit.push(c),
            }
        }
    }

    /// After a `$`: a variable, an opaque expansion, or a literal `$`.
    fn dollar(&mut self, parts: &mut Vec<Part>, lit: &mut String) {
        match self.peek() {
            Some('{') => {
                let inner = self.balanced('{', '}');
                let name = inner
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .filter(|s| is_name(s));
                let part = match name {
                    Some(name) => Part::Var(name.to_string()),
                    None => alternative(&inner).unwrap_or(Part::Opaque(format!("${inner}"))),
                };
                push_part(parts, lit, part);
            }
            Some('(') => {
                let inner = self.balanced('(', ')');
                push_part(parts, lit, Part::Opaque(format!("${inner}")));
            }
            Some(c) if is_name_start(c) => {
                let mut name = String::new();
                while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
                    name.push(c);
                    self.pos += 1;
                }
                push_part(parts, lit, Part::Var(name));
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.pos += 1;
                push_part(parts, lit, Part::Opaque(format!("${c}")));
            }
            _ => lit.push('$'),
        }
    }

    /// Reads from an opening bracket to its match (nesting counted, quotes not), returning the text.
    fn balanced(&mut self, open: char, close: char) -> String {
        let mut depth = 0usize;
        let mut out = String::new();
        while let Some(c) = self.bump() {
            out.push(c);
            if c == open {
                depth += 1;
            } else if c == close {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
        }
        out
    }

    /// Reads a backtick command substitution (the opening backtick already consumed).
    fn backticks(&mut self) -> String {
        let mut out = String::from("`");
        while let Some(c) = self.bump() {
            out.push(c);
            if c == '\\' {
                if let Some(n) = self.bump() {
                    out.push(n);
                }
            } else if c == '`' {
                break;
            }
        }
        out
    }
}

/// `{name:-word}`, `{name:+word}`, `{name-word}`, `{name+word}` as a [`Part::Alt`].
fn alternative(braced: &str) -> Option<Part> {
    let inner = braced.strip_prefix('{')?.strip_suffix('}')?;
    let at = inner.find(|c: char| !is_name_char(c))?;
    let (name, rest) = inner.split_at(at);
    if !is_name(name) {
        return None;
    }
    let (colon, rest) = match rest.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut chars = rest.chars();
    let op = chars.next().filter(|c| matches!(c, '-' | '+'))?;
    Some(Part::Alt {
        name: name.to_string(),
        op,
        colon,
        word: chars.as_str().to_string(),
    })
}

fn push_part(parts: &mut Vec<Part>, lit: &mut String, part: Part) {
    if !lit.is_empty() {
        parts.push(Part::Lit(std::mem::take(lit)));
    }
    parts.push(part);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(cmd: &Command) -> Vec<String> {
        cmd.words.iter().map(|w| w.raw.clone()).collect()
    }

    #[test]
    fn splits_commands_and_drops_redirections_comments_and_heredocs() {
        let cmds = commands(
            "a 'b c' \"d $e\" # note\nf>/dev/null 2>&1 || g \\\n  h; cat <<EOF\nadduser x\nEOF\ni",
        );
        let all: Vec<(usize, Vec<String>)> = cmds.iter().map(|c| (c.line, texts(c))).collect();
        assert_eq!(
            all,
            [
                (1, vec!["a".into(), "'b c'".into(), "\"d $e\"".into()]),
                (2, vec!["f".into()]),
                (2, vec!["g".into(), "h".into()]),
                (3, vec!["cat".into()]),
                (6, vec!["i".into()]),
            ]
        );
        assert_eq!(
            cmds[0].words[2].parts,
            [Part::Lit("d ".into()), Part::Var("e".into())]
        );
        let ends: Vec<End> = cmds.iter().map(|c| c.end).collect();
        assert_eq!(ends, [End::List, End::Or, End::List, End::List, End::List]);
        let ends: Vec<End> = commands("a && b | c; d & e")
            .iter()
            .map(|c| c.end)
            .collect();
        assert_eq!(ends, [End::And, End::Pipe, End::List, End::List, End::List]);
    }

    #[test]
    fn expansions_are_kept_apart() {
        let cmds = commands("x ${a}b $(c \"d\") `e` $1 ${f:-g} \\$h $");
        let parts: Vec<Vec<Part>> = cmds[0].words.iter().map(|w| w.parts.clone()).collect();
        assert_eq!(
            parts[1..],
            [
                vec![Part::Var("a".into()), Part::Lit("b".into())],
                vec![Part::Opaque("$(c \"d\")".into())],
                vec![Part::Opaque("`e`".into())],
                vec![Part::Opaque("$1".into())],
                vec![Part::Alt {
                    name: "f".into(),
                    op: '-',
                    colon: true,
                    word: "g".into()
                }],
                vec![Part::Lit("$h".into())],
                vec![Part::Lit("$".into())],
            ]
        );
        assert_eq!(cmds[0].words[0].keyword(), Some("x"));
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for s in [
            "'abc", "\"abc", "${abc", "$(abc", "`abc", "a <<", "a \\", "<<E\n",
        ] {
            let _ = commands(s);
        }
    }
}
