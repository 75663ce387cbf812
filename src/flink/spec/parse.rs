//! Reads YAML documents into typed [`Manifest`]s.
//!
//! The reader walks the marked tree field by field. It knows every field the operator's CRD
//! accepts; an unknown field is an error that names the nearest known one. Type errors say
//! what was found and what is allowed. Reading goes on after an error, so one run reports
//! everything that is wrong with a file.

use std::collections::BTreeMap;

use super::yaml::{parse_documents, resolve_plain, ErrorKind, Finding, Node, Plain, Pos, Value};
use super::*;
use crate::config::{API_VERSION, CANARY_LABEL, DEFAULT_NAMESPACE};

const TOP_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
const METADATA_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "finalizers",
];
/// Metadata the API server sets; harmless in a file exported from a cluster.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "finalizers",
];
const DEPLOYMENT_FIELDS: &[&str] = &[
    "job",
    "restartNonce",
    "flinkConfiguration",
    "image",
    "imagePullPolicy",
    "serviceAccount",
    "flinkVersion",
    "ingress",
    "podTemplate",
    "jobManager",
    "taskManager",
    "logConfiguration",
    "mode",
];
const SESSION_JOB_FIELDS: &[&str] = &[
    "deploymentName",
    "job",
    "flinkConfiguration",
    "restartNonce",
];
const JOB_FIELDS: &[&str] = &[
    "jarURI",
    "parallelism",
    "entryClass",
    "args",
    "state",
    "savepointTriggerNonce",
    "initialSavepointPath",
    "checkpointTriggerNonce",
    "upgradeMode",
    "allowNonRestoredState",
    "savepointRedeployNonce",
    "autoscalerResetNonce",
];
const JOB_MANAGER_FIELDS: &[&str] = &["resource", "replicas", "podTemplate"];
const TASK_MANAGER_FIELDS: &[&str] = &["resource", "replicas", "podTemplate"];
const RESOURCE_FIELDS: &[&str] = &["cpu", "memory", "ephemeralStorage"];
const INGRESS_FIELDS: &[&str] = &["template", "className", "annotations", "labels", "tls"];
const PULL_POLICIES: &[(&str, &str)] = &[
    ("Always", "Always"),
    ("IfNotPresent", "IfNotPresent"),
    ("Never", "Never"),
];

/// Parses one file into `set`.
pub(crate) fn parse_file(file: &str, text: &str, set: &mut ManifestSet) {
    let docs = match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            let what = match e.kind {
                ErrorKind::Syntax => "YAML syntax error",
                ErrorKind::TooLarge => "YAML document refused",
            };
            set.diagnostics.push(Diagnostic {
                severity: Severity::Error,
                file: file.to_string(),
                line: e.pos.line,
                column: e.pos.col,
                field: String::new(),
                resource: None,
                message: format!("{what}: {}; nothing in this file was read", e.message),
            });
            set.unreadable_files.insert(file.to_string());
            return;
        }
    };
    for doc in docs {
        set.names_other_lines |= !doc.findings.is_empty();
        match list_kind(&doc.root) {
            Some(kind) => parse_list(file, &doc.root, kind, doc.findings, set),
            None => parse_document(file, &doc.root, doc.start, None, doc.findings, set),
        }
    }
}

/// The kind of a document that is a list of resources: `List`, or `<Kind>List` such as
/// `FlinkDeploymentList` (what `kubectl get -o yaml` writes).
fn list_kind(root: &Node) -> Option<&str> {
    root.get("kind")
        .and_then(Node::as_str)
        .filter(|kind| kind.ends_with("List"))
}

/// Reads the items of a `List` document as resources of their own, as kubectl does
/// (cli-runtime's `FlattenListVisitor`). Items that give neither kind nor apiVersion take
/// the list's (`FlinkDeploymentList` holds FlinkDeployments), as apimachinery's unstructured
/// list decoding sets them. Positions and findings stay those of the file.
fn parse_list(file: &str, root: &Node, kind: &str, findings: Vec<Finding>, set: &mut ManifestSet) {
    let api = root
        .get("apiVersion")
        .and_then(Node::as_str)
        .unwrap_or_default();
    let defaults = kind
        .strip_suffix("List")
        .filter(|k| !k.is_empty())
        .map(|k| (k, api));
    let mut by_item: BTreeMap<usize, Vec<Finding>> = BTreeMap::new();
    let mut own = Vec::new();
    for f in findings {
        match item_finding(&f.path) {
            Some((i, rest)) => by_item
                .entry(i)
                .or_default()
                .push(Finding { path: rest, ..f }),
            None => own.push(f),
        }
    }
    let mut r = Reader::new(file);
    r.findings(own);
    match root.get("items").map(|n| (n, &n.value)) {
        None | Some((_, Value::Null)) => r.push(
            Severity::Notice,
            root.pos,
            "items",
            format!("the {kind} holds no items"),
        ),
        Some((_, Value::Seq(items))) => {
            for (i, item) in items.iter().enumerate() {
                let item_findings = by_item.remove(&i).unwrap_or_default();
                if item.is_null() {
                    r.error_at(
                        item.pos,
                        &format!("items[{i}]"),
                        "an item of a List is empty; it must be a resource".to_string(),
                    );
                } else if let Some(inner) = list_kind(item).filter(|_| item.get("items").is_some())
                {
                    r.error_at(
                        item.get("kind").map_or(item.pos, |k| k.pos),
                        &format!("items[{i}].kind"),
                        format!(
                            "a {inner} inside a {kind} is not read (kubectl refuses it too); \
                             write its items into the outer list"
                        ),
                    );
                } else {
                    parse_document(file, item, item.pos, defaults, item_findings, set);
                }
            }
        }
        Some((items, _)) => r.error_at(
            items.pos,
            "items",
            format!("expected a list of resources, found {}", items.describe()),
        ),
    }
    if r.diags.iter().any(|d| d.severity == Severity::Error) {
        // Which resources the file holds is not certain: keep what it held before.
        set.unreadable_files.insert(file.to_string());
    }
    set.diagnostics.append(&mut r.diags);
}

/// The item a finding in a List belongs to, and its path inside that item.
fn item_finding(path: &str) -> Option<(usize, String)> {
    let rest = path.strip_prefix("items[")?;
    let (index, rest) = rest.split_once(']')?;
    let index = index.parse().ok()?;
    Some((index, rest.strip_prefix('.').unwrap_or(rest).to_string()))
}

/// Reads one resource: a document, or an item of a List (`defaults` then gives the kind and
/// apiVersion of an item that names neither).
fn parse_document(
    file: &str,
    root: &Node,
    start: Pos,
    defaults: Option<(&str, &str)>,
    findings: Vec<Finding>,
    set: &mut ManifestSet,
) {
    let mut r = Reader::new(file);
    if root.is_null() {
        return; // an empty document, e.g. after a trailing `---`
    }
    r.findings(findings);
    let Value::Map(_) = &root.value else {
        r.error_at(
            root.pos,
            "",
            format!(
                "a manifest must be a mapping with apiVersion, kind, metadata and spec; found {}",
                root.describe()
            ),
        );
        set.diagnostics.append(&mut r.diags);
        set.unreadable_files.insert(file.to_string());
        return;
    };
    let kind_node = root.get("kind");
    let api_node = root.get("apiVersion");
    let inherited = defaults.filter(|_| kind_node.is_none() && api_node.is_none());
    let api = api_node
        .and_then(Node::as_str)
        .or(inherited.map(|(_, api)| api))
        .unwrap_or_default();
    let kind_text = kind_node
        .and_then(Node::as_str)
        .or(inherited.map(|(kind, _)| kind));
    let kind = match kind_text {
        Some("FlinkDeployment") => Kind::FlinkDeployment,
        Some("FlinkSessionJob") => Kind::FlinkSessionJob,
        Some(other) => {
            let near = nearest(other, &["FlinkDeployment", "FlinkSessionJob"]);
            if api.starts_with("flink.apache.org/")
                && near.is_some()
                && other != "FlinkStateSnapshot"
            {
                r.error_at(
                    kind_node.map(|n| n.pos).unwrap_or(root.pos),
                    "kind",
                    format!(
                        "unknown kind {other:?}{}; allowed: FlinkDeployment, FlinkSessionJob",
                        did_you_mean(near)
                    ),
                );
                set.unreadable_files.insert(file.to_string());
            } else {
                // Not read, so nothing about its YAML is reported either.
                r.diags.clear();
                let what = if other == "FlinkStateSnapshot" {
                    "FlinkStateSnapshot is not a workload (the agent records savepoints on the status branch)".to_string()
                } else {
                    format!("kind {other} is not managed by flink-gitops (only FlinkDeployment and FlinkSessionJob)")
                };
                let name = root
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Node::as_str)
                    .unwrap_or("?");
                r.push(
                    Severity::Notice,
                    kind_node.map(|n| n.pos).unwrap_or(start),
                    "kind",
                    format!("skipped {other} {name}: {what}"),
                );
            }
            set.diagnostics.append(&mut r.diags);
            return;
        }
        None => {
            // Without a kind the document cannot be read at all: a document-level error.
            r.error_at(
                root.pos,
                "",
                "kind is missing; allowed: FlinkDeployment, FlinkSessionJob".to_string(),
            );
            set.diagnostics.append(&mut r.diags);
            set.unreadable_files.insert(file.to_string());
            return;
        }
    };

    let top = r.fields(root, "", TOP_FIELDS);
    if api != API_VERSION {
        let pos = api_node.map_or(root.pos, |n| n.pos);
        let found = if api.is_empty() {
            "nothing".to_string()
        } else {
            format!("{api:?}")
        };
        r.error_at(
            pos,
            "apiVersion",
            format!("found {found}; allowed: {API_VERSION}"),
        );
    }

    // metadata: identity first; without a name the resource cannot be tracked.
    let mut name = None;
    let mut namespace = DEFAULT_NAMESPACE.to_string();
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    match top.get("metadata") {
        None => r.error_at(
            root.pos,
            "metadata",
            "metadata is missing; it must give at least a name".to_string(),
        ),
        Some(meta) => {
            let fields = r.fields(meta, "metadata", METADATA_FIELDS);
            for (k, v) in &fields {
                match *k {
                    "name" => name = r.string(v, "metadata.name"),
                    "namespace" => {
                        if let Some(ns) = r.string(v, "metadata.namespace") {
                            namespace = ns;
                        }
                    }
                    "labels" => labels = r.string_map(v, "metadata.labels"),
                    "annotations" => annotations = r.string_map(v, "metadata.annotations"),
                    k if SERVER_METADATA.contains(&k) => r.push(
                        Severity::Notice,
                        v.pos,
                        &format!("metadata.{k}"),
                        format!("metadata.{k} is set by the Kubernetes API server; ignored"),
                    ),
                    _ => {}
                }
            }
            if name.is_none() && !fields.contains_key("name") {
                // Where `metadata:` is written: a block mapping's own position lies inside
                // its first entry.
                r.error_at(
                    r.locs.find("metadata"),
                    "metadata.name",
                    "metadata.name is missing".to_string(),
                );
            }
        }
    }
    let Some(name) = name else {
        set.diagnostics.append(&mut r.diags);
        set.unreadable_files.insert(file.to_string());
        return;
    };
    let key = ResourceKey::new(namespace, kind, name);
    r.resource = Some(key.to_string());
    for d in r.diags.iter_mut() {
        d.resource = Some(key.to_string());
    }

    if labels.get(CANARY_LABEL).is_some_and(|v| v == "true") {
        r.push(
            Severity::Notice,
            r.locs.find("metadata.labels"),
            "metadata.labels",
            format!("skipped {key}: a canary resource (label {CANARY_LABEL}) is an operator health probe, never deployed"),
        );
        set.diagnostics.append(&mut r.diags);
        return;
    }
    if let Some(status) = top.get("status") {
        r.push(
            Severity::Notice,
            status.pos,
            "status",
            "status is ignored: the agent keeps status on its status branch".to_string(),
        );
    }
    let spec = match top.get("spec") {
        Some(node) => match kind {
            Kind::FlinkDeployment => Spec::Deployment(r.deployment_spec(node)),
            Kind::FlinkSessionJob => Spec::SessionJob(r.session_job_spec(node)),
        },
        None => {
            r.error_at(root.pos, "spec", "spec is missing".to_string());
            match kind {
                Kind::FlinkDeployment => Spec::Deployment(DeploymentSpec::default()),
                Kind::FlinkSessionJob => Spec::SessionJob(SessionJobSpec::default()),
            }
        }
    };
    r.locs.insert("", start.max(root.pos));
    set.diagnostics.append(&mut r.diags);
    set.manifests.push(Manifest {
        key,
        file: file.to_string(),
        labels,
        annotations,
        spec,
        locations: r.locs,
        rendered: None,
    });
}

/// The nearest of `known` to `word`, if it is near enough to be a typo.
/// No suggestion when several are equally near (`v2_5` is as near to `v2_0` as to `v2_3`):
/// a guess would mislead.
pub fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let near: Vec<(usize, &'a str)> = known
        .iter()
        .map(|k| (strsim::levenshtein(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .collect();
    let best = near.iter().map(|(d, _)| *d).min()?;
    match near.iter().filter(|(d, _)| *d == best).collect::<Vec<_>>()[..] {
        [(_, k)] => Some(*k),
        _ => None,
    }
}

fn did_you_mean(near: Option<&str>) -> String {
    near.map(|n| format!(" (did you mean {n:?}?)"))
        .unwrap_or_default()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A YAML 1.1 boolean, as Kubernetes' YAML reader (go-yaml v2, used by kubectl) resolves
/// plain scalars.
fn yaml11_bool(text: &str) -> Option<bool> {
    match resolve_plain(text) {
        Plain::Bool(b) => Some(b),
        _ => None,
    }
}

/// What a plain (unquoted) scalar is when Kubernetes reads it as something other than text:
/// `2048` is a number and `yes` a boolean, so a text field rejects them.
fn plain_non_text(node: &Node) -> Option<&'static str> {
    match &node.value {
        Value::Scalar {
            text,
            quoted: false,
        } => match resolve_plain(text) {
            Plain::Bool(_) => Some("the boolean"),
            Plain::Int(_) | Plain::Float(_) => Some("the number"),
            Plain::Null | Plain::Text => None,
        },
        _ => None,
    }
}

fn not_text_message(text: &str, what: &str) -> String {
    format!("expected text, found {what} {text}; write it in quotes (\"{text}\") so Kubernetes reads it as text")
}

struct Reader<'f> {
    file: &'f str,
    resource: Option<String>,
    diags: Vec<Diagnostic>,
    locs: Locations,
}

impl<'f> Reader<'f> {
    fn new(file: &'f str) -> Self {
        Reader {
            file,
            resource: None,
            diags: Vec::new(),
            locs: Locations::default(),
        }
    }

    fn push(&mut self, severity: Severity, pos: Pos, field: &str, message: String) {
        self.diags.push(Diagnostic {
            severity,
            file: self.file.to_string(),
            line: pos.line,
            column: pos.col,
            field: field.to_string(),
            resource: self.resource.clone(),
            message,
        });
    }

    fn error_at(&mut self, pos: Pos, field: &str, message: String) {
        self.push(Severity::Error, pos, field, message);
    }

    /// Reports what the YAML reader found in the document (keys given twice, merges).
    fn findings(&mut self, findings: Vec<Finding>) {
        for f in findings {
            self.push(f.severity, f.pos, &f.path, f.message);
        }
    }

    /// Reads a mapping's fields; reports a non-mapping, unknown fields (with the nearest
    /// known name) and repeated keys; records each key's position.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
    ) -> BTreeMap<&'n str, &'n Node> {
        let mut out = BTreeMap::new();
        self.locs.insert(path, node.pos);
        let entries = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => return out,
            _ => {
                self.error_at(
                    node.pos,
                    path,
                    format!("expected a mapping of fields, found {}", node.describe()),
                );
                return out;
            }
        };
        for (k, v) in entries {
            let Some(key) = k.as_str() else {
                self.error_at(
                    k.pos,
                    path,
                    format!("field names must be text, found {}", k.describe()),
                );
                continue;
            };
            let field = join(path, key);
            if !known.contains(&key) {
                let near = nearest(key, known);
                let message = match near {
                    Some(n) => format!("unknown field {key:?} (did you mean {n:?}?)"),
                    None => format!("unknown field {key:?}; allowed here: {}", known.join(", ")),
                };
                self.error_at(k.pos, &field, message);
                continue;
            }
            if v.is_null() {
                // Kubernetes drops fields whose value is null: `serviceAccount:` with nothing
                // after it is the same as no serviceAccount at all.
                continue;
            }
            if out.insert(key, v).is_some() {
                self.error_at(k.pos, &field, format!("field {key:?} is given twice"));
                continue;
            }
            self.locs.insert(&field, k.pos);
        }
        out
    }

    fn scalar<'n>(&mut self, node: &'n Node, path: &str, expected: &str) -> Option<&'n str> {
        match &node.value {
            Value::Scalar { text, .. } => Some(text),
            Value::Null => None,
            _ => {
                self.error_at(
                    self.locs.find(path),
                    path,
                    format!("expected {expected}, found {}", node.describe()),
                );
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        let text = self.scalar(node, path, "text")?;
        if let Some(what) = plain_non_text(node) {
            self.error_at(self.locs.find(path), path, not_text_message(text, what));
            return None;
        }
        Some(text.to_string())
    }

    /// Reports a quoted value where the CRD wants a number or boolean: YAML reads quoted
    /// values as text, and Kubernetes rejects text there.
    fn reject_quoted(&mut self, node: &Node, path: &str, expected: &str) -> bool {
        if let Value::Scalar { text, quoted: true } = &node.value {
            self.error_at(
                self.locs.find(path),
                path,
                format!("expected {expected}, found the text {text:?} (quoted); remove the quotes"),
            );
            return true;
        }
        false
    }

    fn int(&mut self, node: &Node, path: &str) -> Option<i64> {
        let text = self.scalar(node, path, "a whole number")?;
        if self.reject_quoted(node, path, "a whole number") {
            return None;
        }
        // As kubectl reads it: `0x10`, `010` (octal) and `1_000` are whole numbers, and so
        // is `2.0` (JSON writes it as 2).
        let whole = match resolve_plain(text) {
            Plain::Int(i) => i64::try_from(i).ok(),
            Plain::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                #[allow(clippy::cast_possible_truncation)] // whole and within 2^53
                Some(f as i64)
            }
            _ => None,
        };
        if whole.is_none() {
            self.error_at(
                self.locs.find(path),
                path,
                format!("expected a whole number, found {text:?}"),
            );
        }
        whole
    }

    fn float(&mut self, node: &Node, path: &str) -> Option<f64> {
        let text = self.scalar(node, path, "a number")?;
        if self.reject_quoted(node, path, "a number") {
            return None;
        }
        let number = match resolve_plain(text) {
            #[allow(clippy::cast_precision_loss)] // as JSON reads a large integer
            Plain::Int(i) => Some(i as f64),
            Plain::Float(f) => Some(f),
            _ => None,
        };
        match number {
            Some(v) if v.is_finite() => Some(v),
            _ => {
                self.error_at(
                    self.locs.find(path),
                    path,
                    format!("expected a number, found {text:?}"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        let text = self.scalar(node, path, "true or false")?;
        if self.reject_quoted(node, path, "true or false") {
            return None;
        }
        match yaml11_bool(text) {
            Some(b) => Some(b),
            None => {
                self.error_at(
                    self.locs.find(path),
                    path,
                    format!("found {text:?}; allowed: true, false"),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, node: &Node, path: &str, allowed: &[(&str, T)]) -> Option<T> {
        let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
        let text = self.scalar(node, path, &format!("one of {}", names.join(", ")))?;
        if let Some((_, v)) = allowed.iter().find(|(n, _)| *n == text) {
            return Some(*v);
        }
        let near = nearest(text, &names);
        self.error_at(
            self.locs.find(path),
            path,
            format!(
                "found {text:?}; allowed: {}{}",
                names.join(", "),
                did_you_mean(near)
            ),
        );
        None
    }

    fn string_map(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match &node.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (k, v) in entries {
                    let Some(key) = k.as_str() else {
                        self.error_at(
                            k.pos,
                            path,
                            format!("keys must be text, found {}", k.describe()),
                        );
                        continue;
                    };
                    let field = format!("{path}[{key}]");
                    self.locs.insert(&field, k.pos);
                    match &v.value {
                        Value::Scalar { text, .. } => {
                            if let Some(what) = plain_non_text(v) {
                                self.error_at(k.pos, &field, not_text_message(text, what));
                                continue;
                            }
                            out.insert(key.to_string(), text.clone());
                        }
                        Value::Null => {
                            out.insert(key.to_string(), String::new());
                        }
                        _ => self.error_at(
                            k.pos,
                            &field,
                            format!("expected text, found {}", v.describe()),
                        ),
                    }
                }
            }
            _ => self.error_at(
                node.pos,
                path,
                format!("expected a mapping of text, found {}", node.describe()),
            ),
        }
        out
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Vec<String> {
        match &node.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let field = format!("{path}[{i}]");
                    self.locs.insert(&field, item.pos);
                    self.string(item, &field)
                })
                .collect(),
            _ => {
                self.error_at(
                    self.locs.find(path),
                    path,
                    format!("expected a list of text, found {}", node.describe()),
                );
                Vec::new()
            }
        }
    }

    /// A free-form Kubernetes object (pod template, ingress TLS): must be a mapping or list.
    fn object(&mut self, node: &Node, path: &str, want_list: bool) -> Option<serde_json::Value> {
        match (&node.value, want_list) {
            (Value::Null, _) => None,
            (Value::Map(_), false) | (Value::Seq(_), true) => Some(node.to_json()),
            _ => {
                let want = if want_list { "a list" } else { "a mapping" };
                self.error_at(
                    self.locs.find(path),
                    path,
                    format!("expected {want}, found {}", node.describe()),
                );
                None
            }
        }
    }

    /// `flinkConfiguration`: flat `a.b.c` keys or nested YAML, flattened with `.`; lists are
    /// joined with `;` as the operator does.
    fn flink_config(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match &node.value {
            Value::Null => {}
            Value::Map(_) => self.flatten_config(node, path, "", &mut out),
            _ => self.error_at(
                self.locs.find(path),
                path,
                format!(
                    "expected a mapping of Flink options, found {}",
                    node.describe()
                ),
            ),
        }
        out
    }

    fn flatten_config(
        &mut self,
        node: &Node,
        path: &str,
        prefix: &str,
        out: &mut BTreeMap<String, String>,
    ) {
        let Value::Map(entries) = &node.value else {
            return;
        };
        for (k, v) in entries {
            let Some(key) = k.as_str() else {
                self.error_at(
                    k.pos,
                    path,
                    format!("option names must be text, found {}", k.describe()),
                );
                continue;
            };
            let full = if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            };
            let field = format!("{path}[{full}]");
            let value = match &v.value {
                Value::Map(_) => {
                    self.flatten_config(v, path, &full, out);
                    continue;
                }
                // kubectl reads YAML 1.1: a plain `yes`/`on`/`off` reaches the operator as
                // true/false, so it does here too.
                Value::Scalar {
                    text,
                    quoted: false,
                } => match yaml11_bool(text) {
                    Some(b) => b.to_string(),
                    None => text.clone(),
                },
                Value::Scalar { text, .. } => text.clone(),
                Value::Seq(items) => {
                    let mut parts = Vec::new();
                    for item in items {
                        match item.as_str() {
                            Some(s) => parts.push(s.to_string()),
                            None => self.error_at(
                                item.pos,
                                &field,
                                format!("list items must be text, found {}", item.describe()),
                            ),
                        }
                    }
                    parts.join(";")
                }
                Value::Null => {
                    self.push(
                        Severity::Warning,
                        k.pos,
                        &field,
                        format!("option {full} has no value; ignored"),
                    );
                    continue;
                }
            };
            if out.insert(full.clone(), value).is_some() {
                self.error_at(k.pos, &field, format!("option {full} is given twice (flat and nested spellings count as the same key)"));
            } else {
                self.locs.insert(&field, k.pos);
            }
        }
    }

    fn resource(&mut self, node: &Node, path: &str) -> Resource {
        let f = self.fields(node, path, RESOURCE_FIELDS);
        let mut res = Resource::default();
        for (k, v) in f {
            let p = join(path, k);
            match k {
                "cpu" => res.cpu = self.float(v, &p),
                "memory" => res.memory = self.string(v, &p),
                "ephemeralStorage" => res.ephemeral_storage = self.string(v, &p),
                _ => {}
            }
        }
        res
    }

    fn job_manager(&mut self, node: &Node, path: &str) -> JobManagerSpec {
        let f = self.fields(node, path, JOB_MANAGER_FIELDS);
        let mut jm = JobManagerSpec::default();
        for (k, v) in f {
            let p = join(path, k);
            match k {
                "resource" => jm.resource = Some(self.resource(v, &p)),
                "replicas" => jm.replicas = self.int(v, &p),
                "podTemplate" => jm.pod_template = self.object(v, &p, false),
                _ => {}
            }
        }
        jm
    }

    fn task_manager(&mut self, node: &Node, path: &str) -> TaskManagerSpec {
        let f = self.fields(node, path, TASK_MANAGER_FIELDS);
        let mut tm = TaskManagerSpec::default();
        for (k, v) in f {
            let p = join(path, k);
            match k {
                "resource" => tm.resource = Some(self.resource(v, &p)),
                "replicas" => tm.replicas = self.int(v, &p),
                "podTemplate" => tm.pod_template = self.object(v, &p, false),
                _ => {}
            }
        }
        tm
    }

    fn ingress(&mut self, node: &Node, path: &str) -> IngressSpec {
        let f = self.fields(node, path, INGRESS_FIELDS);
        let mut ing = IngressSpec::default();
        for (k, v) in f {
            let p = join(path, k);
            match k {
                "template" => ing.template = self.string(v, &p),
                "className" => ing.class_name = self.string(v, &p),
                "annotations" => ing.annotations = self.string_map(v, &p),
                "labels" => ing.labels = self.string_map(v, &p),
                "tls" => ing.tls = self.object(v, &p, true),
                _ => {}
            }
        }
        ing
    }

    fn job(&mut self, node: &Node, path: &str) -> JobSpec {
        let f = self.fields(node, path, JOB_FIELDS);
        let mut job = JobSpec::default();
        for (k, v) in f {
            let p = join(path, k);
            match k {
                "jarURI" => job.jar_uri = self.string(v, &p),
                "parallelism" => job.parallelism = self.int(v, &p),
                "entryClass" => job.entry_class = self.string(v, &p),
                "args" => job.args = self.string_list(v, &p),
                "state" => job.state = self.choice(v, &p, &JobState::ALLOWED).unwrap_or_default(),
                "upgradeMode" => {
                    job.upgrade_mode = self
                        .choice(v, &p, &UpgradeMode::ALLOWED)
                        .unwrap_or_default()
                }
                "savepointTriggerNonce" => job.savepoint_trigger_nonce = self.int(v, &p),
                "checkpointTriggerNonce" => job.checkpoint_trigger_nonce = self.int(v, &p),
                "savepointRedeployNonce" => job.savepoint_redeploy_nonce = self.int(v, &p),
                "autoscalerResetNonce" => job.autoscaler_reset_nonce = self.int(v, &p),
                "initialSavepointPath" => job.initial_savepoint_path = self.string(v, &p),
                "allowNonRestoredState" => job.allow_non_restored_state = self.boolean(v, &p),
                _ => {}
            }
        }
        job
    }

    // `fields` leaves out null values, so `job: ~` is no job (a session cluster).
    fn deployment_spec(&mut self, node: &Node) -> DeploymentSpec {
        let f = self.fields(node, "spec", DEPLOYMENT_FIELDS);
        let mut spec = DeploymentSpec::default();
        for (k, v) in f {
            let p = join("spec", k);
            match k {
                "job" => spec.job = Some(self.job(v, &p)),
                "restartNonce" => spec.restart_nonce = self.int(v, &p),
                "flinkConfiguration" => spec.flink_configuration = self.flink_config(v, &p),
                "image" => spec.image = self.string(v, &p),
                // The operator reads it with ImagePullPolicy.valueOf: exact case.
                "imagePullPolicy" => {
                    spec.image_pull_policy = self.choice(v, &p, PULL_POLICIES).map(str::to_string)
                }
                "serviceAccount" => spec.service_account = self.string(v, &p),
                "flinkVersion" => {
                    // A known but unsupported version (v1_13) is read, and validation says
                    // why it is refused; anything else is offered the supported ones.
                    spec.flink_version = match v.as_str().and_then(FlinkVersion::parse) {
                        Some(fv) => Some(fv),
                        None => {
                            let allowed: Vec<(&str, FlinkVersion)> = FlinkVersion::ALL
                                .iter()
                                .filter(|fv| fv.is_supported())
                                .map(|fv| (fv.as_str(), *fv))
                                .collect();
                            self.choice(v, &p, &allowed)
                        }
                    };
                }
                "ingress" => spec.ingress = Some(self.ingress(v, &p)),
                "podTemplate" => spec.pod_template = self.object(v, &p, false),
                "jobManager" => spec.job_manager = Some(self.job_manager(v, &p)),
                "taskManager" => spec.task_manager = Some(self.task_manager(v, &p)),
                "logConfiguration" => spec.log_configuration = self.string_map(v, &p),
                "mode" => spec.mode = self.choice(v, &p, &DeploymentMode::ALLOWED),
                _ => {}
            }
        }
        spec
    }

    fn session_job_spec(&mut self, node: &Node) -> SessionJobSpec {
        let f = self.fields(node, "spec", SESSION_JOB_FIELDS);
        let mut spec = SessionJobSpec::default();
        for (k, v) in f {
            let p = join("spec", k);
            match k {
                "deploymentName" => spec.deployment_name = self.string(v, &p),
                "job" => spec.job = Some(self.job(v, &p)),
                "flinkConfiguration" => spec.flink_configuration = self.flink_config(v, &p),
                "restartNonce" => spec.restart_nonce = self.int(v, &p),
                _ => {}
            }
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> ManifestSet {
        let mut set = ManifestSet::default();
        set.add_file("t.yaml", text);
        set
    }

    #[test]
    fn nested_and_flat_config_flatten_alike() {
        let set = read(
            "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata: {name: a}\nspec:\n  flinkConfiguration:\n    state:\n      savepoints.dir: file:///sp\n    taskmanager.numberOfTaskSlots: 2\n    x: [a, b]\n",
        );
        assert!(!set.has_errors(), "{:?}", set.diagnostics);
        let cfg = set.manifests[0].spec.flink_configuration();
        assert_eq!(
            cfg.get("state.savepoints.dir").map(String::as_str),
            Some("file:///sp")
        );
        assert_eq!(
            cfg.get("taskmanager.numberOfTaskSlots").map(String::as_str),
            Some("2")
        );
        assert_eq!(cfg.get("x").map(String::as_str), Some("a;b"));
        assert_eq!(
            set.manifests[0]
                .locations
                .find("spec.flinkConfiguration[state.savepoints.dir]")
                .line,
            7
        );
    }

    #[test]
    fn unknown_field_names_nearest_and_line() {
        let set = read("apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata: {name: a}\nspec:\n  job:\n    upgradMode: savepoint\n");
        let e = set.errors().next().expect("an error");
        assert_eq!((e.line, e.field.as_str()), (6, "spec.job.upgradMode"));
        assert!(
            e.message.contains("did you mean \"upgradeMode\""),
            "{}",
            e.message
        );
    }

    const HEAD: &str =
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: a\n";

    fn errors(set: &ManifestSet) -> Vec<(u32, String, String)> {
        set.errors()
            .map(|d| (d.line, d.field.clone(), d.message.clone()))
            .collect()
    }

    #[test]
    fn a_null_field_is_a_missing_field() {
        // `name:` with nothing after it used to drop the resource without a word.
        let set = read("apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name:\n  namespace: x\nspec: {}\n");
        let e = errors(&set);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1.as_str()), (3, "metadata.name"));
        assert!(e[0].2.contains("metadata.name is missing"), "{e:?}");
        // A null spec field is not located, so validation treats it as absent.
        let set = read(&format!("{HEAD}spec:\n  serviceAccount:\n"));
        assert!(!set.manifests[0].locations.contains("spec.serviceAccount"));
    }

    #[test]
    fn values_are_typed_as_kubernetes_reads_yaml() {
        let set = read(&format!(
            "{HEAD}  labels:\n    version: 2\n    team: \"7\"\nspec:\n  jobManager:\n    replicas: \"1\"\n    resource:\n      memory: 2048\n      cpu: \"1\"\n  job:\n    args: [--n, 10, \"10\"]\n    allowNonRestoredState: yes\n"
        ));
        let mut e = errors(&set);
        e.sort();
        let fields: Vec<&str> = e.iter().map(|(_, f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels[version]",
                "spec.jobManager.replicas",
                "spec.jobManager.resource.memory",
                "spec.jobManager.resource.cpu",
                "spec.job.args[1]"
            ],
            "{e:#?}"
        );
        assert!(
            e[0].2.contains("found the number 2; write it in quotes"),
            "{e:?}"
        );
        assert!(e[1].2.contains("remove the quotes"), "{e:?}");
        // `yes` is a YAML 1.1 boolean, as kubectl reads it.
        let job = set.manifests[0].spec.job().expect("job");
        assert_eq!(job.allow_non_restored_state, Some(true));
        assert_eq!(job.args, ["--n", "10"]);
    }

    #[test]
    fn plain_yaml11_booleans_in_flink_configuration_read_as_true_false() {
        let set = read(&format!(
            "{HEAD}spec:\n  flinkConfiguration:\n    a: on\n    b: \"on\"\n    c: No\n    d: 10\n"
        ));
        let cfg = set.manifests[0].spec.flink_configuration();
        let get = |k: &str| cfg.get(k).map(String::as_str);
        assert_eq!(
            (get("a"), get("b"), get("c"), get("d")),
            (Some("true"), Some("on"), Some("false"), Some("10"))
        );
    }

    fn yaml11_number(text: &str) -> bool {
        matches!(resolve_plain(text), Plain::Int(_) | Plain::Float(_))
    }

    #[test]
    fn yaml11_numbers() {
        for n in [
            "2048", "-1", "+3", "0x1F", "0o17", "0b101", "1_000", "1.5", ".5", "1e3", "2.", ".inf",
        ] {
            assert!(yaml11_number(n), "{n}");
        }
        for t in [
            "2048m",
            "1.5.2",
            "v1_20",
            "e3",
            "",
            "0x",
            "1e",
            "flink:1.20",
            ".",
        ] {
            assert!(!yaml11_number(t), "{t}");
        }
    }

    #[test]
    fn unknown_flink_version_offers_supported_ones_without_a_guess() {
        let set = read(&format!("{HEAD}spec:\n  flinkVersion: v2_5\n"));
        let e = errors(&set);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].2.starts_with("found \"v2_5\"; allowed: v1_15,"),
            "{e:?}"
        );
        assert!(!e[0].2.contains("did you mean"), "{e:?}");
        // A known unsupported version is read; validation says why it is refused.
        let set = read(&format!("{HEAD}spec:\n  flinkVersion: v1_13\n"));
        assert!(!set.has_errors(), "{:?}", set.diagnostics);
    }

    #[test]
    fn nearest_gives_no_guess_when_ambiguous() {
        assert_eq!(nearest("upgradMode", JOB_FIELDS), Some("upgradeMode"));
        assert_eq!(nearest("v2_5", &["v2_0", "v2_1"]), None);
        assert_eq!(nearest("zzzz", &["memory"]), None);
    }

    #[test]
    fn a_missing_kind_is_a_document_error() {
        let set = read("apiVersion: flink.apache.org/v1beta1\nmetadata: {name: a}\n");
        let e = errors(&set);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1.as_str()), (1, ""));
    }

    #[test]
    fn other_kinds_are_skipped_with_a_notice() {
        let set = read("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n");
        assert!(set.manifests.is_empty());
        assert_eq!(set.diagnostics.len(), 1);
        assert_eq!(set.diagnostics[0].severity, Severity::Notice);
    }
}
