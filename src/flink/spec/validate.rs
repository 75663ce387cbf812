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
            validate_session_target(m, sj, manifests, &mut out);
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

/// Validates one manifest on its own.
pub fn validate_manifest(m: &Manifest, options: &Options, out: &mut Vec<Diagnostic>) {
    let (max, what) = match m.key.kind {
        Kind::FlinkDeployment => (45, "at most 45 characters"),
        Kind::FlinkSessionJob => (63, "at most 63 characters"),
    };
    if !name_ok(&m.key.name, max) {
        out.push(m.diag(
            Severity::Error,
            "metadata.name",
            format!(
                "found {:?}; allowed: lowercase letters, digits and '-', starting with a letter, ending with a letter or digit, {what}",
                m.key.name
            ),
        ));
    }
    if !name_ok(&m.key.namespace, 63)
        && !m
            .key
            .namespace
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    {
        out.push(m.diag(
            Severity::Error,
            "metadata.namespace",
            format!("found {:?}; allowed: a Kubernetes namespace name (lowercase letters, digits and '-', at most 63 characters)", m.key.namespace),
        ));
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
                    validate_job(m, job, None, &cfg, out);
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
                let url = t.replace("{{name}}", &m.key.name).replace("{{namespace}}", &m.key.namespace);
                let with_scheme = if url.contains("://") { url.clone() } else { format!("http://{url}") };
                let rest = with_scheme.split_once("://").map(|(_, r)| r).unwrap_or("");
                if rest.contains(char::is_whitespace) || (rest.is_empty()) || rest.contains("{{") {
                    out.push(m.diag(Severity::Error, "spec.ingress.template", format!("{t:?} does not give a valid URL (got {with_scheme:?}); placeholders: {{{{name}}}}, {{{{namespace}}}}")));
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
    if let Some(jm) = &d.job_manager {
        check_resource(
            m,
            "spec.jobManager",
            jm.resource.as_ref(),
            cfg,
            &[
                config::JM_PROCESS_MEMORY,
                config::JM_FLINK_MEMORY,
                config::JM_HEAP,
            ],
            out,
        );
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
        check_resource(
            m,
            "spec.taskManager",
            tm.resource.as_ref(),
            cfg,
            &[
                config::TM_PROCESS_MEMORY,
                config::TM_FLINK_MEMORY,
                config::TM_TASK_HEAP,
            ],
            out,
        );
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
            out,
        );
        if let Some(uri) = &job.jar_uri {
            check_jar_uri(m, uri, options, out);
        }
    }
}

fn check_resource(
    m: &Manifest,
    path: &str,
    res: Option<&Resource>,
    cfg: &BTreeMap<String, String>,
    memory_keys: &[FlinkOption],
    out: &mut Vec<Diagnostic>,
) {
    let Some(res) = res else { return };
    match &res.memory {
        Some(mem) => {
            if quantity::parse_memory(mem).is_none() {
                out.push(m.diag(
                    Severity::Error,
                    &format!("{path}.resource.memory"),
                    format!("found {mem:?}; allowed: {MEMORY_ALLOWED}"),
                ));
            }
        }
        None => {
            if !memory_keys.iter().any(|k| config::lookup(cfg, k).is_some()) {
                out.push(m.diag(
                    Severity::Error,
                    &format!("{path}.resource.memory"),
                    format!(
                            "{path}.resource.memory is missing and no memory option ({}) is set",
                            memory_keys
                                .iter()
                                .map(|k| k.key)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                ));
            }
        }
    }
    if let Some(cpu) = res.cpu {
        if cpu <= 0.0 {
            out.push(m.diag(
                Severity::Error,
                &format!("{path}.resource.cpu"),
                format!("found {cpu}; allowed: a number of cores above 0, such as 0.5 or 2"),
            ));
        }
    }
    if let Some(es) = &res.ephemeral_storage {
        if quantity::parse_k8s_quantity(es).is_none_or(|v| v <= 0.0) {
            out.push(m.diag(
                Severity::Error,
                &format!("{path}.resource.ephemeralStorage"),
                format!("found {es:?}; allowed: a Kubernetes quantity such as 10Gi or 500Mi"),
            ));
        }
    }
}

fn validate_job(
    m: &Manifest,
    job: &JobSpec,
    tm_replicas: Option<i64>,
    cfg: &BTreeMap<String, String>,
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
                "upgradeMode {} needs a checkpoint directory: set {} in spec.flinkConfiguration",
                job.upgrade_mode,
                dir_names(&config::CHECKPOINTS_DIR)
            ),
        ));
    }
    if !savepoints {
        let need = |what: &str| {
            format!(
                "{what} needs a savepoint directory: set {} in spec.flinkConfiguration",
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
        _ => {}
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

    const APP: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: app\nspec:\n  flinkVersion: v2_3\n  serviceAccount: flink\n  job:\n    jarURI: local:///job.jar\n    parallelism: 1\n";

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
    fn session_job_needs_a_session_cluster() {
        let text = format!("{APP}---\napiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\nmetadata:\n  name: sj\nspec:\n  deploymentName: app\n  job:\n    jarURI: https://x/y.jar\n    parallelism: 1\n");
        let s = set(&text);
        let e: Vec<_> = s.errors().collect();
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].message.contains("application cluster"));
        assert_eq!(e[0].line, 17);
    }
}
