//! The invalid-manifest corpus: every file under `tests/fixtures/invalid` holds one mistake
//! a user could make (and the operator, or Kubernetes' API server, would reject), with a
//! header saying where flink-gitops must report it:
//!
//! ```text
//! # expect: <line> <field> | <substring of the message>
//! ```
//!
//! `line` counts the header itself; `field` is the exact field path, `-` for a document-level
//! error. A file may have several `# expect:` lines; every error reported for the file must
//! be expected. Also here: the conformance examples (the operator's own, copied into
//! `tests/fixtures/conformance`) must be valid, and so must `examples/repo` when it exists and
//! every file in `tests/fixtures/valid`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use flink_gitops::flink::spec::{validate::Options, Diagnostic, ManifestSet, Severity};
use flink_gitops::git::source::{parse_files, read_folder};
use serde::Deserialize;

use crate::harness;

const MIN_FIXTURES: usize = 70;

#[derive(Debug, Clone, PartialEq)]
struct Expect {
    line: u32,
    /// Empty for a document-level error (`-` in the header).
    field: String,
    message: String,
}

fn fixtures_dir() -> PathBuf {
    harness::root().join("tests/fixtures/invalid")
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("read tests/fixtures/invalid")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads the `# expect:` lines of a fixture's leading comment block.
fn expectations(text: &str) -> Result<Vec<Expect>, String> {
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some(rest) = line.strip_prefix("# expect:") else {
            continue;
        };
        let (place, message) = rest
            .split_once('|')
            .ok_or_else(|| format!("no '|' in {line:?}"))?;
        let mut words = place.split_whitespace();
        let (Some(line_no), Some(field), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("expected '<line> <field> |' in {line:?}"));
        };
        let line_no: u32 = line_no
            .parse()
            .map_err(|_| format!("line {line_no:?} is not a number in {line:?}"))?;
        let message = message.trim();
        if message.is_empty() {
            return Err(format!("empty message substring in {line:?}"));
        }
        out.push(Expect {
            line: line_no,
            field: if field == "-" {
                String::new()
            } else {
                field.to_string()
            },
            message: message.to_string(),
        });
    }
    if out.is_empty() {
        return Err("no '# expect:' header line".to_string());
    }
    if !text.starts_with("# expect:") {
        return Err("the file must start with a '# expect:' line".to_string());
    }
    Ok(out)
}

/// Validates one file on its own, as `flink-gitops validate <file>` does.
fn validate_alone(path: &Path) -> ManifestSet {
    let files = read_folder(path).expect("read fixture");
    let mut set = parse_files(files);
    set.validate(&Options::default());
    set
}

fn show(diags: &[&Diagnostic]) -> String {
    if diags.is_empty() {
        return "    (none)".to_string();
    }
    diags
        .iter()
        .map(|d| format!("    {}:{} [{}] {d}", d.line, d.column, d.field))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Matches expectations to reported errors; returns what is wrong, if anything.
fn check_fixture(path: &Path) -> Option<String> {
    let name = file_name(path);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Some(format!("{name}: cannot read: {e}")),
    };
    let expects = match expectations(&text) {
        Ok(e) => e,
        Err(e) => return Some(format!("{name}: bad header: {e}")),
    };
    let set = validate_alone(path);
    let errors: Vec<&Diagnostic> = set.errors().collect();
    let mut used = vec![false; errors.len()];
    let mut problems = Vec::new();
    for exp in &expects {
        let hit = errors.iter().enumerate().position(|(i, d)| {
            !used[i]
                && d.line == exp.line
                && d.field == exp.field
                && d.message.contains(&exp.message)
        });
        match hit {
            Some(i) => used[i] = true,
            None => problems.push(format!(
                "  missing: line {} field {:?} message containing {:?}",
                exp.line, exp.field, exp.message
            )),
        }
    }
    for (i, d) in errors.iter().enumerate() {
        if !used[i] {
            problems.push(format!(
                "  unexpected error: {}:{} [{}] {}",
                d.line, d.column, d.field, d.message
            ));
        }
    }
    if problems.is_empty() {
        return None;
    }
    let all: Vec<&Diagnostic> = set.diagnostics.iter().collect();
    Some(format!(
        "{name}:\n{}\n  all diagnostics:\n{}",
        problems.join("\n"),
        show(&all)
    ))
}

#[test]
fn corpus_each_fixture_reports_exactly_its_expected_errors() {
    let files = fixture_files();
    assert!(
        !files.is_empty(),
        "no fixtures in {}",
        fixtures_dir().display()
    );
    let failures: Vec<String> = files.iter().filter_map(|p| check_fixture(p)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures do not report what their header expects:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn corpus_has_enough_fixtures_with_unique_names() {
    let files = fixture_files();
    assert!(
        files.len() >= MIN_FIXTURES,
        "expected at least {MIN_FIXTURES} fixtures in {}, found {}",
        fixtures_dir().display(),
        files.len()
    );
    // Every header must be readable (the per-fixture test says which one is not).
    let bad: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            expectations(&text)
                .err()
                .map(|e| format!("{}: {e}", file_name(p)))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "fixtures with a bad header:\n{}",
        bad.join("\n")
    );
}

/// One `validate DIR -o json` run: the run, its JSON, its diagnostics and them pretty-printed
/// (for assertion messages).
fn validate_json(
    dir: &std::path::Path,
) -> (
    harness::Run,
    serde_json::Value,
    Vec<serde_json::Value>,
    String,
) {
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.to_string_lossy().into_owned();
    let run = harness::flink_gitops(cwd.path(), &["validate", &dir_arg, "-o", "json"]);
    let json = run.json();
    let diags = json["diagnostics"].as_array().cloned().unwrap_or_default();
    let pretty = serde_json::to_string_pretty(&diags).unwrap_or_default();
    (run, json, diags, pretty)
}

#[test]
fn corpus_validated_as_one_folder_reports_every_file() {
    let dir = fixtures_dir();
    let (run, json, diags, pretty) = validate_json(&dir);
    assert_eq!(
        run.code, 1,
        "validate of the invalid corpus must exit 1; stderr:\n{}\ndiagnostics:\n{pretty}",
        run.stderr
    );
    assert_eq!(json["valid"], serde_json::Value::Bool(false), "{pretty}");
    let with_errors: BTreeSet<String> = diags
        .iter()
        .filter(|d| d["severity"] == "error")
        .filter_map(|d| d["file"].as_str().map(str::to_string))
        .collect();
    let silent: Vec<String> = fixture_files()
        .iter()
        .map(|p| file_name(p))
        .filter(|n| !with_errors.contains(n))
        .collect();
    assert!(
        silent.is_empty(),
        "fixtures without any error when the corpus is validated as one folder: {silent:?}\ndiagnostics:\n{pretty}"
    );
}

/// What the conformance files hold, counted straight from the YAML.
#[derive(Debug, Default)]
struct Census {
    /// FlinkDeployment / FlinkSessionJob documents that are deployed (canaries excluded).
    workloads: BTreeMap<String, usize>,
    /// Documents of other kinds and canaries: skipped with a notice.
    skipped: usize,
}

fn census(dir: &Path) -> Census {
    let mut c = Census::default();
    let files = read_folder(dir).expect("read conformance folder");
    for (name, bytes) in files {
        let text = String::from_utf8(bytes).expect("utf-8");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
            let Some(kind) = value.get("kind").and_then(|k| k.as_str()) else {
                continue; // empty document
            };
            let canary = value
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(|l| l.get("flink.apache.org/canary"))
                .and_then(|v| v.as_str())
                == Some("true");
            match kind {
                "FlinkDeployment" | "FlinkSessionJob" if !canary => {
                    *c.workloads.entry(kind.to_string()).or_default() += 1;
                }
                _ => c.skipped += 1,
            }
        }
    }
    c
}

/// The operator's examples, copied into tests/fixtures (so a fresh clone checks them), and
/// the shared conformance folder beside the repository when it is there.
#[test]
fn corpus_conformance_examples_are_valid() {
    let copy = harness::conformance_dir();
    assert!(
        copy.is_dir(),
        "missing conformance folder {}",
        copy.display()
    );
    check_conformance(&copy);
    match harness::shared_conformance_dir() {
        Some(shared) => check_conformance(&shared),
        None => eprintln!(
            "note: no ../shared/conformance beside the repository (a fresh clone): checked the copy in {} only",
            copy.display()
        ),
    }
}

fn check_conformance(dir: &Path) {
    let expected = census(dir);
    let (run, json, diags, pretty) = validate_json(dir);
    assert_eq!(
        run.code,
        0,
        "the operator's examples in {} must validate; stderr:\n{}\ndiagnostics:\n{pretty}",
        dir.display(),
        run.stderr
    );
    let problems: Vec<&serde_json::Value> = diags
        .iter()
        .filter(|d| d["severity"] == "error" || d["severity"] == "warning")
        .collect();
    assert!(
        problems.is_empty(),
        "errors or warnings in the examples:\n{pretty}"
    );

    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for r in json["resources"].as_array().cloned().unwrap_or_default() {
        *found
            .entry(r["kind"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        found, expected.workloads,
        "resources reported vs. FlinkDeployment/FlinkSessionJob documents in the files\nresources: {:#}",
        json["resources"]
    );
    let notices = diags
        .iter()
        .filter(|d| d["severity"] == "notice")
        .filter(|d| {
            d["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("skipped "))
        })
        .count();
    assert_eq!(
        notices, expected.skipped,
        "every other kind (and the canary) is skipped with a notice\ndiagnostics:\n{pretty}"
    );
}

#[test]
fn corpus_example_repo_is_valid() {
    let dir = harness::root().join("examples/repo");
    if !dir.is_dir() {
        eprintln!("skipped: {} does not exist yet", dir.display());
        return;
    }
    let cwd = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.to_string_lossy().into_owned();
    let run = harness::flink_gitops(cwd.path(), &["validate", &dir_arg, "-o", "json"]);
    let json = run.json();
    let pretty = serde_json::to_string_pretty(&json["diagnostics"]).unwrap_or_default();
    assert_eq!(
        run.code, 0,
        "examples/repo must validate; stderr:\n{}\ndiagnostics:\n{pretty}",
        run.stderr
    );
    assert_eq!(json["valid"], serde_json::Value::Bool(true), "{pretty}");
}

/// Inputs that must be valid (each file says why): no error, no warning.
#[test]
fn corpus_valid_fixtures_are_valid() {
    let dir = harness::root().join("tests/fixtures/valid");
    let files = read_folder(&dir).expect("read tests/fixtures/valid");
    assert!(!files.is_empty(), "no files in {}", dir.display());
    for (name, _) in files {
        let (run, json, _, pretty) = validate_json(&dir.join(&name));
        assert_eq!(run.code, 0, "{name}: stderr:\n{}\n{pretty}", run.stderr);
        assert_eq!(
            json["valid"],
            serde_json::Value::Bool(true),
            "{name}: {pretty}"
        );
        let noisy = json["diagnostics"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["severity"] != "notice"));
        assert!(!noisy, "{name}: {pretty}");
    }
}

#[test]
fn corpus_header_parser_reads_fields_and_dashes() {
    let text = "# expect: 4 spec.job.parallelism | found 0\n# expect: 1 - | YAML syntax error\n# why\napiVersion: x\n";
    let e = expectations(text).expect("valid header");
    assert_eq!(
        e,
        vec![
            Expect {
                line: 4,
                field: "spec.job.parallelism".into(),
                message: "found 0".into()
            },
            Expect {
                line: 1,
                field: String::new(),
                message: "YAML syntax error".into()
            },
        ]
    );
    assert!(expectations("apiVersion: x\n").is_err());
    assert!(expectations("# expect: four x | y\n").is_err());
    let _ = Severity::Error; // the library type the assertions above rely on
}
