//! The operator's validation rules, plus this agent's own, as pure functions.
//!
//! Rules mirror the Flink Kubernetes Operator's `DefaultValidator` (and the
//! `AutoscalerValidator` it calls since 1.14) of the release [`Options::operator_version`]
//! names, 1.10 to 1.15: each rule's comment names the class and method it mirrors and the
//! releases it holds for, and what differs between releases is asked of
//! [`OperatorVersion`]. Unlike the operator, every failure is reported, not only the first.
//! There are three kinds of rule:
//! - the operator's: errors, as the operator (or its admission webhook) refuses them;
//! - Kubernetes' (object names, the CRD's enums): errors, as the API server refuses them;
//! - flink-gitops' own, where it is stricter than the operator: errors by default; each
//!   message says so and why, and `stricterRules: warn` in the repository's
//!   `.flink-gitops.yaml` reports them as warnings instead ([`StricterRules`]).
//!
//! Options that Flink 2.x renamed are looked up under the names the operator release reads.
//! The same functions serve `validate`, `plan` and the agent loop.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use super::cron;
use super::quantity::{self, DURATION_ALLOWED, MEMORY_ALLOWED};
use super::*;
use crate::config::{self, FlinkOption, ValueKind};

/// Settings that shape validation.
#[derive(Debug, Clone)]
pub struct Options {
    /// Schemes a `jarURI` may use.
    pub allowed_artifact_schemes: Vec<String>,
    /// Configuration the agent adds under every manifest's own (like the operator's
    /// default configuration); rules that need a key also find it here.
    pub default_configuration: BTreeMap<String, String>,
    /// The operator release whose rules apply.
    pub operator_version: OperatorVersion,
    /// How flink-gitops' own rules, stricter than the operator's, are reported.
    pub stricter_rules: StricterRules,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allowed_artifact_schemes: config::DEFAULT_ALLOWED_ARTIFACT_SCHEMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            default_configuration: BTreeMap::new(),
            operator_version: config::DEFAULT_OPERATOR_VERSION,
            stricter_rules: StricterRules::default(),
        }
    }
}

/// How a rule of flink-gitops' own, stricter than the operator's, is reported
/// (`stricterRules` in `.flink-gitops.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StricterRules {
    /// As an error: the resource is not applied (the default).
    #[default]
    Error,
    /// As a warning: what the operator accepts is accepted.
    Warn,
}

impl fmt::Display for StricterRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StricterRules::Error => "error",
            StricterRules::Warn => "warn",
        })
    }
}

/// A diagnostic of a rule flink-gitops has and the operator does not: `why` says what the
/// operator does instead. Its severity follows [`Options::stricter_rules`].
fn stricter(
    m: &Manifest,
    options: &Options,
    field: &str,
    message: impl fmt::Display,
    why: &str,
) -> Diagnostic {
    let severity = match options.stricter_rules {
        StricterRules::Error => Severity::Error,
        StricterRules::Warn => Severity::Warning,
    };
    m.diag(
        severity,
        field,
        format!(
            "{message} (flink-gitops is stricter than operator {} here: {why}; `stricterRules: warn` in {} reports this as a warning)",
            options.operator_version,
            config::REPO_SETTINGS_FILE
        ),
    )
}

/// Validates every manifest and the rules that span resources (duplicate names, session
/// jobs and their clusters).
pub fn validate_set(manifests: &[Manifest], options: &Options) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&ResourceKey, &Manifest> = BTreeMap::new();
    for m in manifests {
        // Kubernetes: one object per kind, namespace and name.
        if let Some(first) = seen.get(&m.key) {
            let pos = first.locations.find("metadata.name");
            out.push(m.diag(
                Severity::Error,
                "metadata.name",
                format!(
                    "{} {:?} is defined twice in namespace {:?}; first at {}:{}",
                    m.key.kind, m.key.name, m.key.namespace, first.file, pos.line
                ),
            ));
            continue;
        }
        seen.insert(&m.key, m);
        validate_manifest(m, options, &mut out);
    }
    for m in manifests {
        if let Spec::SessionJob(sj) = &m.spec {
            validate_session_target(m, sj, manifests, options, &mut out);
        }
    }
    out
}

fn effective_config(
    spec_config: &BTreeMap<String, String>,
    options: &Options,
) -> BTreeMap<String, String> {
    let mut merged = options.default_configuration.clone();
    merged.extend(spec_config.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged
}

fn config_field(key: &str) -> String {
    format!("spec.flinkConfiguration[{key}]")
}

fn name_ok(name: &str, max: usize) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// A DNS-1123 label (a namespace name): lowercase letters, digits and '-', starting and
/// ending with a letter or digit, at most 63 characters.
fn dns_label_ok(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain (the name Kubernetes allows for most objects, a FlinkSessionJob's
/// included): dot-separated labels, at most 253 characters.
fn dns_subdomain_ok(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(dns_label_ok)
}

/// Validates one manifest on its own.
pub fn validate_manifest(m: &Manifest, options: &Options, out: &mut Vec<Diagnostic>) {
    match m.key.kind {
        // DefaultValidator.validateDeploymentName (1.10-1.15): the name becomes the Flink cluster id.
        Kind::FlinkDeployment if !name_ok(&m.key.name, 45) => out.push(m.diag(
            Severity::Error,
            "metadata.name",
            format!(
                "found {:?}; allowed: lowercase letters, digits and '-', starting with a letter, ending with a letter or digit, at most 45 characters",
                m.key.name
            ),
        )),
        // Kubernetes (apimachinery NameIsDNSSubdomain): the operator does not check session job names.
        Kind::FlinkSessionJob if !dns_subdomain_ok(&m.key.name) => out.push(m.diag(
            Severity::Error,
            "metadata.name",
            format!(
                "found {:?}; allowed: a Kubernetes object name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)",
                m.key.name
            ),
        )),
        _ => {}
    }
    // Kubernetes (apimachinery ValidateNamespaceName): a DNS-1123 label.
    if !dns_label_ok(&m.key.namespace) {
        out.push(m.diag(
            Severity::Error,
            "metadata.namespace",
            format!("found {:?}; allowed: a Kubernetes namespace name (lowercase letters, digits and '-', at most 63 characters)", m.key.namespace),
        ));
    }
    if !m.locations.contains("spec") {
        return; // no spec at all: reported when reading, nothing more to say about it
    }
    let cfg = effective_config(m.spec.flink_configuration(), options);
    check_config_values(m, options, m.spec.flink_configuration(), out);
    for opt in config::FORBIDDEN_OPTIONS {
        if !m.spec.flink_configuration().contains_key(opt.key) {
            continue;
        }
        let field = config_field(opt.key);
        let message = format!(
            "{} may not be set: the agent derives it from metadata",
            opt.key
        );
        match m.key.kind {
            // DefaultValidator.validateFlinkDeploymentConfig (1.10-1.15): FORBIDDEN_CONF_KEYS.
            Kind::FlinkDeployment => out.push(m.diag(Severity::Error, &field, message)),
            // flink-gitops' own: the operator checks only a FlinkDeployment's configuration.
            Kind::FlinkSessionJob => out.push(stricter(
                m,
                options,
                &field,
                message,
                "it checks these keys only in a FlinkDeployment's configuration",
            )),
        }
    }
    match &m.spec {
        Spec::Deployment(d) => validate_deployment(m, d, &cfg, options, out),
        Spec::SessionJob(s) => {
            match &s.deployment_name {
                // DefaultValidator.validateSessionJobOnly -> validateDeploymentName(deploymentName) (1.10-1.15; null fails there).
                None => out.push(m.diag(Severity::Error, "spec.deploymentName", "spec.deploymentName is required: the name of the session cluster (a FlinkDeployment without spec.job) to run in")),
                // DefaultValidator.validateDeploymentName (1.10-1.15), applied to deploymentName.
                Some(name) if !name_ok(name, 45) => out.push(m.diag(
                    Severity::Error,
                    "spec.deploymentName",
                    format!("found {name:?}; allowed: the name of a FlinkDeployment (lowercase letters, digits and '-')"),
                )),
                Some(_) => {}
            }
            match &s.job {
                // DefaultValidator.validateJobNotEmpty (1.10-1.15).
                None => out.push(m.diag(
                    Severity::Error,
                    "spec.job",
                    "spec.job is required for a FlinkSessionJob",
                )),
                Some(job) => {
                    // upgradeMode last-state is accepted (DefaultValidator, 1.10-1.15:
                    // FLINK-35414 removed validateNotLastStateUpgradeMode in 1.10); like every
                    // job rule, its checkpoint directory is checked against the session
                    // cluster's configuration in validate_session_target.
                    match &job.jar_uri {
                        // flink-gitops' own: the operator submits an empty jar (AbstractFlinkService, 1.10-1.15).
                        None => out.push(stricter(
                            m,
                            options,
                            "spec.job.jarURI",
                            "spec.job.jarURI is required for a FlinkSessionJob: the jar to upload to the session cluster",
                            "without it the operator uploads an empty jar and runs entryClass from the session cluster's classpath, which flink-gitops does not do",
                        )),
                        Some(uri) => check_jar_uri(m, uri, options, out),
                    }
                }
            }
        }
    }
}

fn validate_deployment(
    m: &Manifest,
    d: &DeploymentSpec,
    cfg: &BTreeMap<String, String>,
    options: &Options,
    out: &mut Vec<Diagnostic>,
) {
    let op = options.operator_version;
    let allowed: Vec<&str> = FlinkVersion::ALL
        .iter()
        .filter(|v| v.is_supported() && op.knows(**v))
        .map(|v| v.as_str())
        .collect();
    let allowed = allowed.join(", ");
    match d.flink_version {
        // DefaultValidator.validateFlinkVersion (1.10-1.15): "Flink Version must be defined."
        None if !m.locations.contains("spec.flinkVersion") => out.push(m.diag(
            Severity::Error,
            "spec.flinkVersion",
            format!("spec.flinkVersion is required; allowed: {allowed}"),
        )),
        // Kubernetes: the CRD's flinkVersion enum (the operator's FlinkVersion enum) of the release.
        Some(v) if !op.knows(v) => {
            let since = OperatorVersion::ALL
                .into_iter()
                .find(|o| o.knows(v))
                .map(|o| format!("; operator {o} and newer know it: if that is the operator you run, name it in operatorVersion of {} (or --operator-version)", config::REPO_SETTINGS_FILE))
                .unwrap_or_default();
            out.push(m.diag(
                Severity::Error,
                "spec.flinkVersion",
                format!(
                    "{v} is not a flinkVersion operator {op} knows (its CRD allows v1_13 to {}), so Kubernetes refuses the resource; allowed: {allowed}{since}",
                    op.newest_flink_version()
                ),
            ));
        }
        // DefaultValidator.validateFlinkVersion (1.10-1.15): FlinkVersion.isSupported, v1_15 or newer.
        Some(v) if v < FlinkVersion::V1_15 => out.push(m.diag(
            Severity::Error,
            "spec.flinkVersion",
            format!("{v} is not supported (older than 1.15); allowed: {allowed}"),
        )),
        // flink-gitops' own: versions its runtime runs.
        Some(v) if !v.is_supported() => out.push(stricter(
            m,
            options,
            "spec.flinkVersion",
            format!("{v} is not a released Flink version known to flink-gitops; allowed: {allowed}"),
            "the operator accepts every version of its FlinkVersion enum; flink-gitops runs Flink 1.15 to 2.3",
        )),
        _ => {}
    }
    match d.service_account.as_deref() {
        // DefaultValidator.validateServiceAccount (1.10-1.15): null is refused.
        None if !m.locations.contains("spec.serviceAccount") => out.push(m.diag(
            Severity::Error,
            "spec.serviceAccount",
            "spec.serviceAccount is required (the Kubernetes service account the cluster runs as)",
        )),
        // flink-gitops' own: the operator accepts an empty name.
        Some(s) if s.trim().is_empty() => out.push(stricter(
            m,
            options,
            "spec.serviceAccount",
            "spec.serviceAccount is required (the Kubernetes service account the cluster runs as); found an empty name",
            "it accepts an empty name and the pods then run as the namespace's default service account; write serviceAccount: default for that",
        )),
        _ => {}
    }
    // HighAvailabilityMode.isHighAvailabilityModeActivated: a type other than NONE.
    let ha = config::lookup(cfg, &config::HA_TYPE)
        .is_some_and(|(_, v)| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none"));
    // DefaultValidator.validateFlinkDeploymentConfig (1.10-1.15) refuses rollback without HA
    // because the operator restores the old spec from HA metadata. flink-gitops restores it
    // from the savepoint or checkpoint recorded before the failed spec ran, so HA is not
    // needed here; the warning says what the operator would do with the same manifest.
    if config::lookup_bool(
        cfg,
        &config::OP_ROLLBACK_ENABLED,
        config::DEFAULT_ROLLBACK_ENABLED,
    ) && !ha
    {
        out.push(m.diag(
            Severity::Warning,
            &config_field(config::OP_ROLLBACK_ENABLED.key),
            "rollback without high availability: flink-gitops rolls back from the state recorded before the upgrade; the Flink operator would refuse this manifest (HA must be enabled for rollback support)",
        ));
    }
    // DefaultValidator.validateFlinkDeploymentConfig (1.10-1.15): the health check needs JM deployment recovery.
    if config::lookup_bool(cfg, &config::OP_HEALTH_CHECK, false)
        && !config::lookup_bool(cfg, &config::OP_JM_RECOVERY, true)
    {
        out.push(m.diag(
            Severity::Error,
            &config_field(config::OP_HEALTH_CHECK.key),
            "the job health check needs kubernetes.operator.jm-deployment-recovery.enabled: true",
        ));
    }
    if let Some(ing) = &d.ingress {
        match ing.template.as_deref() {
            // DefaultValidator.validateIngress (1.10-1.15): "Ingress template must be defined".
            None => out.push(m.diag(Severity::Error, "spec.ingress.template", "spec.ingress.template is required, e.g. \"{{name}}.{{namespace}}.example.com\" or \"/{{namespace}}/{{name}}(/|$)(.*)\"")),
            Some(t) => match ingress_url_error(t, &m.key.name, &m.key.namespace) {
                None => {}
                // DefaultValidator.validateIngress -> IngressUtils.getIngressUrl (1.10-1.15): java.net.URL refuses it.
                Some(IngressProblem::Malformed(why)) => out.push(m.diag(Severity::Error, "spec.ingress.template", format!("{t:?} does not give a valid URL: {why}; placeholders: {{{{name}}}}, {{{{namespace}}}}"))),
                // flink-gitops' own: java.net.URL takes it, the Ingress built from it is unusable.
                Some(IngressProblem::Unusable(why)) => out.push(stricter(
                    m,
                    options,
                    "spec.ingress.template",
                    format!("{t:?} does not give a usable Ingress host and path: {why}; placeholders: {{{{name}}}}, {{{{namespace}}}}"),
                    "its validator only asks java.net.URL, which accepts this",
                )),
            },
        }
    }
    // DefaultValidator.validateLogConfig (1.10-1.15).
    for key in d.log_configuration.keys() {
        if key != "log4j-console.properties" && key != "logback-console.xml" {
            out.push(m.diag(
                Severity::Error,
                &format!("spec.logConfiguration[{key}]"),
                format!("found {key:?}; allowed: log4j-console.properties, logback-console.xml"),
            ));
        }
    }
    // Memory is checked even without a jobManager / taskManager section, as the operator does.
    // DefaultValidator.validateJmMemoryConfig (1.10-1.15): JobManagerProcessUtils reads the
    // heap, Flink memory or process size, or Flink 1.x's jobmanager.heap.size.
    let jm_memory_from_config = [
        config::JM_PROCESS_MEMORY,
        config::JM_FLINK_MEMORY,
        config::JM_HEAP,
        config::JM_LEGACY_HEAP,
    ]
    .iter()
    .any(|k| config::lookup(cfg, k).is_some());
    check_resource(
        m,
        "spec.jobManager",
        d.job_manager.as_ref().and_then(|j| j.resource.as_ref()),
        jm_memory_from_config,
        "jobmanager.memory.process.size, jobmanager.memory.flink.size or jobmanager.memory.heap.size",
        out,
    );
    // DefaultValidator.validateTmMemoryConfig (1.10-1.15): TaskExecutorProcessUtils reads the
    // process size, the Flink memory, or the task heap together with managed memory.
    let tm_memory_from_config = config::lookup(cfg, &config::TM_PROCESS_MEMORY).is_some()
        || config::lookup(cfg, &config::TM_FLINK_MEMORY).is_some()
        || (config::lookup(cfg, &config::TM_TASK_HEAP).is_some()
            && config::lookup(cfg, &config::TM_MANAGED_MEMORY).is_some());
    check_resource(
        m,
        "spec.taskManager",
        d.task_manager.as_ref().and_then(|t| t.resource.as_ref()),
        tm_memory_from_config,
        "taskmanager.memory.process.size, taskmanager.memory.flink.size, or both taskmanager.memory.task.heap.size and taskmanager.memory.managed.size",
        out,
    );
    if let Some(jm) = &d.job_manager {
        if let Some(r) = jm.replicas {
            // DefaultValidator.validateJmReplicas (1.10-1.15).
            if r < 1 {
                out.push(m.diag(
                    Severity::Error,
                    "spec.jobManager.replicas",
                    format!("found {r}; allowed: 1 or more"),
                ));
            } else if r > 1 && !ha {
                out.push(m.diag(Severity::Error, "spec.jobManager.replicas", format!("found {r}; more than one JobManager needs high availability (set high-availability.type)")));
            }
        }
    }
    if let Some(tm) = &d.task_manager {
        if let Some(r) = tm.replicas {
            // DefaultValidator.validateTmReplicas and validateJobSpec (1.10-1.15).
            if r < 1 {
                out.push(m.diag(
                    Severity::Error,
                    "spec.taskManager.replicas",
                    format!("found {r}; allowed: 1 or more"),
                ));
            }
        }
    }
    if let Some(job) = &d.job {
        validate_job(
            m,
            job,
            d.task_manager.as_ref().and_then(|t| t.replicas),
            cfg,
            "spec.flinkConfiguration",
            options,
            out,
        );
        if let Some(uri) = &job.jar_uri {
            check_jar_uri(m, uri, options, out);
        }
    }
    validate_autoscaler(m, cfg, "spec.flinkConfiguration", options, out);
}

/// Replaces every `pattern` in `text`, ignoring ASCII case.
fn replace_ignore_case(text: &str, pattern: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::new();
    let mut last = 0;
    for (i, _) in lower.match_indices(pattern) {
        out.push_str(&text[last..i]);
        out.push_str(with);
        last = i + pattern.len();
    }
    out.push_str(&text[last..]);
    out
}

/// Why an ingress template is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IngressProblem {
    /// `java.net.URL` refuses it, so the operator does.
    Malformed(String),
    /// `java.net.URL` takes it, but it gives no usable host and path (flink-gitops' rule).
    Unusable(String),
}

/// The operator's ingress URL (`IngressUtils.getIngressUrl`): `http://` is added unless the
/// template starts with http(s)://, `{{name}}` / `{{namespace}}` are replaced ignoring case,
/// and the result must be a URL (Java's `new URL`, which rejects a port that is not a
/// number, and accepts an empty host, spaces and braces).
fn ingress_url_error(template: &str, name: &str, namespace: &str) -> Option<IngressProblem> {
    let lower = template.to_ascii_lowercase();
    let with_scheme = if lower.starts_with("http://") || lower.starts_with("https://") {
        template.to_string()
    } else {
        format!("http://{template}")
    };
    let url = replace_ignore_case(
        &replace_ignore_case(&with_scheme, "{{name}}", name),
        "{{namespace}}",
        namespace,
    );
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let port = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host_port.split_once(':').map(|(_, p)| p),
    };
    if let Some(p) = port.filter(|p| !p.chars().all(|c| c.is_ascii_digit())) {
        return Some(IngressProblem::Malformed(format!(
            "got {url:?}, whose port {p:?} is not a number"
        )));
    }
    if rest.is_empty() {
        return Some(IngressProblem::Unusable(format!(
            "got {url:?}, with neither host nor path"
        )));
    }
    if rest.contains(char::is_whitespace) {
        return Some(IngressProblem::Unusable(format!("got {url:?}")));
    }
    if rest.contains("{{") {
        return Some(IngressProblem::Unusable(format!(
            "got {url:?}, with a placeholder left over"
        )));
    }
    None
}

/// The operator's memory rule: `<role>.resource.memory` must parse, or, when it is not
/// given, the Flink configuration must size the process (`memory_from_config`).
fn check_resource(
    m: &Manifest,
    path: &str,
    res: Option<&Resource>,
    memory_from_config: bool,
    memory_keys: &str,
    out: &mut Vec<Diagnostic>,
) {
    let field = format!("{path}.resource.memory");
    match res.and_then(|r| r.memory.as_ref()) {
        // DefaultValidator.validateResources (1.10-1.15): MemorySize.parse(FlinkConfigBuilder.parseResourceMemoryString(memory)).
        Some(mem) => {
            if quantity::parse_memory(mem).is_none() {
                out.push(m.diag(
                    Severity::Error,
                    &field,
                    format!("found {mem:?}; allowed: {MEMORY_ALLOWED}"),
                ));
            }
        }
        // Written but unreadable (e.g. a number): reported when reading.
        None if m.locations.contains(&field) => {}
        // DefaultValidator.validateJmMemoryConfig / validateTmMemoryConfig (1.10-1.15).
        None => {
            if !memory_from_config {
                out.push(m.diag(
                    Severity::Error,
                    &field,
                    format!("{field} is missing and the Flink configuration does not size the process either (set {memory_keys})"),
                ));
            }
        }
    }
    let Some(res) = res else { return };
    if let Some(cpu) = res.cpu {
        if cpu <= 0.0 {
            // Not rejected by the operator: a TaskManager falls back to one core per slot.
            out.push(m.diag(
                Severity::Warning,
                &format!("{path}.resource.cpu"),
                format!("found {cpu}; expected a number of cores above 0, such as 0.5 or 2 (a TaskManager falls back to one core per task slot; a negative JobManager CPU fails when Kubernetes creates the pod)"),
            ));
        }
    }
    // DefaultValidator.validateResources (1.10-1.15): Quantity.parse + getAmountInBytes.
    if let Some(es) = &res.ephemeral_storage {
        if quantity::parse_k8s_quantity(es).is_none() {
            out.push(m.diag(
                Severity::Error,
                &format!("{path}.resource.ephemeralStorage"),
                format!("found {es:?}; allowed: a Kubernetes quantity such as 10Gi or 500Mi"),
            ));
        }
    }
}

/// The names under which an operator release reads a state directory option: 1.10 is built
/// with Flink 1.19, which does not know the 2.x names (`execution.checkpointing.*`).
fn dir_names(option: &FlinkOption, op: OperatorVersion) -> Vec<&'static str> {
    if op.reads_flink_2_option_names() {
        option.names().collect()
    } else {
        option.legacy.to_vec()
    }
}

/// Whether a state directory is set (`StringUtils.isNullOrWhitespaceOnly` is false) under a
/// name the release reads; the agent's own default configuration counts under any name.
fn dir_set(cfg: &BTreeMap<String, String>, option: &FlinkOption, options: &Options) -> bool {
    let set = |c: &BTreeMap<String, String>, name: &str| {
        c.get(name).is_some_and(|v| !v.trim().is_empty())
    };
    dir_names(option, options.operator_version)
        .iter()
        .any(|n| set(cfg, n))
        || option
            .names()
            .any(|n| set(&options.default_configuration, n))
}

/// What to tell a user who must set a state directory: where and under which names the
/// release reads it, and, when it is set under a name this release does not read, that name.
fn dir_hint(
    cfg: &BTreeMap<String, String>,
    option: &FlinkOption,
    op: OperatorVersion,
    config_home: &str,
) -> String {
    let names = dir_names(option, op);
    let mut hint = format!("set {} in {config_home}", names.join(" or "));
    if let Some(unread) = option
        .names()
        .find(|n| !names.contains(n) && cfg.contains_key(*n))
    {
        hint.push_str(&format!(
            " (operator {op} is built with Flink 1.19, which does not read {unread})"
        ));
    }
    hint
}

/// The operator's job rules; `config_home` says where the user sets the options (a session
/// job may also inherit them from its session cluster).
fn validate_job(
    m: &Manifest,
    job: &JobSpec,
    tm_replicas: Option<i64>,
    cfg: &BTreeMap<String, String>,
    config_home: &str,
    options: &Options,
    out: &mut Vec<Diagnostic>,
) {
    let op = options.operator_version;
    // DefaultValidator.validateJobSpec (1.10-1.15): savepoint and last-state need a checkpoint
    // directory. (Before 1.10 last-state also needed HA: FLINK-35414 dropped that.)
    if job.upgrade_mode.is_stateful() && !dir_set(cfg, &config::CHECKPOINTS_DIR, options) {
        out.push(m.diag(
            Severity::Error,
            "spec.job.upgradeMode",
            format!(
                "upgradeMode {} needs a checkpoint directory: {}",
                job.upgrade_mode,
                dir_hint(cfg, &config::CHECKPOINTS_DIR, op, config_home)
            ),
        ));
    }
    // DefaultValidator.validateJobSpec (1.10-1.15): four uses of the savepoint directory.
    if !dir_set(cfg, &config::SAVEPOINTS_DIR, options) {
        let need = |what: &str| {
            format!(
                "{what} needs a savepoint directory: {}",
                dir_hint(cfg, &config::SAVEPOINTS_DIR, op, config_home)
            )
        };
        if job.upgrade_mode == UpgradeMode::Savepoint {
            out.push(m.diag(
                Severity::Error,
                "spec.job.upgradeMode",
                need("upgradeMode savepoint"),
            ));
        }
        if job.savepoint_trigger_nonce.is_some() {
            out.push(m.diag(
                Severity::Error,
                "spec.job.savepointTriggerNonce",
                need("savepointTriggerNonce"),
            ));
        }
        if let Some((k, _)) = config::lookup(cfg, &config::OP_PERIODIC_SAVEPOINT) {
            out.push(m.diag(
                Severity::Error,
                &config_field(k),
                need("a periodic savepoint"),
            ));
        }
        if let Some((k, _)) = config::lookup(cfg, &config::OP_MAX_CHECKPOINT_AGE) {
            out.push(m.diag(
                Severity::Error,
                &config_field(k),
                need("a maximum checkpoint age"),
            ));
        }
    }
    // DefaultValidator.validateJobSpec (1.10-1.15): parallelism (default 0) must be 1 or more
    // unless taskManager.replicas is set.
    if tm_replicas.is_none() {
        match job.parallelism {
            Some(p) if p >= 1 => {}
            Some(p) => out.push(m.diag(Severity::Error, "spec.job.parallelism", format!("found {p}; allowed: 1 or more (job parallelism must be larger than 0)"))),
            None if !m.locations.contains("spec.job.parallelism") => out.push(m.diag(
                Severity::Error,
                "spec.job.parallelism",
                "spec.job.parallelism is required (1 or more) unless spec.taskManager.replicas is set",
            )),
            None => {}
        }
    }
    // flink-gitops' own: the operator restores from whatever path is given.
    if let Some(p) = &job.initial_savepoint_path {
        if p.trim().is_empty() {
            out.push(stricter(
                m,
                options,
                "spec.job.initialSavepointPath",
                "found an empty path; allowed: a savepoint or checkpoint path such as file:///flink-data/savepoints/savepoint-1a2b3c-4d5e6f7a8b9c",
                "it hands the empty path to Flink as the path to restore from; remove the field to start without state",
            ));
        }
    }
    // flink-gitops' own: a process argument cannot hold NUL.
    for (i, arg) in job.args.iter().enumerate() {
        if arg.contains('\0') {
            out.push(stricter(
                m,
                options,
                &format!("spec.job.args[{i}]"),
                "arguments may not contain NUL characters",
                "it passes arguments through the Flink configuration; flink-gitops' runtime cannot pass NUL to a process",
            ));
        }
    }
}

/// The autoscaler's option checks: `AutoscalerValidator.validateAutoscalerOptions` (1.14,
/// 1.15), before that `DefaultValidator.validateAutoScalerFlinkConfiguration` (1.10-1.13).
/// Only when the autoscaler is enabled; bounds added in 1.11 and 1.12 follow the release.
fn validate_autoscaler(
    m: &Manifest,
    cfg: &BTreeMap<String, String>,
    config_home: &str,
    options: &Options,
    out: &mut Vec<Diagnostic>,
) {
    if !config::lookup_bool(cfg, &config::AUTOSCALER_ENABLED, false) {
        return;
    }
    let op = options.operator_version;
    let field = |key: &str| {
        if m.spec.flink_configuration().contains_key(key) {
            config_field(key)
        } else {
            config_home.to_string()
        }
    };
    // validateNumber: the value must parse as a double and lie within [min, max].
    let mut number = |names: &[&'static str], min: Option<f64>, max: Option<f64>| -> Option<f64> {
        let (key, text) = names
            .iter()
            .find_map(|n| cfg.get(*n).map(|v| (*n, v.as_str())))?;
        let Ok(value) = text.trim().parse::<f64>() else {
            out.push(m.diag(
                Severity::Error,
                &field(key),
                format!("found {text:?}; allowed: a number (the autoscaler option {key})"),
            ));
            return None;
        };
        if min.is_some_and(|lo| value < lo) || max.is_some_and(|hi| value > hi) {
            let range = match (min, max) {
                (Some(lo), Some(hi)) => format!("a number from {lo} to {hi}"),
                (Some(lo), None) => format!("a number, {lo} or more"),
                (None, Some(hi)) => format!("a number, {hi} or less"),
                (None, None) => "a number".to_string(),
            };
            out.push(m.diag(
                Severity::Error,
                &field(key),
                format!("found {text:?}; allowed: {range} (the autoscaler option {key})"),
            ));
        }
        Some(value)
    };
    let names = |o: &FlinkOption| o.names().collect::<Vec<_>>();
    number(
        &names(&config::AUTOSCALER_SCALE_DOWN_MAX_FACTOR),
        Some(0.0),
        None,
    );
    number(
        &names(&config::AUTOSCALER_SCALE_UP_MAX_FACTOR),
        Some(0.0),
        None,
    );
    // 1.10 reads job.autoscaler.target.utilization, at least 0; 1.11 renamed it
    // utilization.target and bounded it by 1 (FLINK-36836).
    let target_names: Vec<&'static str> = if op.reads_autoscaler_utilization_target() {
        names(&config::AUTOSCALER_UTILIZATION_TARGET)
    } else {
        names(&config::AUTOSCALER_UTILIZATION_TARGET)
            .into_iter()
            .filter(|n| n.ends_with("target.utilization"))
            .collect()
    };
    let target_max = op.checks_autoscaler_utilization_bounds().then_some(1.0);
    let target = number(&target_names, Some(0.0), target_max);
    number(
        &names(&config::AUTOSCALER_TARGET_UTILIZATION_BOUNDARY),
        Some(0.0),
        None,
    );
    if op.checks_autoscaler_utilization_bounds() {
        let written = target_names.iter().any(|n| cfg.contains_key(*n));
        // An unreadable target was reported above; its bounds are not checked against it.
        if target.is_some() || !written {
            let t = target.unwrap_or(config::DEFAULT_AUTOSCALER_UTILIZATION_TARGET);
            number(
                &names(&config::AUTOSCALER_UTILIZATION_MAX),
                Some(t),
                Some(1.0),
            );
            number(
                &names(&config::AUTOSCALER_UTILIZATION_MIN),
                Some(0.0),
                Some(t),
            );
        }
    }
    // FLINK-30571 (1.12).
    if op.checks_autoscaler_scalability_coefficient() {
        number(
            &names(&config::AUTOSCALER_SCALABILITY_COEFFICIENT_MIN),
            Some(0.01),
            Some(1.0),
        );
    }
    // CalendarUtils.validateExcludedPeriods (1.10-1.15).
    if let Some((key, value)) = config::lookup(cfg, &config::AUTOSCALER_EXCLUDED_PERIODS) {
        for expression in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            if let Some(why) = excluded_period_error(expression) {
                out.push(m.diag(
                    Severity::Error,
                    &field(key),
                    format!("found {expression:?}: {why}; allowed: a daily range such as 09:00-17:00, a Quartz cron expression such as \"* * 9-17 ? * MON-FRI\", or one of each joined by &&"),
                ));
            }
        }
    }
}

/// `CalendarUtils.validateExcludedExpression`: one or two parts joined by `&&`, each a daily
/// range (Quartz `DailyCalendar`: `HH:MM[:SS[:mmm]]-HH:MM[:SS[:mmm]]`, start before end) or a
/// cron expression; two parts must be one of each.
fn excluded_period_error(expression: &str) -> Option<String> {
    let parts: Vec<&str> = expression.split("&&").map(str::trim).collect();
    if parts.len() > 2 {
        return Some("more than two parts joined by &&".to_string());
    }
    let mut daily = 0;
    let mut cron = 0;
    for part in &parts {
        let is_daily = daily_range(part).is_some();
        let is_cron = quantity::looks_like_cron(part);
        if !is_daily && !is_cron {
            return Some(format!(
                "{part:?} is neither a daily range nor a cron expression"
            ));
        }
        daily += usize::from(is_daily);
        cron += usize::from(is_cron);
    }
    if parts.len() == 2 && (daily == 0 || cron == 0) {
        return Some("two parts must be one daily range and one cron expression".to_string());
    }
    None
}

/// A daily range `start-end` as milliseconds of the day, start before end.
fn daily_range(text: &str) -> Option<(u64, u64)> {
    let (start, end) = text.split_once('-')?;
    if end.contains('-') {
        return None;
    }
    let time = |t: &str| -> Option<u64> {
        let fields: Vec<&str> = t.trim().split(':').collect();
        if !(2..=4).contains(&fields.len()) {
            return None;
        }
        let limits = [23, 59, 59, 999];
        let scale = [3_600_000, 60_000, 1_000, 1];
        let mut ms = 0;
        for (i, f) in fields.iter().enumerate() {
            let v: u64 = f.parse().ok()?;
            if v > limits[i] {
                return None;
            }
            ms += v * scale[i];
        }
        Some(ms)
    };
    let (s, e) = (time(start)?, time(end)?);
    (s < e).then_some((s, e))
}

fn scheme_of(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    ok.then_some(scheme)
}

/// The host of a hierarchical URI (`scheme://host[:port]/...`), if it names one.
fn host_of(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

/// Whether a host written in a URI is an address the operator refuses for a session job's
/// jar (loopback, link-local, site-local, wildcard, multicast: `InetAddress` checks), as far
/// as it can be told without resolving a name.
fn restricted_host(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = h.parse::<std::net::Ipv4Addr>() {
        return ip.is_loopback()
            || ip.is_link_local()
            || ip.is_private()
            || ip.is_unspecified()
            || ip.is_multicast();
    }
    if let Ok(ip) = h.parse::<std::net::Ipv6Addr>() {
        let first = ip.segments()[0];
        return ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || (first & 0xffc0) == 0xfe80 // link-local
            || (first & 0xffc0) == 0xfec0; // site-local (what Java's isSiteLocalAddress means)
    }
    false
}

/// A job's `jarURI`. A session job's is the operator's rule since 1.15
/// (`DefaultValidator.validateJarURI`); everything else here is flink-gitops' own: its
/// runtime fetches the jar, and the operator passes an application's jar to Flink unchecked.
fn check_jar_uri(m: &Manifest, uri: &str, options: &Options, out: &mut Vec<Diagnostic>) {
    let op = options.operator_version;
    let operators = m.key.kind == Kind::FlinkSessionJob && op.checks_session_job_jar_uri();
    let field = "spec.job.jarURI";
    // The operator's rule (session jobs, 1.15+) as an error, else flink-gitops' own.
    let report = |out: &mut Vec<Diagnostic>, message: String, why: &str| {
        if operators {
            out.push(m.diag(Severity::Error, field, message));
        } else {
            out.push(stricter(m, options, field, message, why));
        }
    };
    let allowed = options.allowed_artifact_schemes.join(", ");
    let unchecked = match m.key.kind {
        Kind::FlinkDeployment => "it passes an application's jarURI to Flink unchecked",
        Kind::FlinkSessionJob => "it checks a session job's jarURI only since 1.15",
    };
    let Some(scheme) = scheme_of(uri) else {
        // validateJarURI: "jarURI must include a scheme".
        report(out, format!("found {uri:?}, which has no scheme; allowed: a URI with one of the schemes {allowed}, e.g. local:///opt/flink/usrlib/job.jar"), unchecked);
        return;
    };
    let rest = &uri[scheme.len() + 1..];
    if rest.trim_start_matches('/').is_empty() || uri.contains(char::is_whitespace) {
        // validateJarURI: "jarURI is not a valid URI" (java.net.URI refuses blanks).
        report(
            out,
            format!("found {uri:?}; allowed: a URI naming a jar file"),
            unchecked,
        );
        return;
    }
    if !options
        .allowed_artifact_schemes
        .iter()
        .any(|a| a.eq_ignore_ascii_case(scheme))
    {
        let also = if operators
            && !config::OPERATOR_DEFAULT_ARTIFACT_SCHEMES
                .iter()
                .any(|a| a.eq_ignore_ascii_case(scheme))
        {
            format!("; operator {op} refuses it too unless its kubernetes.operator.user.artifacts.allowed-schemes lists it")
        } else {
            String::new()
        };
        out.push(stricter(
            m,
            options,
            field,
            format!("scheme {scheme:?} is not allowed; allowed: {allowed}{also}"),
            "flink-gitops' runtime fetches jars only with these schemes",
        ));
        return;
    }
    let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let host = host_of(uri);
    if web && host.is_none() {
        // validateJarURI: "jarURI must include a host for http/https schemes".
        report(
            out,
            format!("found {uri:?}, which names no host; allowed: an http(s) URI with a host, such as https://repo.example.com/job.jar"),
            unchecked,
        );
        return;
    }
    if !operators {
        return;
    }
    // The operator's allow-list and host checks are its own configuration, which this
    // repository cannot see: told as warnings, with the operator's defaults.
    if !config::OPERATOR_DEFAULT_ARTIFACT_SCHEMES
        .iter()
        .any(|a| a.eq_ignore_ascii_case(scheme))
    {
        out.push(m.diag(
            Severity::Warning,
            field,
            format!(
                "operator {op} refuses scheme {scheme:?} for a session job's jar unless its kubernetes.operator.user.artifacts.allowed-schemes lists it (default: {})",
                config::OPERATOR_DEFAULT_ARTIFACT_SCHEMES.join(", ")
            ),
        ));
    }
    if let Some(h) = host.filter(|h| web && restricted_host(h)) {
        out.push(m.diag(
            Severity::Warning,
            field,
            format!("operator {op} refuses a session job's jar from {h:?} (a loopback, private, link-local, wildcard or multicast address) unless its kubernetes.operator.user.artifacts.disallow-restricted-hosts is false"),
        ));
    }
}

/// Type-checks every known option set in a manifest: flink-gitops' own rule (the operator's
/// validator reads none of these values; Flink or the operator reads them later).
fn check_config_values(
    m: &Manifest,
    options: &Options,
    cfg: &BTreeMap<String, String>,
    out: &mut Vec<Diagnostic>,
) {
    for opt in config::CHECKED_OPTIONS {
        let present: Vec<&str> = opt.names().filter(|n| cfg.contains_key(*n)).collect();
        if present.len() > 1 {
            out.push(m.diag(
                Severity::Warning,
                &config_field(present[1]),
                format!(
                    "{} and its old name {} are both set; Flink reads {}",
                    opt.key, present[1], opt.key
                ),
            ));
        }
        for name in present {
            let value = cfg.get(name).map(String::as_str).unwrap_or_default();
            if opt.kind == ValueKind::DurationOrCron {
                // The operator reads it on every reconcile and, when it is neither, logs a
                // warning and never takes the snapshots (SnapshotUtils.shouldTriggerAutomaticSnapshot).
                if let Err(why) = cron::Schedule::parse(value) {
                    out.push(stricter(
                        m,
                        options,
                        &config_field(name),
                        format!("found {value:?}: {why}"),
                        "it accepts the manifest, logs a warning and never takes the periodic snapshots",
                    ));
                }
                continue;
            }
            if let Some(allowed) = check_value(opt.kind, value) {
                let own = opt.key.starts_with(config::AGENT_PREFIX);
                out.push(if own {
                    // The agent's own key: no operator to compare with; always an error.
                    m.diag(
                        Severity::Error,
                        &config_field(name),
                        format!("found {value:?}; allowed: {allowed}"),
                    )
                } else {
                    stricter(
                        m,
                        options,
                        &config_field(name),
                        format!("found {value:?}; allowed: {allowed}"),
                        "it does not check option values; Flink or the operator reads this one when the cluster runs",
                    )
                });
            }
        }
    }
    // A flink-gitops key the agent does not know is most likely a typo of one it does.
    for key in cfg.keys().filter(|k| k.starts_with(config::AGENT_PREFIX)) {
        let known: Vec<&str> = config::CHECKED_OPTIONS
            .iter()
            .map(|o| o.key)
            .filter(|k| k.starts_with(config::AGENT_PREFIX))
            .collect();
        if !known.contains(&key.as_str()) {
            out.push(m.diag(
                Severity::Warning,
                &config_field(key),
                format!(
                    "flink-gitops has no option {key:?}; it reads: {}",
                    known.join(", ")
                ),
            ));
        }
    }
}

/// Returns what is allowed when `value` does not fit `kind`.
fn check_value(kind: ValueKind, value: &str) -> Option<String> {
    let v = value.trim();
    let ok = match kind {
        ValueKind::Duration => quantity::parse_duration(v).is_some(),
        ValueKind::DurationOrCron => {
            quantity::parse_duration(v).is_some() || quantity::looks_like_cron(v)
        }
        ValueKind::MemorySize => quantity::parse_flink_memory(v).is_some(),
        ValueKind::Int { min } => v.parse::<i64>().is_ok_and(|n| n >= min),
        ValueKind::Bool => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        ValueKind::Enum(words) => {
            words.is_empty() || words.iter().any(|w| w.eq_ignore_ascii_case(v))
        }
        ValueKind::Uri => !v.is_empty() && (scheme_of(v).is_some() || v.starts_with('/')),
    };
    if ok {
        return None;
    }
    Some(match kind {
        ValueKind::Duration => DURATION_ALLOWED.to_string(),
        ValueKind::DurationOrCron => {
            format!("{DURATION_ALLOWED}, or a cron expression such as \"0 0 * * * ?\"")
        }
        ValueKind::MemorySize => "a Flink memory size such as 1g, 2048m, 512 mb".to_string(),
        ValueKind::Int { min } => format!("a whole number, {min} or more"),
        ValueKind::Bool => "true, false".to_string(),
        ValueKind::Enum(words) => words.join(", "),
        ValueKind::Uri => {
            "a URI such as file:///flink-data/checkpoints or s3://bucket/path".to_string()
        }
    })
}

fn validate_session_target(
    m: &Manifest,
    sj: &SessionJobSpec,
    manifests: &[Manifest],
    options: &Options,
    out: &mut Vec<Diagnostic>,
) {
    let Some(target) = &sj.deployment_name else {
        return;
    };
    let found = manifests.iter().find(|o| {
        o.key.kind == Kind::FlinkDeployment
            && o.key.namespace == m.key.namespace
            && &o.key.name == target
    });
    match found.map(|f| &f.spec) {
        // flink-gitops' own: the operator accepts the session job and waits for its cluster.
        None => {
            let sessions: BTreeSet<&str> = manifests
                .iter()
                .filter(|o| o.key.namespace == m.key.namespace)
                .filter(|o| o.as_deployment().is_some_and(DeploymentSpec::is_session_cluster))
                .map(|o| o.key.name.as_str())
                .collect();
            let names: Vec<&str> = sessions.iter().copied().collect();
            let hint = match super::parse::nearest(target, &names) {
                Some(n) => format!(" (did you mean {n:?}?)"),
                None if names.is_empty() => format!("; namespace {:?} has no session cluster", m.key.namespace),
                None => format!("; session clusters in namespace {:?}: {}", m.key.namespace, names.join(", ")),
            };
            out.push(stricter(
                m,
                options,
                "spec.deploymentName",
                format!("no FlinkDeployment named {target:?} in namespace {:?}{hint}", m.key.namespace),
                "it accepts a session job before its cluster exists and waits for it; flink-gitops runs session jobs only in clusters of the same repository",
            ));
        }
        // DefaultValidator.validateSessionJobWithCluster -> validateNotApplicationCluster (1.10-1.15).
        Some(Spec::Deployment(d)) if !d.is_session_cluster() => out.push(m.diag(
            Severity::Error,
            "spec.deploymentName",
            format!("{target:?} is an application cluster (it has spec.job); a FlinkSessionJob needs a session cluster (a FlinkDeployment without spec.job)"),
        )),
        // DefaultValidator.validateSessionJobWithCluster (1.10-1.15): validateJobSpec and the
        // autoscaler rules over the default configuration, the session cluster's and the
        // session job's own.
        Some(cluster) => {
            if let Some(job) = &sj.job {
                let mut cfg = effective_config(cluster.flink_configuration(), options);
                cfg.extend(sj.flink_configuration.iter().map(|(k, v)| (k.clone(), v.clone())));
                let home = format!("spec.flinkConfiguration (of this session job or of FlinkDeployment {target:?})");
                validate_job(m, job, None, &cfg, &home, options, out);
                validate_autoscaler(m, &cfg, &home, options, out);
            }
        }
    }
}

/// Rules about a change from the spec that was applied (`old`) to the desired one (`new`).
/// These are the same in every release from 1.10 to 1.15. The operator compares with its
/// last reconciled spec, whose upgradeMode it rewrites to the mode it last stopped the job
/// with; a plan compares with the spec at the base revision.
pub fn validate_transition(old: &Spec, new: &Manifest, out: &mut Vec<Diagnostic>) {
    match (old, &new.spec) {
        (Spec::Deployment(o), Spec::Deployment(n)) => {
            // DefaultValidator.validateSpecChange (1.10-1.15): no switch between session and application cluster.
            if o.is_session_cluster() != n.is_session_cluster() {
                let (from, to) = if o.is_session_cluster() {
                    ("a session cluster", "an application cluster")
                } else {
                    ("an application cluster", "a session cluster")
                };
                out.push(new.diag(
                    Severity::Error,
                    "spec.job",
                    format!("cannot change {from} into {to}; remove this resource and add one under a new name"),
                ));
            }
            // DefaultValidator.validateSpecChange (1.10-1.15): no switch between native and standalone.
            if o.effective_mode() != n.effective_mode() {
                out.push(new.diag(
                    Severity::Error,
                    "spec.mode",
                    "spec.mode (native or standalone) cannot change after the first deployment",
                ));
            }
            // DefaultValidator.validateFlinkVersion (1.10-1.15): after a last-state suspend the
            // Flink version may change only together with a switch to upgradeMode stateless.
            if let (Some(oj), Some(nj), Some(ov), Some(nv)) =
                (&o.job, &n.job, o.flink_version, n.flink_version)
            {
                if ov != nv
                    && nj.upgrade_mode != UpgradeMode::Stateless
                    && oj.state == JobState::Suspended
                    && oj.upgrade_mode == UpgradeMode::LastState
                {
                    out.push(new.diag(
                        Severity::Error,
                        "spec.flinkVersion",
                        format!("changing flinkVersion ({ov} to {nv}) after a last-state suspend is not allowed; resume with {ov} and change the version afterwards, suspend with upgradeMode savepoint first, or (dropping the job's state) switch to upgradeMode stateless"),
                    ));
                }
            }
        }
        // DefaultValidator.validateSpecChange(FlinkSessionJob) (1.10-1.15).
        (Spec::SessionJob(o), Spec::SessionJob(n)) if o.deployment_name != n.deployment_name => {
            out.push(new.diag(
                Severity::Error,
                "spec.deploymentName",
                format!(
                    "deploymentName cannot change (from {:?} to {:?}); remove this session job and add one under a new name",
                    o.deployment_name.as_deref().unwrap_or(""),
                    n.deployment_name.as_deref().unwrap_or("")
                ),
            ));
        }
        _ => {}
    }
    // DefaultValidator.validateSpecChange (1.10-1.15): a new savepointRedeployNonce needs a path.
    // The operator checks it only for FlinkDeployments; a session job is redeployed without
    // state (AbstractJobReconciler.redeployWithSavepoint), which is worth a warning.
    if let (Some(oj), Some(nj)) = (old.job(), new.spec.job()) {
        if nj.savepoint_redeploy_nonce.is_some()
            && nj.savepoint_redeploy_nonce != oj.savepoint_redeploy_nonce
            && nj
                .initial_savepoint_path
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
        {
            match new.key.kind {
                Kind::FlinkDeployment => out.push(new.diag(
                    Severity::Error,
                    "spec.job.savepointRedeployNonce",
                    "a new savepointRedeployNonce needs spec.job.initialSavepointPath: the savepoint to redeploy from",
                )),
                Kind::FlinkSessionJob => out.push(new.diag(
                    Severity::Warning,
                    "spec.job.savepointRedeployNonce",
                    "a new savepointRedeployNonce without spec.job.initialSavepointPath redeploys this session job without state (the operator requires the path only of a FlinkDeployment)",
                )),
            }
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
