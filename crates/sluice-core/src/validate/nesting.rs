//! How deep a YAML stream nests, found by one linear pass *before* the YAML parser reads it.
//!
//! Why a separate pass: libyaml's scanner (behind serde_yaml) keeps one simple-key slot per
//! open flow collection (`[`, `{`) and walks all of them for every token, and serde_yaml scans
//! a whole document before its own depth limit (128) applies. Time therefore grows with tokens
//! × depth: 200 KB of `[` took about a minute to reject. This pass stops at the first place the
//! nesting exceeds the limit, in time linear in the input (its work per token is bounded by
//! the limit).
//!
//! To count only real nesting it follows the scanner's own rules for where tokens start:
//! quoted scalars (multi-line, `''` and `\"` escapes), plain scalars (which may hold `'`, `"`,
//! `[` and span lines while the indentation allows), block scalars (`|`, `>`, their indentation
//! from the block indentation stack), comments, tags, anchors, and the block indentation stack
//! with its simple keys. A bracket inside a string or comment is therefore not counted, and
//! one the parser would see always is. Where the real scanner stops with a syntax error, what
//! this pass does afterwards does not matter: the parser never reads further.
//!
//! The depth counted is open flow collections plus block indentation levels, which is at least
//! half the depth of the parsed value (a block sequence may sit at its key's indentation).

/// Where the nesting first exceeded the limit (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
}

/// `Ok` when no point of `text` nests deeper than `max` levels, as libyaml would scan it.
pub fn check(text: &str, max: usize) -> Result<(), TooDeep> {
    Scanner::new(readable(text).as_bytes(), max).run()
}

/// The deepest nesting of `text` (for tests and the documentation of the limit).
pub fn depth(text: &str) -> usize {
    let mut s = Scanner::new(readable(text).as_bytes(), usize::MAX);
    // Cannot fail: the limit is never exceeded.
    let _ = s.run();
    s.deepest
}

/// The part of `text` libyaml's reader lets through: it stops with "control characters are not
/// allowed" at the first character outside YAML's printable set, so nothing after it is parsed.
fn readable(text: &str) -> &str {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}')
            || ('\u{a0}'..='\u{d7ff}').contains(&c)
            || ('\u{e000}'..='\u{fffd}').contains(&c)
            || c >= '\u{10000}'
    };
    match text.char_indices().find(|(_, c)| !printable(*c)) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[derive(Clone, Copy, Default)]
struct SimpleKey {
    possible: bool,
    line: usize,
    index: usize,
    column: usize,
}

struct Scanner<'a> {
    b: &'a [u8],
    /// Byte index, line (0-based) and column (in characters, as libyaml counts them).
    i: usize,
    line: usize,
    col: usize,
    flow: usize,
    indent: isize,
    indents: Vec<isize>,
    simple_key_allowed: bool,
    /// One slot per flow level, plus the block level.
    keys: Vec<SimpleKey>,
    max: usize,
    deepest: usize,
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8], max: usize) -> Self {
        Scanner {
            b,
            i: 0,
            line: 0,
            col: 0,
            flow: 0,
            indent: -1,
            indents: Vec::new(),
            simple_key_allowed: true,
            keys: vec![SimpleKey::default()],
            max,
            deepest: 0,
        }
    }

    fn at(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn eof(&self) -> bool {
        self.i >= self.b.len()
    }

    fn is_break_at(&self, k: usize) -> bool {
        match self.at(k) {
            b'\r' | b'\n' => true,
            0xC2 => self.at(k + 1) == 0x85,
            0xE2 => self.at(k + 1) == 0x80 && matches!(self.at(k + 2), 0xA8 | 0xA9),
            _ => false,
        }
    }

    fn is_blank_at(&self, k: usize) -> bool {
        matches!(self.at(k), b' ' | b'\t')
    }

    /// Blank, line break or end of input (a NUL byte never reaches libyaml's scanner: its
    /// reader refuses control characters).
    fn is_blankz_at(&self, k: usize) -> bool {
        self.is_blank_at(k) || self.is_break_at(k) || self.at(k) == 0
    }

    fn is_breakz_at(&self, k: usize) -> bool {
        self.is_break_at(k) || self.at(k) == 0
    }

    /// Skips one character.
    fn skip(&mut self) {
        let w = match self.at(0) {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xFF => 4,
            // A continuation byte cannot start a character of a `&str`; move on regardless.
            _ => 1,
        };
        self.i = (self.i + w).min(self.b.len());
        self.col += 1;
    }

    /// Skips one line break (`\r\n` counts as one).
    fn skip_line(&mut self) {
        if self.at(0) == b'\r' && self.at(1) == b'\n' {
            self.i += 2;
        } else if self.is_break_at(0) {
            self.skip();
        } else {
            return;
        }
        self.col = 0;
        self.line += 1;
    }

    fn document_indicator(&self) -> bool {
        self.col == 0
            && ((self.at(0) == b'-' && self.at(1) == b'-' && self.at(2) == b'-')
                || (self.at(0) == b'.' && self.at(1) == b'.' && self.at(2) == b'.'))
            && self.is_blankz_at(3)
    }

    fn nested(&mut self) -> Result<(), TooDeep> {
        let d = self.indents.len() + self.flow;
        self.deepest = self.deepest.max(d);
        if d > self.max {
            return Err(TooDeep {
                line: self.line + 1,
                column: self.col + 1,
            });
        }
        Ok(())
    }

    fn top(&mut self) -> &mut SimpleKey {
        if self.keys.is_empty() {
            self.keys.push(SimpleKey::default());
        }
        let last = self.keys.len() - 1;
        &mut self.keys[last]
    }

    fn save_simple_key(&mut self) {
        if self.simple_key_allowed {
            let key = SimpleKey {
                possible: true,
                line: self.line,
                index: self.i,
                column: self.col,
            };
            *self.top() = key;
        }
    }

    fn remove_simple_key(&mut self) {
        self.top().possible = false;
    }

    fn stale_simple_keys(&mut self) {
        let (line, i) = (self.line, self.i);
        for k in &mut self.keys {
            if k.possible && (k.line < line || k.index + 1024 < i) {
                k.possible = false;
            }
        }
    }

    fn roll_indent(&mut self, column: usize) -> Result<(), TooDeep> {
        let column = column as isize;
        if self.flow == 0 && self.indent < column {
            self.indents.push(self.indent);
            self.indent = column;
            self.nested()?;
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: isize) {
        if self.flow != 0 {
            return;
        }
        while self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    fn run(&mut self) -> Result<(), TooDeep> {
        loop {
            self.skip_to_next_token();
            self.stale_simple_keys();
            self.unroll_indent(self.col as isize);
            if self.eof() {
                return Ok(());
            }
            let c = self.at(0);
            if self.col == 0 && c == b'%' {
                // A directive takes its line.
                self.unroll_indent(-1);
                self.remove_simple_key();
                self.simple_key_allowed = false;
                while !self.is_breakz_at(0) {
                    self.skip();
                }
                continue;
            }
            if self.document_indicator() {
                self.unroll_indent(-1);
                self.remove_simple_key();
                self.simple_key_allowed = false;
                self.i += 3;
                self.col += 3;
                continue;
            }
            let flow = self.flow > 0;
            match c {
                b'[' | b'{' => {
                    self.save_simple_key();
                    self.flow += 1;
                    self.keys.push(SimpleKey::default());
                    self.simple_key_allowed = true;
                    self.nested()?;
                    self.skip();
                }
                b']' | b'}' => {
                    self.remove_simple_key();
                    if self.flow > 0 {
                        self.flow -= 1;
                        self.keys.pop();
                    }
                    self.simple_key_allowed = false;
                    self.skip();
                }
                b',' => {
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'-' if self.is_blankz_at(1) => {
                    self.roll_indent(self.col)?;
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'?' if flow || self.is_blankz_at(1) => {
                    self.roll_indent(self.col)?;
                    self.remove_simple_key();
                    self.simple_key_allowed = !flow;
                    self.skip();
                }
                b':' if flow || self.is_blankz_at(1) => {
                    let key = *self.top();
                    if key.possible {
                        self.roll_indent(key.column)?;
                        self.top().possible = false;
                        self.simple_key_allowed = false;
                    } else {
                        self.roll_indent(self.col)?;
                        self.simple_key_allowed = !flow;
                    }
                    self.skip();
                }
                b'*' | b'&' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.skip();
                    while self.at(0).is_ascii_alphanumeric() || matches!(self.at(0), b'_' | b'-') {
                        self.skip();
                    }
                }
                b'!' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.tag();
                }
                b'|' | b'>' if !flow => {
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.block_scalar();
                }
                b'\'' | b'"' => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.quoted(c == b'\'');
                }
                _ if self.plain_start(c) => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.plain();
                }
                // libyaml: "found character that cannot start any token"; the parse ends.
                _ => self.skip(),
            }
        }
    }

    fn plain_start(&self, c: u8) -> bool {
        let indicator = self.is_blankz_at(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c);
        !indicator
            || (c == b'-' && !self.is_blank_at(1))
            || (self.flow == 0 && (c == b'?' || c == b':') && !self.is_blankz_at(1))
    }

    fn skip_to_next_token(&mut self) {
        loop {
            if self.col == 0 && self.b[self.i..].starts_with("\u{feff}".as_bytes()) {
                self.skip();
            }
            while self.at(0) == b' '
                || ((self.flow > 0 || !self.simple_key_allowed) && self.at(0) == b'\t')
            {
                self.skip();
            }
            if self.at(0) == b'#' {
                while !self.is_breakz_at(0) {
                    self.skip();
                }
            }
            if !self.is_break_at(0) {
                return;
            }
            self.skip_line();
            if self.flow == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    /// `!tag`, `!!str`, `!e!x` or `!<verbatim>`: URI characters (which include `'` and `:`).
    fn tag(&mut self) {
        let uri = |c: u8, verbatim: bool| {
            c.is_ascii_alphanumeric()
                || b"-_;/?:@&=+$.%!~*'()".contains(&c)
                || (verbatim && b",[]".contains(&c))
        };
        if self.at(1) == b'<' {
            self.skip();
            self.skip();
            while uri(self.at(0), true) {
                self.skip();
            }
            if self.at(0) == b'>' {
                self.skip();
            }
        } else {
            self.skip();
            while uri(self.at(0), false) {
                self.skip();
            }
        }
    }

    /// A single- or double-quoted scalar, possibly over several lines.
    fn quoted(&mut self, single: bool) {
        let quote = if single { b'\'' } else { b'"' };
        self.skip();
        loop {
            if self.document_indicator() || self.eof() {
                // libyaml: unexpected document indicator / end of stream; the parse ends.
                return;
            }
            while !self.is_blankz_at(0) {
                let c = self.at(0);
                if single && c == b'\'' && self.at(1) == b'\'' {
                    self.skip();
                    self.skip();
                } else if c == quote {
                    break;
                } else if !single && c == b'\\' && self.is_break_at(1) {
                    self.skip();
                    self.skip_line();
                    break;
                } else if !single && c == b'\\' {
                    self.skip();
                    if !self.eof() {
                        self.skip();
                    }
                } else {
                    self.skip();
                }
            }
            if self.at(0) == quote {
                self.skip();
                return;
            }
            while self.is_blank_at(0) || self.is_break_at(0) {
                if self.is_blank_at(0) {
                    self.skip();
                } else {
                    self.skip_line();
                }
            }
        }
    }

    /// A plain scalar: ends at `: `, ` #`, a flow indicator inside a flow collection, or a
    /// line less indented than the block it belongs to.
    fn plain(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.document_indicator() || self.at(0) == b'#' {
                break;
            }
            while !self.is_blankz_at(0) {
                let c = self.at(0);
                if self.flow > 0 && c == b':' && b",?[]{}".contains(&self.at(1)) {
                    // libyaml: "found unexpected ':'"; the parse ends.
                    return;
                }
                if (c == b':' && self.is_blankz_at(1)) || (self.flow > 0 && b",[]{}".contains(&c)) {
                    break;
                }
                leading_blanks = false;
                self.skip();
            }
            if !(self.is_blank_at(0) || self.is_break_at(0)) {
                break;
            }
            while self.is_blank_at(0) || self.is_break_at(0) {
                if self.is_blank_at(0) {
                    if leading_blanks && (self.col as isize) < indent && self.at(0) == b'\t' {
                        // libyaml: "found a tab character that violates indentation".
                        return;
                    }
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && (self.col as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }

    /// `|` or `>` with optional chomping and indentation indicators, then every line indented
    /// at least as much as the first non-empty one (or the explicit indentation).
    fn block_scalar(&mut self) {
        self.skip();
        let mut increment: isize = 0;
        let digit = |c: u8| (b'1'..=b'9').contains(&c);
        if matches!(self.at(0), b'+' | b'-') {
            self.skip();
            if digit(self.at(0)) {
                increment = (self.at(0) - b'0') as isize;
                self.skip();
            }
        } else if digit(self.at(0)) {
            increment = (self.at(0) - b'0') as isize;
            self.skip();
            if matches!(self.at(0), b'+' | b'-') {
                self.skip();
            }
        }
        while self.is_blank_at(0) {
            self.skip();
        }
        if self.at(0) == b'#' {
            while !self.is_breakz_at(0) {
                self.skip();
            }
        }
        if !self.is_breakz_at(0) {
            // libyaml: "did not find expected comment or line break" (or an indicator 0).
            return;
        }
        self.skip_line();
        let mut indent: isize = if increment == 0 {
            0
        } else if self.indent >= 0 {
            self.indent + increment
        } else {
            increment
        };
        if !self.block_scalar_breaks(&mut indent) {
            return;
        }
        while self.col as isize == indent && !self.eof() {
            while !self.is_breakz_at(0) {
                self.skip();
            }
            if self.eof() {
                return;
            }
            self.skip_line();
            if !self.block_scalar_breaks(&mut indent) {
                return;
            }
        }
    }

    /// Empty lines and indentation before block-scalar content; sets the indentation if it
    /// was not given. `false` where libyaml reports a tab in the indentation.
    fn block_scalar_breaks(&mut self, indent: &mut isize) -> bool {
        let mut max_indent: isize = 0;
        loop {
            while (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.col as isize);
            if (*indent == 0 || (self.col as isize) < *indent) && self.at(0) == b'\t' {
                return false;
            }
            if !self.is_break_at(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_and_block_levels_are_counted() {
        assert_eq!(depth(""), 0);
        assert_eq!(depth("a"), 0);
        assert_eq!(depth("a: b"), 1);
        assert_eq!(depth("a: [1, [2, {b: c}]]"), 4);
        assert_eq!(depth("a:\n  b:\n    c: d\n"), 3);
        assert_eq!(depth("- - - x\n"), 3);
        assert_eq!(depth("a:\n- 1\n- [2]\n"), 2);
        assert_eq!(depth("a: 1\n---\nb: [1]\n"), 2);
    }

    #[test]
    fn brackets_in_strings_comments_and_scalars_are_not_nesting() {
        let flat = [
            "a: \"[[[[[[\"\n",
            "a: '[[[[''[[[['\n",
            "a: \"x\\\"[[[[[\"\n",
            "a: b # [[[[[[[\n",
            "# [[[[[[[[[\na: 1\n",
            "a: x[[[[[[[y\n",
            "a: it's [[[[[[[\n",
            "a: |\n  [[[[[[\n  'quote\nb: 1\n",
            "a: >-\n  {{{{{{{{\nb: 1\n",
            "a: \"multi\n  line [[[[[[[\n  \"\nb: 1\n",
            "a: !tag '[[[['\n",
            "a: \"\u{0}[[[[[[[[[[[[[[[\n",
            "a: plain\n  continued 'x [[[[[[[[\n",
        ];
        for text in flat {
            let d = depth(text);
            assert!(d <= 3, "{text:?}: depth {d}");
        }
    }

    #[test]
    fn brackets_after_a_quote_inside_a_plain_scalar_still_count() {
        // `it's` does not open a quoted string: the parser sees the flow sequence after it.
        let text = format!("a: it's\nb: {}\n", "[".repeat(100));
        assert!(depth(&text) > 64);
        // A block scalar ends at the first less indented line, even right after its header.
        let text = format!("a: |\nb: {}\n", "[".repeat(100));
        assert!(depth(&text) > 64);
        let text = format!("- a: |\n  b: {}\n", "[".repeat(100));
        assert!(depth(&text) > 64);
        // A quoted string ends at its closing quote, even over lines.
        let text = format!("a: \"x\n\"\nb: {}\n", "{".repeat(100));
        assert!(depth(&text) > 64);
        // ` #` inside a flow collection starts a comment only after a blank.
        let text = format!("a: [x#{}\n", "[".repeat(100));
        assert!(depth(&text) > 64);
    }

    #[test]
    fn stops_where_the_limit_is_passed() {
        let text = format!("spec: {}", "[".repeat(200_000));
        assert_eq!(
            check(&text, 64),
            Err(TooDeep {
                line: 1,
                column: 70
            })
        );
        assert!(check("a: [[1]]", 64).is_ok());
    }
}

/// The pre-scan against the real parser: on random YAML-like text that serde_yaml parses, the
/// parsed value is never deeper than the pre-scan's count allows (a bracket the pre-scan took
/// for string content but the parser for structure would break this).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn value_depth(v: &serde_yaml::Value) -> usize {
        match v {
            serde_yaml::Value::Sequence(s) => 1 + s.iter().map(value_depth).max().unwrap_or(0),
            serde_yaml::Value::Mapping(m) => {
                1 + m
                    .iter()
                    .map(|(k, v)| value_depth(k).max(value_depth(v)))
                    .max()
                    .unwrap_or(0)
            }
            serde_yaml::Value::Tagged(t) => value_depth(&t.value),
            _ => 0,
        }
    }

    /// Depth of every document, or `None` when the parser rejects the text.
    fn parsed_depth(text: &str) -> Option<usize> {
        use serde::Deserialize;
        let mut deepest = 0;
        for de in serde_yaml::Deserializer::from_str(text) {
            let v = serde_yaml::Value::deserialize(de).ok()?;
            deepest = deepest.max(value_depth(&v));
        }
        Some(deepest)
    }

    fn yamlish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("["),
            Just("]"),
            Just("{"),
            Just("}"),
            Just(", "),
            Just(","),
            Just(": "),
            Just(":"),
            Just("- "),
            Just("? "),
            Just("'"),
            Just("\""),
            Just("\\"),
            Just("#"),
            Just(" #"),
            Just("|"),
            Just(">"),
            Just("!t "),
            Just("&a "),
            Just("\n"),
            Just("\n  "),
            Just("\n    "),
            Just(" "),
            Just("\t"),
            Just("a"),
            Just("key: "),
            Just("x'y"),
            Just("---\n"),
            Just("\r\n"),
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn parsed_values_are_never_deeper_than_the_prescan_says(text in yamlish()) {
            if let Some(d) = parsed_depth(&text) {
                let counted = depth(&text);
                prop_assert!(d <= 2 * counted, "{text:?}: parsed depth {d}, counted {counted}");
            }
        }
    }

    /// A YAML tree rendered in every style, with indicator characters inside its scalars.
    #[derive(Debug, Clone)]
    enum Node {
        Plain(String),
        Single(String),
        Double(String),
        Literal(Vec<String>),
        FlowSeq(Vec<Node>),
        FlowMap(Vec<Node>),
        BlockSeq(Vec<Node>),
        BlockMap(Vec<Node>),
    }

    impl Node {
        fn depth(&self) -> usize {
            match self {
                Node::FlowSeq(v) | Node::FlowMap(v) | Node::BlockSeq(v) | Node::BlockMap(v) => {
                    1 + v.iter().map(Node::depth).max().unwrap_or(0)
                }
                _ => 0,
            }
        }

        /// In a flow collection, or on one line after `key: ` / `- `.
        fn inline(&self, indent: usize) -> String {
            let cont = format!("\n{}", " ".repeat(indent + 2));
            match self {
                Node::Plain(s) => format!("p{s}"),
                Node::Single(s) => format!("'{}'", s.replace('\'', "''").replace('\n', &cont)),
                Node::Double(s) => format!(
                    "\"{}\"",
                    s.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', &cont)
                ),
                Node::Literal(lines) => Node::Double(lines.join(" ")).inline(indent),
                Node::FlowSeq(v) | Node::BlockSeq(v) => format!(
                    "[{}]",
                    v.iter()
                        .map(|n| n.flow_item(indent))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Node::FlowMap(v) | Node::BlockMap(v) => format!(
                    "{{{}}}",
                    v.iter()
                        .enumerate()
                        .map(|(i, n)| format!("k{i}: {}", n.flow_item(indent)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }

        fn flow_item(&self, indent: usize) -> String {
            match self {
                // Flow indicators end a plain scalar inside a flow collection.
                Node::Plain(s) => format!("p{}", s.replace(['[', ']', '{', '}', ','], "x")),
                other => other.inline(indent),
            }
        }

        /// After `key:` (or `-`) written at column `indent`.
        fn after_indicator(&self, indent: usize, out: &mut String) {
            let pad = " ".repeat(indent + 2);
            match self {
                Node::BlockSeq(v) if !v.is_empty() => {
                    out.push('\n');
                    for n in v {
                        out.push_str(&pad);
                        out.push('-');
                        n.after_indicator(indent + 2, out);
                    }
                }
                Node::BlockMap(v) if !v.is_empty() => {
                    out.push('\n');
                    for (i, n) in v.iter().enumerate() {
                        out.push_str(&format!("{pad}k{i}:"));
                        n.after_indicator(indent + 2, out);
                    }
                }
                Node::Literal(lines) => {
                    out.push_str(" |\n");
                    for l in lines {
                        out.push_str(&format!("{pad}x{l}\n"));
                    }
                }
                other => {
                    out.push(' ');
                    out.push_str(&other.inline(indent));
                    out.push('\n');
                }
            }
        }

        fn document(&self) -> String {
            let mut out = String::new();
            match self {
                Node::BlockSeq(v) if !v.is_empty() => {
                    for n in v {
                        out.push('-');
                        n.after_indicator(0, &mut out);
                    }
                }
                Node::BlockMap(v) if !v.is_empty() => {
                    for (i, n) in v.iter().enumerate() {
                        out.push_str(&format!("k{i}:"));
                        n.after_indicator(0, &mut out);
                    }
                }
                other => out = other.inline(0),
            }
            out
        }
    }

    fn node() -> impl Strategy<Value = Node> {
        let noisy = r#"[-\[\]{},#:'"|>!&*?x \\]{0,12}"#;
        let leaf = prop_oneof![
            r#"[\[\]{},'"x]{0,8}"#.prop_map(Node::Plain),
            noisy.prop_map(Node::Single),
            noisy.prop_map(Node::Double),
            r#"[-\[\]{},#:'"|>!&*?x \\\n]{0,12}"#.prop_map(Node::Double),
            proptest::collection::vec(noisy, 1..4).prop_map(Node::Literal),
        ];
        leaf.prop_recursive(12, 80, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Node::FlowSeq),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Node::FlowMap),
                proptest::collection::vec(inner.clone(), 1..4).prop_map(Node::BlockSeq),
                proptest::collection::vec(inner, 1..4).prop_map(Node::BlockMap),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// Every collection of a generated tree is one level, whatever its scalars hold.
        #[test]
        fn the_prescan_counts_exactly_the_nesting_of_generated_trees(tree in node()) {
            let text = tree.document();
            let parsed = parsed_depth(&text);
            prop_assert_eq!(parsed, Some(tree.depth()), "{}", text);
            prop_assert_eq!(depth(&text), tree.depth(), "{}", text);
        }
    }
}
