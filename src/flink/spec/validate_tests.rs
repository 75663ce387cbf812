//! Compiled only under #[cfg(test)], from validate.rs.
//! Unit tests of single rules, then table tests per kind of rule: each row names the
//! operator class and method it mirrors and the releases it holds for (read at the
//! release tags of apache/flink-kubernetes-operator).

use super::*;

fn set(text: &str) -> ManifestSet {
    let mut s = ManifestSet::default();
    s.add_file("t.yaml", text);
    s.validate(&Options::default());
    s
}

const APP: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: app\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  jobManager: {resource: {memory: 1g}}\n  taskManager: {resource: {memory: 1g}}\n  job:\n    jarURI: local:///job.jar\n    parallelism: 1\n";

#[test]
fn minimal_application_is_valid() {
    let s = set(APP);
    assert!(!s.has_errors(), "{:#?}", s.diagnostics);
}

#[test]
fn savepoint_mode_needs_both_dirs_under_either_name() {
    let s = set(&format!("{APP}    upgradeMode: savepoint\n"));
    let msgs: Vec<_> = s.errors().map(|d| d.message.clone()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let ok = format!("{APP}    upgradeMode: savepoint\n  flinkConfiguration:\n    execution.checkpointing.dir: file:///c\n    state.savepoints.dir: file:///s\n");
    assert!(!set(&ok).has_errors());
}

#[test]
fn a_periodic_schedule_is_checked_at_its_file_and_line() {
    let cfg = |v: &str| {
        format!("{APP}  flinkConfiguration:\n    kubernetes.operator.periodic.checkpoint.interval: \"{v}\"\n")
    };
    for ok in [
        "6h",
        "*/5 * * * * ?",
        "0 15 10 ? * 6L",
        "0 0 8 LW * ? 2030",
        "0",
    ] {
        assert!(
            !set(&cfg(ok)).has_errors(),
            "{ok}: {:#?}",
            set(&cfg(ok)).diagnostics
        );
    }
    let s = set(&cfg("0 0 * * * *"));
    let d: Vec<_> = s.errors().collect();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].file.as_str(), d[0].line), ("t.yaml", 14));
    assert!(
        d[0].message
            .contains("`?` in exactly one of day-of-month and day-of-week"),
        "{}",
        d[0].message
    );
}

fn errors(s: &ManifestSet) -> Vec<(u32, String, String)> {
    s.errors()
        .map(|d| (d.line, d.field.clone(), d.message.clone()))
        .collect()
}

const NO_RESOURCES: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: app\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n";

#[test]
fn memory_is_required_without_jobmanager_and_taskmanager_sections() {
    let e = errors(&set(NO_RESOURCES));
    let fields: Vec<&str> = e.iter().map(|(_, f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.jobManager.resource.memory",
            "spec.taskManager.resource.memory"
        ],
        "{e:?}"
    );
    assert!(
        e.iter().all(|(line, _, _)| *line == 5),
        "at the spec line: {e:?}"
    );
    // Flink options may size the processes instead; a TaskManager's task heap alone
    // does not (the operator wants managed memory with it).
    let heap_only = format!("{NO_RESOURCES}  flinkConfiguration:\n    jobmanager.memory.heap.size: 1g\n    taskmanager.memory.task.heap.size: 1g\n");
    let e = errors(&set(&heap_only));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].1, "spec.taskManager.resource.memory");
    let sized = format!("{heap_only}    taskmanager.memory.managed.size: 1g\n");
    assert!(!set(&sized).has_errors());
}

#[test]
fn a_spec_that_is_missing_is_reported_once() {
    let s = set(
        "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: app\n",
    );
    let e = errors(&s);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].1, "spec");
}

#[test]
fn session_job_rules_read_the_session_cluster_configuration() {
    let cluster = |cfg: &str| {
        format!("apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: s\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  jobManager: {{resource: {{memory: 1g}}}}\n  taskManager: {{resource: {{memory: 1g}}}}\n  flinkConfiguration:\n    state.checkpoints.dir: file:///c\n{cfg}")
    };
    let job = "---\napiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: j\nspec:\n  deploymentName: s\n  job:\n    jarURI: https://x/y.jar\n    parallelism: 1\n    upgradeMode: savepoint\n";
    // The savepoint directory set on the session cluster is enough.
    let ok = set(&format!(
        "{}{job}",
        cluster("    state.savepoints.dir: file:///s\n")
    ));
    assert!(!ok.has_errors(), "{:#?}", ok.diagnostics);
    // ... or on the session job itself.
    let own = set(&format!(
        "{}{job}  flinkConfiguration:\n    state.savepoints.dir: file:///s\n",
        cluster("")
    ));
    assert!(!own.has_errors(), "{:#?}", own.diagnostics);
    let e = errors(&set(&format!("{}{job}", cluster(""))));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].1, "spec.job.upgradeMode");
    assert!(
        e[0].2
            .contains("of this session job or of FlinkDeployment \"s\""),
        "{e:?}"
    );
}

#[test]
fn ingress_templates_as_the_operator_builds_them() {
    assert_eq!(
        ingress_url_error("{{NAME}}.{{Namespace}}.example.com", "a", "b"),
        None
    );
    assert_eq!(
        ingress_url_error("/{{namespace}}/{{name}}(/|$)(.*)", "a", "b"),
        None
    );
    assert_eq!(
        ingress_url_error("HTTPS://example.com:8443/{{name}}", "a", "b"),
        None
    );
    assert!(matches!(ingress_url_error("example.com:port", "a", "b"),
        Some(IngressProblem::Malformed(e)) if e.contains("\"port\" is not a number")));
    assert!(ingress_url_error("{{nam}}.example.com", "a", "b").is_some());
}

#[test]
fn what_the_operator_accepts_is_not_an_error() {
    // cpu 0 (a TaskManager falls back to one core per slot), ephemeralStorage 0, memory
    // in the spellings the operator cleans up.
    let text = APP.replace(
        "  taskManager: {resource: {memory: 1g}}\n",
        "  taskManager: {resource: {memory: 2048 MiB, cpu: 0, ephemeralStorage: \"0\"}}\n",
    );
    let s = set(&text);
    assert!(!s.has_errors(), "{:#?}", s.diagnostics);
    assert!(s
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Warning && d.field == "spec.taskManager.resource.cpu"));
}

#[test]
fn kubernetes_names() {
    assert!(dns_subdomain_ok("1-job.v2"));
    assert!(!dns_subdomain_ok("job..v2"));
    assert!(!dns_subdomain_ok("Job"));
    assert!(dns_label_ok("1team"));
    assert!(!dns_label_ok("-team"));
    assert!(!dns_label_ok("team.a"));
    assert!(!dns_label_ok(&"a".repeat(64)));
}

#[test]
fn session_job_needs_a_session_cluster() {
    let text = format!("{APP}---\napiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: sj\nspec:\n  deploymentName: app\n  job:\n    jarURI: https://x/y.jar\n    parallelism: 1\n");
    let s = set(&text);
    let e: Vec<_> = s.errors().collect();
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].message.contains("application cluster"));
    assert_eq!(e[0].line, 19);
}

// ---------------------------------------------------------------------------------------
// Table tests. Each row: its source (class.method, the releases it holds for, and where a
// release changed it, the commit), the operator release whose rules apply, the manifests,
// and every diagnostic of the severity under test, as (field, part of the message).
// ---------------------------------------------------------------------------------------

use OperatorVersion as Op;

/// The diagnostics a row expects: (field, part of the message).
type Expected = Vec<(&'static str, &'static str)>;
/// A row that holds for one release: source, release, manifests, expected diagnostics.
type VersionRow = (&'static str, Op, String, Expected);
/// Expected diagnostics of a transition: (severity, field, part of the message).
type ExpectedWithSeverity = Vec<(Severity, &'static str, &'static str)>;

/// A FlinkDeployment application, written field by field.
#[derive(Clone)]
struct App {
    flink_version: &'static str,
    config: Vec<(&'static str, &'static str)>,
    /// Extra lines under `spec:` (two spaces in).
    spec: Vec<&'static str>,
    /// Extra lines under `job:` (four spaces in).
    job: Vec<&'static str>,
    jar: &'static str,
    session: bool,
}

fn app() -> App {
    App {
        flink_version: "v1_20",
        config: Vec::new(),
        spec: Vec::new(),
        job: Vec::new(),
        jar: "local:///opt/flink/usrlib/job.jar",
        session: false,
    }
}

impl App {
    fn cfg(mut self, key: &'static str, value: &'static str) -> App {
        self.config.push((key, value));
        self
    }
    fn spec(mut self, line: &'static str) -> App {
        self.spec.push(line);
        self
    }
    fn job(mut self, line: &'static str) -> App {
        self.job.push(line);
        self
    }
    fn version(mut self, v: &'static str) -> App {
        self.flink_version = v;
        self
    }
    fn jar(mut self, uri: &'static str) -> App {
        self.jar = uri;
        self
    }
    /// The same as a session cluster named `session` (no job).
    fn session(mut self) -> App {
        self.session = true;
        self
    }
    fn yaml(&self) -> String {
        let name = if self.session { "session" } else { "app" };
        let mut y = format!("apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: {name}\nspec:\n  flinkVersion: {}\n  serviceAccount: flink\n  jobManager: {{resource: {{memory: 1g}}}}\n  taskManager: {{resource: {{memory: 1g}}}}\n", self.flink_version);
        for l in &self.spec {
            y.push_str(&format!("  {l}\n"));
        }
        if !self.config.is_empty() {
            y.push_str("  flinkConfiguration:\n");
            for (k, v) in &self.config {
                y.push_str(&format!("    {k}: {v:?}\n"));
            }
        }
        if !self.session {
            y.push_str(&format!(
                "  job:\n    jarURI: {}\n    parallelism: 1\n",
                self.jar
            ));
            for l in &self.job {
                y.push_str(&format!("    {l}\n"));
            }
        }
        y
    }
}

/// A FlinkSessionJob `job` in the session cluster `session`; `job` lines go under `job:`
/// (the jarURI among them, if any), `config` under its own flinkConfiguration.
fn session_job(job: &[&str], config: &[(&str, &str)]) -> String {
    let mut y = "---\napiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: job\nspec:\n  deploymentName: session\n".to_string();
    if !config.is_empty() {
        y.push_str("  flinkConfiguration:\n");
        for (k, v) in config {
            y.push_str(&format!("    {k}: {v:?}\n"));
        }
    }
    y.push_str("  job:\n    parallelism: 1\n");
    for l in job {
        y.push_str(&format!("    {l}\n"));
    }
    y
}

const HTTPS_JAR: &str = "jarURI: https://repo1.maven.org/maven2/org/apache/flink/flink-examples-streaming/1.20.0/flink-examples-streaming-1.20.0-TopSpeedWindowing.jar";

fn validated(text: &str, op: Op, stricter_rules: StricterRules) -> ManifestSet {
    let mut s = ManifestSet::default();
    s.add_file("t.yaml", text);
    s.validate(&Options {
        operator_version: op,
        stricter_rules,
        ..Options::default()
    });
    s
}

fn of(s: &ManifestSet, severity: Severity) -> Vec<&Diagnostic> {
    s.diagnostics
        .iter()
        .filter(|d| d.severity == severity)
        .collect()
}

/// Checks that the diagnostics of `severity` are exactly `want` (field, part of message).
fn assert_row(source: &str, op: Op, s: &ManifestSet, severity: Severity, want: &[(&str, &str)]) {
    let got = of(s, severity);
    let ok = got.len() == want.len()
        && want.iter().all(|(field, part)| {
            got.iter()
                .any(|d| d.field == *field && d.message.contains(part))
        });
    assert!(
        ok,
        "row [{source}] under operator {op}: expected {severity}s {want:?}, got:\n{}",
        got.iter()
            .map(|d| format!("  {}: {}", d.field, d.message))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Rules that differ between releases: each row holds for the one release it names.
#[test]
fn table_operator_version_rules() {
    let cp_last_state = app().job("upgradeMode: last-state");
    let session_last_state = |cluster: App| {
        format!(
            "{}{}",
            cluster.session().yaml(),
            session_job(&[HTTPS_JAR, "upgradeMode: last-state"], &[])
        )
    };
    #[rustfmt::skip]
    let rows: Vec<VersionRow> = vec![
        // spec.flinkVersion: the CRD lists the FlinkVersion enum of each release.
        ("FlinkVersion enum, release-1.10.0: v1_13..v1_20", Op::V1_10, app().version("v2_0").yaml(),
            vec![("spec.flinkVersion", "v2_0 is not a flinkVersion operator 1.10 knows (its CRD allows v1_13 to v1_20)")]),
        ("FlinkVersion enum, release-1.11.0: + v2_0 (FLINK-37236)", Op::V1_11, app().version("v2_0").yaml(), vec![]),
        ("FlinkVersion enum, release-1.12.0: v2_1 not yet", Op::V1_12, app().version("v2_1").yaml(),
            vec![("spec.flinkVersion", "operator 1.13 and newer know it")]),
        ("FlinkVersion enum, release-1.13.0: + v2_1 (FLINK-38147), v2_2", Op::V1_13, app().version("v2_2").yaml(), vec![]),
        ("FlinkVersion enum, release-1.14.0: v2_3 not yet", Op::V1_14, app().version("v2_3").yaml(),
            vec![("spec.flinkVersion", "its CRD allows v1_13 to v2_2")]),
        ("FlinkVersion enum, release-1.15.0: + v2_3, v2_4 (FLINK-39177)", Op::V1_15, app().version("v2_3").yaml(), vec![]),
        // DefaultValidator.validateJobSpec reads CheckpointingOptions of the Flink it is built with:
        // 1.19.1 for release-1.10.0 (no execution.checkpointing.dir), 1.20.1 from release-1.11.0.
        ("DefaultValidator.validateJobSpec, 1.10 (Flink 1.19.1): execution.checkpointing.dir unread", Op::V1_10,
            cp_last_state.clone().cfg("execution.checkpointing.dir", "s3://b/cp").yaml(),
            vec![("spec.job.upgradeMode", "set state.checkpoints.dir or state.backend.fs.checkpointdir in spec.flinkConfiguration (operator 1.10 is built with Flink 1.19, which does not read execution.checkpointing.dir)")]),
        ("DefaultValidator.validateJobSpec, 1.11+ (Flink 1.20.1): execution.checkpointing.dir read", Op::V1_11,
            cp_last_state.clone().cfg("execution.checkpointing.dir", "s3://b/cp").yaml(), vec![]),
        ("DefaultValidator.validateJobSpec, 1.10: state.checkpoints.dir read", Op::V1_10,
            cp_last_state.clone().cfg("state.checkpoints.dir", "s3://b/cp").yaml(), vec![]),
        ("DefaultValidator.validateJobSpec, 1.10: execution.checkpointing.savepoint-dir unread", Op::V1_10,
            app().job("upgradeMode: savepoint").cfg("state.checkpoints.dir", "s3://b/cp").cfg("execution.checkpointing.savepoint-dir", "s3://b/sp").yaml(),
            vec![("spec.job.upgradeMode", "does not read execution.checkpointing.savepoint-dir")]),
        ("DefaultValidator.validateJobSpec, 1.15: execution.checkpointing.savepoint-dir read", Op::V1_15,
            app().job("upgradeMode: savepoint").cfg("state.checkpoints.dir", "s3://b/cp").cfg("execution.checkpointing.savepoint-dir", "s3://b/sp").yaml(), vec![]),
        // The input: last-state session jobs, accepted since 1.10 (FLINK-35414, d1827a4d,
        // removed DefaultValidator.validateNotLastStateUpgradeMode); validateJobSpec still wants
        // the checkpoint directory, from the session cluster's or the job's configuration.
        ("DefaultValidator.validateSessionJobOnly, 1.10: last-state accepted", Op::V1_10,
            session_last_state(app().cfg("state.checkpoints.dir", "s3://b/cp").cfg("execution.checkpointing.interval", "10s")), vec![]),
        ("DefaultValidator.validateSessionJobOnly, 1.15: last-state accepted", Op::V1_15,
            session_last_state(app().cfg("state.checkpoints.dir", "s3://b/cp").cfg("execution.checkpointing.interval", "10s")), vec![]),
        ("DefaultValidator.validateSessionJobWithCluster -> validateJobSpec, 1.10-1.15", Op::V1_12,
            session_last_state(app().cfg("execution.checkpointing.interval", "10s")),
            vec![("spec.job.upgradeMode", "upgradeMode last-state needs a checkpoint directory")]),
        ("DefaultValidator.validateSessionJobWithCluster, 1.10: the cluster's execution.checkpointing.dir unread", Op::V1_10,
            session_last_state(app().cfg("execution.checkpointing.dir", "s3://b/cp")),
            vec![("spec.job.upgradeMode", "does not read execution.checkpointing.dir")]),
        // DefaultValidator.validateSessionJobJarURI / validateJarURI: since 1.15 (add7fb3a).
        ("DefaultValidator.validateJarURI, 1.15: jarURI must include a scheme", Op::V1_15,
            format!("{}{}", app().session().yaml(), session_job(&["jarURI: artifacts.example.com/job.jar"], &[])),
            vec![("spec.job.jarURI", "which has no scheme")]),
        ("DefaultValidator.validateJarURI, 1.15: a host for http/https", Op::V1_15,
            format!("{}{}", app().session().yaml(), session_job(&["jarURI: https:///job.jar"], &[])),
            vec![("spec.job.jarURI", "which names no host")]),
    ];
    for (source, op, text, want) in rows {
        // Errors of the operator's rules stay errors when flink-gitops' own are relaxed.
        let s = validated(&text, op, StricterRules::Warn);
        assert_row(source, op, &s, Severity::Error, &want);
    }
}

/// The operator's allow-list and restricted hosts (since 1.15) are its own configuration:
/// warnings with its defaults; before 1.15 nothing.
#[test]
fn table_session_job_jar_uri_warnings() {
    let text =
        |uri: &'static str| format!("{}{}", app().session().yaml(), session_job(&[uri], &[]));
    #[rustfmt::skip]
    let rows: Vec<VersionRow> = vec![
        ("DefaultValidator.validateJarURI, 1.15: JAR_URI_ALLOWED_SCHEMES default https", Op::V1_15,
            text("jarURI: http://repo.example.com/job.jar"),
            vec![("spec.job.jarURI", "operator 1.15 refuses scheme \"http\" for a session job's jar unless its kubernetes.operator.user.artifacts.allowed-schemes lists it (default: https)")]),
        ("DefaultValidator.validateJarURI, 1.15: local is not in the default list", Op::V1_15,
            text("jarURI: local:///opt/flink/usrlib/job.jar"),
            vec![("spec.job.jarURI", "refuses scheme \"local\"")]),
        ("DefaultValidator.validateJarURI, 1.15: JAR_URI_DISALLOW_RESTRICTED_HOSTS default true", Op::V1_15,
            text("jarURI: https://127.0.0.1:8000/job.jar"),
            vec![("spec.job.jarURI", "refuses a session job's jar from \"127.0.0.1\"")]),
        ("DefaultValidator.validateJarURI, 1.15: site-local", Op::V1_15,
            text("jarURI: https://10.1.2.3/job.jar"), vec![("spec.job.jarURI", "\"10.1.2.3\"")]),
        ("DefaultValidator.validateJarURI, 1.15: a public host", Op::V1_15, text(HTTPS_JAR), vec![]),
        ("DefaultValidator, 1.14: no jarURI check", Op::V1_14, text("jarURI: http://127.0.0.1/job.jar"), vec![]),
    ];
    for (source, op, text, want) in rows {
        let s = validated(&text, op, StricterRules::Error);
        assert_row(source, op, &s, Severity::Warning, &want);
        assert_row(source, op, &s, Severity::Error, &[]);
    }
}

/// Rules the same in every release from 1.10 to 1.15: each row is checked under each.
#[test]
fn table_operator_rules_of_every_release() {
    let session = app().session().yaml();
    #[rustfmt::skip]
    let rows: Vec<(&str, String, Expected)> = vec![
        ("DefaultValidator.validateDeploymentName", app().yaml().replace("name: app", "name: App"),
            vec![("metadata.name", "allowed: lowercase letters")]),
        ("DefaultValidator.validateDeploymentName: 45 characters", app().yaml().replace("name: app", &format!("name: {}", "a".repeat(46))),
            vec![("metadata.name", "at most 45 characters")]),
        ("DefaultValidator.validateFlinkVersion: must be defined", app().yaml().replace("  flinkVersion: v1_20\n", ""),
            vec![("spec.flinkVersion", "spec.flinkVersion is required")]),
        ("DefaultValidator.validateFlinkVersion: FlinkVersion.isSupported", app().version("v1_14").yaml(),
            vec![("spec.flinkVersion", "v1_14 is not supported (older than 1.15)")]),
        ("DefaultValidator.validateFlinkDeploymentConfig: FORBIDDEN_CONF_KEYS", app().cfg("kubernetes.cluster-id", "x").yaml(),
            vec![("spec.flinkConfiguration[kubernetes.cluster-id]", "may not be set")]),
        // The operator refuses rollback without HA; flink-gitops rolls back without it
        // (a warning, see rollback_without_ha_is_a_warning).
        ("DefaultValidator.validateFlinkDeploymentConfig: rollback without HA is not an error here", app().cfg("kubernetes.operator.deployment.rollback.enabled", "true").yaml(),
            vec![]),
        ("DefaultValidator.validateFlinkDeploymentConfig: HA_MODE's deprecated key recovery.mode (Flink 1.19/1.20)",
            app().cfg("kubernetes.operator.deployment.rollback.enabled", "true").cfg("recovery.mode", "zookeeper").yaml(), vec![]),
        ("DefaultValidator.validateFlinkDeploymentConfig: HA type NONE is no HA (a warning here)",
            app().cfg("kubernetes.operator.deployment.rollback.enabled", "true").cfg("high-availability.type", "NONE").yaml(),
            vec![]),
        ("DefaultValidator.validateFlinkDeploymentConfig: health check needs JM recovery (deprecated key)",
            app().cfg("kubernetes.operator.cluster.health-check.enabled", "true").cfg("kubernetes.operator.reconciler.jm-deployment-recovery.enabled", "false").yaml(),
            vec![("spec.flinkConfiguration[kubernetes.operator.cluster.health-check.enabled]", "jm-deployment-recovery")]),
        ("DefaultValidator.validateIngress: template must be defined", app().spec("ingress: {className: nginx}").yaml(),
            vec![("spec.ingress.template", "spec.ingress.template is required")]),
        ("DefaultValidator.validateIngress -> IngressUtils.getIngressUrl: java.net.URL", app().spec("ingress: {template: \"example.com:web/{{name}}\"}").yaml(),
            vec![("spec.ingress.template", "is not a number")]),
        ("DefaultValidator.validateLogConfig", app().spec("logConfiguration: {log4j.properties: x}").yaml(),
            vec![("spec.logConfiguration[log4j.properties]", "allowed: log4j-console.properties, logback-console.xml")]),
        ("DefaultValidator.validateJobSpec: checkpoint directory", app().job("upgradeMode: savepoint").cfg("state.savepoints.dir", "s3://b/sp").yaml(),
            vec![("spec.job.upgradeMode", "needs a checkpoint directory")]),
        ("DefaultValidator.validateJobSpec: StringUtils.isNullOrWhitespaceOnly", app().job("upgradeMode: last-state").cfg("state.checkpoints.dir", " ").yaml(),
            vec![("spec.job.upgradeMode", "needs a checkpoint directory")]),
        ("DefaultValidator.validateJobSpec: savepointTriggerNonce", app().job("savepointTriggerNonce: 1").yaml(),
            vec![("spec.job.savepointTriggerNonce", "needs a savepoint directory")]),
        ("DefaultValidator.validateJobSpec: PERIODIC_SAVEPOINT_INTERVAL present", app().cfg("kubernetes.operator.periodic.savepoint.interval", "1h").yaml(),
            vec![("spec.flinkConfiguration[kubernetes.operator.periodic.savepoint.interval]", "needs a savepoint directory")]),
        ("DefaultValidator.validateJobSpec: OPERATOR_JOB_UPGRADE_LAST_STATE_CHECKPOINT_MAX_AGE", app().cfg("kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age", "5m").yaml(),
            vec![("spec.flinkConfiguration[kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age]", "needs a savepoint directory")]),
        ("DefaultValidator.validateJobSpec: last-state needs no HA since 1.10 (FLINK-35414)", app().job("upgradeMode: last-state").cfg("state.checkpoints.dir", "s3://b/cp").yaml(), vec![]),
        ("DefaultValidator.validateJobSpec: parallelism", app().yaml().replace("parallelism: 1", "parallelism: 0"),
            vec![("spec.job.parallelism", "found 0; allowed: 1 or more")]),
        ("DefaultValidator.validateJobSpec / validateTmReplicas", app().spec("taskManager: {resource: {memory: 1g}, replicas: 0}").yaml().replace("  taskManager: {resource: {memory: 1g}}\n", ""),
            vec![("spec.taskManager.replicas", "found 0")]),
        ("DefaultValidator.validateJmMemoryConfig: JobManagerProcessUtils", app().yaml().replace("  jobManager: {resource: {memory: 1g}}\n", ""),
            vec![("spec.jobManager.resource.memory", "is missing")]),
        ("DefaultValidator.validateJmMemoryConfig: the legacy heap is interpreted (Flink 1.19/1.20)",
            app().cfg("jobmanager.heap.size", "1g").yaml().replace("  jobManager: {resource: {memory: 1g}}\n", ""), vec![]),
        ("DefaultValidator.validateTmMemoryConfig: TaskExecutorProcessUtils", app().cfg("taskmanager.memory.task.heap.size", "1g").yaml().replace("  taskManager: {resource: {memory: 1g}}\n", ""),
            vec![("spec.taskManager.resource.memory", "is missing")]),
        ("DefaultValidator.validateResources: memory", app().yaml().replace("jobManager: {resource: {memory: 1g}}", "jobManager: {resource: {memory: 2 gigs}}"),
            vec![("spec.jobManager.resource.memory", "found \"2 gigs\"")]),
        ("DefaultValidator.validateResources: ephemeral storage", app().yaml().replace("taskManager: {resource: {memory: 1g}}", "taskManager: {resource: {memory: 1g, ephemeralStorage: 10GB}}"),
            vec![("spec.taskManager.resource.ephemeralStorage", "found \"10GB\"")]),
        ("DefaultValidator.validateJmReplicas", app().yaml().replace("jobManager: {resource: {memory: 1g}}", "jobManager: {resource: {memory: 1g}, replicas: 2}"),
            vec![("spec.jobManager.replicas", "needs high availability")]),
        ("DefaultValidator.validateServiceAccount", app().yaml().replace("  serviceAccount: flink\n", ""),
            vec![("spec.serviceAccount", "spec.serviceAccount is required")]),
        ("DefaultValidator.validateSessionJobOnly -> validateDeploymentName(deploymentName)",
            format!("{session}{}", session_job(&[HTTPS_JAR], &[]).replace("deploymentName: session", "deploymentName: Session")),
            vec![("spec.deploymentName", "allowed: the name of a FlinkDeployment")]),
        ("DefaultValidator.validateJobNotEmpty",
            format!("{session}---\napiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: job\nspec:\n  deploymentName: session\n"),
            vec![("spec.job", "spec.job is required")]),
        ("DefaultValidator.validateNotApplicationCluster",
            format!("{}{}", app().yaml(), session_job(&[HTTPS_JAR], &[]).replace("deploymentName: session", "deploymentName: app")),
            vec![("spec.deploymentName", "is an application cluster")]),
        ("DefaultValidator.validateSessionJobWithCluster -> validateJobSpec: the job's own configuration",
            format!("{}{}", app().cfg("state.checkpoints.dir", "s3://b/cp").session().yaml(), session_job(&[HTTPS_JAR, "upgradeMode: savepoint"], &[("state.savepoints.dir", "s3://b/sp")])), vec![]),
    ];
    for op in Op::ALL {
        for (source, text, want) in &rows {
            let s = validated(text, op, StricterRules::Warn);
            assert_row(source, op, &s, Severity::Error, want);
        }
    }
}

/// flink-gitops' own rules: errors that say they are stricter than the operator, and
/// warnings with `stricterRules: warn`.
#[test]
fn table_stricter_rules() {
    let session = app().session().yaml();
    #[rustfmt::skip]
    let rows: Vec<(&str, String, &str, &str)> = vec![
        ("AbstractFlinkService: a session job without jarURI runs an empty jar",
            format!("{session}{}", session_job(&["entryClass: org.example.Main"], &[])), "spec.job.jarURI", "spec.job.jarURI is required"),
        ("FlinkConfigBuilder: an application's jarURI goes to Flink unchecked", app().jar("ftp://example.com/job.jar").yaml(), "spec.job.jarURI", "scheme \"ftp\" is not allowed"),
        ("FlinkConfigBuilder: an application's jarURI goes to Flink unchecked", app().jar("job.jar").yaml(), "spec.job.jarURI", "which has no scheme"),
        ("DefaultValidator before 1.15: no session job jarURI check",
            format!("{session}{}", session_job(&["jarURI: s3://bucket/job.jar"], &[])), "spec.job.jarURI", "scheme \"s3\" is not allowed"),
        ("FlinkVersion enum, release-1.15.0: v2_4 known, not run by flink-gitops", app().version("v2_4").yaml(), "spec.flinkVersion", "v2_4 is not a released Flink version known to flink-gitops"),
        ("DefaultValidator.validateServiceAccount: only null is refused", app().yaml().replace("serviceAccount: flink", "serviceAccount: \"\""), "spec.serviceAccount", "write serviceAccount: default"),
        ("AbstractFlinkResourceReconciler: initialSavepointPath used as given", app().job("initialSavepointPath: \"\"").yaml(), "spec.job.initialSavepointPath", "found an empty path"),
        ("flink-gitops' runtime: process arguments", app().job("args: [\"a\\0b\"]").yaml(), "spec.job.args[0]", "NUL"),
        ("FlinkValidator: a session job is accepted before its cluster exists",
            format!("{session}{}", session_job(&[HTTPS_JAR], &[]).replace("deploymentName: session", "deploymentName: sesion")), "spec.deploymentName", "no FlinkDeployment named \"sesion\""),
        ("IngressUtils.getIngressUrl: java.net.URL takes an empty template", app().spec("ingress: {template: \"\"}").yaml(), "spec.ingress.template", "neither host nor path"),
        ("IngressUtils.getIngressUrl: java.net.URL takes braces", app().spec("ingress: {template: \"{{nam}}.example.com\"}").yaml(), "spec.ingress.template", "placeholder left over"),
        ("DefaultValidator reads no option values", app().cfg("taskmanager.numberOfTaskSlots", "0").yaml(), "spec.flinkConfiguration[taskmanager.numberOfTaskSlots]", "a whole number, 1 or more"),
        ("SnapshotUtils.interpretAsCron: log4j's Quartz CronExpression refuses both day fields set", app().cfg("kubernetes.operator.periodic.checkpoint.interval", "0 0 * * * *").yaml(), "spec.flinkConfiguration[kubernetes.operator.periodic.checkpoint.interval]", "exactly one of day-of-month and day-of-week"),
        ("SnapshotUtils.interpretAsCron: 5 fields (Unix cron) is not Quartz", app().cfg("kubernetes.operator.periodic.checkpoint.interval", "*/5 * * * *").yaml(), "spec.flinkConfiguration[kubernetes.operator.periodic.checkpoint.interval]", "6 or 7 fields"),
        ("SnapshotUtils.interpretAsCron: L in a list", app().cfg("kubernetes.operator.periodic.checkpoint.interval", "0 0 12 L,15 * ?").yaml(), "spec.flinkConfiguration[kubernetes.operator.periodic.checkpoint.interval]", "stand alone in day-of-month"),
        ("SnapshotUtils.interpretAsInterval: neither a duration nor cron", app().cfg("kubernetes.operator.periodic.checkpoint.interval", "hourly").yaml(), "spec.flinkConfiguration[kubernetes.operator.periodic.checkpoint.interval]", "not a duration; allowed: a Flink duration"),
        ("DefaultValidator.validateFlinkDeploymentConfig: FlinkDeployments only",
            format!("{session}{}", session_job(&[HTTPS_JAR], &[("kubernetes.namespace", "other")])), "spec.flinkConfiguration[kubernetes.namespace]", "may not be set"),
    ];
    for (source, text, field, part) in rows {
        let strict = validated(&text, Op::V1_15, StricterRules::Error);
        assert_row(
            source,
            Op::V1_15,
            &strict,
            Severity::Error,
            &[(field, part)],
        );
        assert!(
            strict.errors().all(|d| d
                .message
                .contains("flink-gitops is stricter than operator 1.15 here")),
            "row [{source}]: the message must say it is stricter: {:#?}",
            strict.diagnostics
        );
        let relaxed = validated(&text, Op::V1_15, StricterRules::Warn);
        assert_row(source, Op::V1_15, &relaxed, Severity::Error, &[]);
        assert!(
            of(&relaxed, Severity::Warning)
                .iter()
                .any(|d| d.field == field && d.message.contains("`stricterRules: warn`")),
            "row [{source}]: no warning on {field} with stricterRules: warn: {:#?}",
            relaxed.diagnostics
        );
    }
}

/// AutoscalerValidator.validateAutoscalerOptions (1.14, 1.15; before that
/// DefaultValidator.validateAutoScalerFlinkConfiguration), only with the autoscaler on.
#[test]
fn table_autoscaler_rules() {
    let on = || app().cfg("job.autoscaler.enabled", "true");
    #[rustfmt::skip]
    let rows: Vec<VersionRow> = vec![
        ("validateAutoScalerFlinkConfiguration: off, nothing checked", Op::V1_15,
            app().cfg("job.autoscaler.scale-down.max-factor", "-1").yaml(), vec![]),
        ("validateNumber(MAX_SCALE_DOWN_FACTOR, 0.0), 1.10-1.15", Op::V1_10,
            on().cfg("job.autoscaler.scale-down.max-factor", "-1").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.scale-down.max-factor]", "allowed: a number, 0 or more")]),
        ("validateNumber: fallback key kubernetes.operator.job.autoscaler.*", Op::V1_15,
            app().cfg("kubernetes.operator.job.autoscaler.enabled", "true").cfg("kubernetes.operator.job.autoscaler.scale-up.max-factor", "-2").yaml(),
            vec![("spec.flinkConfiguration[kubernetes.operator.job.autoscaler.scale-up.max-factor]", "0 or more")]),
        ("validateNumber: not a double", Op::V1_15,
            on().cfg("job.autoscaler.target.utilization.boundary", "high").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.target.utilization.boundary]", "allowed: a number")]),
        ("validateNumber(TARGET_UTILIZATION, 0.0), 1.10: no upper bound", Op::V1_10,
            on().cfg("job.autoscaler.target.utilization", "1.5").yaml(), vec![]),
        ("TARGET_UTILIZATION, 1.10: utilization.target is not a key yet", Op::V1_10,
            on().cfg("job.autoscaler.utilization.target", "-1").yaml(), vec![]),
        ("validateNumber(UTILIZATION_TARGET, 0.0, 1.0), 1.11 (FLINK-36836)", Op::V1_11,
            on().cfg("job.autoscaler.utilization.target", "1.5").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.utilization.target]", "a number from 0 to 1")]),
        ("UTILIZATION_TARGET's deprecated key target.utilization, 1.11", Op::V1_11,
            on().cfg("job.autoscaler.target.utilization", "1.5").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.target.utilization]", "a number from 0 to 1")]),
        ("UTILIZATION_MAX, 1.10: not checked", Op::V1_10,
            on().cfg("job.autoscaler.utilization.max", "0.5").yaml(), vec![]),
        ("validateNumber(UTILIZATION_MAX, target, 1.0), 1.11", Op::V1_11,
            on().cfg("job.autoscaler.utilization.max", "0.5").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.utilization.max]", "a number from 0.7 to 1")]),
        ("validateNumber(UTILIZATION_MIN, 0.0, target), 1.13", Op::V1_13,
            on().cfg("job.autoscaler.utilization.target", "0.5").cfg("job.autoscaler.utilization.min", "0.6").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.utilization.min]", "a number from 0 to 0.5")]),
        ("OBSERVED_SCALABILITY_COEFFICIENT_MIN, 1.11: not checked", Op::V1_11,
            on().cfg("job.autoscaler.observed-scalability.coefficient-min", "0").yaml(), vec![]),
        ("validateNumber(OBSERVED_SCALABILITY_COEFFICIENT_MIN, 0.01, 1), 1.12 (FLINK-30571)", Op::V1_12,
            on().cfg("job.autoscaler.observed-scalability.coefficient-min", "0").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.observed-scalability.coefficient-min]", "a number from 0.01 to 1")]),
        ("AutoscalerValidator (1.14, FLINK-37126): the same checks", Op::V1_14,
            on().cfg("job.autoscaler.observed-scalability.coefficient-min", "2").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.observed-scalability.coefficient-min]", "a number from 0.01 to 1")]),
        ("CalendarUtils.validateExcludedPeriods: daily and cron", Op::V1_15,
            on().cfg("job.autoscaler.excluded.periods", "09:00-17:00;09:00-17:00 && * * * ? * MON-FRI;0 0 9-17 ? * SAT").yaml(), vec![]),
        ("CalendarUtils.validateExcludedExpression: DailyCalendar wants start before end", Op::V1_15,
            on().cfg("job.autoscaler.excluded.periods", "17:00-09:00").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.excluded.periods]", "neither a daily range nor a cron expression")]),
        ("CalendarUtils.validateExcludedExpression: two daily ranges", Op::V1_10,
            on().cfg("job.autoscaler.excluded.periods", "09:00-10:00 && 11:00-12:00").yaml(),
            vec![("spec.flinkConfiguration[job.autoscaler.excluded.periods]", "one daily range and one cron expression")]),
        ("DefaultValidator.validateSessionJobWithCluster: the session cluster's autoscaler options", Op::V1_15,
            format!("{}{}", app().cfg("job.autoscaler.enabled", "true").session().yaml(), session_job(&[HTTPS_JAR], &[("job.autoscaler.utilization.target", "2")])),
            vec![("spec.flinkConfiguration[job.autoscaler.utilization.target]", "a number from 0 to 1")]),
    ];
    for (source, op, text, want) in rows {
        let s = validated(&text, op, StricterRules::Error);
        assert_row(source, op, &s, Severity::Error, &want);
    }
}

/// DefaultValidator.validateSpecChange and the transition part of validateFlinkVersion:
/// the same in every release from 1.10 to 1.15.
#[test]
fn table_transition_rules() {
    let read = |text: &str| -> Manifest {
        let mut s = ManifestSet::default();
        s.add_file("t.yaml", text);
        assert!(!s.has_errors(), "{text}\n{:#?}", s.diagnostics);
        s.manifests.into_iter().next().expect("one manifest")
    };
    let suspended = |mode: &'static str| {
        app()
            .job(mode)
            .job("state: suspended")
            .cfg("state.checkpoints.dir", "s3://b/cp")
            .cfg("state.savepoints.dir", "s3://b/sp")
    };
    let sj = |deployment: &str, extra: &[&str]| {
        let mut lines = vec![HTTPS_JAR];
        lines.extend_from_slice(extra);
        session_job(&lines, &[]).replace(
            "deploymentName: session",
            &format!("deploymentName: {deployment}"),
        )
    };
    #[rustfmt::skip]
    let rows: Vec<(&str, String, String, ExpectedWithSeverity)> = vec![
        ("validateSpecChange: session to job cluster", app().session().yaml().replace("name: session", "name: app"), app().yaml(),
            vec![(Severity::Error, "spec.job", "cannot change a session cluster into an application cluster")]),
        ("validateSpecChange: job to session cluster", app().yaml(), app().session().yaml().replace("name: session", "name: app"),
            vec![(Severity::Error, "spec.job", "cannot change an application cluster into a session cluster")]),
        ("validateSpecChange: native to standalone", app().yaml(), app().spec("mode: standalone").yaml(),
            vec![(Severity::Error, "spec.mode", "cannot change")]),
        ("validateSpecChange: null mode is native", app().yaml(), app().spec("mode: native").yaml(), vec![]),
        ("validateFlinkVersion: version change after a last-state suspend", suspended("upgradeMode: last-state").yaml(),
            suspended("upgradeMode: last-state").version("v2_0").yaml(),
            vec![(Severity::Error, "spec.flinkVersion", "after a last-state suspend is not allowed")]),
        ("validateFlinkVersion: ... also when switching to savepoint", suspended("upgradeMode: last-state").yaml(),
            suspended("upgradeMode: savepoint").version("v2_0").yaml(),
            vec![(Severity::Error, "spec.flinkVersion", "after a last-state suspend")]),
        ("validateFlinkVersion: only for a stateful new upgradeMode", suspended("upgradeMode: last-state").yaml(),
            suspended("upgradeMode: stateless").version("v2_0").yaml(), vec![]),
        ("validateFlinkVersion: a savepoint suspend may change it", suspended("upgradeMode: savepoint").yaml(),
            suspended("upgradeMode: savepoint").version("v2_0").yaml(), vec![]),
        ("validateSpecChange: savepointRedeployNonce needs initialSavepointPath", app().yaml(), app().job("savepointRedeployNonce: 1").yaml(),
            vec![(Severity::Error, "spec.job.savepointRedeployNonce", "needs spec.job.initialSavepointPath")]),
        ("validateSpecChange: ... with the path", app().yaml(), app().job("savepointRedeployNonce: 1").job("initialSavepointPath: s3://b/sp/savepoint-1").yaml(), vec![]),
        ("validateSpecChange: ... a nonce removed is ignored", app().job("savepointRedeployNonce: 1").job("initialSavepointPath: s3://b/x").yaml(), app().yaml(), vec![]),
        ("AbstractJobReconciler.redeployWithSavepoint: a session job redeploys without state", sj("session", &[]), sj("session", &["savepointRedeployNonce: 1"]),
            vec![(Severity::Warning, "spec.job.savepointRedeployNonce", "without state")]),
        ("validateSpecChange(FlinkSessionJob): deploymentName", sj("session", &[]), sj("other", &[]),
            vec![(Severity::Error, "spec.deploymentName", "deploymentName cannot change")]),
    ];
    for (source, old, new, want) in rows {
        let (old, new) = (read(&old), read(&new));
        let mut out = Vec::new();
        validate_transition(&old.spec, &new, &mut out);
        let got: Vec<(Severity, &str, &str)> = out
            .iter()
            .map(|d| (d.severity, d.field.as_str(), d.message.as_str()))
            .collect();
        assert!(
            got.len() == want.len()
                && want.iter().all(|(sev, field, part)| got
                    .iter()
                    .any(|(s, f, m)| s == sev && f == field && m.contains(part))),
            "row [{source}]: expected {want:?}, got {got:?}"
        );
    }
}

#[test]
fn rollback_without_ha_is_a_warning() {
    let field = "spec.flinkConfiguration[kubernetes.operator.deployment.rollback.enabled]";
    for (yaml, warned) in [
        (
            app()
                .cfg("kubernetes.operator.deployment.rollback.enabled", "true")
                .yaml(),
            true,
        ),
        (
            app()
                .cfg("kubernetes.operator.deployment.rollback.enabled", "true")
                .cfg("high-availability.type", "NONE")
                .yaml(),
            true,
        ),
        (
            app()
                .cfg("kubernetes.operator.deployment.rollback.enabled", "true")
                .cfg("high-availability.type", "zookeeper")
                .yaml(),
            false,
        ),
    ] {
        let s = set(&yaml);
        let got = of(&s, Severity::Warning)
            .iter()
            .any(|d| d.field == field && d.message.contains("HA must be enabled"));
        assert_eq!(got, warned, "{yaml}");
        assert!(of(&s, Severity::Error).iter().all(|d| d.field != field));
    }
}

#[test]
fn flink_gitops_keys_are_checked_and_typos_warned() {
    let typo = set(&app()
        .cfg("flink-gitops.deployment.stability.windw", "10 s")
        .yaml());
    assert!(of(&typo, Severity::Warning).iter().any(|d| {
        d.field == "spec.flinkConfiguration[flink-gitops.deployment.stability.windw]"
            && d.message
                .contains("flink-gitops.deployment.stability.window")
    }));
    let bad = set(&app()
        .cfg("flink-gitops.deployment.stability.window", "abc")
        .yaml());
    assert!(of(&bad, Severity::Error).iter().any(|d| {
        d.field == "spec.flinkConfiguration[flink-gitops.deployment.stability.window]"
            && !d.message.contains("Flink or the operator")
    }));
    let good = set(&app()
        .cfg("flink-gitops.deployment.stability.window", "10 s")
        .yaml());
    assert!(!good.has_errors());
    assert!(of(&good, Severity::Warning).is_empty());
}
