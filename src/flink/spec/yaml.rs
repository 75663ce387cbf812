//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! serde's YAML deserialisers forget positions once a value is built, but every error this
//! project reports names a file and a line, including errors found long after parsing
//! (validation, diffing). So manifests are first read into this small marked tree, built
//! from yaml-rust2's event stream, and the typed model is read from the tree.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

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
            line: m.line() as u32,
            col: m.col() as u32 + 1,
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
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order (duplicates are kept so the reader can report them).
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
    /// Plain scalars become numbers and booleans where YAML 1.2 core schema says so.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Scalar { text, quoted } => {
                if *quoted {
                    return serde_json::Value::String(text.clone());
                }
                match text.as_str() {
                    "true" | "True" | "TRUE" => serde_json::Value::Bool(true),
                    "false" | "False" | "FALSE" => serde_json::Value::Bool(false),
                    _ => {
                        if let Ok(i) = text.parse::<i64>() {
                            serde_json::Value::from(i)
                        } else if let Some(f) = text
                            .parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .and_then(serde_json::Number::from_f64)
                        {
                            serde_json::Value::Number(f)
                        } else {
                            serde_json::Value::String(text.clone())
                        }
                    }
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

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// A parsed document and the line its `---` (or first content) stands on.
#[derive(Debug, Clone)]
pub struct Document {
    pub root: Node,
    pub start: Pos,
}

/// Parses every document of a multi-document YAML text.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        pos: Pos::from_marker(*e.marker()),
        message: format!("{}{}", e.info(), unclosed_bracket(text, &builder.stack)),
    })?;
    if let Some(message) = builder.error {
        return Err(SyntaxError {
            pos: builder.error_pos,
            message,
        });
    }
    Ok(builder.docs)
}

/// When the parser stopped inside a `[...]` or `{...}`, says where that bracket was opened:
/// the error itself is only noticed on a later line ("invalid indentation").
fn unclosed_bracket(text: &str, stack: &[Frame]) -> String {
    stack
        .iter()
        .rev()
        .find_map(|frame| {
            let (Frame::Seq(node, _) | Frame::Map(node, _, _)) = frame;
            let line = text.lines().nth((node.pos.line as usize).checked_sub(1)?)?;
            let open = line.chars().nth((node.pos.col as usize).checked_sub(1)?)?;
            let close = match open {
                '[' => ']',
                '{' => '}',
                _ => return None,
            };
            Some(format!(
                " (inside the '{open}' opened at line {}, column {}: is a '{close}' missing?)",
                node.pos.line, node.pos.col
            ))
        })
        .unwrap_or_default()
}

enum Frame {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

#[derive(Default)]
struct Builder {
    docs: Vec<Document>,
    stack: Vec<Frame>,
    doc_start: Pos,
    anchors: HashMap<usize, Node>,
    error: Option<String>,
    error_pos: Pos,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(Document {
                root: node,
                start: self.doc_start,
            }),
            Some(Frame::Seq(seq, _)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending_key)) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        entries.push((key, node));
                    }
                }
            },
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(mark);
        match ev {
            Event::DocumentStart => self.doc_start = pos,
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let value =
                    if !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                        Value::Null
                    } else {
                        Value::Scalar { text, quoted }
                    };
                let node = Node { value, pos };
                self.remember(anchor, &node);
                self.push_value(node);
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => n.clone(),
                    None => {
                        if self.error.is_none() {
                            self.error = Some("alias to an unknown anchor".to_string());
                            self.error_pos = pos;
                        }
                        Node {
                            value: Value::Null,
                            pos,
                        }
                    }
                };
                self.push_value(node);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(
                Node {
                    value: Value::Seq(Vec::new()),
                    pos,
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(
                Node {
                    value: Value::Map(Vec::new()),
                    pos,
                },
                anchor,
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let (node, anchor) = match frame {
                        Frame::Seq(n, a) => (n, a),
                        Frame::Map(n, a, _) => (n, a),
                    };
                    self.remember(anchor, &node);
                    self.push_value(node);
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
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
        let docs = parse_documents("x: &a {k: v}\ny: *a\nz: ~\nq: 'null'\n").expect("valid yaml");
        let root = &docs[0].root;
        assert_eq!(
            root.get("y")
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
}
