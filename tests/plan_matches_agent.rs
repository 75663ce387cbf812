//! The plan is what the agent does: over generated pairs of specs (base and head) and the
//! records the agent wrote on its way to base, the action `plan` prints for the change is
//! the first external step the agent takes for it against the fake Flink (and the steps
//! `plan` predicts are the external steps the agent takes, in order).
//!
//! A case: a history (an earlier spec, or one pushed and removed again) brings a world to
//! base with a real agent, so the record is the one the agent wrote (nonces acted on,
//! savepoints, restore points, a deletion); then head is pushed and the agent driven until
//! it settles. The plan is computed from the same base and head manifest sets and the
//! records on the status store at base, through `diff::plan_with_records` (what
//! `flink-gitops plan` prints) and `lifecycle::simulate::predict` (its steps).
//!
//! The generator covers application deployments and session jobs; every upgrade mode
//! (last-state for deployments only), running or suspended, the program version,
//! parallelism, `savepointTriggerNonce`, `checkpointTriggerNonce`, `restartNonce`, the
//! adaptive scheduler with per-vertex overrides (in-place rescale), `initialSavepointPath`
//! with or without `savepointRedeployNonce`, `flinkVersion`; heads that change a few fields
//! of base, remove the resource, or add it (fresh, or back after a removal).
//! `PROPTEST_CASES` sets the number of cases (128 by default).

use std::collections::BTreeMap;

use flink_gitops::apply::executor::ManifestSource;
use flink_gitops::diff::plan_with_records;
use flink_gitops::flink::lifecycle::decide::{Desired, Step};
use flink_gitops::flink::lifecycle::record::{Record, StopMode};
use flink_gitops::flink::lifecycle::simulate::{predict, predicted_record};
use flink_gitops::flink::lifecycle::Action;
use flink_gitops::flink::rest::JobId;
use flink_gitops::flink::spec::{Kind, ManifestSet, ResourceKey, Spec, UpgradeMode};
use proptest::prelude::*;

use crate::harness::agent_fake::*;
use crate::harness::fake_flink::Call;

const NAME: &str = "counter";
const CLUSTER: &str = "analytics";
const FILE: &str = "res.yaml";

/// One generated spec.
#[derive(Debug, Clone, PartialEq)]
struct Gen {
    mode: &'static str,
    suspended: bool,
    version: u8,
    parallelism: u32,
    savepoint_nonce: Option<i64>,
    checkpoint_nonce: Option<i64>,
    restart_nonce: Option<i64>,
    /// Adaptive scheduler with per-vertex overrides (the source vertex's parallelism);
    /// application deployments only.
    adaptive: Option<u32>,
    /// `initialSavepointPath` set, with this `savepointRedeployNonce` if any.
    initial: Option<Option<i64>>,
    /// `flinkVersion: v1_20` instead of `v2_3` (application deployments only).
    older_flink: bool,
}

fn vertex(salt: &str) -> String {
    JobId::derived(&format!("fake-vertex/{NAME}/{salt}")).to_string()
}

impl Gen {
    fn opts(&self) -> JobOpts {
        let mut config = Vec::new();
        if let Some(p) = self.adaptive {
            config.push(("jobmanager.scheduler".to_string(), "adaptive".to_string()));
            config.push((
                "pipeline.jobvertex-parallelism-overrides".to_string(),
                format!("{}:{p},{}:1", vertex("source"), vertex("counter")),
            ));
        }
        JobOpts {
            upgrade_mode: self.mode,
            state: if self.suspended {
                "suspended"
            } else {
                "running"
            },
            version: format!("v{}", self.version),
            parallelism: self.parallelism,
            savepoint_nonce: self.savepoint_nonce,
            checkpoint_nonce: self.checkpoint_nonce,
            restart_nonce: self.restart_nonce,
            initial_savepoint_path: self.initial.map(|_| INITIAL_SAVEPOINT.to_string()),
            savepoint_redeploy_nonce: self.initial.flatten(),
            flink_version: if self.older_flink { "v1_20" } else { "v2_3" },
            config,
        }
    }

    fn yaml(&self, kind: Kind) -> String {
        match kind {
            Kind::FlinkDeployment => app_yaml(NAME, &self.opts()),
            Kind::FlinkSessionJob => session_job_yaml(NAME, CLUSTER, &self.opts()),
        }
    }
}

const MODES: [&str; 3] = ["savepoint", "last-state", "stateless"];

/// last-state needs a cluster of its own: session jobs use the other two.
const SESSION_JOB_MODES: [&str; 2] = ["savepoint", "stateless"];

fn gen_spec(kind: Kind) -> impl Strategy<Value = Gen> {
    let adaptive = if kind == Kind::FlinkDeployment {
        prop_oneof![2 => Just(None), 1 => (1u32..=2).prop_map(Some)].boxed()
    } else {
        Just(None).boxed()
    };
    let modes: &'static [&'static str] = if kind == Kind::FlinkDeployment {
        &MODES
    } else {
        &SESSION_JOB_MODES
    };
    let app = kind == Kind::FlinkDeployment;
    (
        (
            prop::sample::select(modes),
            prop::bool::weighted(0.25),
            1u8..=2,
            1u32..=2,
        ),
        (
            prop::option::weighted(0.3, 1i64..=2),
            prop::option::weighted(0.3, 1i64..=2),
            prop::option::weighted(0.2, 1i64..=2),
            adaptive,
            prop::option::weighted(0.2, prop::option::weighted(0.6, 1i64..=2)),
            prop::bool::weighted(if app { 0.15 } else { 0.0 }),
        ),
    )
        .prop_map(
            |(
                (mode, suspended, version, parallelism),
                (sp, cp, restart, adaptive, initial, older_flink),
            )| Gen {
                mode,
                suspended,
                version,
                parallelism,
                savepoint_nonce: sp,
                checkpoint_nonce: cp,
                restart_nonce: restart,
                adaptive,
                initial,
                older_flink,
            },
        )
}

/// A change of `base`: one field drawn again, or each field kept (mostly) or drawn again,
/// or (adaptive deployments) only the vertex overrides changed (an in-place rescale).
fn gen_change(kind: Kind, base: Gen) -> impl Strategy<Value = Gen> {
    const FIELDS: usize = 10;
    let rescale = if base.adaptive.is_some() { 1 } else { 0 };
    let which = prop_oneof![
        2 => (0..FIELDS).prop_map(|i| (0..=FIELDS).map(|j| j == i).collect::<Vec<bool>>()),
        2 => prop::collection::vec(prop::bool::weighted(0.25), FIELDS)
            .prop_map(|mut v| { v.push(false); v }),
        rescale => Just((0..=FIELDS).map(|j| j == FIELDS).collect::<Vec<bool>>()),
    ];
    (gen_spec(kind), which).prop_map(move |(other, take)| {
        let mut g = base.clone();
        if take[0] {
            g.mode = other.mode;
        }
        if take[1] {
            g.suspended = other.suspended;
        }
        if take[2] {
            g.version = other.version;
        }
        if take[3] {
            g.parallelism = other.parallelism;
        }
        if take[4] {
            g.savepoint_nonce = other.savepoint_nonce;
        }
        if take[5] {
            g.checkpoint_nonce = other.checkpoint_nonce;
        }
        if take[6] {
            g.restart_nonce = other.restart_nonce;
        }
        if take[7] {
            g.adaptive = other.adaptive;
        }
        if take[8] {
            g.initial = other.initial;
        }
        if take[9] {
            g.older_flink = other.older_flink;
        }
        if take[10] {
            g.adaptive = g.adaptive.map(|p| 3 - p);
        }
        g
    })
}

/// A generated case: the history that brings the world to base, base, and head.
#[derive(Debug, Clone)]
struct Case {
    kind: Kind,
    /// Pushed (and settled) before base.
    earlier: Option<Gen>,
    /// Removed again before base (base is then absent): head re-adds it.
    removed_before: bool,
    base: Option<Gen>,
    /// None: removed at head.
    head: Option<Gen>,
}

fn gen_case() -> impl Strategy<Value = Case> {
    prop_oneof![Just(Kind::FlinkDeployment), Just(Kind::FlinkSessionJob)].prop_flat_map(|kind| {
        let changed = (prop::option::weighted(0.3, gen_spec(kind)), gen_spec(kind))
            .prop_flat_map(move |(earlier, base)| {
                (
                    Just(earlier),
                    Just(base.clone()),
                    prop_oneof![6 => gen_change(kind, base).prop_map(Some), 1 => Just(None)],
                )
            })
            .prop_map(move |(earlier, base, head)| Case {
                kind,
                earlier,
                removed_before: false,
                base: Some(base),
                head,
            });
        let added = (prop::option::weighted(0.5, gen_spec(kind)), gen_spec(kind)).prop_map(
            move |(earlier, head)| Case {
                kind,
                removed_before: earlier.is_some(),
                earlier,
                base: None,
                head: Some(head),
            },
        );
        prop_oneof![5 => changed, 2 => added]
    })
}

fn key_of(kind: Kind) -> ResourceKey {
    match kind {
        Kind::FlinkDeployment => deployment(NAME),
        Kind::FlinkSessionJob => session_job(NAME),
    }
}

fn files(kind: Kind, spec: Option<&Gen>) -> Push {
    let mut push = Vec::new();
    if kind == Kind::FlinkSessionJob {
        push.push(file("cluster.yaml", session_cluster_yaml(CLUSTER, 2)));
    }
    push.push(match spec {
        Some(g) => file(FILE, g.yaml(kind)),
        None => removed(FILE),
    });
    push
}

/// The fake call an external step makes (jar uploads aside).
fn call_of(step: &Step) -> Option<Call> {
    let call = match step {
        Step::Deploy(d) => match d.spec {
            Spec::SessionJob(_) => Call::RunJar,
            Spec::Deployment(_) => Call::DeployCluster,
        },
        Step::Stop(s) if s.mode == StopMode::Savepoint => Call::Stop,
        Step::Stop(_) => Call::Cancel,
        Step::Rescale { .. } => Call::SetParallelism,
        Step::TriggerSnapshot {
            checkpoint: true, ..
        } => Call::TriggerCheckpoint,
        Step::TriggerSnapshot { .. } => Call::TriggerSavepoint,
        Step::Settle {
            delete_cluster: true,
            ..
        } => Call::DeleteCluster,
        _ => return None,
    };
    Some(call)
}

/// The first call the plan's action says the agent makes, read from the action alone.
fn first_call_of(action: &Action, kind: Kind, base_suspended: bool) -> Option<Call> {
    let start = match kind {
        Kind::FlinkDeployment => Call::DeployCluster,
        Kind::FlinkSessionJob => Call::RunJar,
    };
    let stop = |mode: &UpgradeMode| match mode {
        UpgradeMode::Savepoint => Call::Stop,
        _ => Call::Cancel,
    };
    match action {
        Action::Deploy { .. } | Action::Resume { .. } | Action::DeploySessionCluster => Some(start),
        Action::Upgrade { mode } | Action::Suspend { mode } => Some(stop(mode)),
        Action::SavepointRedeploy { .. } => Some(Call::Cancel),
        Action::RescaleInPlace => Some(Call::SetParallelism),
        Action::TriggerSnapshot {
            savepoint: true, ..
        } => Some(Call::TriggerSavepoint),
        Action::TriggerSnapshot { .. } => Some(Call::TriggerCheckpoint),
        // A suspended job has no cluster left: nothing to stop or delete.
        Action::Delete { .. } if base_suspended => None,
        Action::Delete {
            final_savepoint: true,
            ..
        } => Some(Call::Stop),
        Action::Delete { .. } => Some(Call::Cancel),
        Action::RedeploySessionCluster { .. } | Action::DeleteSessionCluster => {
            Some(Call::DeployCluster)
        }
        Action::CreateSuspended
        | Action::NoRestart
        | Action::UpdateSuspended
        | Action::KeepUnmanaged
        | Action::Hold => None,
    }
}

/// What the plan says for `key` between two manifest sets, with the records at base.
fn planned(
    key: &ResourceKey,
    base: &ManifestSet,
    head: &ManifestSet,
    records: &BTreeMap<ResourceKey, Record>,
) -> (Action, Vec<Step>) {
    let plan = plan_with_records(base, head, "base", "head", records);
    let Some(rp) = plan.resources.iter().find(|r| &r.key() == key) else {
        return (Action::NoRestart, Vec::new());
    };
    // Held by a rule of the plan's own (invalid manifest, invalid transition): no steps.
    if rp.action_detail == Action::Hold {
        return (Action::Hold, Vec::new());
    }
    let old = base.get(key).map(|m| &m.spec);
    let new = head.get(key);
    let desired = match new {
        Some(n) => Desired::Valid {
            spec: &n.spec,
            hash: n.spec.hash(),
            revision: "head",
        },
        None => Desired::Absent,
    };
    let record = predicted_record(key, old, records.get(key));
    let prediction = predict(&desired, record, &[], true);
    assert_eq!(
        prediction.action, rp.action_detail,
        "plan_with_records and predict disagree"
    );
    (prediction.action, prediction.steps)
}

struct Outcome {
    action: Action,
    planned_calls: Vec<Call>,
    agent_calls: Vec<Call>,
    base_suspended: bool,
}

async fn run_case(case: &Case) -> Outcome {
    let kind = case.kind;
    let key = key_of(kind);
    let mut history: Vec<Push> = Vec::new();
    if let Some(e) = &case.earlier {
        history.push(files(kind, Some(e)));
        if case.removed_before {
            history.push(files(kind, None));
        }
    }
    if let Some(b) = &case.base {
        history.push(files(kind, Some(b)));
    }
    if history.is_empty() && kind == Kind::FlinkSessionJob {
        // The session cluster is there at base.
        history.push(vec![file("cluster.yaml", session_cluster_yaml(CLUSTER, 2))]);
    }
    let (w, agent) = World::replay(&history).await;
    let (_, base_set) = w.manifests.fetch().expect("base");
    let records = w.store_records();
    let start = w.fake.steps();
    w.push_files(&files(kind, case.head.as_ref()));
    let (_, head_set) = w.manifests.fetch().expect("head");
    let (action, steps) = planned(&key, &base_set, &head_set, &records);
    for s in &steps {
        assert_eq!(s.is_external(), call_of(s).is_some(), "{s:?}");
    }
    w.settle(&agent).await;
    assert_eq!(w.fake.violations(), Vec::<String>::new());
    if let Some(r) = w.store.get(&key) {
        assert_eq!(r.in_flight, None, "{r:#?}");
    }
    Outcome {
        action,
        planned_calls: steps.iter().filter_map(call_of).collect(),
        agent_calls: w.call_kinds_since(start),
        base_suspended: case.base.as_ref().is_some_and(|b| b.suspended),
    }
}

fn check(case: &Case, o: &Outcome) -> Result<(), TestCaseError> {
    let first_planned = o.planned_calls.first().copied();
    let first_taken = o.agent_calls.first().copied();
    prop_assert_eq!(
        first_call_of(&o.action, case.kind, o.base_suspended),
        first_taken,
        "the plan's action {:?} is not the agent's first step (agent: {:?}, plan steps: {:?})",
        o.action,
        o.agent_calls,
        o.planned_calls
    );
    prop_assert_eq!(
        first_planned,
        first_taken,
        "the plan's first external step is not the agent's (agent: {:?}, plan: {:?})",
        o.agent_calls,
        o.planned_calls
    );
    prop_assert_eq!(
        &o.planned_calls,
        &o.agent_calls,
        "the plan's external steps are not the agent's"
    );
    Ok(())
}

/// Cases per run; `PROPTEST_CASES` overrides.
const CASES: u32 = 128;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn plan_matches_agent_first_step(
        case in gen_case()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let outcome = rt.block_on(run_case(&case));
        check(&case, &outcome)?;
    }
}

fn plain(mode: &'static str, suspended: bool) -> Gen {
    Gen {
        mode,
        suspended,
        version: 1,
        parallelism: 1,
        savepoint_nonce: None,
        checkpoint_nonce: None,
        restart_nonce: None,
        adaptive: None,
        initial: None,
        older_flink: false,
    }
}

/// A FlinkSessionJob started where base runs none: resumed after a suspend, or added. The
/// plan predicts the world with the session job's *cluster* absent (`simulate::world_of`
/// gives a suspended resource, or one without a record, no cluster: right for a
/// FlinkDeployment, wrong for a session job, whose session cluster runs on its own), so
/// `decide` waits "for the session cluster to be ready" and the plan prints "no restart"
/// with no steps; the agent submits the job (RunJar). (The added case appeared with the
/// change to `decide::first_deploy` that makes a session job wait for its cluster.)
#[tokio::test]
async fn plan_for_starting_a_session_job_matches_the_agent() {
    let cases = [
        (Some(plain("savepoint", true)), None),
        (Some(plain("stateless", true)), None),
        (
            Some(plain("savepoint", true)),
            Some(plain("savepoint", false)),
        ),
        (None, None),
    ];
    for (base, earlier) in cases {
        let case = Case {
            kind: Kind::FlinkSessionJob,
            earlier,
            removed_before: false,
            base: base.clone(),
            head: Some(plain(base.as_ref().map_or("savepoint", |b| b.mode), false)),
        };
        let outcome = run_case(&case).await;
        assert!(
            matches!(
                outcome.action,
                Action::Resume { .. } | Action::Deploy { .. }
            ),
            "{case:?}: {:?}",
            outcome.action
        );
        check(&case, &outcome).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    }
}

/// An in-place rescale (adaptive scheduler, new vertex overrides) pushed together with a new
/// `checkpointTriggerNonce` or `savepointTriggerNonce`: the predicted steps are right
/// (rescale, then the snapshot) and the agent takes them, but `simulate::summarize` checks
/// "snapshots and no restart" before it looks at the steps in order, so the plan's action
/// reads "trigger a checkpoint; no restart" and does not mention the rescale the agent
/// does first.
#[tokio::test]
async fn plan_for_a_rescale_with_a_nonce_names_the_rescale() {
    for savepoint in [false, true] {
        let mut head = Gen {
            adaptive: Some(2),
            ..plain("savepoint", false)
        };
        if savepoint {
            head.savepoint_nonce = Some(1);
        } else {
            head.checkpoint_nonce = Some(1);
        }
        let case = Case {
            kind: Kind::FlinkDeployment,
            earlier: None,
            removed_before: false,
            base: Some(Gen {
                adaptive: Some(1),
                ..plain("savepoint", false)
            }),
            head: Some(head),
        };
        let outcome = run_case(&case).await;
        check(&case, &outcome).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    }
}

/// A last-state job suspended on one `flinkVersion` and resumed on another: `plan` holds it
/// (`validate_transition`, the operator's rule: HA metadata and checkpoints may not carry
/// over between Flink versions) and prints no step, but the agent never runs the
/// transition rules (`validate_transition` is called from `diff` only) and resumes the job
/// on the new version from the last-state checkpoint. The same holds for the other
/// transition rules (application <-> session cluster, `spec.mode`, a session job's
/// `deploymentName`).
#[tokio::test]
async fn plan_holds_an_invalid_transition_and_so_does_the_agent() {
    let case = Case {
        kind: Kind::FlinkDeployment,
        earlier: None,
        removed_before: false,
        base: Some(plain("last-state", true)),
        head: Some(Gen {
            older_flink: true,
            ..plain("last-state", false)
        }),
    };
    let outcome = run_case(&case).await;
    assert_eq!(outcome.action, Action::Hold);
    check(&case, &outcome).unwrap_or_else(|e| panic!("{case:?}: {e}"));
}
