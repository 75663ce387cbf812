//! YAML as kubectl reads it: one table row per form of YAML, each with the decision taken
//! and where it comes from. "kubectl 1.32" rows were checked with `kubectl label --local -f
//! FILE x=y -o json` (client 1.32.4), which decodes files exactly as `kubectl apply` does
//! (cli-runtime's resource builder: sigs.k8s.io/yaml on go-yaml v2, then apimachinery's
//! unstructured decoding) without a cluster.
//!
//! Each row reads one file with [`parse_files`] and validates it, as `flink-gitops validate`
//! does. It lists the resources that must be read and every error and warning (severity,
//! line, field, part of the message); notices are not compared.

use flink_gitops::flink::spec::{validate::Options, ManifestSet, Severity, Spec};
use flink_gitops::git::source::parse_files;

/// A valid FlinkDeployment's spec, from line 5 on (after `HEAD` and the name).
const SPEC: &str = "spec:
  flinkVersion: v1_20
  serviceAccount: flink
  jobManager:
    resource: {memory: \"2048m\", cpu: 1}
  taskManager:
    resource: {memory: \"2048m\", cpu: 1}
  job:
    jarURI: local:///opt/flink/job.jar
    parallelism: 2
    upgradeMode: stateless
";

/// A valid FlinkDeployment named `name` (15 lines).
fn app(name: &str) -> String {
    format!("apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {name}\n{SPEC}")
}

type Check = fn(&ManifestSet);

struct Row {
    case: &'static str,
    /// Where the decision comes from: kubectl's behaviour, a public report, a spec.
    source: &'static str,
    file: Vec<u8>,
    /// Names of the resources read, sorted.
    resources: &'static [&'static str],
    /// Every error and warning: severity, line, field, a part of the message.
    diagnostics: &'static [(Severity, u32, &'static str, &'static str)],
    check: Option<Check>,
}

fn read(file: &[u8]) -> ManifestSet {
    let mut set = parse_files(vec![("f.yaml".to_string(), file.to_vec())]);
    set.validate(&Options::default());
    set
}

fn spec_json(set: &ManifestSet, name: &str) -> serde_json::Value {
    let m = set
        .manifests
        .iter()
        .find(|m| m.key.name == name)
        .unwrap_or_else(|| panic!("no resource {name}"));
    m.spec.canonical_json()
}

fn resource_of(set: &ManifestSet, name: &str, manager: &str) -> serde_json::Value {
    spec_json(set, name)[manager]["resource"].clone()
}

fn rows() -> Vec<Row> {
    use Severity::{Error, Warning};
    let deploy = |name: &str, spec_body: &str| {
        format!("apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {name}\nspec:\n  flinkVersion: v1_20\n  serviceAccount: flink\n{spec_body}")
    };
    let job = "  job:\n    jarURI: local:///opt/flink/job.jar\n    parallelism: 2\n    upgradeMode: stateless\n";
    vec![
        // ---- anchors, aliases, merge keys -------------------------------------------
        Row {
            case: "an alias repeats the anchored value",
            source: "kubectl 1.32: aliases expand (go-yaml v2)",
            file: deploy(
                "alias",
                &format!("  jobManager:\n    resource: &r {{memory: \"2048m\", cpu: 1}}\n  taskManager:\n    resource: *r\n{job}"),
            )
            .into_bytes(),
            resources: &["alias"],
            diagnostics: &[],
            check: Some(|set| {
                assert_eq!(resource_of(set, "alias", "taskManager")["memory"], "2048m");
            }),
        },
        Row {
            case: "a merge key with an explicit key after it (issue 7, report 1)",
            source: "issue 7 (kubectl apply and Argo CD read it as a complete block); kubectl 1.32",
            file: deploy(
                "merge",
                &format!("  jobManager:\n    resource: &resources {{memory: \"2048m\", cpu: 1}}\n  taskManager:\n    resource:\n      <<: *resources\n      cpu: 2\n{job}"),
            )
            .into_bytes(),
            resources: &["merge"],
            diagnostics: &[],
            check: Some(|set| {
                let tm = resource_of(set, "merge", "taskManager");
                assert_eq!((tm["memory"].as_str(), tm["cpu"].as_f64()), (Some("2048m"), Some(2.0)));
                let jm = resource_of(set, "merge", "jobManager");
                assert_eq!(jm["cpu"].as_f64(), Some(1.0));
            }),
        },
        Row {
            case: "a merge key with a list of mappings: the first one wins",
            source: "kubectl 1.32 (`<<: [{a: m1}, {a: m2}]` gives m1); YAML 1.1 merge-key spec",
            file: deploy(
                "mlist",
                &format!("  jobManager:\n    resource: &small {{memory: \"1024m\", cpu: 1}}\n  taskManager:\n    resource:\n      <<: [*small, {{memory: \"4096m\", cpu: 4, ephemeralStorage: 1Gi}}]\n{job}"),
            )
            .into_bytes(),
            resources: &["mlist"],
            diagnostics: &[],
            check: Some(|set| {
                let tm = resource_of(set, "mlist", "taskManager");
                assert_eq!(tm["memory"], "1024m");
                assert_eq!(tm["cpu"].as_f64(), Some(1.0));
                assert_eq!(tm["ephemeralStorage"], "1Gi");
            }),
        },
        Row {
            case: "an explicit key before << is replaced by the merge, with a warning naming both lines",
            source: "kubectl 1.32 reads the merged value (go-yaml v2 applies entries in order); `kubectl kustomize` 5.5 (go-yaml v3) and the YAML 1.1 merge-key spec keep the explicit one",
            file: deploy(
                "before",
                &format!("  jobManager:\n    resource: &r {{memory: \"2048m\", cpu: 1}}\n  taskManager:\n    resource:\n      cpu: 2\n      <<: *r\n{job}"),
            )
            .into_bytes(),
            resources: &["before"],
            diagnostics: &[(Warning, 12, "spec.taskManager.resource.cpu", "key \"cpu\" at line 12 is replaced by the value from line 9 that the merge key << at line 13 brings in")],
            check: Some(|set| {
                assert_eq!(resource_of(set, "before", "taskManager")["cpu"].as_f64(), Some(1.0));
            }),
        },
        Row {
            case: "two merge keys in one mapping both merge",
            source: "kubectl 1.32 (`<<: {a: 1}` and `<<: {b: 2}` give a and b)",
            file: deploy(
                "twice",
                &format!("  jobManager:\n    resource: &mem {{memory: \"2048m\"}}\n  taskManager:\n    resource:\n      <<: *mem\n      <<: {{cpu: 3}}\n{job}"),
            )
            .into_bytes(),
            resources: &["twice"],
            // jobManager.resource has no cpu: fine for the operator.
            diagnostics: &[],
            check: Some(|set| {
                let tm = resource_of(set, "twice", "taskManager");
                assert_eq!((tm["memory"].as_str(), tm["cpu"].as_f64()), (Some("2048m"), Some(3.0)));
            }),
        },
        Row {
            case: "an error in a merged value points at the line where it is written",
            source: "issue 7 (errors keep file:line, also inside merged items)",
            file: deploy(
                "mline",
                &format!("  jobManager:\n    resource: &r\n      memory: 2048\n      cpu: 1\n  taskManager:\n    resource:\n      <<: *r\n{job}"),
            )
            .into_bytes(),
            resources: &["mline"],
            diagnostics: &[
                (Error, 10, "spec.jobManager.resource.memory", "found the number 2048"),
                (Error, 10, "spec.taskManager.resource.memory", "found the number 2048"),
            ],
            check: None,
        },
        Row {
            case: "a merge key whose value is not a mapping",
            source: "go-yaml v2, kubectl 1.32: \"map merge requires map or sequence of maps as the value\"",
            file: deploy(
                "mbad",
                &format!("  jobManager:\n    resource:\n      <<: \"2048m\"\n      memory: \"2048m\"\n  taskManager:\n    resource:\n      <<: [{{memory: \"2048m\"}}, 5]\n{job}"),
            )
            .into_bytes(),
            resources: &["mbad"],
            diagnostics: &[
                (Error, 10, "spec.jobManager.resource.<<", "the value of the merge key << must be a mapping or a list of mappings"),
                (Error, 14, "spec.taskManager.resource.<<", "found a list with something else than mappings"),
                (Error, 13, "spec.taskManager.resource.memory", "spec.taskManager.resource.memory is missing"),
            ],
            check: None,
        },
        Row {
            case: "a quoted \"<<\" is an ordinary key",
            source: "go-yaml v2 merges only a plain << (isMerge); kubectl 1.32 keeps \"<<\" as a key",
            file: deploy(
                "quoted",
                &format!("  jobManager:\n    resource: {{memory: \"2048m\"}}\n  taskManager:\n    resource:\n      \"<<\": {{memory: \"2048m\"}}\n      memory: \"2048m\"\n{job}"),
            )
            .into_bytes(),
            resources: &["quoted"],
            diagnostics: &[(Error, 12, "spec.taskManager.resource.<<", "unknown field \"<<\"")],
            check: None,
        },
        Row {
            case: "anchors belong to their document",
            source: "kubectl 1.32: \"yaml: unknown anchor 'd' referenced\" (kubectl splits documents before decoding)",
            file: format!("{}---\nother: *a\n", app("a").replace("name: a", "name: &a a")).into_bytes(),
            resources: &[],
            diagnostics: &[(Error, 17, "", "an alias names an anchor this document does not define")],
            check: None,
        },
        // ---- encodings, line ends, empty documents ------------------------------------
        Row {
            case: "a UTF-8 byte order mark, at the start and after ---",
            source: "kubectl 1.32 (go-yaml reads a BOM at the start of each document kubectl's splitter hands it)",
            file: format!("\u{feff}{}---\n\u{feff}{}", app("bom1"), app("bom2")).into_bytes(),
            resources: &["bom1", "bom2"],
            diagnostics: &[],
            check: None,
        },
        Row {
            case: "UTF-16 with a byte order mark",
            source: "kubectl 1.32 (go-yaml v2 decodes UTF-16LE/BE by its BOM)",
            file: {
                let mut bytes = vec![0xFF, 0xFE];
                for unit in format!("{}---\n{}", app("u16a"), app("u16b")).encode_utf16() {
                    bytes.extend(unit.to_le_bytes());
                }
                bytes
            },
            resources: &["u16a", "u16b"],
            diagnostics: &[],
            check: None,
        },
        Row {
            case: "CRLF line ends: lines count as in an editor, block text has no \\r",
            source: "kubectl 1.32 (a literal block reads \"x\\ny\\n\")",
            file: format!("{}  flinkConfiguration:\n    a: |\n      x\n      y\n    b: 10 s\n    taskmanager.numberOfTaskSlots: 0\n", app("crlf"))
                .replace('\n', "\r\n")
                .into_bytes(),
            resources: &["crlf"],
            diagnostics: &[(Error, 21, "spec.flinkConfiguration[taskmanager.numberOfTaskSlots]", "")],
            check: Some(|set| {
                let cfg = set.manifests[0].spec.flink_configuration();
                assert_eq!(cfg.get("a").map(String::as_str), Some("x\ny\n"));
                assert_eq!(cfg.get("b").map(String::as_str), Some("10 s"));
            }),
        },
        Row {
            case: "old Mac line ends (CR alone)",
            source: "kubectl 1.32 (go-yaml reads a lone CR as a line break)",
            file: format!("{}    parallelism: x\n", app("cr")).replace('\n', "\r").into_bytes(),
            resources: &["cr"],
            diagnostics: &[
                (Error, 16, "spec.job.parallelism", "key \"parallelism\" is given twice: at line 14 and at line 16"),
                (Error, 16, "spec.job.parallelism", "expected a whole number, found \"x\""),
            ],
            check: None,
        },
        Row {
            case: "a comment-only file",
            source: "kubectl 1.32 (reads nothing, no error)",
            file: b"# apps of team a go here\n# (none yet)\n".to_vec(),
            resources: &[],
            diagnostics: &[],
            check: None,
        },
        Row {
            case: "empty documents between and around resources",
            source: "kubectl 1.32 (`---`, `---` with a comment, and blank documents are skipped)",
            file: format!("---\n---\n# c\n---\n\n---\n{}---\n", app("e")).into_bytes(),
            resources: &["e"],
            diagnostics: &[],
            check: None,
        },
        Row {
            case: "a %YAML directive",
            source: "go-yaml v2 accepts %YAML 1.1 (the version it reads)",
            file: format!("%YAML 1.1\n---\n{}", app("directive")).into_bytes(),
            resources: &["directive"],
            diagnostics: &[],
            check: None,
        },
        // ---- lists --------------------------------------------------------------------
        Row {
            case: "kind: List holds resources like any others; errors keep their file line",
            source: "kubectl 1.32 (cli-runtime FlattenListVisitor applies each item); other kinds skipped as in any file",
            file: format!(
                "apiVersion: v1\nkind: List\nitems:\n- {}- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: cm}}\n  data: {{a: b, a: c}}\n",
                app("l1").replace("stateless", "stateles").replace('\n', "\n  ").trim_end().to_string() + "\n"
            )
            .into_bytes(),
            resources: &["l1"],
            diagnostics: &[(Error, 18, "spec.job.upgradeMode", "found \"stateles\"")],
            check: None,
        },
        Row {
            case: "FlinkDeploymentList items take the list's kind and apiVersion when they give neither",
            source: "kubectl 1.32; apimachinery unstructured list decoding sets kind and apiVersion of items that have neither",
            file: format!(
                "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeploymentList\nitems:\n- metadata:\n    name: l2\n  {}- kind: FlinkDeployment\n  metadata: {{name: nokind}}\n",
                SPEC.replace('\n', "\n  ").trim_end().to_string() + "\n"
            )
            .into_bytes(),
            resources: &["l2", "nokind"],
            diagnostics: &[
                (Error, 17, "apiVersion", "found nothing; allowed: flink.apache.org/v1beta1"),
                (Error, 17, "spec", "spec is missing"),
            ],
            check: None,
        },
        Row {
            case: "a key given twice inside a List item belongs to that item",
            source: "kubernetes/kubernetes#99286 (a duplicate key silently dropped data); kubectl --validate=strict refuses duplicate fields",
            file: format!(
                "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeploymentList\nitems:\n- metadata:\n    name: l3\n  {}",
                SPEC.replace("parallelism: 2\n", "parallelism: 2\n    parallelism: 3\n").replace('\n', "\n  ").trim_end().to_string() + "\n"
            )
            .into_bytes(),
            resources: &["l3"],
            diagnostics: &[(Error, 16, "spec.job.parallelism", "at line 15 and at line 16")],
            check: None,
        },
        Row {
            case: "a List inside a List",
            source: "kubectl 1.32 refuses it (\"is not a list: no Items field\")",
            file: b"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n".to_vec(),
            resources: &[],
            diagnostics: &[(Error, 5, "items[0].kind", "a List inside a List is not read")],
            check: None,
        },
        Row {
            case: "List items that are not a list",
            source: "kubectl 1.32 (\"cannot unmarshal object into Go struct field decodeList.items\")",
            file: b"apiVersion: v1\nkind: List\nitems: {a: 1}\n".to_vec(),
            resources: &[],
            diagnostics: &[(Error, 3, "items", "expected a list of resources, found a mapping")],
            check: None,
        },
        Row {
            case: "a List without items",
            source: "kubectl 1.32 (`items:` with nothing applies nothing)",
            file: b"apiVersion: v1\nkind: List\nitems:\n".to_vec(),
            resources: &[],
            diagnostics: &[],
            check: None,
        },
        // ---- keys -----------------------------------------------------------------------
        Row {
            case: "a key given twice is an error naming both lines",
            source: "kubectl docs (--validate=strict, the default, fails on duplicate fields; only ignore drops them); kubernetes/kubernetes#99286",
            file: app("dup").replace("parallelism: 2\n", "parallelism: 2\n    upgradeMode: savepoint\n").into_bytes(),
            resources: &["dup"],
            diagnostics: &[(Error, 16, "spec.job.upgradeMode", "key \"upgradeMode\" is given twice: at line 15 and at line 16")],
            check: None,
        },
        Row {
            case: "keys that YAML 1.1 reads alike are the same key",
            source: "kubectl 1.32 (`y` and `on` are both the key \"true\": one value is lost)",
            file: format!("{}  flinkConfiguration:\n    y: \"1\"\n    on: \"2\"\n", app("same")).into_bytes(),
            resources: &["same"],
            diagnostics: &[(Error, 18, "spec.flinkConfiguration.true", "at line 17 (written y) and at line 18 (written on)")],
            check: None,
        },
        Row {
            case: "plain keys are spelled as kubectl spells them in JSON",
            source: "kubectl 1.32 (`0x1F` is \"31\", `1.50` is \"1.5\", `1e6` is \"1e+06\"); sigs.k8s.io/yaml convertToJSONableObject",
            file: format!("{}  flinkConfiguration:\n    0x1F: a\n    1.50: b\n    1e6: c\n    \"0x1F\": d\n", app("keys")).into_bytes(),
            resources: &["keys"],
            diagnostics: &[],
            check: Some(|set| {
                let cfg = set.manifests[0].spec.flink_configuration();
                let keys: Vec<&str> = cfg.keys().map(String::as_str).collect();
                assert_eq!(keys, ["0x1F", "1.5", "1e+06", "31"]);
            }),
        },
        Row {
            case: "a null or list key",
            source: "kubectl 1.32 (\"unsupported map key of type <nil>\", \"invalid map key\")",
            file: format!("{}  ~: x\n  [a]: y\n", app("nullkey")).into_bytes(),
            resources: &["nullkey"],
            diagnostics: &[
                (Error, 16, "spec", "field names must be text, found nothing (null)"),
                (Error, 17, "spec", "field names must be text, found a list"),
            ],
            check: None,
        },
        // ---- values -------------------------------------------------------------------
        Row {
            case: "whole numbers in every form go-yaml reads",
            source: "kubectl 1.32 (0x10 is 16, 010 is 8, 1_000 is 1000, 2.0 is 2)",
            file: app("ints")
                .replace("parallelism: 2", "parallelism: 0x10\n    savepointRedeployNonce: 010\n    restartNonce: 1_000\n    checkpointTriggerNonce: 2.0")
                .replace("    restartNonce", "    autoscalerResetNonce")
                .into_bytes(),
            resources: &["ints"],
            diagnostics: &[],
            check: Some(|set| {
                let Spec::Deployment(d) = &set.manifests[0].spec else { panic!("deployment") };
                let j = d.job.as_ref().expect("job");
                assert_eq!(
                    (j.parallelism, j.savepoint_redeploy_nonce, j.autoscaler_reset_nonce, j.checkpoint_trigger_nonce),
                    (Some(16), Some(8), Some(1000), Some(2))
                );
            }),
        },
        Row {
            case: "a number too large for a float stays text",
            source: "kubectl 1.32 (`1e999` reads as the text \"1e999\")",
            file: app("big").replace("parallelism: 2", "parallelism: 1e999").into_bytes(),
            resources: &["big"],
            diagnostics: &[(Error, 14, "spec.job.parallelism", "expected a whole number, found \"1e999\"")],
            check: None,
        },
        Row {
            case: "tags: !!str makes text, !!int reads the text as a number, other tags are ignored",
            source: "kubectl 1.32 (`!!str 2048` is \"2048\", `!!int \"3\"` is 3, `!foo bar` is \"bar\")",
            file: app("tags")
                .replace("memory: \"2048m\", cpu: 1}\n  taskManager", "memory: !!str 2048, cpu: 1}\n  taskManager")
                .replace("parallelism: 2", "parallelism: !!int \"2\"")
                .replace("serviceAccount: flink", "serviceAccount: !custom flink")
                .into_bytes(),
            resources: &["tags"],
            diagnostics: &[],
            check: Some(|set| {
                assert_eq!(resource_of(set, "tags", "jobManager")["memory"], "2048");
            }),
        },
        Row {
            case: "a date stays text",
            source: "kubectl 1.32 (an unquoted 2001-12-14 label reads as the text \"2001-12-14\")",
            file: app("date").replace("  name: date\n", "  name: date\n  labels: {since: 2001-12-14}\n").into_bytes(),
            resources: &["date"],
            diagnostics: &[],
            check: None,
        },
        Row {
            case: "free-form objects (podTemplate) hold values as kubectl reads them",
            source: "kubectl 1.32 (`yes` is true, `0x1F` is 31, `010` is 8, `1_000` is 1000, \"yes\" stays text)",
            file: format!("{}  podTemplate:\n    metadata:\n      annotations: {{a: yes, b: 0x1F, c: \"yes\", d: 010, e: 1_000}}\n", app("pod")).into_bytes(),
            resources: &["pod"],
            diagnostics: &[],
            check: Some(|set| {
                let a = &spec_json(set, "pod")["podTemplate"]["metadata"]["annotations"];
                assert_eq!(a.to_string(), r#"{"a":true,"b":31,"c":"yes","d":8,"e":1000}"#);
            }),
        },
        Row {
            case: "items on a FlinkDeployment are an unknown field",
            source: "kubectl 1.32 reads any object with items as a list (apimachinery's unstructured decoder); flink-gitops reads only List kinds so, and says so",
            file: format!("{}items: []\n", app("items")).into_bytes(),
            resources: &["items"],
            diagnostics: &[(Error, 16, "items", "unknown field \"items\"")],
            check: None,
        },
        Row {
            case: "a document that is a list",
            source: "kubectl 1.32 (\"cannot unmarshal array into Go value\")",
            file: b"- a\n- b\n".to_vec(),
            resources: &[],
            diagnostics: &[(Error, 1, "", "a manifest must be a mapping")],
            check: None,
        },
        // ---- syntax errors ------------------------------------------------------------
        Row {
            case: "a control character, even in a comment (found by fuzzing: a NUL hid the documents after it)",
            source: "kubectl 1.32 and go-yaml v2: \"control characters are not allowed\" (YAML 1.2 §5.1)",
            file: format!("{}---\n{}", app("ctl").replace("  name: ctl\n", "  name: ctl # x\u{0}y\n"), app("after")).into_bytes(),
            resources: &[],
            diagnostics: &[(Error, 4, "", "control character U+0000 is not allowed in YAML")],
            check: None,
        },
        Row {
            case: "a tab in indentation: file, line, column and why",
            source: "kubectl 1.32 (\"found character that cannot start any token\"); YAML 1.2 §6.1 (tabs never indent)",
            file: app("tab").replace("    parallelism: 2", "\tparallelism: 2").into_bytes(),
            resources: &[],
            diagnostics: &[(Error, 13, "", "line 14 is indented with a tab; YAML indents with spaces only")],
            check: None,
        },
        Row {
            case: "a tab after a colon or inside quotes is fine",
            source: "kubectl 1.32",
            file: app("tab2").replace("serviceAccount: flink", "serviceAccount:\tflink").into_bytes(),
            resources: &["tab2"],
            diagnostics: &[],
            check: None,
        },
        Row {
            case: "an unclosed bracket names where it opened",
            source: "tests/fixtures/invalid/78-yaml-syntax-error.yaml",
            file: app("br").replace("{memory: \"2048m\", cpu: 1}\n  taskManager", "{memory: \"2048m\", cpu: 1\n  taskManager").into_bytes(),
            resources: &[],
            diagnostics: &[(Error, 10, "", "inside the '{' opened at line 9, column 15")],
            check: None,
        },
    ]
}

#[test]
fn yaml_forms_read_as_kubectl_reads_them() {
    let mut failures = Vec::new();
    for row in rows() {
        let set = read(&row.file);
        let mut names: Vec<&str> = set.manifests.iter().map(|m| m.key.name.as_str()).collect();
        names.sort_unstable();
        let got: Vec<(Severity, u32, &str, &str)> = set
            .diagnostics
            .iter()
            .filter(|d| d.severity != Severity::Notice)
            .map(|d| (d.severity, d.line, d.field.as_str(), d.message.as_str()))
            .collect();
        let matches = got.len() == row.diagnostics.len()
            && row.diagnostics.iter().all(|(sev, line, field, part)| {
                got.iter()
                    .any(|(s, l, f, m)| s == sev && l == line && f == field && m.contains(part))
            });
        if names != row.resources || !matches {
            failures.push(format!(
                "{} ({}):\n  resources {names:?}, want {:?}\n  diagnostics:\n{}\n  want:\n{}",
                row.case,
                row.source,
                row.resources,
                got.iter()
                    .map(|d| format!("    {d:?}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                row.diagnostics
                    .iter()
                    .map(|d| format!("    {d:?}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ));
            continue;
        }
        if let Some(check) = row.check {
            check(&set);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Reads a file, which must be refused with `want` in the message, before anything in it is
/// expanded. How long that takes is a benchmark's business (a timed assert here failed under
/// load); the refusal itself is what keeps it cheap: the file is never expanded.
fn refused_quickly(file: &str, want: &str) {
    let set = read(file.as_bytes());
    let errors: Vec<String> = set.errors().map(ToString::to_string).collect();
    assert!(set.manifests.is_empty(), "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(want), "{errors:?}");
    assert!(
        errors[0].contains("nothing in this file was read"),
        "{errors:?}"
    );
    assert!(set.unreadable_files.contains("f.yaml"));
}

#[test]
fn yaml_forms_untrusted_input_is_refused_cheaply() {
    // "Billion laughs": a kilobyte that would expand to 10^9 values. kubectl 1.32 refuses it
    // ("document contains excessive aliasing").
    let mut laughs = String::from("apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata: {name: laughs}\nspec:\n  podTemplate:\n    a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("    a{i}: &a{i} [{refs}]\n"));
    }
    assert!(laughs.len() < 1024);
    refused_quickly(
        &laughs,
        "more than 1000000 values once its aliases are expanded",
    );

    // A long text aliased many times.
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: t}}\na: &t {}\nb: [",
        "x".repeat(1 << 20)
    );
    text.push_str(&vec!["*t"; 40].join(", "));
    text.push_str("]\n");
    refused_quickly(&text, "bytes of text once its aliases are expanded");

    // Deep nesting. kubectl 1.32 reads 5000 levels and refuses 20000 ("exceeded max depth of
    // 10000"); flink-gitops refuses what passes config::MAX_YAML_DEPTH (100), deliberately.
    let mut block = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n");
    for level in 0..150 {
        block.push_str(&format!("{}k{level}:\n", "  ".repeat(level)));
    }
    refused_quickly(&block, "nests deeper than 100 levels");
    let flow = format!("x: {}{}\n", "[".repeat(150), "]".repeat(150));
    refused_quickly(&flow, "nests deeper than 100 levels");
    let flow = format!("x: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    refused_quickly(&flow, "nests more than 255 brackets");

    // Just under the limits is read (99 levels below the document).
    let mut deep = app("deep");
    deep.push_str("  podTemplate:\n");
    let mut nested = String::new();
    for level in 0..95 {
        nested.push_str(&format!("{}k{level}:\n", "  ".repeat(level + 2)));
    }
    deep.push_str(&nested);
    deep.push_str(&format!("{}leaf: 1\n", "  ".repeat(97)));
    let set = read(deep.as_bytes());
    assert!(!set.has_errors(), "{:?}", set.diagnostics);
    assert_eq!(set.manifests.len(), 1);
}
