//! Which operator release's rules apply: the `--operator-version` flag, its environment
//! variable and `operatorVersion` in the repository's `.flink-gitops.yaml`, for `validate`
//! (a folder and a Git revision) and `plan` (head's settings); `stricterRules`; and issue
//! 7's input judged as each release judges it.

use crate::harness::{self, Run, TempRepo};

/// An application on Flink 2.1: operator 1.13 and newer know `v2_1`, 1.12 does not.
const APP_V2_1: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: orders\nspec:\n  flinkVersion: v2_1\n  serviceAccount: flink\n  jobManager: {resource: {memory: 1g}}\n  taskManager: {resource: {memory: 1g}}\n  job:\n    jarURI: local:///opt/flink/usrlib/job.jar\n    parallelism: 2\n";

const SETTINGS_1_12: &str =
    "# the operator this repository is deployed by\noperatorVersion: \"1.12\"\n";

fn validate(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut all = vec!["validate"];
    all.extend_from_slice(args);
    let target = dir.to_string_lossy().into_owned();
    if !args.contains(&"--repo") {
        all.push(&target);
    }
    let run = harness::flink_gitops_env(cwd.path(), &all, env);
    drop(cwd);
    run
}

fn unknown_to_1_12(run: &Run) -> bool {
    run.stdout
        .contains("v2_1 is not a flinkVersion operator 1.12 knows")
}

#[test]
fn operator_rules_flag_env_and_repository_key() {
    let repo = TempRepo::new();
    repo.write("flink/orders.yaml", APP_V2_1);
    let dir = repo.path().join("flink");

    // No settings: the newest release, which knows v2_1.
    let run = validate(&dir, &[], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("operator 1.15 rules"), "{run:?}");

    // The repository's key, found from the folder up to the work tree's root.
    repo.write(".flink-gitops.yaml", SETTINGS_1_12);
    let run = validate(&dir, &[], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(unknown_to_1_12(&run), "{run:?}");
    assert!(run.stdout.contains("operator 1.12 rules"), "{run:?}");
    let json = validate(&dir, &["-o", "json"], &[]).json();
    assert_eq!(json["operatorVersion"], "1.12");

    // The flag and its environment variable win over the key; the flag over the variable.
    let run = validate(&dir, &["--operator-version", "1.13"], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("operator 1.13 rules"), "{run:?}");
    let env = [("FLINK_GITOPS_OPERATOR_VERSION", "1.13.0")];
    assert_eq!(validate(&dir, &[], &env).code, 0);
    let run = validate(&dir, &["--operator-version", "1.12"], &env);
    assert!(unknown_to_1_12(&run), "{run:?}");

    // A release flink-gitops has no rules for: the command cannot run.
    let run = validate(&dir, &["--operator-version", "1.9"], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("allowed: 1.10, 1.11, 1.12, 1.13, 1.14, 1.15"),
        "{run:?}"
    );

    // At a Git revision, the file at the root of the tree, also with --path.
    repo.commit("orders on Flink 2.1, deployed by operator 1.12");
    let path = repo.path().to_string_lossy().into_owned();
    let run = validate(
        repo.path(),
        &["--repo", &path, "--revision", "main", "--path", "flink"],
        &[],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(unknown_to_1_12(&run), "{run:?}");
}

#[test]
fn operator_rules_settings_that_cannot_be_read_are_an_error_at_their_line() {
    let repo = TempRepo::new();
    repo.write("orders.yaml", APP_V2_1);
    repo.write(".flink-gitops.yaml", "# settings\noperatorVersion: 1.10\n");
    let run = validate(repo.path(), &[], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(".flink-gitops.yaml:2:")
            && run.stdout.contains("write the release in quotes"),
        "{run:?}"
    );
    // The manifests are still validated, with the defaults.
    assert!(run.stdout.contains("operator 1.15 rules"), "{run:?}");
}

/// A key flink-gitops does not know is a warning naming it and the keys it reads (with what
/// a typo meant), never an error: other tools' keys may live in the file too. The keys it
/// knows are still read.
#[test]
fn operator_rules_unknown_settings_keys_are_warnings_that_say_what_was_meant() {
    let repo = TempRepo::new();
    repo.write("orders.yaml", APP_V2_1);
    repo.write(
        ".flink-gitops.yaml",
        "operatorVerison: \"1.12\"\nargocd:\n  syncWave: 2\n",
    );
    let run = validate(repo.path(), &[], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(
            ".flink-gitops.yaml:1:1: warning: operatorVerison: unknown key \"operatorVerison\" (did you mean \"operatorVersion\"?), ignored; flink-gitops reads operatorVersion, stricterRules, helm, drift here"
        ),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains(".flink-gitops.yaml:2:1: warning: argocd: unknown key \"argocd\", ignored"),
        "{run:?}"
    );
    // The typo was not read: the newest release's rules.
    assert!(
        run.stdout.contains("2 warning(s), operator 1.15 rules"),
        "{run:?}"
    );
    repo.write(
        ".flink-gitops.yaml",
        "operatorVersion: \"1.12\"\nargocd:\n  syncWave: 2\n",
    );
    let run = validate(repo.path(), &[], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(unknown_to_1_12(&run), "{run:?}");
    // At a revision, and in plan (head's file).
    let base = repo.commit("deployed by operator 1.12, with Argo CD's key");
    let path = repo.path().to_string_lossy().into_owned();
    let run = validate(repo.path(), &["--repo", &path, "--revision", &base], &[]);
    assert!(
        run.stdout
            .contains(".flink-gitops.yaml:2:1: warning: argocd: unknown key"),
        "{run:?}"
    );
    repo.write(
        ".flink-gitops.yaml",
        "operatorVersion: \"1.13\"\nstrictRules: warn\n",
    );
    let head = repo.commit("operator 1.13; a typo");
    let cwd = tempfile::tempdir().expect("tempdir");
    let run = harness::flink_gitops(
        cwd.path(),
        &["plan", "--repo", &path, "--base", &base, "--head", &head],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("did you mean \"stricterRules\"?"),
        "{run:?}"
    );
}

#[test]
fn operator_rules_plan_validates_head_with_heads_settings() {
    let repo = TempRepo::new();
    repo.write("orders.yaml", APP_V2_1);
    let base = repo.commit("orders");
    repo.write(".flink-gitops.yaml", SETTINGS_1_12);
    repo.write(
        "orders.yaml",
        &APP_V2_1.replace("parallelism: 2", "parallelism: 3"),
    );
    let head = repo.commit("deployed by operator 1.12; parallelism 3");
    let path = repo.path().to_string_lossy().into_owned();
    let cwd = tempfile::tempdir().expect("tempdir");
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", "--repo", &path, "--base", &base, "--head", &head];
        args.extend_from_slice(extra);
        harness::flink_gitops(cwd.path(), &args)
    };
    let run = plan(&[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(unknown_to_1_12(&run), "{run:?}");
    let run = plan(&["--operator-version", "1.15"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn operator_rules_stricter_rules_warn_accepts_what_the_operator_accepts() {
    let repo = TempRepo::new();
    // A session job without jarURI: the operator submits an empty jar and runs entryClass
    // from the session cluster's classpath; flink-gitops wants a jar.
    let text = std::fs::read_to_string(
        harness::root().join("tests/fixtures/invalid/41-session-job-without-jar.yaml"),
    )
    .expect("fixture 41");
    repo.write("session.yaml", &text);
    let run = validate(repo.path(), &[], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("flink-gitops is stricter than operator 1.15 here"),
        "{run:?}"
    );
    repo.write(".flink-gitops.yaml", "stricterRules: warn\n");
    let run = validate(repo.path(), &[], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("warning: spec.job.jarURI"), "{run:?}");
}

/// Issue 7, input 2: a last-state session job on a session cluster with a checkpoint
/// directory and interval is valid under every release from 1.10.
#[test]
fn operator_rules_last_state_session_job_is_valid_in_every_release() {
    let file = harness::root().join("tests/fixtures/valid/issue-7-session-job-last-state.yaml");
    for op in ["1.10", "1.11", "1.12", "1.13", "1.14", "1.15"] {
        let run = validate(&file, &["--operator-version", op], &[]);
        assert_eq!(run.code, 0, "operator {op}: {run:?}");
        assert!(run.stdout.contains("0 error(s)"), "operator {op}: {run:?}");
    }
}
