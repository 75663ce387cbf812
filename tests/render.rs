//! Rendered manifests: kustomize overlays and Helm charts validated, planned and run like
//! plain files, with errors at the file that wrote the field, and a folder that does not
//! render held while every other folder goes on.
//!
//! kubectl and helm are the builds `scripts/setup.sh` installs (it prints where).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::flink::{
    counter_lines, field, flink_env, state_at, wait_for, wait_lines, AgentProcess, Remote, Slot,
};
use crate::harness::{copy_tree, flink_gitops, root, Run, TempRepo};

/// `--kubectl` and `--helm` as scripts/setup.sh installed them.
fn tool_flags() -> Vec<String> {
    let env = flink_env();
    vec![
        "--kubectl".into(),
        env.vars["FLINK_GITOPS_KUBECTL"].clone(),
        "--helm".into(),
        env.vars["FLINK_GITOPS_HELM"].clone(),
    ]
}

/// Runs the binary with the render tools.
fn run(dir: &Path, args: &[&str]) -> Run {
    let flags = tool_flags();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(flags.iter().map(String::as_str));
    flink_gitops(dir, &all)
}

/// `validate --repo . --revision REV -o json`.
fn validate(repo: &TempRepo, rev: &str) -> (i32, Value) {
    let r = run(
        repo.path(),
        &["validate", "--repo", ".", "--revision", rev, "-o", "json"],
    );
    (r.code, r.json())
}

/// `plan --repo . --base B --head H -o json`.
fn plan(repo: &TempRepo, base: &str, head: &str) -> (i32, Value) {
    let r = run(
        repo.path(),
        &[
            "plan", "--repo", ".", "--base", base, "--head", head, "-o", "json",
        ],
    );
    (r.code, r.json())
}

/// A repository holding an example folder.
fn repo_from(example: &str) -> (TempRepo, String) {
    let repo = TempRepo::new();
    copy_tree(&root().join("examples").join(example), repo.path());
    let c = repo.commit(example);
    (repo, c)
}

/// (namespace/name, file, renderedFrom) of every resource.
fn resources(v: &Value) -> Vec<(String, String, String)> {
    v["resources"]
        .as_array()
        .expect("resources[]")
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["namespace"].as_str().unwrap_or("?"),
                    r["name"].as_str().unwrap_or("?")
                ),
                r["file"].as_str().unwrap_or("?").to_string(),
                r["renderedFrom"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// Errors as (file, line, field, message).
fn errors(v: &Value) -> Vec<(String, u64, String, String)> {
    v["diagnostics"]
        .as_array()
        .expect("diagnostics[]")
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| {
            (
                d["file"].as_str().unwrap_or("?").to_string(),
                d["line"].as_u64().unwrap_or(0),
                d["field"].as_str().unwrap_or("").to_string(),
                d["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The 1-based line of the first line of a file that contains `needle`.
fn line_of(repo: &TempRepo, file: &str, needle: &str) -> u64 {
    let text = std::fs::read_to_string(repo.path().join(file)).expect("read");
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in {file}"))
}

fn edit(repo: &TempRepo, file: &str, from: &str, to: &str) {
    let p = repo.path().join(file);
    let text = std::fs::read_to_string(&p).expect("read");
    assert!(text.contains(from), "{from:?} not in {file}");
    std::fs::write(p, text.replacen(from, to, 1)).expect("write");
}

const PROD_PATCH: &str = "overlays/production/events-counter.yaml";
const STAGING: &str = "overlays/staging/kustomization.yaml";
const BASE: &str = "base/events-counter.yaml";

#[test]
fn validate_reads_each_overlay_as_kustomize_renders_it_and_points_errors_at_their_files() {
    let (repo, _) = repo_from("kustomize");
    let (code, v) = validate(&repo, "HEAD");
    assert_eq!(code, 0, "{v:#}");
    // Each overlay once, in its own namespace; the base is not a resource of its own, and
    // no file of a kustomization is read as a plain manifest.
    assert_eq!(
        resources(&v),
        vec![
            (
                "production/events-counter".into(),
                "overlays/production (rendered)".into(),
                "overlays/production".into()
            ),
            (
                "staging/events-counter".into(),
                "overlays/staging (rendered)".into(),
                "overlays/staging".into()
            ),
        ]
    );
    assert_eq!(v["files"], 2);
    // The same from a folder on disk.
    let example = root().join("examples/kustomize");
    let disk = run(
        repo.path(),
        &["validate", &example.display().to_string(), "-o", "json"],
    );
    assert_eq!(disk.code, 0, "{}", disk.stdout);
    assert_eq!(resources(&disk.json()), resources(&v));

    // Three mistakes: one in production's patch, one in the base (so in both overlays),
    // and one made by a JSON 6902 patch, which no file writes as a value.
    edit(&repo, PROD_PATCH, "parallelism: 2", "parallelism: 0");
    edit(
        &repo,
        BASE,
        "upgradeMode: savepoint",
        "upgradeMode: savepiont",
    );
    edit(
        &repo,
        STAGING,
        "  - path: events-counter.yaml\n",
        "  - path: events-counter.yaml\n  - target: {kind: FlinkDeployment, name: events-counter}\n    patch: |-\n      - op: replace\n        path: /spec/job/parallelism\n        value: -1\n",
    );
    repo.commit("three mistakes");
    let (code, v) = validate(&repo, "HEAD");
    assert_eq!(code, 1, "{v:#}");
    let errs = errors(&v);
    let upgrade_line = line_of(&repo, BASE, "upgradeMode:");
    let want_at = |file: &str, line: u64, field: &str, note: &str| {
        assert!(
            errs.iter()
                .any(|(f, l, fi, m)| f == file && *l == line && fi == field && m.contains(note)),
            "no error at {file}:{line} on {field} with {note:?}:\n{errs:#?}"
        );
    };
    want_at(
        PROD_PATCH,
        line_of(&repo, PROD_PATCH, "parallelism:"),
        "spec.job.parallelism",
        "(rendered from overlays/production by kustomize)",
    );
    for overlay in ["overlays/production", "overlays/staging"] {
        want_at(
            BASE,
            upgrade_line,
            "spec.job.upgradeMode",
            &format!("(rendered from {overlay} by kustomize)"),
        );
    }
    let entry = errs
        .iter()
        .find(|(file, _, field, _)| {
            field == "spec.job.parallelism" && !file.starts_with("overlays/production")
        })
        .unwrap_or_else(|| panic!("no error on staging's parallelism: {errs:#?}"));
    assert_eq!(entry.0, "overlays/staging (rendered)", "{entry:?}");
    assert!(
        entry
            .3
            .contains("(in the output of kustomize for overlays/staging)"),
        "{entry:?}"
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn validate_renders_a_chart_with_two_values_files_and_points_errors_at_the_value() {
    let (repo, _) = repo_from("helm");
    let (code, v) = validate(&repo, "HEAD");
    assert_eq!(code, 0, "{v:#}");
    // Release name and namespace from .flink-gitops.yaml; values files are not manifests.
    assert_eq!(
        resources(&v),
        vec![(
            "production/events-counter".into(),
            "charts/events-counter (rendered)".into(),
            "charts/events-counter".into()
        )]
    );
    let chart = "charts/events-counter";
    let values = format!("{chart}/values.yaml");
    let prod = format!("{chart}/values-production.yaml");
    edit(&repo, &prod, "parallelism: 2", "parallelism: 0");
    edit(
        &repo,
        &values,
        "upgradeMode: savepoint",
        "upgradeMode: savepiont",
    );
    edit(
        &repo,
        &format!("{chart}/templates/flinkdeployment.yaml"),
        "flinkVersion: v2_3",
        "flinkVersion: v2_9",
    );
    repo.commit("three mistakes");
    let (code, v) = validate(&repo, "HEAD");
    assert_eq!(code, 1, "{v:#}");
    let errs = errors(&v);
    let find = |field: &str| {
        errs.iter()
            .find(|(_, _, f, _)| f == field)
            .cloned()
            .unwrap_or_else(|| panic!("no error on {field}: {errs:#?}"))
    };
    // The production values file wins over the chart's values.yaml, which also sets it.
    let p = find("spec.job.parallelism");
    assert_eq!(
        (p.0.as_str(), p.1),
        (prod.as_str(), line_of(&repo, &prod, "parallelism:"))
    );
    assert!(
        p.3.contains("(rendered from charts/events-counter by helm template)"),
        "{p:?}"
    );
    let u = find("spec.job.upgradeMode");
    assert_eq!(
        (u.0.as_str(), u.1),
        (values.as_str(), line_of(&repo, &values, "upgradeMode:"))
    );
    // Written in the template itself: the rendered document, naming the template.
    let f = find("spec.flinkVersion");
    assert_eq!(f.0, "charts/events-counter (rendered)", "{f:?}");
    assert!(
        f.3.contains("from template events-counter/templates/flinkdeployment.yaml"),
        "{f:?}"
    );
}

/// `.flink-gitops.yaml` is one file for every setting: another tool's key or a typo is a
/// warning and the chart still renders as the file says; a value that cannot be read holds
/// the chart (one error at the file, one on the chart) rather than rendering it with the
/// wrong release. On disk, a folder below the file reads it with chart folders named from
/// there.
#[test]
fn settings_warn_about_unknown_keys_and_hold_charts_when_they_cannot_be_read() {
    let (repo, _) = repo_from("helm");
    let settings = ".flink-gitops.yaml";
    edit(
        &repo,
        settings,
        "helm:\n",
        "argocd:\n  syncWave: 1\nhelm:\n",
    );
    edit(
        &repo,
        settings,
        "    releaseName:",
        "    releseName: x\n    releaseName:",
    );
    let c1 = repo.commit("Argo CD's key and a typo");
    let (code, v) = validate(&repo, &c1);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(
        resources(&v),
        vec![(
            "production/events-counter".into(),
            "charts/events-counter (rendered)".into(),
            "charts/events-counter".into()
        )]
    );
    let warnings: Vec<(String, u64, String)> = v["diagnostics"]
        .as_array()
        .expect("diagnostics[]")
        .iter()
        .filter(|d| d["severity"] == "warning")
        .map(|d| {
            (
                d["file"].as_str().unwrap_or("?").to_string(),
                d["line"].as_u64().unwrap_or(0),
                d["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert_eq!(
        (warnings[0].0.as_str(), warnings[0].1),
        (settings, line_of(&repo, settings, "argocd:"))
    );
    assert!(
        warnings[0]
            .2
            .contains("flink-gitops reads operatorVersion, stricterRules, helm"),
        "{warnings:#?}"
    );
    assert_eq!(warnings[1].1, line_of(&repo, settings, "releseName:"));
    assert!(
        warnings[1].2.contains("did you mean \"releaseName\"?"),
        "{warnings:#?}"
    );

    // On disk, from the chart's parent folder: the file above it, the chart named from here.
    let r = run(repo.path(), &["validate", "charts", "-o", "json"]);
    let v = r.json();
    assert_eq!(r.code, 0, "{v:#}");
    assert_eq!(
        resources(&v),
        vec![(
            "production/events-counter".into(),
            "events-counter (rendered)".into(),
            "events-counter".into()
        )]
    );
    assert_eq!(
        v["diagnostics"][0]["file"], "../.flink-gitops.yaml",
        "{v:#}"
    );

    // A list where the chart's settings should be: the chart is held, not rendered with
    // the defaults (another release name and namespace would read as a new resource).
    repo.write(
        settings,
        "helm:\n  charts/events-counter: [values-production.yaml]\n",
    );
    let c2 = repo.commit("settings that cannot be read");
    let (code, v) = validate(&repo, &c2);
    assert_eq!(code, 1, "{v:#}");
    assert!(resources(&v).is_empty(), "{v:#}");
    let errs = errors(&v);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!((errs[0].0.as_str(), errs[0].1), (settings, 2));
    assert!(
        errs[0]
            .3
            .contains("Helm charts are not rendered until it is fixed"),
        "{errs:#?}"
    );
    assert_eq!(errs[1].0, "charts/events-counter/Chart.yaml");
    assert!(
        errs[1].3.contains(".flink-gitops.yaml could not be read"),
        "{errs:#?}"
    );
    let (code, p) = plan(&repo, &c1, &c2);
    assert_eq!(code, 1, "{p:#}");
    assert_eq!(p["summary"]["removed"], 0, "{p:#}");
    assert_eq!(p["resources"][0]["actionDetail"]["type"], "hold", "{p:#}");
}

#[test]
fn plan_between_two_revisions_of_an_overlay_names_the_actions() {
    let (repo, c1) = repo_from("kustomize");
    // Production: a new image and parallelism 3. Staging does not change.
    edit(&repo, PROD_PATCH, "parallelism: 2", "parallelism: 3");
    edit(
        &repo,
        PROD_PATCH,
        "image: flink:2.3.0",
        "image: flink:2.3.1",
    );
    let c2 = repo.commit("production: 2.3.1, parallelism 3");
    let (code, p) = plan(&repo, &c1, &c2);
    assert_eq!(code, 0, "{p:#}");
    let rs = p["resources"].as_array().expect("resources[]");
    assert_eq!(rs.len(), 1, "{p:#}");
    let r = &rs[0];
    assert_eq!(
        (r["namespace"].as_str(), r["name"].as_str()),
        (Some("production"), Some("events-counter"))
    );
    assert_eq!(r["file"], "overlays/production (rendered)");
    assert_eq!(r["change"], "upgrade");
    assert_eq!(r["action"], "stop with savepoint and restart from it");
    let fields: Vec<&str> = r["fields"]
        .as_array()
        .expect("fields[]")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(fields, vec!["spec.image", "spec.job.parallelism"], "{r:#}");
    assert_eq!(p["summary"]["unchanged"], 1, "{p:#}");

    // A change to the base reaches both overlays; one only a patch overrides reaches none.
    edit(
        &repo,
        BASE,
        "execution.checkpointing.interval: 10 s",
        "execution.checkpointing.interval: 20 s",
    );
    edit(&repo, BASE, "image: flink:2.3", "image: flink:2.4");
    let c3 = repo.commit("base: checkpoint every 20 s");
    let (_, p) = plan(&repo, &c2, &c3);
    let names: Vec<(String, String, String)> = p["resources"]
        .as_array()
        .expect("resources[]")
        .iter()
        .map(|r| {
            (
                r["namespace"].as_str().unwrap_or("?").to_string(),
                r["change"].as_str().unwrap_or("?").to_string(),
                r["fields"][0]["path"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (
                "production".into(),
                "upgrade".into(),
                "spec.flinkConfiguration[execution.checkpointing.interval]".into()
            ),
            (
                "staging".into(),
                "upgrade".into(),
                "spec.flinkConfiguration[execution.checkpointing.interval]".into()
            ),
        ],
        "{p:#}"
    );
}

#[test]
fn a_folder_that_does_not_render_is_one_error_and_the_others_go_on() {
    let (repo, _) = repo_from("kustomize");
    // A third overlay, and a plain manifest beside the kustomizations.
    copy_tree(&repo.path().join("overlays/staging"), &{
        let qa = repo.path().join("overlays/qa");
        std::fs::create_dir_all(&qa).expect("mkdir");
        qa
    });
    edit(
        &repo,
        "overlays/qa/kustomization.yaml",
        "namespace: staging",
        "namespace: qa",
    );
    let plain = std::fs::read_to_string(repo.path().join(BASE))
        .expect("base")
        .replace("name: events-counter", "name: plain-counter")
        .replace("upgradeMode: savepoint", "upgradeMode: stateless");
    repo.write("apps/plain-counter.yaml", &plain);
    let c1 = repo.commit("qa overlay and a plain app");
    let (code, v) = validate(&repo, &c1);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(resources(&v).len(), 4, "{v:#}");

    // qa names a patch that is not there, and a remote base (nothing is fetched); at the
    // same time production and the plain app change.
    edit(
        &repo,
        "overlays/qa/kustomization.yaml",
        "  - path: events-counter.yaml\n",
        "  - path: missing-patch.yaml\n",
    );
    edit(&repo, PROD_PATCH, "parallelism: 2", "parallelism: 3");
    edit(
        &repo,
        "apps/plain-counter.yaml",
        "parallelism: 1",
        "parallelism: 2",
    );
    repo.write(
        "overlays/remote/kustomization.yaml",
        "resources:\n  - https://example.com/flink/events-counter.yaml\n",
    );
    let c2 = repo.commit("qa broken, remote overlay, production and plain changed");
    let started = std::time::Instant::now();
    let (code, v) = validate(&repo, &c2);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(code, 1, "{v:#}");
    let errs = errors(&v);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let (file, line, _, message) = &errs[0];
    assert_eq!(
        (file.as_str(), *line),
        ("overlays/qa/kustomization.yaml", 1)
    );
    assert!(
        message.starts_with("cannot render overlays/qa: `kubectl kustomize overlays/qa` failed"),
        "{message}"
    );
    assert!(message.contains("missing-patch.yaml"), "{message}");
    assert!(
        !message.contains("flink-gitops-render-"),
        "the temporary folder shows: {message}"
    );
    let (file, _, _, message) = &errs[1];
    assert_eq!(file, "overlays/remote/kustomization.yaml");
    assert!(
        message.contains("127.0.0.1:9"),
        "fetched through the dead proxy, or not at all: {message}"
    );
    // The other folders and the plain file are read as usual.
    let found: Vec<String> = resources(&v).into_iter().map(|r| r.0).collect();
    assert_eq!(
        found,
        vec![
            "default/plain-counter",
            "production/events-counter",
            "staging/events-counter"
        ]
    );

    // plan: qa's resource is held (never removed), the others planned.
    let (code, p) = plan(&repo, &c1, &c2);
    assert_eq!(code, 1, "invalid head: {p:#}");
    let by_ns = |ns: &str| {
        p["resources"]
            .as_array()
            .expect("resources[]")
            .iter()
            .find(|r| r["namespace"] == ns)
            .cloned()
            .unwrap_or_else(|| panic!("{ns} not in the plan: {p:#}"))
    };
    let qa = by_ns("qa");
    assert_eq!(qa["change"], "unchanged", "{qa:#}");
    assert_eq!(qa["actionDetail"]["type"], "hold", "{qa:#}");
    assert!(
        qa["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("overlays/qa (rendered) could not be read at head")),
        "{qa:#}"
    );
    assert_eq!(by_ns("production")["change"], "upgrade");
    assert_eq!(by_ns("default")["change"], "upgrade");
    assert_eq!(p["summary"]["removed"], 0, "{p:#}");
    let plan_errors: Vec<&str> = p["errors"]
        .as_array()
        .expect("errors[]")
        .iter()
        .filter_map(|e| e["file"].as_str())
        .collect();
    assert_eq!(
        plan_errors,
        vec![
            "overlays/qa/kustomization.yaml",
            "overlays/remote/kustomization.yaml"
        ]
    );
}

/// The agent on real Flink: a job from a kustomize overlay runs; when the overlay stops
/// rendering, the job is held as it is, not removed.
#[test]
fn the_agent_runs_a_rendered_resource_and_holds_it_when_its_folder_breaks() {
    let _slot = Slot::take();
    let remote = Remote::new();
    let out = remote.scratch("out").join("counter.out");
    let state = remote.scratch("agent");
    let base = format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: counter\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  flinkConfiguration:\n    taskmanager.numberOfTaskSlots: \"1\"\n  jobManager:\n    resource: {{memory: 1g, cpu: 1}}\n  taskManager:\n    resource: {{memory: 1g, cpu: 1}}\n  job:\n    jarURI: file://{jar}\n    entryClass: lab.StatefulCounterJob\n    parallelism: 1\n    upgradeMode: savepoint\n    args: [\"--version\", \"base\", \"--out\", \"/dev/null\"]\n",
        jar = flink_env().job_jar()
    );
    remote.write("base/counter.yaml", &base);
    remote.write("base/kustomization.yaml", "resources: [counter.yaml]\n");
    remote.write(
        "overlays/dev/kustomization.yaml",
        "namespace: dev\nresources: [../../base]\npatches:\n  - path: counter.yaml\n",
    );
    remote.write(
        "overlays/dev/counter.yaml",
        &format!(
            "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: counter\nspec:\n  job:\n    args: [\"--version\", \"dev\", \"--out\", \"{}\", \"--rate\", \"20\", \"--checkpointMs\", \"500\"]\n",
            out.display()
        ),
    );
    let c1 = remote.push("counter, dev overlay");
    let flags = tool_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let agent = AgentProcess::start(&remote.url(), &state, &flags);
    let status = "dev/FlinkDeployment/counter.yaml";
    let s1 = state_at(&remote, &agent, status, &c1, "STABLE");
    assert_eq!(field(&s1, "jobState"), Some("RUNNING"));
    // The overlay's patch reached the job: it writes with --version dev.
    wait_lines(&agent, &out, "dev", 0);
    let job = field(&s1, "jobId").expect("a job id").to_string();

    // The overlay stops rendering: the job keeps running, its status is not DELETED.
    remote.write(
        "overlays/dev/kustomization.yaml",
        "namespace: dev\nresources: [../../base]\npatches:\n  - path: gone.yaml\n",
    );
    remote.push("dev overlay names a patch that is not there");
    wait_for(
        Duration::from_secs(60),
        "the render error in the agent's log",
        &agent,
        || {
            let log = agent.log_text();
            (log.contains("render failed") && log.contains("gone.yaml")).then_some(())
        },
    );
    let n = counter_lines(&out).len();
    std::thread::sleep(Duration::from_secs(5));
    let s2 = remote.status(status).expect("status");
    assert_eq!(field(&s2, "lifecycleState"), Some("STABLE"), "{s2:?}");
    assert_eq!(
        field(&s2, "jobId"),
        Some(job.as_str()),
        "the job was not restarted"
    );
    assert!(counter_lines(&out).len() > n, "the job still runs");
}
