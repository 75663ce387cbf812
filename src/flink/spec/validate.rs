//! The operator's validation rules, plus this agent's own, as pure functions.
//!
//! Rules follow the Flink Kubernetes Operator's `DefaultValidator` (see
//! `shared/reference/flink-operator-behaviour.md` §8), but report every failure instead of
//! the first. Options that Flink 2.x renamed are looked up under either name. The same
//! functions serve `validate`, `plan` and the agent loop.

use std::collections::{BTreeMap, BTreeSet};

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allowed_artifact_schemes: config::DEFAULT_ALLOWED_ARTIFACT_SCHEMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            default_configuration: BTreeMap::new(),
        }
    }
}

/// Validates every manifest and the rules that span resources (duplicate names, session
/// jobs and their clusters).
pub fn validate_set(manifests: &[Manifest], options: &Options) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&ResourceKey, &Manifest> = BTreeMap::new();
    for m in manifests {
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
        // The operator's own rule: the name becomes the Flink cluster id.
        Kind::FlinkDeployment if !name_ok(&m.key.name, 45) => out.push(m.diag(
            Severity::Error,
            "metadata.name",
            format!(
                "found {:?}; allowed: lowercase letters, digits and '-', starting with a letter, ending with a letter or digit, at most 45 characters",
                m.key.name
            ),
        )),
        // The operator does not check session job names; Kubernetes' rule applies.
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
    check_config_values(m, m.spec.flink_configuration(), out);
    for opt in config::FORBIDDEN_OPTIONS {
        if m.spec.flink_configuration().contains_key(opt.key) {
            out.push(m.diag(
                Severity::Error,
                &config_field(opt.key),
                format!(
                    "{} may not be set: the agent derives it from metadata",
                    opt.key
                ),
            ));
        }
    }
    match &m.spec {
        Spec::Deployment(d) => validate_deployment(m, d, &cfg, options, out),
        Spec::SessionJob(s) => {
            match &s.deployment_name {
                None => out.push(m.diag(Severity::Error, "spec.deploymentName", "spec.deploymentName is required: the name of the session cluster (a FlinkDeployment without spec.job) to run in")),
                Some(name) if !name_ok(name, 45) => out.push(m.diag(
                    Severity::Error,
                    "spec.deploymentName",
                    format!("found {name:?}; allowed: the name of a FlinkDeployment (lowercase letters, digits and '-')"),
                )),
                Some(_) => {}
            }
            match &s.job {
                None => out.push(m.diag(
                    Severity::Error,
                    "spec.job",
                    "spec.job is required for a FlinkSessionJob",
                )),
                Some(job) => {
                    if job.upgrade_mode == UpgradeMode::LastState {
                        out.push(m.diag(
                            Severity::Error,
                            "spec.job.upgradeMode",
                            "found \"last-state\"; allowed for a FlinkSessionJob: stateless, savepoint (last-state needs a cluster of its own)",
                        ));
                    }
                    // The job rules (state directories, parallelism) need the session
                    // cluster's configuration: see validate_session_target.
                    match &job.jar_uri {
                        None => out.push(m.diag(Severity::Error, "spec.job.jarURI", "spec.job.jarURI is required for a FlinkSessionJob: the jar to upload to the session cluster")),
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
    let known: Vec<&str> = FlinkVersion::ALL
        .iter()
        .filter(|v| v.is_supported())
        .map(|v| v.as_str())
        .collect();
    match d.flink_version {
        None if !m.locations.contains("spec.flinkVersion") => out.push(m.diag(
            Severity::Error,
            "spec.flinkVersion",
            format!(
                "spec.flinkVersion is required; allowed: {}",
                known.join(", ")
            ),
        )),
        Some(v) if !v.is_supported() => {
            let why = if v < FlinkVersion::V1_15 {
                "is not supported (older than 1.15)"
            } else {
                "is not a released Flink version known to flink-gitops"
            };
            out.push(m.diag(
                Severity::Error,
                "spec.flinkVersion",
                format!("{v} {why}; allowed: {}", known.join(", ")),
            ));
        }
        _ => {}
    }
    if d.service_account
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
        && !m.locations.contains("spec.serviceAccount")
    {
        out.push(m.diag(
            Severity::Error,
            "spec.serviceAccount",
            "spec.serviceAccount is required (the Kubernetes service account the cluster runs as)",
        ));
    }
    let ha = config::lookup(cfg, &config::HA_TYPE)
        .is_some_and(|(_, v)| !v.is_empty() && !v.eq_ignore_ascii_case("none"));
    if config::lookup_bool(
        cfg,
        &config::OP_ROLLBACK_ENABLED,
        config::DEFAULT_ROLLBACK_ENABLED,
    ) && !ha
    {
        out.push(m.diag(
            Severity::Error,
            &config_field(config::OP_ROLLBACK_ENABLED.key),
            "rollback needs high availability: set high-availability.type (HA must be enabled for rollback support)",
        ));
    }
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
            None | Some("") => out.push(m.diag(Severity::Error, "spec.ingress.template", "spec.ingress.template is required, e.g. \"{{name}}.{{namespace}}.example.com\" or \"/{{namespace}}/{{name}}(/|$)(.*)\"")),
            Some(t) => {
                if let Some(why) = ingress_url_error(t, &m.key.name, &m.key.namespace) {
                    out.push(m.diag(Severity::Error, "spec.ingress.template", format!("{t:?} does not give a valid URL: {why}; placeholders: {{{{name}}}}, {{{{namespace}}}}")));
                }
            }
        }
    }
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
    let jm_memory_from_config = [
        config::JM_PROCESS_MEMORY,
        config::JM_FLINK_MEMORY,
        config::JM_HEAP,
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
            out,
        );
        if let Some(uri) = &job.jar_uri {
            check_jar_uri(m, uri, options, out);
        }
    }
}

/// The operator's memory rule: `<role>.resource.memory` must parse, or, when it is not
/// given, the Flink configuration must size the process (`memory_from_config`).
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

/// The operator's ingress URL (`IngressUtils.getIngressUrl`): `http://` is added unless the
/// template starts with http(s)://, `{{name}}` / `{{namespace}}` are replaced ignoring case,
/// and the result must be a URL (Java's `new URL`, which rejects a port that is not a
/// number). Returns why the URL is not usable.
fn ingress_url_error(template: &str, name: &str, namespace: &str) -> Option<String> {
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
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Some(format!("got {url:?}"));
    }
    if rest.contains("{{") {
        return Some(format!("got {url:?}, with a placeholder left over"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let port = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host_port.split_once(':').map(|(_, p)| p),
    };
    match port {
        Some(p) if !p.chars().all(|c| c.is_ascii_digit()) => {
            Some(format!("got {url:?}, whose port {p:?} is not a number"))
        }
        _ => None,
    }
}

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

/// The operator's job rules; `config_home` says where the user sets the options (a session
/// job may also inherit them from its session cluster).
fn validate_job(
    m: &Manifest,
    job: &JobSpec,
    tm_replicas: Option<i64>,
    cfg: &BTreeMap<String, String>,
    config_home: &str,
    out: &mut Vec<Diagnostic>,
) {
    let checkpoints = config::lookup(cfg, &config::CHECKPOINTS_DIR).is_some();
    let savepoints = config::lookup(cfg, &config::SAVEPOINTS_DIR).is_some();
    let dir_names = |o: &FlinkOption| o.names().collect::<Vec<_>>().join(" or ");
    if job.upgrade_mode.is_stateful() && !checkpoints {
        out.push(m.diag(
            Severity::Error,
            "spec.job.upgradeMode",
            format!(
                "upgradeMode {} needs a checkpoint directory: set {} in {config_home}",
                job.upgrade_mode,
                dir_names(&config::CHECKPOINTS_DIR)
            ),
        ));
    }
    if !savepoints {
        let need = |what: &str| {
            format!(
                "{what} needs a savepoint directory: set {} in {config_home}",
                dir_names(&config::SAVEPOINTS_DIR)
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
    if let Some(p) = &job.initial_savepoint_path {
        if p.trim().is_empty() {
            out.push(m.diag(Severity::Error, "spec.job.initialSavepointPath", "found an empty path; allowed: a savepoint or checkpoint path such as file:///flink-data/savepoints/savepoint-1a2b3c-4d5e6f7a8b9c"));
        }
    }
    for (i, arg) in job.args.iter().enumerate() {
        if arg.contains('\0') {
            out.push(m.diag(
                Severity::Error,
                &format!("spec.job.args[{i}]"),
                "arguments may not contain NUL characters",
            ));
        }
    }
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

fn check_jar_uri(m: &Manifest, uri: &str, options: &Options, out: &mut Vec<Diagnostic>) {
    let allowed = options.allowed_artifact_schemes.join(", ");
    match scheme_of(uri) {
        None => out.push(m.diag(
            Severity::Error,
            "spec.job.jarURI",
            format!("found {uri:?}, which has no scheme; allowed: a URI with one of the schemes {allowed}, e.g. local:///opt/flink/usrlib/job.jar"),
        )),
        Some(s) if !options.allowed_artifact_schemes.iter().any(|a| a.eq_ignore_ascii_case(s)) => out.push(m.diag(
            Severity::Error,
            "spec.job.jarURI",
            format!("scheme {s:?} is not allowed; allowed: {allowed}"),
        )),
        Some(s) => {
            let rest = &uri[s.len() + 1..];
            if rest.trim_start_matches('/').is_empty() || uri.contains(char::is_whitespace) {
                out.push(m.diag(Severity::Error, "spec.job.jarURI", format!("found {uri:?}; allowed: a URI naming a jar file")));
            }
        }
    }
}

/// Type-checks every known option set in a manifest.
fn check_config_values(m: &Manifest, cfg: &BTreeMap<String, String>, out: &mut Vec<Diagnostic>) {
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
            if let Some(allowed) = check_value(opt.kind, value) {
                out.push(m.diag(
                    Severity::Error,
                    &config_field(name),
                    format!("found {value:?}; allowed: {allowed}"),
                ));
            }
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
            out.push(m.diag(
                Severity::Error,
                "spec.deploymentName",
                format!("no FlinkDeployment named {target:?} in namespace {:?}{hint}", m.key.namespace),
            ));
        }
        Some(Spec::Deployment(d)) if !d.is_session_cluster() => out.push(m.diag(
            Severity::Error,
            "spec.deploymentName",
            format!("{target:?} is an application cluster (it has spec.job); a FlinkSessionJob needs a session cluster (a FlinkDeployment without spec.job)"),
        )),
        Some(cluster) => {
            // As the operator does once the cluster exists: the job rules over the default
            // configuration, the session cluster's and the session job's own.
            if let Some(job) = &sj.job {
                let mut cfg = effective_config(cluster.flink_configuration(), options);
                cfg.extend(sj.flink_configuration.iter().map(|(k, v)| (k.clone(), v.clone())));
                let home = format!("spec.flinkConfiguration (of this session job or of FlinkDeployment {target:?})");
                validate_job(m, job, None, &cfg, &home, out);
            }
        }
    }
}

/// Rules about a change from the spec that was applied (`old`) to the desired one (`new`).
pub fn validate_transition(old: &Spec, new: &Manifest, out: &mut Vec<Diagnostic>) {
    match (old, &new.spec) {
        (Spec::Deployment(o), Spec::Deployment(n)) => {
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
            if o.effective_mode() != n.effective_mode() {
                out.push(new.diag(
                    Severity::Error,
                    "spec.mode",
                    "spec.mode (native or standalone) cannot change after the first deployment",
                ));
            }
            if let (Some(oj), Some(nj), Some(ov), Some(nv)) =
                (&o.job, &n.job, o.flink_version, n.flink_version)
            {
                if ov != nv
                    && oj.state == JobState::Suspended
                    && oj.upgrade_mode == UpgradeMode::LastState
                {
                    out.push(new.diag(
                        Severity::Error,
                        "spec.flinkVersion",
                        format!("changing flinkVersion ({ov} to {nv}) after a last-state suspend is not allowed; resume with {ov}, or suspend with upgradeMode savepoint first"),
                    ));
                }
                let _ = nj;
            }
        }
        (Spec::SessionJob(o), Spec::SessionJob(n)) => {
            if o.deployment_name != n.deployment_name {
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
        }
        _ => {}
    }
    if let (Some(oj), Some(nj)) = (old.job(), new.spec.job()) {
        if nj.savepoint_redeploy_nonce.is_some()
            && nj.savepoint_redeploy_nonce != oj.savepoint_redeploy_nonce
            && nj
                .initial_savepoint_path
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
        {
            out.push(new.diag(
                Severity::Error,
                "spec.job.savepointRedeployNonce",
                "a new savepointRedeployNonce needs spec.job.initialSavepointPath: the savepoint to redeploy from",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(ingress_url_error("example.com:port", "a", "b")
            .is_some_and(|e| e.contains("\"port\" is not a number")));
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
        assert!(
            s.diagnostics
                .iter()
                .any(|d| d.severity == Severity::Warning
                    && d.field == "spec.taskManager.resource.cpu")
        );
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
}
