//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! serde's YAML deserialisers forget positions once a value is built, but every error this
//! project reports names a file and a line, including errors found long after parsing
//! (validation, diffing). So manifests are first read into this small marked tree, built
//! from yaml-rust2's event stream, and the typed model is read from the tree.
//!
//! The tree is what kubectl reads (sigs.k8s.io/yaml, which reads with go-yaml v2, YAML 1.1):
//!
//! - aliases are expanded, and merge keys (`<<`) are merged in place, as go-yaml v2 does:
//!   entries are applied in file order, so a key written after `<<` replaces the merged
//!   value, and of a list of merged mappings the first one wins. Merged and aliased nodes
//!   keep the position where they are written, so errors about them point at that line;
//! - plain keys read as YAML 1.1 reads them (`on` is the key `true`, `0x1F` is `31`);
//! - a byte order mark at the start of the text or of a document is ignored;
//! - a tab between `:` and a value separates them (yaml-rust2 refuses it; the reader makes
//!   it a space and parses again);
//! - a control character anywhere is a syntax error, as go-yaml makes it;
//! - anchors belong to their document.
//!
//! Where kubectl would silently drop data the tree says so as a [`Finding`]: a key given
//! twice is an error (the API server's strict field validation refuses it), and a key that
//! a later `<<` replaces is a warning (kustomize and the YAML merge-key spec keep it).
//!
//! *Guarantees*: parsing untrusted text stays cheap. The tree never nests deeper than
//! [`MAX_YAML_DEPTH`] and never holds more than [`MAX_YAML_NODES`] values or
//! [`MAX_YAML_TEXT_BYTES`] of text per document, aliases expanded; a document that would is
//! refused with a [`SyntaxError`] before the copy is made. The builder does not recurse.

use std::borrow::Cow;
use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::Severity;
use crate::config::{MAX_YAML_DEPTH, MAX_YAML_NODES, MAX_YAML_TAB_REPAIRS, MAX_YAML_TEXT_BYTES};

/// Where a node starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    fn from_marker(m: Marker) -> Self {
        // yaml-rust2 reports 1-based lines and 0-based columns.
        Pos {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            col: u32::try_from(m.col()).unwrap_or(u32::MAX - 1) + 1,
        }
    }
}

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// The value of a node. Scalars keep their source text; typing happens in the reader,
/// which knows what each field should be.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null`, or nothing at all.
    Null,
    Scalar {
        text: String,
        /// Written in quotes (or as a block scalar, or tagged `!!str`): text whatever it
        /// looks like.
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order, merge keys resolved; each key once (see [`Finding`]).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text of a key or value, if it is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// A word for the kind of value, for error messages ("found a list").
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing (null)".to_string(),
            Value::Scalar { text, .. } => format!("{text:?}"),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }

    /// Looks up a key in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Converts the node to a JSON value (for free-form fields such as `podTemplate`).
    /// Plain scalars become numbers and booleans as kubectl reads them (YAML 1.1).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Scalar { text, quoted } => {
                if *quoted {
                    return serde_json::Value::String(text.clone());
                }
                match resolve_plain(text) {
                    Plain::Bool(b) => serde_json::Value::Bool(b),
                    Plain::Null => serde_json::Value::Null,
                    Plain::Int(i) => match (i64::try_from(i), u64::try_from(i)) {
                        (Ok(v), _) => serde_json::Value::from(v),
                        (_, Ok(v)) => serde_json::Value::from(v),
                        _ => serde_json::Value::String(text.clone()),
                    },
                    Plain::Float(f) => serde_json::Number::from_f64(f)
                        .map(serde_json::Value::Number)
                        .unwrap_or_else(|| serde_json::Value::String(text.clone())),
                    Plain::Text => serde_json::Value::String(text.clone()),
                }
            }
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = match k.as_str() {
                        Some(s) => s.to_string(),
                        None => k.describe(),
                    };
                    map.insert(key, v.to_json());
                }
                serde_json::Value::Object(map)
            }
        }
    }
}

/// What a plain (unquoted) scalar means to go-yaml v2, which kubectl reads YAML with
/// (YAML 1.1 with go-yaml's own number syntax).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plain {
    Null,
    Bool(bool),
    /// Any integer from -2^63 to 2^64-1, in any base go-yaml reads (`0x1F`, `0o17`, `017`,
    /// `0b11`, `1_000`).
    Int(i128),
    /// A finite or infinite float (`1.5`, `1e3`, `.inf`); NaN for `.nan`.
    Float(f64),
    Text,
}

/// Resolves a plain scalar as go-yaml v2's `resolve` does (resolve.go): the word tables
/// first, then integers (Go's `ParseInt` with base prefixes, underscores removed), then
/// floats of the YAML 1.1 float pattern; everything else is text. Timestamps stay text, as
/// they do when kubectl decodes into untyped JSON.
pub fn resolve_plain(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Plain::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Plain::Bool(false)
        }
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match text.as_bytes().first() {
        Some(b'.') => match text.parse::<f64>() {
            Ok(f) if f.is_finite() && is_yaml_float(text) => Plain::Float(f),
            _ => Plain::Text,
        },
        Some(b'0'..=b'9' | b'+' | b'-') => {
            let plain: String = text.chars().filter(|c| *c != '_').collect();
            if let Some(i) = go_parse_int(&plain) {
                return Plain::Int(i);
            }
            if is_yaml_float(&plain) {
                if let Ok(f) = plain.parse::<f64>() {
                    // Go's ParseFloat fails on overflow, and go-yaml then keeps the text.
                    if f.is_finite() {
                        return Plain::Float(f);
                    }
                }
            }
            Plain::Text
        }
        _ => Plain::Text,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: an optional sign, then `0x`, `0o`,
/// `0b` or a leading `0` (octal) pick the base.
fn go_parse_int(s: &str) -> Option<i128> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = |p: &str| body.get(..2).is_some_and(|b| b.eq_ignore_ascii_case(p));
    let (radix, digits) = if lower("0x") {
        (16, &body[2..])
    } else if lower("0o") {
        (8, &body[2..])
    } else if lower("0b") {
        (2, &body[2..])
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    let value = if negative {
        -i128::from(magnitude)
    } else {
        i128::from(magnitude)
    };
    // ParseInt takes -2^63..2^63-1; ParseUint (unsigned, no sign) takes up to 2^64-1.
    let fits = i64::try_from(value).is_ok() || (!negative && !s.starts_with('+'));
    fits.then_some(value)
}

/// go-yaml v2's float pattern: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits(mantissa),
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && frac.bytes().all(|b| b.is_ascii_digit()),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// A plain key as kubectl spells it in JSON: booleans, integers and floats become their
/// canonical text (`on` → `true`, `0x1F` → `31`, `1.50` → `1.5`, `1e6` → `1e+06`), as
/// sigs.k8s.io/yaml's `convertToJSONableObject` writes them; other keys are unchanged.
fn json_key(text: &str) -> Option<String> {
    match resolve_plain(text) {
        Plain::Bool(b) => Some(b.to_string()),
        Plain::Int(i) => Some(i.to_string()),
        Plain::Float(f) => Some(go_format_float32(f)),
        Plain::Null | Plain::Text => None,
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)` with go-yaml's names for infinities and NaN.
fn go_format_float32(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_string();
    }
    #[allow(clippy::cast_possible_truncation)] // Go formats the key as a float32 too
    let single = f as f32;
    if single.is_infinite() {
        return if single > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    // Shortest digits that read back as the same float32, and the decimal exponent.
    let sci = format!("{single:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    // %e when the exponent is below -4 or at least the shortest-precision cut-off (6).
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let text = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{text}")
}

/// Why a text could not be read at all, with the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    pub kind: ErrorKind,
}

/// What kind of [`SyntaxError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not YAML (or an alias to an anchor that is not there).
    Syntax,
    /// YAML, but deeper or larger than the [`Limits`] allow.
    TooLarge,
}

/// Something about a document that is not a syntax error: a key given twice (an error), a
/// merge key whose value cannot be merged (an error), or a key that a merge replaces (a
/// warning). The document is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub pos: Pos,
    /// Field path from the document's root: `spec.job.parallelism`, `items[0].spec`,
    /// `metadata.labels[app.kubernetes.io/name]` (keys with `.` or `/` in brackets).
    pub path: String,
    pub message: String,
}

/// A parsed document and the line its `---` (or first content) stands on.
#[derive(Debug, Clone)]
pub struct Document {
    pub root: Node,
    pub start: Pos,
    pub findings: Vec<Finding>,
}

/// How large a document may grow: see the constants in [`crate::config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: MAX_YAML_DEPTH,
            max_nodes: MAX_YAML_NODES,
            max_text_bytes: MAX_YAML_TEXT_BYTES,
        }
    }
}

/// Parses every document of a multi-document YAML text.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SyntaxError> {
    parse_documents_with(text, Limits::default())
}

/// [`parse_documents`] with other limits.
pub fn parse_documents_with(text: &str, limits: Limits) -> Result<Vec<Document>, SyntaxError> {
    let mut text = without_byte_order_marks(text);
    if let Some(error) = control_character(&text) {
        return Err(error);
    }
    let (mut repairs, mut built, mut scanned) = (0, 0_usize, 0_usize);
    loop {
        match parse_text(&text, limits) {
            Parsed::Done(result) => return result,
            Parsed::TabAfterColon { error, at, values } => {
                // Each repair parses the text again: bounded in count, and in the values
                // built and the text read over all attempts, so that no file makes this slow.
                built = built.saturating_add(values);
                scanned = scanned.saturating_add(at);
                let within = repairs < MAX_YAML_TAB_REPAIRS
                    && built <= limits.max_nodes
                    && scanned <= limits.max_text_bytes;
                match within.then(|| spaces_for_tabs_before(&text, at)).flatten() {
                    Some(repaired) => {
                        text = Cow::Owned(repaired);
                        repairs += 1;
                    }
                    None if !within => {
                        return Err(SyntaxError {
                            message: format!(
                                "{} (a tab after ':' separates it from the value; kubectl \
                                 reads that, and so does flink-gitops up to \
                                 {MAX_YAML_TAB_REPAIRS} times in a small file: write spaces)",
                                error.message
                            ),
                            ..error
                        })
                    }
                    None => return Err(error),
                }
            }
        }
    }
}

enum Parsed {
    Done(Result<Vec<Document>, SyntaxError>),
    /// yaml-rust2 refused a tab that separates `:` from a value (`image:\tflink`). YAML
    /// allows it, and kubectl reads it. Keeps the error, the char index where the value
    /// starts, and how many values were built before the parser stopped.
    TabAfterColon {
        error: SyntaxError,
        at: usize,
        values: usize,
    },
}

fn parse_text(text: &str, limits: Limits) -> Parsed {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::new(limits);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) if e.info() == "recursion limit exceeded" => {
                // yaml-rust2 counts flow brackets in a byte, and scans a flow collection
                // ahead to its end, so it stops before the builder sees the depth.
                return Parsed::Done(Err(SyntaxError {
                    pos: Pos::from_marker(*e.marker()),
                    kind: ErrorKind::TooLarge,
                    message: "the document nests more than 255 brackets ([ or {) deep; \
                              flink-gitops refuses it (a manifest needs a few dozen levels \
                              at most)"
                        .to_string(),
                }));
            }
            Err(e) => {
                let pos = Pos::from_marker(*e.marker());
                let error = SyntaxError {
                    pos,
                    kind: ErrorKind::Syntax,
                    message: format!(
                        "{}{}{}",
                        e.info(),
                        tab_hint(text, pos.line),
                        unclosed_bracket(text, &builder.stack)
                    ),
                };
                if e.info() == "':' must be followed by a valid YAML whitespace" {
                    return Parsed::TabAfterColon {
                        error,
                        at: e.marker().index(),
                        values: builder.built,
                    };
                }
                return Parsed::Done(Err(error));
            }
        };
        if event == Event::StreamEnd {
            return Parsed::Done(Ok(builder.docs));
        }
        if let Err(e) = builder.on_event(event, mark) {
            return Parsed::Done(Err(e));
        }
    }
}

/// The text with the tabs between a mapping's `:` and the value starting at char `at` made
/// spaces: separation, not content, so nothing else changes (columns included). `None` when
/// no `:` and tabs stand there.
fn spaces_for_tabs_before(text: &str, at: usize) -> Option<String> {
    let end = text
        .char_indices()
        .nth(at)
        .map_or(text.len(), |(byte, _)| byte);
    let head = text.get(..end)?;
    let gap = head.len() - head.trim_end_matches([' ', '\t']).len();
    let colon = end - gap;
    if gap == 0 || !head[..colon].ends_with(':') {
        return None;
    }
    let mut repaired = String::with_capacity(text.len());
    repaired.push_str(&text[..colon]);
    repaired.push_str(&text[colon..end].replace('\t', " "));
    repaired.push_str(&text[end..]);
    Some(repaired)
}

/// The first character YAML does not allow in a stream, as go-yaml checks every character
/// it reads ("control characters are not allowed"): anything but tab, line breaks and
/// printable characters. yaml-rust2 does not check, and takes a NUL for the end of the text.
fn control_character(text: &str) -> Option<SyntaxError> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}')
            || matches!(c, '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    };
    let (mut line, mut col, mut after_cr) = (1_u32, 1_u32, false);
    for c in text.chars() {
        if !allowed(c) {
            return Some(SyntaxError {
                pos: Pos { line, col },
                kind: ErrorKind::Syntax,
                message: format!(
                    "control character U+{:04X} is not allowed in YAML (kubectl refuses it too)",
                    u32::from(c)
                ),
            });
        }
        match c {
            '\n' if after_cr => {}
            '\n' | '\r' => {
                line = line.saturating_add(1);
                col = 1;
            }
            _ => col = col.saturating_add(1),
        }
        after_cr = c == '\r';
    }
    None
}

/// The text without the byte order marks kubectl ignores: one at the very start, and one at
/// the start of a document (the line after a `---` line), where kubectl's document splitter
/// hands go-yaml a new stream. Editors do not show the mark, so leaving it out also keeps
/// columns as the user sees them.
fn without_byte_order_marks(text: &str) -> Cow<'_, str> {
    if !text.contains('\u{feff}') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut document_starts = true;
    for line in text.split_inclusive('\n') {
        let line = if document_starts {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        document_starts = line.starts_with("---")
            && matches!(
                line.as_bytes().get(3),
                None | Some(b' ' | b'\t' | b'\r' | b'\n')
            );
        out.push_str(line);
    }
    Cow::Owned(out)
}

/// When a syntax error stands next to a line indented with a tab (the line before, its own
/// line or the next, where the parser may notice it only at the end of a scalar), says so:
/// YAML indents with spaces only, and the parser's own words ("found a tab") do not always
/// make that plain.
fn tab_hint(text: &str, line: u32) -> String {
    let first = (line as usize).saturating_sub(2);
    text.lines()
        .enumerate()
        .skip(first)
        .take(if line > 1 { 3 } else { 2 })
        .find(|(_, l)| {
            l.chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .any(|c| c == '\t')
        })
        .map(|(i, _)| {
            format!(
                " (line {} is indented with a tab; YAML indents with spaces only)",
                i + 1
            )
        })
        .unwrap_or_default()
}

/// When the parser stopped inside a `[...]` or `{...}`, says where that bracket was opened:
/// the error itself is only noticed on a later line ("invalid indentation").
fn unclosed_bracket(text: &str, stack: &[Frame]) -> String {
    stack
        .iter()
        .rev()
        .find_map(|frame| {
            let line = text
                .lines()
                .nth((frame.pos.line as usize).checked_sub(1)?)?;
            let open = line.chars().nth((frame.pos.col as usize).checked_sub(1)?)?;
            let close = match open {
                '[' => ']',
                '{' => '}',
                _ => return None,
            };
            Some(format!(
                " (inside the '{open}' opened at line {}, column {}: is a '{close}' missing?)",
                frame.pos.line, frame.pos.col
            ))
        })
        .unwrap_or_default()
}

/// How much of the budget a node takes: itself and everything below it.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    text: usize,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.text = self.text.saturating_add(other.text);
    }
}

enum Collection {
    Seq(Vec<Node>),
    /// Entries as written, and the key waiting for its value.
    Map(Vec<(Node, Node)>, Option<Node>),
}

/// A mapping or list being read.
struct Frame {
    pos: Pos,
    anchor: usize,
    size: Size,
    items: Collection,
}

/// Where a key of a resolved mapping came from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Written,
    /// Merged in by the `<<` at this position.
    Merged(Pos),
}

struct Builder {
    limits: Limits,
    docs: Vec<Document>,
    stack: Vec<Frame>,
    doc_start: Pos,
    /// This document's anchors (by yaml-rust2's id) with the size of what they name.
    anchors: HashMap<usize, (Node, Size)>,
    /// What this document holds so far, aliases expanded.
    used: Size,
    /// Values built in all documents so far, aliases expanded.
    built: usize,
    findings: Vec<Finding>,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            docs: Vec::new(),
            stack: Vec::new(),
            doc_start: Pos::default(),
            anchors: HashMap::new(),
            used: Size::default(),
            built: 0,
            findings: Vec::new(),
        }
    }

    fn on_event(&mut self, event: Event, mark: Marker) -> Result<(), SyntaxError> {
        let pos = Pos::from_marker(mark);
        match event {
            Event::DocumentStart => {
                // Anchors never reach into another document (kubectl: "unknown anchor").
                self.doc_start = pos;
                self.anchors.clear();
                self.used = Size::default();
                self.findings.clear();
            }
            Event::Scalar(text, style, anchor, tag) => {
                let size = Size {
                    nodes: 1,
                    text: text.len(),
                };
                self.charge(size, pos, false)?;
                let node = scalar(text, style, tag.as_ref(), pos);
                self.remember(anchor, &node, size)?;
                self.push(node, size);
            }
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    return Err(SyntaxError {
                        pos,
                        kind: ErrorKind::Syntax,
                        message: "an alias names an anchor this document does not define \
                                  before it, or the value it stands in (anchors do not reach \
                                  into another document)"
                            .to_string(),
                    });
                };
                self.charge(size, pos, true)?;
                if let Some((node, _)) = self.anchors.get(&id) {
                    let node = node.clone();
                    self.push(node, size);
                }
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos, anchor, Collection::Seq(Vec::new()))?
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos, anchor, Collection::Map(Vec::new(), None))?
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Ok(());
                };
                let value = match frame.items {
                    Collection::Seq(items) => Value::Seq(items),
                    Collection::Map(entries, _) => Value::Map(self.resolve(entries)),
                };
                let node = Node {
                    value,
                    pos: frame.pos,
                };
                self.remember(frame.anchor, &node, frame.size)?;
                self.push(node, frame.size);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn open(&mut self, pos: Pos, anchor: usize, items: Collection) -> Result<(), SyntaxError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(SyntaxError {
                pos,
                kind: ErrorKind::TooLarge,
                message: format!(
                    "the document nests deeper than {} levels; flink-gitops refuses it (a \
                     manifest needs a few dozen at most)",
                    self.limits.max_depth
                ),
            });
        }
        let size = Size { nodes: 1, text: 0 };
        self.charge(size, pos, false)?;
        self.stack.push(Frame {
            pos,
            anchor,
            size,
            items,
        });
        Ok(())
    }

    /// Counts a node (and what is below it) against the document's budget, or refuses the
    /// document when it would pass it.
    fn charge(&mut self, size: Size, pos: Pos, alias: bool) -> Result<(), SyntaxError> {
        let mut used = self.used;
        used.add(size);
        let cause = if alias {
            "once its aliases are expanded; flink-gitops refuses it, as the Kubernetes API \
             server's YAML decoder refuses excessive aliasing (anchors that name aliases \
             that name anchors grow exponentially)"
        } else {
            "(a value with an anchor counts twice); flink-gitops refuses it (the Kubernetes \
             API server takes at most 3 MiB per object)"
        };
        let message = if used.nodes > self.limits.max_nodes {
            format!(
                "the document would hold more than {} values {cause}",
                self.limits.max_nodes
            )
        } else if used.text > self.limits.max_text_bytes {
            format!(
                "the document would hold more than {} bytes of text {cause}",
                self.limits.max_text_bytes
            )
        } else {
            self.used = used;
            self.built = self.built.saturating_add(size.nodes);
            return Ok(());
        };
        Err(SyntaxError {
            pos,
            message,
            kind: ErrorKind::TooLarge,
        })
    }

    fn remember(&mut self, anchor: usize, node: &Node, size: Size) -> Result<(), SyntaxError> {
        if anchor > 0 {
            self.charge(size, node.pos, false)?;
            self.anchors.insert(anchor, (node.clone(), size));
        }
        Ok(())
    }

    fn push(&mut self, node: Node, size: Size) {
        let Some(frame) = self.stack.last_mut() else {
            self.docs.push(Document {
                root: node,
                start: self.doc_start,
                findings: std::mem::take(&mut self.findings),
            });
            return;
        };
        frame.size.add(size);
        match &mut frame.items {
            Collection::Seq(items) => items.push(node),
            Collection::Map(entries, pending) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }

    /// The field path of the value being read now (from the frames open above it).
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match &frame.items {
                Collection::Seq(items) => path.push_str(&format!("[{}]", items.len())),
                Collection::Map(_, Some(key)) => push_key(&mut path, &key_name(key)),
                Collection::Map(_, None) => {}
            }
        }
        path
    }

    /// A mapping's entries as kubectl reads them: keys spelled as JSON spells them, merge
    /// keys merged in file order, each key once. Records what it drops as findings.
    fn resolve(&mut self, entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
        let mut map = Resolved {
            path: self.path(),
            out: Vec::with_capacity(entries.len()),
            seen: HashMap::new(),
            findings: Vec::new(),
        };
        for (key, value) in entries {
            if !is_merge_key(&key) {
                map.set(json_spelled(key), value, Origin::Written);
                continue;
            }
            let mergeable = match &value.value {
                Value::Map(_) => true,
                Value::Seq(items) => items.iter().all(|i| matches!(i.value, Value::Map(_))),
                _ => false,
            };
            if !mergeable {
                map.findings.push(Finding {
                    severity: Severity::Error,
                    pos: value.pos,
                    path: joined(&map.path, "<<"),
                    message: format!(
                        "the value of the merge key << must be a mapping or a list of mappings \
                         (usually an alias such as *defaults), as kubectl requires; found {}",
                        match &value.value {
                            Value::Seq(_) => "a list with something else than mappings".to_string(),
                            _ => value.describe(),
                        }
                    ),
                });
                continue;
            }
            // Of a list of mappings the first wins: apply them last to first.
            let maps = match value.value {
                Value::Seq(items) => items,
                other => vec![Node {
                    value: other,
                    pos: value.pos,
                }],
            };
            for merged in maps.into_iter().rev() {
                if let Value::Map(merged_entries) = merged.value {
                    for (k, v) in merged_entries {
                        let written = k.as_str().unwrap_or_default().to_string();
                        map.set((k, written), v, Origin::Merged(key.pos));
                    }
                }
            }
        }
        self.findings.append(&mut map.findings);
        map.out
    }
}

/// A mapping being resolved.
struct Resolved {
    path: String,
    out: Vec<(Node, Node)>,
    /// Index in `out`, origin and written spelling of each key.
    seen: HashMap<String, (usize, Origin, String)>,
    findings: Vec<Finding>,
}

impl Resolved {
    fn set(&mut self, key: (Node, String), value: Node, origin: Origin) {
        let (key, written) = key;
        let Some(name) = key.as_str().map(str::to_string) else {
            // Null and non-scalar keys are kept for the reader to report.
            self.out.push((key, value));
            return;
        };
        let Some((at, before, before_written)) = self.seen.get(&name).cloned() else {
            self.seen.insert(name, (self.out.len(), origin, written));
            self.out.push((key, value));
            return;
        };
        let Some(slot) = self.out.get_mut(at) else {
            return;
        };
        let before_line = slot.0.pos.line;
        let spelled = |w: &str| {
            if w == name {
                String::new()
            } else {
                format!(" (written {w})")
            }
        };
        match (before, origin) {
            (Origin::Written, Origin::Written) => self.findings.push(Finding {
                severity: Severity::Error,
                pos: key.pos,
                path: joined(&self.path, &name),
                message: format!(
                    "key {name:?} is given twice: at line {before_line}{} and at line {}{}; \
                     Kubernetes refuses duplicate fields (strict field validation, kubectl's \
                     default), so write it once",
                    spelled(&before_written),
                    key.pos.line,
                    spelled(&written),
                ),
            }),
            (Origin::Written, Origin::Merged(merge)) => self.findings.push(Finding {
                severity: Severity::Warning,
                pos: slot.0.pos,
                path: joined(&self.path, &name),
                message: format!(
                    "key {name:?} at line {before_line} is replaced by the value from line {} \
                     that the merge key << at line {} brings in: kubectl reads it so, but \
                     kustomize and the YAML merge-key spec keep line {before_line}; write the \
                     key after << to mean the same everywhere",
                    value.pos.line, merge.line
                ),
            }),
            (Origin::Merged(_), _) => {}
        }
        *slot = (key, value);
        self.seen.insert(name, (at, origin, written));
    }
}

/// A written key as kubectl spells it in JSON, and how it was written.
fn json_spelled(key: Node) -> (Node, String) {
    let pos = key.pos;
    match key.value {
        Value::Scalar {
            text,
            quoted: false,
        } => {
            let json = json_key(&text).unwrap_or_else(|| text.clone());
            let node = Node {
                value: Value::Scalar {
                    text: json,
                    quoted: false,
                },
                pos,
            };
            (node, text)
        }
        Value::Scalar { text, quoted: true } => {
            let written = text.clone();
            let node = Node {
                value: Value::Scalar { text, quoted: true },
                pos,
            };
            (node, written)
        }
        value => {
            let node = Node { value, pos };
            let written = node.describe();
            (node, written)
        }
    }
}

/// go-yaml reads a plain `<<` key (or one tagged `!!merge`) as a merge key; a quoted one is
/// an ordinary key.
fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar { text, quoted: false } if text == "<<")
}

/// A key's name in a field path.
fn key_name(key: &Node) -> String {
    match &key.value {
        Value::Scalar {
            text,
            quoted: false,
        } => json_key(text).unwrap_or_else(|| text.clone()),
        Value::Scalar { text, .. } => text.clone(),
        _ => key.describe(),
    }
}

fn push_key(path: &mut String, key: &str) {
    if key.is_empty() || key.contains(['.', '/', '[', ']', ' ']) {
        path.push_str(&format!("[{key}]"));
    } else {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    }
}

fn joined(path: &str, key: &str) -> String {
    let mut p = path.to_string();
    push_key(&mut p, key);
    p
}

/// A scalar node. Tags decide over style as go-yaml lets them: `!!str` makes text of
/// anything, `!!int`, `!!float`, `!!bool`, `!!null` and `!!merge` read the text as if it
/// were plain; other tags (`!foo`) are ignored.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>, pos: Pos) -> Node {
    let core = tag
        .filter(|t| t.handle == "tag:yaml.org,2002:")
        .map(|t| t.suffix.as_str());
    let quoted = match core {
        Some("str" | "binary" | "timestamp") => true,
        Some("int" | "float" | "bool" | "null" | "merge") => false,
        _ => !matches!(style, TScalarStyle::Plain),
    };
    let value = if !quoted && resolve_plain(&text) == Plain::Null {
        Value::Null
    } else {
        Value::Scalar { text, quoted }
    };
    Node { value, pos }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_documents_split() {
        let docs = parse_documents("a: 1\nb:\n  c: x\n---\nd: [1, 2]\n").expect("valid yaml");
        assert_eq!(docs.len(), 2);
        let b = docs[0].root.get("b").expect("b");
        let c = b.get("c").expect("c");
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
        assert_eq!(c.as_str(), Some("x"));
        let d = docs[1].root.get("d").expect("d");
        assert_eq!(d.pos.line, 5);
        assert!(matches!(&d.value, Value::Seq(items) if items.len() == 2));
    }

    #[test]
    fn aliases_resolve_and_nulls_are_null() {
        // (`y` would be the key "true": a YAML 1.1 boolean, as kubectl reads it.)
        let docs = parse_documents("x: &a {k: v}\nw: *a\nz: ~\nq: 'null'\n").expect("valid yaml");
        let root = &docs[0].root;
        assert_eq!(
            root.get("w")
                .and_then(|n| n.get("k"))
                .and_then(Node::as_str),
            Some("v")
        );
        assert!(root.get("z").is_some_and(Node::is_null));
        assert_eq!(root.get("q").and_then(Node::as_str), Some("null"));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse_documents("a: [1, 2\nb: 3\n").expect_err("invalid");
        assert!(err.pos.line >= 1, "{err:?}");
    }

    #[test]
    fn unclosed_bracket_is_named_with_its_line() {
        let err = parse_documents("job:\n  args: [\"--in\", \"x\"\n  parallelism: 2\n")
            .expect_err("invalid");
        assert!(
            err.message
                .contains("inside the '[' opened at line 2, column 9: is a ']' missing?"),
            "{err:?}"
        );
        // Errors outside brackets say nothing about them.
        let err = parse_documents("a:\n  b: 1\n c: 2\n").expect_err("invalid");
        assert!(!err.message.contains("opened at"), "{err:?}");
    }

    #[test]
    fn plain_scalars_resolve_as_go_yaml_v2_resolves_them() {
        for (text, want) in [
            ("~", Plain::Null),
            ("", Plain::Null),
            ("y", Plain::Bool(true)),
            ("Off", Plain::Bool(false)),
            ("0x1F", Plain::Int(31)),
            ("0o17", Plain::Int(15)),
            ("017", Plain::Int(15)),
            ("0b101", Plain::Int(5)),
            ("-0b11", Plain::Int(-3)),
            ("1_000", Plain::Int(1000)),
            ("+5", Plain::Int(5)),
            ("-0", Plain::Int(0)),
            (
                "18446744073709551615",
                Plain::Int(18_446_744_073_709_551_615),
            ),
            (
                "-9223372036854775808",
                Plain::Int(-9_223_372_036_854_775_808),
            ),
            ("08", Plain::Float(8.0)),
            ("1.5", Plain::Float(1.5)),
            (".5", Plain::Float(0.5)),
            ("2.", Plain::Float(2.0)),
            ("1e3", Plain::Float(1000.0)),
            ("-.inf", Plain::Float(f64::NEG_INFINITY)),
            ("1e999", Plain::Text),
            (
                "18446744073709551616",
                Plain::Float(18_446_744_073_709_551_616.0),
            ),
            (
                "+18446744073709551615",
                Plain::Float(18_446_744_073_709_551_615.0),
            ),
            ("0x", Plain::Text),
            ("2001-12-14", Plain::Text),
            ("1.5.2", Plain::Text),
            ("2048m", Plain::Text),
            ("<<", Plain::Text),
            (".", Plain::Text),
        ] {
            assert_eq!(resolve_plain(text), want, "{text}");
        }
        assert!(matches!(resolve_plain(".nan"), Plain::Float(f) if f.is_nan()));
    }

    #[test]
    fn float_keys_are_spelled_as_go_spells_a_float32() {
        for (key, want) in [
            ("1.50", "1.5"),
            ("1e6", "1e+06"),
            ("100000", "100000"),
            ("123456.5", "123456.5"),
            ("1234567.5", "1.2345675e+06"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("-2.5e-7", "-2.5e-07"),
            ("0.1", "0.1"),
            ("0.0", "0"),
            (".inf", ".inf"),
            ("1e39", "+Inf"),
        ] {
            assert_eq!(json_key(key).as_deref(), Some(want), "{key}");
        }
    }

    #[test]
    fn limits_refuse_before_copying() {
        let small = Limits {
            max_depth: 3,
            max_nodes: 25, // the document below holds 24
            max_text_bytes: 50,
        };
        assert!(parse_documents_with("a: {b: [1]}\n", small).is_ok());
        let err = parse_documents_with("a: {b: [[1]]}\n", small).expect_err("too deep");
        assert_eq!(
            (err.kind, err.pos.line, err.pos.col),
            (ErrorKind::TooLarge, 1, 9)
        );
        // Each alias counts what it names; so does the copy kept for the anchor.
        let aliases = "a: &a [1, 2, 3, 4]\nb: [*a, *a]\n";
        assert!(parse_documents_with(aliases, small).is_ok());
        let err = parse_documents_with("a: &a [1, 2, 3, 4]\nb: [*a, *a, *a]\n", small)
            .expect_err("too many");
        assert_eq!((err.kind, err.pos.line), (ErrorKind::TooLarge, 2));
        assert!(
            err.message.contains("more than 25 values once its aliases"),
            "{err:?}"
        );
        let err = parse_documents_with(&format!("a: &a {}\nb: *a\n", "x".repeat(30)), small)
            .expect_err("too much text");
        assert!(
            err.message.contains("more than 50 bytes of text"),
            "{err:?}"
        );
        // Budgets are per document.
        let two = "a: &a [1, 2, 3, 4]\nb: [*a, *a]\n---\na: &a [1, 2, 3, 4]\nb: [*a, *a]\n";
        assert_eq!(parse_documents_with(two, small).map(|d| d.len()), Ok(2));
    }

    #[test]
    fn byte_order_marks_go_only_at_document_starts() {
        let docs = parse_documents("\u{feff}a: 1\n--- # next\n\u{feff}b: 2\n").expect("valid");
        assert_eq!(docs.len(), 2);
        // Columns as an editor shows them: the mark takes none.
        assert_eq!(
            docs[1].root.get("b").map(|n| n.pos),
            Some(Pos { line: 3, col: 4 })
        );
        // Elsewhere it is a character like any other.
        let docs = parse_documents("a: x\u{feff}y\n").expect("valid");
        assert_eq!(
            docs[0].root.get("a").and_then(Node::as_str),
            Some("x\u{feff}y")
        );
    }

    #[test]
    fn a_tab_after_a_colon_is_a_separator() {
        let docs = parse_documents("a:\tb\nc:\t\t[d]\ne: \"x:\ty\"\n").expect("valid");
        let root = &docs[0].root;
        assert_eq!(root.get("a").and_then(Node::as_str), Some("b"));
        assert!(matches!(
            root.get("c").map(|n| &n.value),
            Some(Value::Seq(_))
        ));
        assert_eq!(root.get("e").and_then(Node::as_str), Some("x:\ty"));
        // Past the cap the parser's own error stands.
        let many = "a:\tb\n".repeat(MAX_YAML_TAB_REPAIRS + 1);
        let many: String = many
            .lines()
            .enumerate()
            .map(|(i, l)| format!("k{i}{l}\n"))
            .collect();
        let err = parse_documents(&many).expect_err("too many");
        assert!(
            err.message
                .contains("must be followed by a valid YAML whitespace"),
            "{err:?}"
        );
        assert!(
            err.message
                .contains("up to 100 times in a small file: write spaces"),
            "{err:?}"
        );
        assert_eq!(err.pos.line, 101, "{err:?}");
    }

    #[test]
    fn merges_and_duplicates_are_found_with_their_paths() {
        let docs = parse_documents(
            "x: &d {a: 1, b: 2}\nitems:\n- m:\n    a: 0\n    <<: [*d, {c: 3}]\n    c: 4\n    c: 5\n",
        )
        .expect("valid");
        let doc = &docs[0];
        let m = doc.root.get("items").and_then(|i| match &i.value {
            Value::Seq(items) => items.first().and_then(|i| i.get("m")),
            _ => None,
        });
        let m = m.expect("m");
        let mut keys: Vec<(&str, &str)> = match &m.value {
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
                .collect(),
            _ => Vec::new(),
        };
        keys.sort_unstable();
        assert_eq!(keys, [("a", "1"), ("b", "2"), ("c", "5")]);
        // The merged value keeps its line.
        assert_eq!(m.get("a").map(|n| n.pos.line), Some(1));
        let found: Vec<(Severity, u32, &str)> = doc
            .findings
            .iter()
            .map(|f| (f.severity, f.pos.line, f.path.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (Severity::Warning, 4, "items[0].m.a"),
                (Severity::Error, 7, "items[0].m.c")
            ]
        );
    }

    #[test]
    fn control_characters_are_refused_where_they_stand() {
        let err = parse_documents("a: 1\r\nb: 2 # \u{0}\n").expect_err("NUL");
        assert_eq!((err.pos.line, err.pos.col), (2, 8));
        assert!(err.message.contains("U+0000"), "{err:?}");
        let err = parse_documents("a: \"\u{7f}\"\n").expect_err("DEL");
        assert!(err.message.contains("U+007F"), "{err:?}");
        // Tabs, line breaks, NEL and a byte order mark inside a text are allowed.
        assert!(parse_documents("a: \"x\ty\u{85}\u{feff}\"\r\n").is_ok());
    }

    #[test]
    fn an_alias_inside_its_own_anchor_is_an_error() {
        // go-yaml: "anchor 'x' value contains itself".
        let err = parse_documents("a: &x [1, *x]\n").expect_err("self reference");
        assert_eq!(
            (err.kind, err.pos.line, err.pos.col),
            (ErrorKind::Syntax, 1, 11)
        );
        assert!(err.message.contains("or the value it stands in"), "{err:?}");
    }

    #[test]
    fn tab_repairs_stop_once_the_attempts_have_read_enough_text() {
        let text = "k0:\ta\nk1:\tb\nk2:\tc\n";
        assert!(parse_documents(text).is_ok());
        let small = Limits {
            max_text_bytes: 8,
            ..Limits::default()
        };
        // Reading up to the second tab (at char 11) passes 8 chars: refused there.
        let err = parse_documents_with(text, small).expect_err("budget");
        assert_eq!(err.pos.line, 2, "{err:?}");
        assert!(err.message.contains("write spaces"), "{err:?}");
    }
}
