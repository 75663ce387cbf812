//! Where the fields of a rendered manifest come from (pure).
//!
//! kustomize: a rendered resource is matched to the documents of its kustomizations that
//! have its kind and name (and its namespace, where they name one), nearest kustomization
//! first (the overlay before its bases, as kustomize applies them). A field points at the
//! first of those documents that writes it with the value it has in the output: an
//! overlay's patch where the patch set it, the base where the base did. A field that no
//! document writes with that value (a JSON 6902 patch, a replacement, a generator) points
//! at the rendered output.
//!
//! Helm: templates are not YAML, but values files are. A field whose value came through a
//! value of the same name points at the last values file (in the order Helm applies them)
//! that sets a key of that name to that value; any other field at the rendered output.

use std::collections::BTreeMap;

use crate::flink::spec::yaml::{parse_documents, Node, Value};
use crate::flink::spec::{Manifest, ManifestSet, Pos, RenderedFrom};

/// What stands at a position of a YAML file: a mapping (written there, whatever it holds)
/// or a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Mapping,
    Value(serde_json::Value),
}

impl Shape {
    fn of(node: &Node) -> Shape {
        match &node.value {
            Value::Map(_) => Shape::Mapping,
            _ => Shape::Value(node.to_json()),
        }
    }

    /// The same value, as YAML text would give it: a number and the same digits quoted
    /// count as the same (a template often quotes what a values file does not).
    fn same(&self, other: &Shape) -> bool {
        match (self, other) {
            (Shape::Mapping, Shape::Mapping) => true,
            (Shape::Value(a), Shape::Value(b)) => a == b || scalar_text(a) == scalar_text(b),
            _ => false,
        }
    }
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Every key and list item of a file by position, with what it holds.
fn index(text: &str) -> BTreeMap<Pos, Shape> {
    fn walk(node: &Node, out: &mut BTreeMap<Pos, Shape>) {
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    out.insert(k.pos, Shape::of(v));
                    walk(v, out);
                }
            }
            Value::Seq(items) => {
                for item in items {
                    // A mapping in a list starts where its first key does: the key wins.
                    out.entry(item.pos).or_insert_with(|| Shape::of(item));
                    walk(item, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for doc in parse_documents(text).unwrap_or_default() {
        walk(&doc.root, &mut out);
    }
    out
}

/// One document of a kustomization's files that names a resource.
#[derive(Debug)]
struct SourceDoc {
    manifest: Manifest,
    /// Index of the document's file.
    file: usize,
}

/// The YAML files of the kustomizations that make one rendered folder, nearest first.
#[derive(Debug, Default)]
pub struct KustomizeSources {
    docs: Vec<SourceDoc>,
    /// Per file: its path and its index.
    files: Vec<(String, BTreeMap<Pos, Shape>)>,
}

/// Fields that name a resource rather than configure it: these point at the fullest
/// document (the base), not at a patch that repeats them to say what it patches. So do
/// mappings (where a missing field would be added): a patch that names `spec` to change
/// one field in it is not where the rest of `spec` is written.
const IDENTITY: &[&str] = &["", "apiVersion", "kind", "metadata", "metadata.name"];

impl KustomizeSources {
    /// Reads the files (path and text), nearest kustomization first.
    pub fn new(files: &[(String, String)]) -> KustomizeSources {
        let mut out = KustomizeSources::default();
        for (path, text) in files {
            let mut set = ManifestSet::default();
            set.add_file(path, text);
            let file = out.files.len();
            out.files.push((path.clone(), index(text)));
            out.docs.extend(
                set.manifests
                    .into_iter()
                    .map(|manifest| SourceDoc { manifest, file }),
            );
        }
        out
    }

    /// The documents a rendered manifest may come from, nearest first.
    fn candidates(&self, m: &Manifest) -> Vec<&SourceDoc> {
        let same_namespace = |d: &&SourceDoc| {
            !d.manifest.locations.contains("metadata.namespace")
                || d.manifest.key.namespace == m.key.namespace
        };
        let exact: Vec<&SourceDoc> = self
            .docs
            .iter()
            .filter(|d| d.manifest.key.kind == m.key.kind && d.manifest.key.name == m.key.name)
            .filter(same_namespace)
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        // namePrefix / nameSuffix: the source's name within the rendered one.
        self.docs
            .iter()
            .filter(|d| {
                d.manifest.key.kind == m.key.kind && m.key.name.contains(&d.manifest.key.name)
            })
            .filter(same_namespace)
            .collect()
    }

    /// Where each field of `m` (read from `rendered`, the tool's output) is written.
    pub fn attach(&self, m: &mut Manifest, rendered: &BTreeMap<Pos, Shape>, folder: &str) {
        let candidates = self.candidates(m);
        let mut fullest = candidates.clone();
        fullest.sort_by_key(|d| std::cmp::Reverse(d.manifest.locations.iter().count()));
        let mut from = RenderedFrom {
            folder: folder.to_string(),
            tool: "kustomize".to_string(),
            ..RenderedFrom::default()
        };
        for (path, pos) in m.locations.iter() {
            let want = rendered.get(&pos);
            let order = if IDENTITY.contains(&path) || want == Some(&Shape::Mapping) {
                &fullest
            } else {
                &candidates
            };
            let found = order.iter().find_map(|d| {
                let at = d.manifest.locations.get(path)?;
                let (file, idx) = self.files.get(d.file)?;
                let same = match (want, idx.get(&at)) {
                    (Some(w), Some(s)) => w.same(s),
                    // The document itself (""): no value to compare.
                    (None, _) if path.is_empty() => true,
                    _ => false,
                };
                same.then(|| (file.clone(), at))
            });
            if let Some(found) = found {
                from.sources.insert(path.to_string(), found);
            }
        }
        m.rendered = Some(Box::new(from));
    }
}

/// Every key of a values file: its name, position and value.
type ValueKeys = Vec<(String, Pos, Shape)>;

/// The values files of one chart, in the order Helm applies them.
#[derive(Debug, Default)]
pub struct HelmValues {
    /// Per file: its path and its keys.
    files: Vec<(String, ValueKeys)>,
}

impl HelmValues {
    pub fn new(files: &[(String, String)]) -> HelmValues {
        fn walk(node: &Node, out: &mut ValueKeys) {
            match &node.value {
                Value::Map(entries) => {
                    for (k, v) in entries {
                        if let Some(key) = k.as_str() {
                            out.push((key.to_string(), k.pos, Shape::of(v)));
                        }
                        walk(v, out);
                    }
                }
                Value::Seq(items) => items.iter().for_each(|i| walk(i, out)),
                _ => {}
            }
        }
        let files = files
            .iter()
            .map(|(path, text)| {
                let mut keys = Vec::new();
                for doc in parse_documents(text).unwrap_or_default() {
                    walk(&doc.root, &mut keys);
                }
                (path.clone(), keys)
            })
            .collect();
        HelmValues { files }
    }

    /// Where each field of `m` is written, as far as values files tell.
    pub fn attach(
        &self,
        m: &mut Manifest,
        rendered: &BTreeMap<Pos, Shape>,
        folder: &str,
        template: Option<String>,
    ) {
        let mut from = RenderedFrom {
            folder: folder.to_string(),
            tool: "helm template".to_string(),
            template,
            ..RenderedFrom::default()
        };
        for (path, pos) in m.locations.iter() {
            let Some(want) = rendered.get(&pos) else {
                continue;
            };
            let Shape::Value(v) = want else { continue };
            if scalar_text(v).is_none() {
                continue;
            }
            let Some(name) = last_key(path) else { continue };
            let found = self.files.iter().rev().find_map(|(file, keys)| {
                keys.iter()
                    .find(|(k, _, shape)| k == name && shape.same(want))
                    .map(|(_, at, _)| (file.clone(), *at))
            });
            if let Some(found) = found {
                from.sources.insert(path.to_string(), found);
            }
        }
        m.rendered = Some(Box::new(from));
    }
}

/// The last key of a field path: `parallelism` of `spec.job.parallelism`,
/// `state.checkpoints.dir` of `spec.flinkConfiguration[state.checkpoints.dir]`; none for
/// a list item (`args[0]`).
fn last_key(path: &str) -> Option<&str> {
    if let Some(inner) = path.strip_suffix(']') {
        let key = &inner[inner.rfind('[')? + 1..];
        return (!key.is_empty() && key.parse::<usize>().is_err()).then_some(key);
    }
    path.rsplit('.').next().filter(|k| !k.is_empty())
}

/// Index of the tool's output, for [`KustomizeSources::attach`] and [`HelmValues::attach`].
pub fn index_output(text: &str) -> BTreeMap<Pos, Shape> {
    index(text)
}

/// Helm's `# Source: chart/templates/x.yaml` line nearest above `line`.
pub fn helm_template_above(text: &str, line: u32) -> Option<String> {
    text.lines()
        .take(line as usize)
        .filter_map(|l| l.strip_prefix("# Source: "))
        .last()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: wc\nspec:\n  image: flink:2.0\n  flinkVersion: v2_0\n  jobManager:\n    resource: {memory: 1g, cpu: 1}\n  job:\n    jarURI: local:///j.jar\n    parallelism: 2\n    upgradeMode: savepiont\n";
    const PATCH: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: wc\nspec:\n  image: flink:2.1\n  job:\n    parallelism: 0\n";
    const OUT: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: wc\n  namespace: prod\nspec:\n  flinkVersion: v2_0\n  image: flink:2.1\n  job:\n    jarURI: local:///j.jar\n    parallelism: 0\n    upgradeMode: savepiont\n    args: [\"--x\"]\n  jobManager:\n    resource:\n      cpu: 1\n      memory: 1g\n";

    fn rendered(text: &str) -> Manifest {
        let mut set = ManifestSet::default();
        set.add_file("o (rendered)", text);
        set.manifests.remove(0)
    }

    fn at(m: &Manifest, field: &str) -> (String, u32) {
        let found = m
            .rendered
            .as_ref()
            .expect("rendered")
            .locate(&m.locations, field);
        found.map_or(
            ("o (rendered)".to_string(), m.locations.find(field).line),
            |(f, p)| (f, p.line),
        )
    }

    #[test]
    fn kustomize_fields_point_at_the_patch_or_the_base_that_wrote_the_value() {
        let sources = KustomizeSources::new(&[
            ("o/patch.yaml".to_string(), PATCH.to_string()),
            ("base/app.yaml".to_string(), BASE.to_string()),
        ]);
        let mut m = rendered(OUT);
        sources.attach(&mut m, &index_output(OUT), "o");
        assert_eq!(at(&m, "spec.job.parallelism"), ("o/patch.yaml".into(), 8));
        assert_eq!(at(&m, "spec.image"), ("o/patch.yaml".into(), 6));
        assert_eq!(at(&m, "spec.job.upgradeMode"), ("base/app.yaml".into(), 13));
        // Flow style in the base, block style in the output: the same values.
        assert_eq!(
            at(&m, "spec.jobManager.resource.memory"),
            ("base/app.yaml".into(), 9)
        );
        // Written by no source (kustomize set it): the output.
        assert_eq!(at(&m, "metadata.namespace"), ("o (rendered)".into(), 5));
        assert_eq!(at(&m, "spec.job.args"), ("o (rendered)".into(), 13));
        // A missing field: its nearest written parent; the document: the base.
        assert_eq!(
            at(&m, "spec.taskManager.resource.memory").0,
            "base/app.yaml"
        );
        assert_eq!(at(&m, "metadata.name"), ("base/app.yaml".into(), 4));
    }

    #[test]
    fn a_value_no_source_writes_points_at_the_output() {
        // A JSON 6902 patch set parallelism to 5: neither document holds 5.
        let out = OUT.replace("parallelism: 0", "parallelism: 5");
        let sources = KustomizeSources::new(&[
            ("o/patch.yaml".to_string(), PATCH.to_string()),
            ("base/app.yaml".to_string(), BASE.to_string()),
        ]);
        let mut m = rendered(&out);
        sources.attach(&mut m, &index_output(&out), "o");
        assert_eq!(at(&m, "spec.job.parallelism"), ("o (rendered)".into(), 11));
        // Another namespace in the source: not the same resource.
        let other = BASE.replace("  name: wc\n", "  name: wc\n  namespace: staging\n");
        let sources = KustomizeSources::new(&[("base/app.yaml".to_string(), other)]);
        let mut m = rendered(OUT);
        sources.attach(&mut m, &index_output(OUT), "o");
        assert_eq!(at(&m, "spec.job.upgradeMode").0, "o (rendered)");
    }

    #[test]
    fn helm_fields_point_at_the_last_values_file_with_that_value() {
        let out = "---\n# Source: analytics/templates/app.yaml\napiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: rel-app\nspec:\n  image: \"flink:2.1\"\n  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"4\"\n  job:\n    parallelism: 0\n    upgradeMode: savepoint\n";
        let values = HelmValues::new(&[
            (
                "c/values.yaml".to_string(),
                "parallelism: 0\nimage: flink:2.0\nslots: 4\n".to_string(),
            ),
            (
                "c/values-prod.yaml".to_string(),
                "job:\n  parallelism: 0\nimage: flink:2.1\ntaskmanager.numberOfTaskSlots: 4\n"
                    .to_string(),
            ),
        ]);
        let mut m = rendered(out);
        let template = helm_template_above(out, m.locations.find("").line);
        assert_eq!(template.as_deref(), Some("analytics/templates/app.yaml"));
        values.attach(&mut m, &index_output(out), "c", template);
        assert_eq!(
            at(&m, "spec.job.parallelism"),
            ("c/values-prod.yaml".into(), 2)
        );
        assert_eq!(at(&m, "spec.image"), ("c/values-prod.yaml".into(), 3));
        // Quoted in the template, a number in the values file.
        assert_eq!(
            at(&m, "spec.flinkConfiguration[taskmanager.numberOfTaskSlots]"),
            ("c/values-prod.yaml".into(), 4)
        );
        assert_eq!(at(&m, "spec.job.upgradeMode").0, "o (rendered)");
        let note = m.rendered.as_ref().expect("rendered").note(false);
        assert_eq!(
            note,
            "in the output of helm template for c, from template analytics/templates/app.yaml"
        );
    }

    #[test]
    fn last_keys() {
        assert_eq!(last_key("spec.job.parallelism"), Some("parallelism"));
        assert_eq!(last_key("spec.flinkConfiguration[a.b.c]"), Some("a.b.c"));
        assert_eq!(last_key("spec.job.args[0]"), None);
        assert_eq!(last_key(""), None);
    }
}
