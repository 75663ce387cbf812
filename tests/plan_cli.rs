//! `plan` on real Git histories: every change class and action, the three output formats,
//! exit codes, `--path`, and remote repositories (a bare clone over `file://`, and `git
//! daemon` over `git://`).
//!
//! Each test builds its history with the `git` CLI ([`TempRepo`]), runs the binary, and
//! asserts on what a reviewer reads: the change class, the action sentence and the warning
//! text. [`plan`] runs every plan in all three formats and checks that they agree.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{flink_gitops, git, GitDaemon, Run, TempRepo};

// ---------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------

/// A `FlinkDeployment` as a user writes it; rendered to YAML by [`App::yaml`].
#[derive(Clone)]
struct App {
    name: String,
    namespace: String,
    flink_version: String,
    mode: Option<String>,
    restart_nonce: Option<i64>,
    config: BTreeMap<String, String>,
    job: Option<Job>,
}

#[derive(Clone)]
struct Job {
    jar: String,
    parallelism: i64,
    upgrade_mode: String,
    state: String,
    /// Further `spec.job` fields, as raw YAML values.
    extra: BTreeMap<String, String>,
}

impl App {
    /// An application cluster with checkpoint and savepoint directories.
    fn new(name: &str, upgrade_mode: &str) -> App {
        let mut config = BTreeMap::new();
        config.insert("taskmanager.numberOfTaskSlots".into(), "2".into());
        config.insert(
            "state.checkpoints.dir".into(),
            format!("s3://flink-state/checkpoints/{name}"),
        );
        config.insert(
            "state.savepoints.dir".into(),
            format!("s3://flink-state/savepoints/{name}"),
        );
        App {
            name: name.into(),
            namespace: "team-a".into(),
            flink_version: "v1_20".into(),
            mode: None,
            restart_nonce: None,
            config,
            job: Some(Job {
                jar: format!("local:///opt/flink/usrlib/{name}-1.0.0.jar"),
                parallelism: 2,
                upgrade_mode: upgrade_mode.into(),
                state: "running".into(),
                extra: BTreeMap::new(),
            }),
        }
    }

    /// A session cluster (no `spec.job`).
    fn session(name: &str) -> App {
        let mut a = App::new(name, "stateless");
        a.job = None;
        a
    }

    fn job_mut(&mut self) -> &mut Job {
        self.job.as_mut().expect("an application cluster")
    }

    fn jar(mut self, jar: &str) -> App {
        self.job_mut().jar = jar.into();
        self
    }

    fn upgrade_mode(mut self, mode: &str) -> App {
        self.job_mut().upgrade_mode = mode.into();
        self
    }

    fn state(mut self, state: &str) -> App {
        self.job_mut().state = state.into();
        self
    }

    fn parallelism(mut self, p: i64) -> App {
        self.job_mut().parallelism = p;
        self
    }

    /// Sets a further `spec.job` field (raw YAML value).
    fn job_field(mut self, key: &str, value: &str) -> App {
        self.job_mut().extra.insert(key.into(), value.into());
        self
    }

    fn conf(mut self, key: &str, value: &str) -> App {
        self.config.insert(key.into(), value.into());
        self
    }

    fn without_conf(mut self, key: &str) -> App {
        self.config.remove(key);
        self
    }

    fn yaml(&self) -> String {
        let mut s = format!(
            "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {}\n  namespace: {}\nspec:\n  image: flink:1.20\n  flinkVersion: {}\n  serviceAccount: flink\n",
            self.name, self.namespace, self.flink_version
        );
        if let Some(m) = &self.mode {
            s += &format!("  mode: {m}\n");
        }
        if let Some(n) = self.restart_nonce {
            s += &format!("  restartNonce: {n}\n");
        }
        s += "  flinkConfiguration:\n";
        for (k, v) in &self.config {
            s += &format!("    {k}: \"{v}\"\n");
        }
        s += "  jobManager:\n    resource:\n      memory: \"2048m\"\n      cpu: 1\n";
        s += "  taskManager:\n    resource:\n      memory: \"2048m\"\n      cpu: 1\n";
        if let Some(j) = &self.job {
            s += &format!(
                "  job:\n    jarURI: {}\n    parallelism: {}\n    upgradeMode: {}\n    state: {}\n",
                j.jar, j.parallelism, j.upgrade_mode, j.state
            );
            for (k, v) in &j.extra {
                s += &format!("    {k}: {v}\n");
            }
        }
        s
    }
}

/// A `FlinkSessionJob` on session cluster `deployment` (namespace team-a).
fn session_job(name: &str, deployment: &str, jar_version: &str) -> String {
    format!(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: {name}\n  namespace: team-a\nspec:\n  deploymentName: {deployment}\n  job:\n    jarURI: https://artifacts.example.com/jobs/{name}-{jar_version}.jar\n    parallelism: 2\n    upgradeMode: stateless\n"
    )
}

// ---------------------------------------------------------------------------------------
// Histories and plans
// ---------------------------------------------------------------------------------------

/// A repository whose first commit holds `base` and second commit `head` (file → text;
/// files of `base` missing from `head` are deleted). Returns the repo and both commits.
fn history(base: &[(&str, String)], head: &[(&str, String)]) -> (TempRepo, String, String) {
    let repo = TempRepo::new();
    for (f, text) in base {
        repo.write(f, text);
    }
    let a = repo.commit("base");
    for (f, _) in base {
        if !head.iter().any(|(g, _)| g == f) {
            repo.remove(f);
        }
    }
    for (f, text) in head {
        repo.write(f, text);
    }
    let b = repo.commit("head");
    (repo, a, b)
}

/// One plan in all three formats.
struct Planned {
    code: i32,
    json: Value,
    text: String,
    markdown: String,
    stderr: String,
}

impl Planned {
    fn resources(&self) -> &Vec<Value> {
        self.json["resources"].as_array().expect("resources[]")
    }

    /// The only resource in the plan.
    fn only(&self) -> &Value {
        let r = self.resources();
        assert_eq!(r.len(), 1, "expected one resource:\n{}", self.text);
        &r[0]
    }

    fn resource(&self, name: &str) -> &Value {
        self.resources()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the plan:\n{}", self.text))
    }

    fn names(&self) -> Vec<&str> {
        self.resources()
            .iter()
            .map(|r| r["name"].as_str().unwrap_or_default())
            .collect()
    }
}

fn run_plan(dir: &Path, repo: &str, base: &str, head: &str, extra: &[&str], fmt: &str) -> Run {
    let mut args = vec![
        "plan", "--repo", repo, "--base", base, "--head", head, "-o", fmt,
    ];
    args.extend_from_slice(extra);
    flink_gitops(dir, &args)
}

/// Plans `base` → `head` of `repo` (a path or URL) from folder `dir`, in JSON, text and
/// Markdown, and checks that the three agree: the JSON shape, and for every resource the
/// change and action sentence in the text and a Markdown table row with both.
fn plan_in(dir: &Path, repo: &str, base: &str, head: &str, extra: &[&str]) -> Planned {
    let j = run_plan(dir, repo, base, head, extra, "json");
    let t = run_plan(dir, repo, base, head, extra, "text");
    let m = run_plan(dir, repo, base, head, extra, "markdown");
    assert_eq!(
        j.code, t.code,
        "json and text exit codes differ: {}",
        t.stderr
    );
    assert_eq!(j.code, m.code, "json and markdown exit codes differ");
    let json = j.json();
    for key in ["base", "head", "resources", "errors", "notices", "summary"] {
        assert!(json.get(key).is_some(), "JSON has no {key}: {json:#}");
    }
    assert!(json["base"].as_str().is_some_and(|b| b.starts_with(base)));
    assert!(json["head"].as_str().is_some_and(|h| h.starts_with(head)));
    for r in json["resources"].as_array().expect("resources[]") {
        for key in [
            "kind",
            "namespace",
            "name",
            "change",
            "action",
            "upgradeMode",
            "warnings",
            "errors",
            "diff",
        ] {
            assert!(r.get(key).is_some(), "resource has no {key}: {r:#}");
        }
        let (kind, ns, name) = (
            r["kind"].as_str().unwrap_or_default(),
            r["namespace"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
        );
        let change = r["change"].as_str().expect("change");
        let action = r["action"].as_str().expect("action");
        assert!(
            t.stdout.contains(&format!("{kind} {ns}/{name}")),
            "text lacks {kind} {ns}/{name}:\n{}",
            t.stdout
        );
        assert!(
            t.stdout.contains(&format!("  change: {change}")),
            "text lacks change {change}:\n{}",
            t.stdout
        );
        assert!(
            t.stdout.contains(&format!("  action: {action}\n")),
            "text lacks the action sentence {action:?}:\n{}",
            t.stdout
        );
        for w in r["warnings"].as_array().expect("warnings[]") {
            let w = w.as_str().expect("warning text");
            assert!(
                t.stdout.contains(&format!("warning: {w}")),
                "text lacks {w:?}"
            );
            assert!(
                m.stdout.contains(&format!("- ⚠️ {w}")),
                "markdown lacks {w:?}"
            );
        }
        let row = format!(
            "| `{kind}` {ns}/{name} | {change} | {} |",
            action.replace('|', "\\|")
        );
        assert!(
            m.stdout
                .lines()
                .any(|l| l.starts_with("| ") && l.contains(&row)),
            "markdown has no table row {row:?}:\n{}",
            m.stdout
        );
        let diff = r["diff"].as_str().expect("diff");
        if !diff.is_empty() {
            assert!(
                m.stdout.contains(&format!("```diff\n{diff}```")),
                "markdown lacks the diff block of {name}:\n{}",
                m.stdout
            );
        }
    }
    Planned {
        code: j.code,
        json,
        text: t.stdout,
        markdown: m.stdout,
        stderr: j.stderr,
    }
}

/// Plans two revisions of a [`TempRepo`] (read in place).
fn plan(repo: &TempRepo, base: &str, head: &str, extra: &[&str]) -> Planned {
    plan_in(repo.path(), ".", base, head, extra)
}

/// Plans the two commits of a history built from `base` and `head` files.
fn plan_history(base: &[(&str, String)], head: &[(&str, String)]) -> Planned {
    let (repo, a, b) = history(base, head);
    plan(&repo, &a, &b, &[])
}

/// Plans a change of one application in `apps.yaml`.
fn plan_app_change(before: &App, after: &App) -> Planned {
    plan_history(
        &[("apps.yaml", before.yaml())],
        &[("apps.yaml", after.yaml())],
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("text").to_string())
        .collect()
}

/// Asserts that some warning contains `needle`.
fn assert_warns(r: &Value, needle: &str) {
    let w = strings(&r["warnings"]);
    assert!(
        w.iter().any(|w| w.contains(needle)),
        "no warning contains {needle:?}: {w:#?}"
    );
}

fn assert_no_warnings(r: &Value) {
    assert_eq!(strings(&r["warnings"]), Vec::<String>::new(), "{r:#}");
}

/// Asserts the action data of a resource. Every actionDetail says where the job's state
/// comes from (`state.from`); when `detail` names no `state`, that one is not compared.
fn assert_detail(r: &Value, detail: Value) {
    let mut got = r["actionDetail"].clone();
    assert!(
        got["state"]["from"].is_string(),
        "actionDetail has no state.from: {r:#}"
    );
    if detail.get("state").is_none() {
        if let Some(o) = got.as_object_mut() {
            o.remove("state");
        }
    }
    assert_eq!(got, detail, "{r:#}");
}

/// Asserts change class, action sentence and action data of a resource.
fn assert_action(r: &Value, change: &str, action: &str, detail: Value) {
    assert_eq!(r["change"], change, "{r:#}");
    assert_eq!(r["action"], action, "{r:#}");
    assert_detail(r, detail);
}

// ---------------------------------------------------------------------------------------
// Added
// ---------------------------------------------------------------------------------------

#[test]
fn added_application_job_starts_without_state() {
    let a = App::new("orders", "savepoint");
    let p = plan_history(&[], &[("apps/orders.yaml", a.yaml())]);
    let r = p.only();
    assert_action(
        r,
        "added",
        "start the job without state",
        json!({"type": "deploy", "restore": {"from": "empty"}}),
    );
    assert_eq!(r["kind"], "FlinkDeployment");
    assert_eq!(r["namespace"], "team-a");
    assert_eq!(r["upgradeMode"], "savepoint");
    assert_eq!(r["file"], "apps/orders.yaml");
    assert_no_warnings(r);
    let diff = r["diff"].as_str().expect("diff");
    assert!(diff.contains("+  upgradeMode: savepoint"), "{diff}");
    assert!(!diff.lines().any(|l| l.starts_with("-  ")), "{diff}");
    assert_eq!(p.json["summary"]["added"], 1);
    assert!(p
        .text
        .contains("+ FlinkDeployment team-a/orders  (apps/orders.yaml)"));
    assert!(p
        .text
        .contains("1 to add, 0 to change, 0 to remove, 0 unchanged"));
    assert_eq!(p.code, 0);
}

#[test]
fn added_job_with_initial_savepoint_starts_from_it() {
    let path = "s3://flink-state/savepoints/orders/savepoint-1a2b3c-4d5e6f7a8b9c";
    let a = App::new("orders", "savepoint").job_field("initialSavepointPath", path);
    let p = plan_history(&[], &[("orders.yaml", a.yaml())]);
    assert_action(
        p.only(),
        "added",
        &format!("start the job from savepoint {path}"),
        json!({"type": "deploy", "restore": {"from": "path", "path": path}}),
    );
}

#[test]
fn added_session_cluster_starts_it() {
    let p = plan_history(&[], &[("session.yaml", App::session("shared").yaml())]);
    let r = p.only();
    assert_action(
        r,
        "added",
        "start the session cluster",
        json!({"type": "deploy-session-cluster"}),
    );
    assert_eq!(r["upgradeMode"], Value::Null);
}

#[test]
fn added_suspended_job_starts_nothing() {
    let a = App::new("orders", "savepoint").state("suspended");
    let p = plan_history(&[], &[("orders.yaml", a.yaml())]);
    assert_action(
        p.only(),
        "added",
        "record it suspended; nothing starts",
        json!({"type": "create-suspended"}),
    );
}

// ---------------------------------------------------------------------------------------
// Removed
// ---------------------------------------------------------------------------------------

#[test]
fn removed_stateful_job_is_deleted_after_a_final_savepoint() {
    let keep = App::new("billing", "savepoint");
    let gone = App::new("orders", "savepoint");
    let p = plan_history(
        &[("billing.yaml", keep.yaml()), ("orders.yaml", gone.yaml())],
        &[("billing.yaml", keep.yaml())],
    );
    let r = p.only();
    assert_eq!(r["name"], "orders");
    assert_action(
        r,
        "removed",
        "delete after a final savepoint",
        json!({"type": "delete", "finalSavepoint": true, "mode": "savepoint"}),
    );
    assert_eq!(r["file"], "orders.yaml");
    assert_eq!(r["upgradeMode"], "savepoint");
    assert_warns(r, "removing this job stops it with a final savepoint");
    assert!(r["diff"]
        .as_str()
        .is_some_and(|d| d.contains("-  upgradeMode: savepoint")));
    assert_eq!(p.json["summary"]["removed"], 1);
    assert_eq!(p.json["summary"]["unchanged"], 1);
    assert!(p
        .text
        .contains("- FlinkDeployment team-a/orders  (orders.yaml)"));
}

#[test]
fn removed_stateless_job_warns_that_state_is_discarded() {
    let gone = App::new("clicks", "stateless");
    let p = plan_history(&[("clicks.yaml", gone.yaml())], &[]);
    let r = p.only();
    assert_action(
        r,
        "removed",
        "delete; the job's state is discarded",
        json!({"type": "delete", "finalSavepoint": false, "mode": "stateless"}),
    );
    assert_warns(r, "removing a stateless job discards its state");
}

#[test]
fn removed_job_with_savepoint_on_deletion_false_warns() {
    let gone = App::new("orders", "savepoint")
        .conf("kubernetes.operator.job.savepoint-on-deletion", "false");
    let p = plan_history(&[("orders.yaml", gone.yaml())], &[]);
    let r = p.only();
    assert_action(
        r,
        "removed",
        "delete; the job's state is discarded",
        json!({"type": "delete", "finalSavepoint": false, "mode": "savepoint"}),
    );
    assert_warns(
        r,
        "kubernetes.operator.job.savepoint-on-deletion is false: removing this resource takes no final savepoint",
    );
}

#[test]
fn removed_session_cluster_warns_about_its_jobs() {
    let p = plan_history(&[("session.yaml", App::session("shared").yaml())], &[]);
    let r = p.only();
    assert_action(
        r,
        "removed",
        "delete the session cluster",
        json!({"type": "delete-session-cluster"}),
    );
    assert_warns(
        r,
        "removing a session cluster stops every job still running on it",
    );
}

// ---------------------------------------------------------------------------------------
// Upgrades by mode
// ---------------------------------------------------------------------------------------

#[test]
fn jar_change_in_savepoint_mode_stops_with_savepoint_and_restarts_from_it() {
    let before = App::new("orders", "savepoint");
    let after = before
        .clone()
        .jar("local:///opt/flink/usrlib/orders-1.1.0.jar");
    let p = plan_app_change(&before, &after);
    let r = p.only();
    assert_action(
        r,
        "upgrade",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
    assert_no_warnings(r);
    assert_eq!(
        r["fields"],
        json!([{
            "path": "spec.job.jarURI",
            "class": "upgrade",
            "old": "local:///opt/flink/usrlib/orders-1.0.0.jar",
            "new": "local:///opt/flink/usrlib/orders-1.1.0.jar",
        }])
    );
    let diff = r["diff"].as_str().expect("diff");
    assert!(diff.contains("-  jarURI: local:///opt/flink/usrlib/orders-1.0.0.jar"));
    assert!(diff.contains("+  jarURI: local:///opt/flink/usrlib/orders-1.1.0.jar"));
    assert!(p
        .text
        .contains("~ FlinkDeployment team-a/orders  (apps.yaml)"));
    assert!(p.text.contains("change: upgrade, upgradeMode savepoint"));
    assert!(p
        .text
        .contains("spec.job.jarURI (upgrade): local:///opt/flink/usrlib/orders-1.0.0.jar -> local:///opt/flink/usrlib/orders-1.1.0.jar"));
    assert!(p.markdown.contains(
        "| ✅ | `FlinkDeployment` team-a/orders | upgrade | stop with savepoint and restart from it | savepoint |"
    ));
}

#[test]
fn jar_change_in_last_state_mode_restarts_from_the_latest_checkpoint() {
    let before = App::new("orders", "last-state");
    let after = before
        .clone()
        .jar("local:///opt/flink/usrlib/orders-1.1.0.jar");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "restart from the latest checkpoint",
        json!({"type": "upgrade", "mode": "last-state"}),
    );
    assert_no_warnings(&r);
}

#[test]
fn jar_change_in_stateless_mode_restarts_without_state_and_warns() {
    let before = App::new("clicks", "stateless");
    let after = before
        .clone()
        .jar("local:///opt/flink/usrlib/clicks-2.0.0.jar");
    let p = plan_app_change(&before, &after);
    let r = p.only();
    assert_action(
        r,
        "upgrade",
        "restart without state",
        json!({"type": "upgrade", "mode": "stateless"}),
    );
    assert_warns(
        r,
        "jarURI changes while upgradeMode is stateless: the new job starts without state",
    );
    assert!(p
        .markdown
        .contains("| ⚠️ | `FlinkDeployment` team-a/clicks | upgrade |"));
}

#[test]
fn switching_savepoint_to_stateless_warns() {
    let before = App::new("orders", "savepoint");
    let after = before.clone().upgrade_mode("stateless");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(&r, "ignore", "no restart", json!({"type": "no-restart"}));
    assert_eq!(r["upgradeMode"], "stateless");
    assert_warns(
        &r,
        "upgradeMode changes from savepoint to stateless: this and every later restart discard the job's state",
    );
}

#[test]
fn allow_non_restored_state_warns_on_restart() {
    let before = App::new("orders", "savepoint");
    let after = before
        .clone()
        .jar("local:///opt/flink/usrlib/orders-1.1.0.jar")
        .job_field("allowNonRestoredState", "true");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
    assert_warns(
        &r,
        "allowNonRestoredState is true: state of operators missing from the new job is dropped without an error",
    );
}

#[test]
fn allow_non_restored_state_turned_on_alone_warns_about_the_next_restart() {
    let before = App::new("orders", "savepoint");
    let after = before.clone().job_field("allowNonRestoredState", "true");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(&r, "ignore", "no restart", json!({"type": "no-restart"}));
    assert_warns(
        &r,
        "allowNonRestoredState turns on: from the next restart, state of operators missing from the new job is dropped without an error",
    );
}

#[test]
fn flink_version_change_warns() {
    let before = App::new("orders", "savepoint");
    let mut after = before.clone();
    after.flink_version = "v2_0".into();
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
    assert_warns(
        &r,
        "flinkVersion changes from v1_20 to v2_0: state written by one Flink version is not guaranteed to restore in another",
    );
}

#[test]
fn flink_version_change_in_last_state_mode_takes_a_savepoint() {
    // The operator does not trust HA metadata across Flink versions: with a savepoint
    // directory it stops a last-state job with a savepoint (reference §3.3, step 5).
    let before = App::new("orders", "last-state");
    let mut after = before.clone();
    after.flink_version = "v2_0".into();
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
    assert_eq!(r["upgradeMode"], "last-state");

    // Without a savepoint directory it cancels and restores the latest checkpoint.
    let before = before.without_conf("state.savepoints.dir");
    let mut after = before.clone();
    after.flink_version = "v2_0".into();
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "restart from the latest checkpoint",
        json!({"type": "upgrade", "mode": "last-state"}),
    );
}

// ---------------------------------------------------------------------------------------
// Suspend, resume, nonces
// ---------------------------------------------------------------------------------------

#[test]
fn suspend_then_resume() {
    let running = App::new("orders", "savepoint");
    let suspended = running.clone().state("suspended");
    let repo = TempRepo::new();
    repo.write("orders.yaml", &running.yaml());
    let a = repo.commit("running");
    repo.write("orders.yaml", &suspended.yaml());
    let b = repo.commit("suspend");
    repo.write("orders.yaml", &running.yaml());
    let c = repo.commit("resume");

    let p = plan(&repo, &a, &b, &[]);
    let r = p.only();
    assert_action(
        r,
        "upgrade",
        "suspend with savepoint",
        json!({"type": "suspend", "mode": "savepoint"}),
    );
    assert_eq!(
        r["fields"],
        json!([{"path": "spec.job.state", "class": "upgrade", "old": "running", "new": "suspended"}])
    );

    let p = plan(&repo, &b, &c, &[]);
    assert_action(
        p.only(),
        "upgrade",
        "resume from the last savepoint",
        json!({"type": "resume", "restore": {"from": "upgrade-savepoint"}}),
    );

    // Suspended to suspended: recorded, nothing starts.
    let changed = suspended.clone().parallelism(4);
    let (repo2, a2, b2) = history(
        &[("o.yaml", suspended.yaml())],
        &[("o.yaml", changed.yaml())],
    );
    assert_action(
        plan(&repo2, &a2, &b2, &[]).only(),
        "upgrade",
        "record the new spec; the job stays suspended",
        json!({"type": "update-suspended"}),
    );
}

#[test]
fn last_state_resume_and_stateless_suspend() {
    let p = plan_app_change(
        &App::new("orders", "last-state").state("suspended"),
        &App::new("orders", "last-state"),
    );
    assert_action(
        p.only(),
        "upgrade",
        "resume from the latest checkpoint",
        json!({"type": "resume", "restore": {"from": "latest-checkpoint"}}),
    );
    let p = plan_app_change(
        &App::new("clicks", "stateless"),
        &App::new("clicks", "stateless").state("suspended"),
    );
    let r = p.only();
    assert_action(
        r,
        "upgrade",
        "suspend without savepoint; state is discarded",
        json!({"type": "suspend", "mode": "stateless"}),
    );
    assert_warns(
        r,
        "suspending in stateless mode cancels the job without a savepoint",
    );
}

#[test]
fn savepoint_trigger_nonce_triggers_a_savepoint_without_restart() {
    let before = App::new("orders", "savepoint");
    let after = before.clone().job_field("savepointTriggerNonce", "7");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "ignore",
        "trigger a savepoint; no restart",
        json!({"type": "trigger-snapshot", "savepoint": true, "checkpoint": false}),
    );
    assert_no_warnings(&r);
}

#[test]
fn upgrade_mode_only_change_is_ignored() {
    let before = App::new("orders", "savepoint");
    let after = before.clone().upgrade_mode("last-state");
    let p = plan_app_change(&before, &after);
    let r = p.only();
    assert_action(r, "ignore", "no restart", json!({"type": "no-restart"}));
    assert_eq!(
        r["fields"],
        json!([{"path": "spec.job.upgradeMode", "class": "ignore", "old": "savepoint", "new": "last-state"}])
    );
    assert_no_warnings(r);
    assert!(p
        .text
        .contains("spec.job.upgradeMode (ignore): savepoint -> last-state"));
}

#[test]
fn restart_nonce_upgrades() {
    let before = App::new("orders", "last-state");
    let mut after = before.clone();
    after.restart_nonce = Some(42);
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "restart from the latest checkpoint",
        json!({"type": "upgrade", "mode": "last-state"}),
    );
    assert_eq!(r["fields"][0]["path"], "spec.restartNonce");
    assert_eq!(r["fields"][0]["new"], "42");
}

#[test]
fn savepoint_redeploy_nonce_with_initial_savepoint_path_redeploys_and_warns() {
    let path = "s3://flink-state/savepoints/orders/savepoint-0badc0-ffee00112233";
    let before = App::new("orders", "savepoint");
    let after = before
        .clone()
        .job_field("initialSavepointPath", path)
        .job_field("savepointRedeployNonce", "1");
    let p = plan_app_change(&before, &after);
    let r = p.only();
    assert_action(
        r,
        "savepoint-redeploy",
        &format!(
            "cancel the job and redeploy from savepoint {path}; the current state is discarded"
        ),
        json!({"type": "savepoint-redeploy", "path": path}),
    );
    assert_warns(
        r,
        &format!("savepoint redeploy discards the job's current state and starts from {path}"),
    );
    assert_eq!(p.code, 0);
}

#[test]
fn savepoint_redeploy_nonce_on_a_suspended_job_resumes_from_the_initial_savepoint() {
    // The operator checks SAVEPOINT_REDEPLOY before the job state: resuming with a new
    // nonce starts from initialSavepointPath, not from the suspend savepoint.
    let path = "s3://flink-state/savepoints/orders/savepoint-0badc0-ffee00112233";
    let before = App::new("orders", "savepoint").state("suspended");
    let after = App::new("orders", "savepoint")
        .job_field("initialSavepointPath", path)
        .job_field("savepointRedeployNonce", "1");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "savepoint-redeploy",
        &format!("resume from savepoint {path}"),
        json!({"type": "resume", "restore": {"from": "path", "path": path}}),
    );
    assert_eq!(
        strings(&r["warnings"]),
        vec![format!(
            "savepoint redeploy: the job resumes from {path}, not from the state it was suspended with"
        )]
    );
}

#[test]
fn savepoint_redeploy_nonce_without_initial_savepoint_path_is_an_error() {
    let before = App::new("orders", "savepoint");
    let after = before.clone().job_field("savepointRedeployNonce", "1");
    let (repo, a, b) = history(
        &[("orders.yaml", before.yaml())],
        &[("orders.yaml", after.yaml())],
    );
    let p = plan(&repo, &a, &b, &[]);
    let r = p.only();
    assert_eq!(r["change"], "savepoint-redeploy");
    assert_detail(r, json!({"type": "hold", "state": {"from": "running"}}));
    let errors = r["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["field"], "spec.job.savepointRedeployNonce");
    assert_eq!(errors[0]["file"], "orders.yaml");
    let line = after
        .yaml()
        .lines()
        .position(|l| l.contains("savepointRedeployNonce"))
        .expect("line") as u64
        + 1;
    assert_eq!(errors[0]["line"], line);
    assert!(errors[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("needs spec.job.initialSavepointPath")));
    assert_eq!(p.code, 1);
    let d = plan(&repo, &a, &b, &["--detailed-exitcode"]);
    assert_eq!(d.code, 1);
}

// ---------------------------------------------------------------------------------------
// Scale and ignore
// ---------------------------------------------------------------------------------------

#[test]
fn parallelism_change_in_native_mode_upgrades() {
    let before = App::new("orders", "savepoint");
    let after = before.clone().parallelism(8);
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
    assert_eq!(
        r["fields"],
        json!([{"path": "spec.job.parallelism", "class": "upgrade", "old": "2", "new": "8"}])
    );
}

#[test]
fn parallelism_change_in_standalone_reactive_mode_is_an_upgrade_here() {
    // The operator scales the TaskManager Deployment of a reactive standalone cluster; this
    // agent does not scale TaskManagers in place yet, and the plan says what it does.
    let mut before = App::new("orders", "savepoint").conf("scheduler-mode", "reactive");
    before.mode = Some("standalone".into());
    let after = before.clone().parallelism(6);
    let p = plan_app_change(&before, &after);
    let r = p.only();
    assert_action(
        r,
        "scale",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
    assert_eq!(
        r["fields"],
        json!([{"path": "spec.job.parallelism", "class": "scale", "old": "2", "new": "6"}])
    );
    // Standalone without reactive scheduling: the scale change is a full upgrade.
    let mut plain = App::new("orders", "savepoint");
    plain.mode = Some("standalone".into());
    let r = plan_app_change(&plain, &plain.clone().parallelism(6))
        .only()
        .clone();
    assert_action(
        &r,
        "scale",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
}

#[test]
fn operator_option_change_is_ignored() {
    let before = App::new("orders", "savepoint");
    let after = before
        .clone()
        .conf("kubernetes.operator.periodic.savepoint.interval", "6h");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(&r, "ignore", "no restart", json!({"type": "no-restart"}));
    assert_eq!(
        r["fields"][0]["path"],
        "spec.flinkConfiguration[kubernetes.operator.periodic.savepoint.interval]"
    );
    assert_eq!(r["fields"][0]["class"], "ignore");
}

// ---------------------------------------------------------------------------------------
// Session clusters and jobs
// ---------------------------------------------------------------------------------------

fn session_files(cluster: &App, v1: &str, v2: &str) -> Vec<(&'static str, String)> {
    vec![
        ("session/cluster.yaml", cluster.yaml()),
        ("session/ingest.yaml", session_job("ingest", "shared", v1)),
        ("session/enrich.yaml", session_job("enrich", "shared", v2)),
    ]
}

#[test]
fn session_cluster_change_redeploys_it_and_names_its_session_jobs() {
    let cluster = App::session("shared");
    let changed = cluster
        .clone()
        .conf("taskmanager.memory.managed.fraction", "0.2");
    let p = plan_history(
        &session_files(&cluster, "1.0", "1.0"),
        &session_files(&changed, "1.0", "1.0"),
    );
    let r = p.resource("shared");
    assert_action(
        r,
        "upgrade",
        "redeploy the session cluster; stops session jobs enrich, ingest (each suspended with its upgrade mode, then resumed)",
        json!({"type": "redeploy-session-cluster", "sessionJobs": ["enrich", "ingest"]}),
    );
    assert_warns(
        r,
        "redeploying this session cluster stops every session job on it: enrich, ingest",
    );
    // Each session job is listed with what the redeploy does to it: the agent stops it
    // with its own upgrade mode and resumes it on the new cluster.
    for job in ["enrich", "ingest"] {
        let j = p.resource(job);
        assert_eq!(j["change"], "unchanged", "{j:#}");
        assert_eq!(j["actionDetail"]["type"], "upgrade", "{j:#}");
        assert_warns(j, "its session cluster is redeployed by this change");
        let steps = strings(&j["steps"]);
        assert!(
            steps
                .first()
                .is_some_and(|s| s.starts_with("stop the job") || s.starts_with("cancel the job")),
            "{steps:?}"
        );
    }
    assert_eq!(
        p.json["summary"]["unchanged"], 2,
        "listed, and counted unchanged"
    );
}

#[test]
fn session_job_upgrade_lists_only_that_job() {
    let cluster = App::session("shared");
    let p = plan_history(
        &session_files(&cluster, "1.0", "1.0"),
        &session_files(&cluster, "1.1", "1.0"),
    );
    let r = p.only();
    assert_eq!(r["kind"], "FlinkSessionJob");
    assert_eq!(r["name"], "ingest");
    assert_eq!(r["file"], "session/ingest.yaml");
    assert_action(
        r,
        "upgrade",
        "restart without state",
        json!({"type": "upgrade", "mode": "stateless"}),
    );
    assert_warns(r, "jarURI changes while upgradeMode is stateless");
    assert_eq!(p.names(), vec!["ingest"]);
    assert_eq!(p.json["summary"]["unchanged"], 2);
}

// ---------------------------------------------------------------------------------------
// Invalid heads
// ---------------------------------------------------------------------------------------

#[test]
fn invalid_head_holds_with_file_and_line_and_exits_1() {
    let before = App::new("orders", "savepoint");
    let mut after = before.clone().parallelism(4);
    after.job_mut().upgrade_mode = "savepiont".into();
    let (repo, a, b) = history(
        &[("apps/orders.yaml", before.yaml())],
        &[("apps/orders.yaml", after.yaml())],
    );
    let p = plan(&repo, &a, &b, &[]);
    let r = p.only();
    assert_eq!(
        r["action"],
        "none: the manifest is invalid; the last good deployment keeps running"
    );
    assert_detail(r, json!({"type": "hold", "state": {"from": "running"}}));
    let errors = r["errors"].as_array().expect("errors");
    assert!(!errors.is_empty());
    let e = &errors[0];
    let line = after
        .yaml()
        .lines()
        .position(|l| l.contains("upgradeMode: savepiont"))
        .expect("line") as u64
        + 1;
    assert_eq!(e["file"], "apps/orders.yaml");
    assert_eq!(e["line"], line);
    assert_eq!(e["field"], "spec.job.upgradeMode");
    assert!(e["message"]
        .as_str()
        .is_some_and(|m| m.contains("savepiont")));
    assert!(
        p.text.contains(&format!("error: apps/orders.yaml:{line}:")),
        "{}",
        p.text
    );
    assert!(p.markdown.contains(&format!(
        "- ❌ **error** `apps/orders.yaml:{line}` `spec.job.upgradeMode`"
    )));
    assert!(p
        .markdown
        .contains("| ❌ | `FlinkDeployment` team-a/orders |"));
    assert_eq!(p.json["summary"]["invalid"], 1);
    assert_eq!(p.code, 1);
    assert_eq!(plan(&repo, &a, &b, &["--detailed-exitcode"]).code, 1);
}

#[test]
fn errors_in_unchanged_documents_point_at_their_line_at_head() {
    // Head grows the first document of a file; the last one, unchanged but invalid, moves
    // down. Its error must name the line it stands on at head.
    let first = App::new("orders", "savepoint");
    let mut grown = first.clone().job_field("savepointTriggerNonce", "3");
    grown.restart_nonce = Some(1);
    let middle = App::new("billing", "last-state");
    let mut bad = App::new("clicks", "stateless");
    bad.job_mut().upgrade_mode = "statless".into();
    let join = |docs: &[String]| docs.join("---\n");
    let base_text = join(&[first.yaml(), middle.yaml(), bad.yaml()]);
    let head_text = join(&[grown.yaml(), middle.yaml(), bad.yaml()]);
    let (repo, a, b) = history(
        &[("apps.yaml", base_text)],
        &[("apps.yaml", head_text.clone())],
    );
    let p = plan(&repo, &a, &b, &[]);
    assert_eq!(p.names(), vec!["clicks", "orders"]);
    let line = head_text
        .lines()
        .position(|l| l.contains("upgradeMode: statless"))
        .expect("line") as u64
        + 1;
    let e = &p.resource("clicks")["errors"][0];
    assert_eq!(
        (e["file"].as_str(), e["line"].as_u64()),
        (Some("apps.yaml"), Some(line))
    );
    assert_eq!(
        p.resource("clicks")["action"],
        "none: the manifest is invalid; the last good deployment keeps running"
    );
    assert_action(
        p.resource("orders"),
        "upgrade",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
    assert_eq!(p.code, 1);
}

#[test]
fn yaml_syntax_error_at_head_does_not_remove_its_resources() {
    let orders = App::new("orders", "savepoint");
    let billing = App::new("billing", "last-state");
    let both = format!("{}---\n{}", orders.yaml(), billing.yaml());
    // An unclosed flow mapping halfway through the file.
    let broken = both.replacen("  serviceAccount: flink\n", "  serviceAccount: {flink\n", 1);
    let other = App::new("clicks", "stateless");
    let (repo, a, b) = history(
        &[("apps.yaml", both), ("clicks.yaml", other.yaml())],
        &[("apps.yaml", broken), ("clicks.yaml", other.yaml())],
    );
    let p = plan(&repo, &a, &b, &[]);
    assert_eq!(p.names(), vec!["billing", "orders"]);
    for r in p.resources() {
        assert_ne!(r["change"], "removed", "{r:#}");
        assert_eq!(r["change"], "unchanged");
        assert_detail(r, json!({"type": "hold", "state": {"from": "running"}}));
        assert_eq!(
            r["action"],
            "none: the manifest is invalid; the last good deployment keeps running"
        );
        assert_warns(
            r,
            "apps.yaml could not be read at head; this resource is kept as it is until the file is fixed",
        );
    }
    assert_eq!(p.json["summary"]["removed"], 0);
    let errors = p.json["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["file"], "apps.yaml");
    assert!(errors[0]["line"].as_u64().is_some_and(|l| l >= 9));
    assert!(errors[0]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("YAML syntax error")));
    assert!(p.text.contains("error: apps.yaml:"), "{}", p.text);
    assert!(p.markdown.contains("#### Errors"));
    assert!(
        p.text
            .contains("0 to add, 0 to change, 0 to remove, 3 unchanged; invalid: 0 resource(s), 1 other error(s)"),
        "{}",
        p.text
    );
    assert_eq!(p.code, 1);
    assert_eq!(plan(&repo, &a, &b, &["--detailed-exitcode"]).code, 1);
}

#[test]
fn unreadable_file_at_base_warns_that_added_resources_may_exist() {
    let orders = App::new("orders", "savepoint");
    let broken =
        orders
            .yaml()
            .replacen("  serviceAccount: flink\n", "  serviceAccount: [flink\n", 1);
    let p = plan_history(
        &[("orders.yaml", broken)],
        &[("orders.yaml", orders.yaml())],
    );
    let r = p.only();
    assert_eq!(r["change"], "added");
    assert_warns(
        r,
        "orders.yaml could not be read at base: this resource may already be deployed from an earlier revision",
    );
    assert_eq!(p.code, 0);
}

// ---------------------------------------------------------------------------------------
// Exit codes
// ---------------------------------------------------------------------------------------

#[test]
fn no_changes_exit_0_with_and_without_detailed_exitcode() {
    let apps = [
        App::new("orders", "savepoint"),
        App::new("clicks", "stateless"),
    ];
    let text: String = apps.iter().map(|a| a.yaml() + "---\n").collect();
    // Same specs, written differently: a comment, and flinkVersion moved down.
    let reformatted = format!("# owned by team-a\n{text}").replace(
        "  flinkVersion: v1_20\n  serviceAccount: flink\n",
        "  serviceAccount: flink\n  flinkVersion: v1_20\n",
    );
    let (repo, a, b) = history(&[("apps.yaml", text)], &[("apps.yaml", reformatted)]);
    for (base, head) in [(a.as_str(), b.as_str()), (b.as_str(), b.as_str())] {
        let p = plan(&repo, base, head, &[]);
        assert!(p.resources().is_empty(), "{}", p.text);
        assert_eq!(p.json["summary"]["unchanged"], 2);
        assert!(
            p.text.contains("No changes. 2 resource(s) unchanged."),
            "{}",
            p.text
        );
        assert!(p
            .markdown
            .contains("0 to add, 0 to change, 0 to remove, 2 unchanged"));
        assert_eq!(p.code, 0, "{}", p.stderr);
        assert_eq!(plan(&repo, base, head, &["--detailed-exitcode"]).code, 0);
    }
}

#[test]
fn changes_exit_0_or_2_with_detailed_exitcode() {
    let before = App::new("orders", "savepoint");
    let after = before.clone().parallelism(3);
    let (repo, a, b) = history(&[("o.yaml", before.yaml())], &[("o.yaml", after.yaml())]);
    assert_eq!(plan(&repo, &a, &b, &[]).code, 0);
    assert_eq!(plan(&repo, &a, &b, &["--detailed-exitcode"]).code, 2);
    // Branch names work as revisions too.
    repo.git(&["branch", "base-branch", &a]);
    let p = plan(&repo, "base-branch", "main", &["--detailed-exitcode"]);
    assert_eq!(p.code, 2);
    assert!(p.json["base"]
        .as_str()
        .is_some_and(|s| s == format!("base-branch@sha1:{}", &a[..7])));
}

#[test]
fn unknown_revision_exits_2_or_1_with_detailed_exitcode() {
    let (repo, a, _) = history(&[("o.yaml", App::new("orders", "savepoint").yaml())], &[]);
    for fmt in ["text", "json", "markdown"] {
        let r = run_plan(repo.path(), ".", &a, "no-such-branch", &[], fmt);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert!(
            r.stderr.contains("revision \"no-such-branch\" not found"),
            "{}",
            r.stderr
        );
        let r = run_plan(
            repo.path(),
            ".",
            "no-such-branch",
            &a,
            &["--detailed-exitcode"],
            fmt,
        );
        assert_eq!(r.code, 1, "{}", r.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// --path
// ---------------------------------------------------------------------------------------

#[test]
fn path_restricts_the_plan_to_a_folder() {
    let a1 = App::new("orders", "savepoint");
    let mut b1 = App::new("orders", "savepoint");
    b1.namespace = "team-b".into();
    let (repo, a, b) = history(
        &[
            ("team-a/orders.yaml", a1.yaml()),
            ("team-b/orders.yaml", b1.yaml()),
        ],
        &[
            ("team-a/orders.yaml", a1.clone().parallelism(4).yaml()),
            ("team-b/orders.yaml", b1.clone().parallelism(4).yaml()),
        ],
    );
    let all = plan(&repo, &a, &b, &[]);
    assert_eq!(all.resources().len(), 2);
    for path in ["team-b", "team-b/", "/team-b"] {
        let p = plan(&repo, &a, &b, &["--path", path]);
        let r = p.only();
        assert_eq!(r["namespace"], "team-b");
        assert_eq!(r["file"], "team-b/orders.yaml");
    }
    let missing = run_plan(repo.path(), ".", &a, &b, &["--path", "team-c"], "json");
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("team-c"), "{}", missing.stderr);
}

#[test]
fn path_that_appears_or_disappears_is_planned_as_added_or_removed() {
    let orders = App::new("orders", "savepoint");
    let repo = TempRepo::new();
    repo.write("README.md", "manifests live in flink/\n");
    let a = repo.commit("empty");
    repo.write("flink/orders.yaml", &orders.yaml());
    let b = repo.commit("add flink/");
    repo.remove("flink/orders.yaml");
    let c = repo.commit("remove flink/");

    let p = plan(&repo, &a, &b, &["--path", "flink"]);
    assert_eq!(p.only()["change"], "added");
    assert_eq!(p.code, 0, "{}", p.stderr);
    let p = plan(&repo, &b, &c, &["--path", "flink"]);
    assert_eq!(p.only()["change"], "removed");
    assert_eq!(p.only()["action"], "delete after a final savepoint");
    // Missing at both revisions: nothing to plan, an error.
    let r = run_plan(repo.path(), ".", &a, &c, &["--path", "flink"], "json");
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("flink"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------
// Remote repositories
// ---------------------------------------------------------------------------------------

/// A history with one change, cloned bare into `<tmp>/repo.git`.
fn bare_history() -> (TempRepo, tempfile::TempDir, String, String) {
    let before = App::new("orders", "savepoint");
    let after = before
        .clone()
        .jar("local:///opt/flink/usrlib/orders-1.1.0.jar");
    let (repo, a, b) = history(&[("o.yaml", before.yaml())], &[("o.yaml", after.yaml())]);
    repo.git(&["tag", "v1", &a]);
    let served = tempfile::tempdir().expect("tempdir");
    let src = repo.path().display().to_string();
    let dst = served.path().join("repo.git").display().to_string();
    git(served.path(), &["clone", "-q", "--bare", &src, &dst]);
    (repo, served, a, b)
}

fn assert_remote_plan(p: &Planned) {
    assert_eq!(p.code, 0, "{}", p.stderr);
    assert_action(
        p.only(),
        "upgrade",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint"}),
    );
}

#[test]
fn plans_a_bare_repository_over_a_file_url() {
    let (_repo, served, a, b) = bare_history();
    let url = format!("file://{}", served.path().join("repo.git").display());
    let work = tempfile::tempdir().expect("tempdir");
    let p = plan_in(work.path(), &url, "v1", "main", &[]);
    assert_remote_plan(&p);
    assert!(p.json["base"]
        .as_str()
        .is_some_and(|s| s == format!("v1@sha1:{}", &a[..7])));
    assert!(p.json["head"]
        .as_str()
        .is_some_and(|s| s == format!("main@sha1:{}", &b[..7])));
    // The mirror lives in the cache folder, and a second plan reuses it.
    assert!(work.path().join(".cache-flink-gitops/git").is_dir());
    let again = plan_in(work.path(), &url, &a, &b, &["--detailed-exitcode"]);
    assert_eq!(again.code, 2);
}

#[test]
fn plans_a_repository_served_by_git_daemon() {
    let (_repo, served, a, b) = bare_history();
    let daemon = GitDaemon::start(served.path());
    let url = format!("git://127.0.0.1:{}/repo.git", daemon.port);
    let work = tempfile::tempdir().expect("tempdir");
    let p = plan_in(work.path(), &url, &a, &b, &[]);
    assert_remote_plan(&p);
    let p = plan_in(work.path(), &url, "v1", "main", &["--detailed-exitcode"]);
    assert_eq!(p.code, 2);
    assert_eq!(p.only()["name"], "orders");
    // A repository the daemon does not have: cannot run.
    let missing = format!("git://127.0.0.1:{}/nope.git", daemon.port);
    let r = run_plan(work.path(), &missing, &a, &b, &[], "json");
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("cannot fetch"), "{}", r.stderr);
    drop(daemon);
}

#[test]
fn adding_back_a_removed_job_restores_from_its_final_savepoint_on_the_status_branch() {
    let a = App::new("orders", "savepoint");
    let (repo, base, head) = history(&[], &[("apps/orders.yaml", a.yaml())]);
    // The agent's record of the earlier removal, on its status branch.
    repo.git(&["checkout", "-q", "--orphan", "flink-gitops/status"]);
    repo.git(&["rm", "-rq", "--cached", "."]);
    repo.write(
        "team-a/FlinkDeployment/orders.yaml",
        "kind: FlinkDeployment\nnamespace: team-a\nname: orders\nlifecycleState: DELETED\n\
         restorePath: file:/flink-data/savepoints/savepoint-0a1b2c-final\ndeleted: true\ngeneration: 3\n",
    );
    repo.git(&["add", "team-a/FlinkDeployment/orders.yaml"]);
    repo.git(&["commit", "-q", "-m", "orders: DELETED"]);
    repo.git(&["checkout", "-q", "-f", "main"]);
    let p = plan(&repo, &base, &head, &[]);
    let r = p.only();
    assert_action(
        r,
        "added",
        "start the job from savepoint file:/flink-data/savepoints/savepoint-0a1b2c-final",
        json!({"type": "deploy", "restore": {"from": "path", "path": "file:/flink-data/savepoints/savepoint-0a1b2c-final"}}),
    );
    assert_warns(r, "added back after a removal");
    // Without the status branch the same change starts empty.
    repo.git(&["branch", "-q", "-D", "flink-gitops/status"]);
    let p = plan(&repo, &base, &head, &[]);
    assert_eq!(p.only()["action"], "start the job without state");
}

// ---------------------------------------------------------------------------------------
// Where state comes from (issue 7, build item 3)
// ---------------------------------------------------------------------------------------

/// Writes the agent's record of `name` on the status branch of `repo` (then back on main).
fn status_record(repo: &TempRepo, name: &str, body: &str) {
    repo.git(&["checkout", "-q", "--orphan", "flink-gitops/status"]);
    repo.git(&["rm", "-rq", "--cached", "."]);
    let path = format!("team-a/FlinkDeployment/{name}.yaml");
    repo.write(&path, body);
    repo.git(&["add", &path]);
    repo.git(&["commit", "-q", "-m", &format!("{name}: status")]);
    repo.git(&["checkout", "-q", "-f", "main"]);
}

/// The `spec:` of an [`App`], indented under a record field.
fn spec_block(app: &App) -> String {
    let y = app.yaml();
    let spec = y.split_once("spec:\n").map(|(_, s)| s).unwrap_or_default();
    spec.lines().map(|l| format!("  {l}\n")).collect()
}

#[test]
fn stateless_job_switched_to_last_state_with_a_new_jar_starts_empty_and_says_so() {
    // Issue 7, input 3: the running job is stateless with no checkpoint directory (and no
    // checkpointing); one change switches to last-state, adds state.checkpoints.dir and a
    // new jar. There is no checkpoint: the new version starts empty.
    let before = App::new("orders", "stateless").without_conf("state.checkpoints.dir");
    let after = App::new("orders", "last-state").jar("local:///opt/flink/usrlib/orders-2.0.0.jar");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "cancel and restart without state: there is no checkpoint or savepoint to restore",
        json!({"type": "upgrade", "mode": "last-state", "state": {"from": "empty"}}),
    );
    assert_warns(
        &r,
        "upgradeMode is last-state, but the running job has no checkpoint: it runs stateless without execution.checkpointing.interval",
    );
    assert_warns(&r, "the new version starts without state");
    assert_warns(&r, "savepointTriggerNonce");
    assert_warns(&r, "savepointRedeployNonce");
    // The same switch from a stateless job that checkpoints into a directory restores its
    // latest checkpoint, with nothing to warn about state.
    let checkpointing =
        App::new("orders", "stateless").conf("execution.checkpointing.interval", "30 s");
    let after = App::new("orders", "last-state")
        .conf("execution.checkpointing.interval", "30 s")
        .jar("local:///opt/flink/usrlib/orders-2.0.0.jar");
    let r = plan_app_change(&checkpointing, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "restart from the latest checkpoint",
        json!({"type": "upgrade", "mode": "last-state", "state": {"from": "latest-checkpoint"}}),
    );
    assert_no_warnings(&r);
}

#[test]
fn switch_to_savepoint_mode_from_a_job_without_a_savepoint_directory_warns() {
    let before = App::new("orders", "last-state").without_conf("state.savepoints.dir");
    let after = App::new("orders", "savepoint").jar("local:///opt/flink/usrlib/orders-2.0.0.jar");
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "stop with savepoint and restart from it",
        json!({"type": "upgrade", "mode": "savepoint", "state": {"from": "upgrade-savepoint"}}),
    );
    assert_warns(&r, "the running job has no savepoint directory");
    assert_warns(
        &r,
        "Set the savepoint directory in a change of its own first",
    );
}

#[test]
fn job_added_suspended_and_started_later_starts_from_initial_savepoint_path() {
    let path = "s3://flink-state/savepoints/orders/savepoint-1a2b3c-4d5e6f7a8b9c";
    let suspended = App::new("orders", "last-state")
        .state("suspended")
        .job_field("initialSavepointPath", path);
    let running = suspended.clone().state("running");
    let repo = TempRepo::new();
    repo.write("keep.txt", "x");
    let a = repo.commit("empty");
    repo.write("orders.yaml", &suspended.yaml());
    let b = repo.commit("add suspended");
    repo.write("orders.yaml", &running.yaml());
    let c = repo.commit("start");

    // Added suspended: nothing runs, and the plan says what a later start will read.
    let p = plan(&repo, &a, &b, &[]);
    let r = p.only();
    assert_action(
        r,
        "added",
        "record it suspended; nothing starts",
        json!({"type": "create-suspended", "state": {"from": "no-job"}}),
    );
    assert_warns(r, &format!("it starts from initialSavepointPath ({path})"));

    // Started, with the agent's record of the suspended spec (it never ran): its first
    // start, from initialSavepointPath, as the operator does.
    status_record(
        &repo,
        "orders",
        &format!(
            "kind: FlinkDeployment\nnamespace: team-a\nname: orders\nlifecycleState: SUSPENDED\ngeneration: 1\nlastReconciledSpec:\n{}",
            spec_block(&suspended)
        ),
    );
    let p = plan(&repo, &b, &c, &[]);
    let r = p.only();
    assert_eq!(r["change"], "upgrade", "{r:#}");
    assert_eq!(
        r["action"],
        format!("resume from savepoint {path}"),
        "{r:#}"
    );
    assert_eq!(r["actionDetail"]["type"], "resume", "{r:#}");
    assert_eq!(r["actionDetail"]["restore"]["path"], path, "{r:#}");

    // Without the status branch the plan takes base to have run, and says so.
    repo.git(&["branch", "-q", "-D", "flink-gitops/status"]);
    let p = plan(&repo, &b, &c, &[]);
    let r = p.only();
    assert_action(
        r,
        "upgrade",
        "resume from the latest checkpoint",
        json!({"type": "resume", "restore": {"from": "latest-checkpoint"}, "state": {"from": "latest-checkpoint"}}),
    );
    assert_warns(
        r,
        &format!("if it never ran (it was added suspended), it starts from initialSavepointPath ({path})"),
    );
}

#[test]
fn rename_is_named_with_how_to_carry_the_state_over() {
    let old = App::new("orders", "savepoint");
    let mut new = old.clone();
    new.name = "orders-v2".into();
    let p = plan_history(
        &[("orders.yaml", old.yaml())],
        &[("orders.yaml", new.yaml())],
    );
    let added = p.resource("orders-v2");
    assert_eq!(added["change"], "added");
    assert_detail(
        added,
        json!({"type": "deploy", "restore": {"from": "empty"}, "state": {"from": "empty"}}),
    );
    assert_warns(
        added,
        "looks like a rename of team-a/orders (removed in this change, same job)",
    );
    assert_warns(
        added,
        "merge the removal first (it records a final savepoint, shown by `flink-gitops status`), then add orders-v2 with initialSavepointPath set to it",
    );
    let removed = p.resource("orders");
    assert_eq!(removed["change"], "removed");
    assert_detail(
        removed,
        json!({"type": "delete", "finalSavepoint": true, "mode": "savepoint", "state": {"from": "no-job"}}),
    );
    assert_warns(
        removed,
        "looks like a rename to team-a/orders-v2 (added in this change, same job)",
    );

    // A stateless job's removal keeps nothing: take a savepoint first.
    let old = App::new("orders", "stateless");
    let mut new = old.clone();
    new.name = "orders-v2".into();
    let p = plan_history(
        &[("orders.yaml", old.yaml())],
        &[("orders.yaml", new.yaml())],
    );
    assert_warns(
        p.resource("orders-v2"),
        "the removal of orders keeps none (no final savepoint). To carry the state over, first take a savepoint of orders",
    );
}

#[test]
fn flink_version_change_with_savepoint_mode_off_restores_a_checkpoint_and_warns() {
    let before = App::new("orders", "last-state").without_conf("state.savepoints.dir");
    let mut after = before.clone();
    after.flink_version = "v2_0".into();
    let r = plan_app_change(&before, &after).only().clone();
    assert_action(
        &r,
        "upgrade",
        "restart from the latest checkpoint",
        json!({"type": "upgrade", "mode": "last-state", "state": {"from": "latest-checkpoint"}}),
    );
    assert_warns(
        &r,
        "flinkVersion changes from v1_20 to v2_0: state written by one Flink version is not guaranteed to restore in another; savepoint mode is off and there is no savepoint directory, so the new version restores from the latest checkpoint",
    );
}
