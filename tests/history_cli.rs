//! `flink-gitops history` and `rollback` on real Git repositories (a bare remote over
//! file://), without Flink: the rollback commit touches one document of one resource,
//! names both revisions, follows a resource that moved files, and refuses what it cannot
//! do; the history reads the status branch's commits.

use std::time::Duration;

use flink_gitops::flink::lifecycle::record::{Record, Savepoint, SnapshotTrigger};
use flink_gitops::flink::spec::{Kind, ResourceKey};
use flink_gitops::git::source::{GitSource, RepoLocation};
use flink_gitops::git::status::StatusBranch;

use crate::harness::agent_fake::{app_yaml, JobOpts};
use crate::harness::flink::Remote;
use crate::harness::{flink_gitops, git};

fn app(name: &str, version: &str) -> String {
    app_yaml(
        name,
        &JobOpts {
            version: version.into(),
            ..JobOpts::default()
        },
    )
}

fn short(c: &str) -> &str {
    &c[..7]
}

#[test]
fn rollback_restores_one_resource_document_and_nothing_else() {
    let remote = Remote::new();
    let url = remote.url();
    let dir = remote.scratch("cli");
    remote.write(
        "apps/all.yaml",
        &format!("{}---\n{}", app("alpha", "v1"), app("beta", "v1")),
    );
    let c1 = remote.push("v1");
    remote.write(
        "apps/all.yaml",
        &format!("{}---\n{}", app("alpha", "v2"), app("beta", "v2")),
    );
    let c2 = remote.push("v2");

    let run = flink_gitops(&dir, &["rollback", "alpha", "--to", &c1, "--repo", &url]);
    assert_eq!(run.code, 0, "{run:?}");
    let title = format!(
        "Roll back FlinkDeployment default/alpha to {} (from {})",
        short(&c1),
        short(&c2)
    );
    assert!(run.stdout.contains(&title), "{}", run.stdout);
    git(
        &remote.work(),
        &["pull", "-q", "--ff-only", "origin", "main"],
    );
    let text = std::fs::read_to_string(remote.work().join("apps/all.yaml")).expect("file");
    assert_eq!(
        text,
        format!("{}---\n{}", app("alpha", "v1"), app("beta", "v2")),
        "alpha is back at v1, beta stays at v2"
    );
    assert_eq!(git(&remote.work(), &["log", "-1", "--format=%s"]), title);
    let ok = flink_gitops(&dir, &["validate", "--repo", &url, "--revision", "main"]);
    assert_eq!(ok.code, 0, "{ok:?}");

    // Again: nothing to do. A resource the revision does not have: refused.
    let again = flink_gitops(&dir, &["rollback", "alpha", "--to", &c1, "--repo", &url]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(
        again.stderr.contains("already the manifest of"),
        "{}",
        again.stderr
    );
    let missing = flink_gitops(&dir, &["rollback", "gamma", "--to", &c1, "--repo", &url]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("default/FlinkDeployment/gamma is not defined at revision"),
        "{}",
        missing.stderr
    );

    // alpha moves to a file of its own at v3: the rollback edits it there.
    remote.write("apps/all.yaml", &app("beta", "v2"));
    remote.write("apps/alpha.yaml", &app("alpha", "v3"));
    let c3 = remote.push("alpha in its own file");
    let moved = flink_gitops(&dir, &["rollback", "alpha", "--to", &c1, "--repo", &url]);
    assert_eq!(moved.code, 0, "{moved:?}");
    assert!(moved.stdout.contains(&format!("(from {})", short(&c3))));
    git(
        &remote.work(),
        &["pull", "-q", "--ff-only", "origin", "main"],
    );
    let work = remote.work();
    let read = |f: &str| std::fs::read_to_string(work.join(f)).expect("file");
    assert_eq!(read("apps/alpha.yaml"), app("alpha", "v1"));
    assert_eq!(read("apps/all.yaml"), app("beta", "v2"));

    // Removed at the tip: put back into the file it had at the revision.
    remote.remove("apps/alpha.yaml");
    remote.push("alpha removed");
    let back = flink_gitops(&dir, &["rollback", "alpha", "--to", &c2, "--repo", &url]);
    assert_eq!(back.code, 0, "{back:?}");
    git(
        &remote.work(),
        &["pull", "-q", "--ff-only", "origin", "main"],
    );
    assert_eq!(
        read("apps/all.yaml"),
        format!("{}---\n{}", app("beta", "v2"), app("alpha", "v2"))
    );
}

#[test]
fn history_lists_each_deployed_revision_from_the_status_branch() {
    let remote = Remote::new();
    remote.write("apps/alpha.yaml", &app("alpha", "v1"));
    remote.push("v1");
    let source = GitSource::new(
        RepoLocation::Remote(remote.url()),
        &remote.scratch("cache"),
        Duration::from_secs(30),
    );
    let branch = StatusBranch::new(source, "flink-gitops/status");
    let key = ResourceKey::new("default", Kind::FlinkDeployment, "alpha");
    let spec = flink_gitops::flink::spec::Spec::Deployment(Default::default());
    let mut r = Record::new(&key);
    let write = |r: &Record, m: &str| branch.write(r, m).expect("status write");
    r.set_reconciled(&spec, Some("1111111111111111111111111111111111111111"));
    r.job_id = Some("j1".into());
    write(&r, "deployed");
    r.mark_reconciled_stable();
    write(&r, "stable");
    r.savepoints.push(Savepoint {
        location: "file:/sp/savepoint-1".into(),
        time: "2026-03-02T10:00:00Z".into(),
        trigger: SnapshotTrigger::Upgrade,
        revision: "1111111111111111111111111111111111111111".into(),
        for_revision: Some("2222222222222222222222222222222222222222".into()),
        job_id: "j1".into(),
    });
    let mut spec2 = spec.clone();
    if let flink_gitops::flink::spec::Spec::Deployment(d) = &mut spec2 {
        d.image = Some("flink:2".into());
    }
    r.set_reconciled(&spec2, Some("2222222222222222222222222222222222222222"));
    r.job_id = Some("j2".into());
    write(&r, "upgraded");
    r.mark_reconciled_stable();
    write(&r, "stable again");

    let dir = remote.scratch("cli");
    let run = flink_gitops(
        &dir,
        &["history", "alpha", "--repo", &remote.url(), "-o", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let v = run.json();
    let revs = v["revisions"].as_array().expect("revisions");
    assert_eq!(revs.len(), 2, "{v:#}");
    assert_eq!(
        revs[0]["revision"],
        "1111111111111111111111111111111111111111"
    );
    assert_eq!(revs[0]["outcome"], "STABLE");
    assert_eq!(revs[0]["savepoints"][0]["location"], "file:/sp/savepoint-1");
    assert_eq!(revs[1]["restoredFrom"], "file:/sp/savepoint-1");
    assert_eq!(revs[1]["jobIds"][0], "j2");
    let text = flink_gitops(&dir, &["history", "alpha", "--repo", &remote.url()]);
    assert!(text.stdout.contains("2222222  STABLE"), "{}", text.stdout);
    assert!(text.stdout.contains("restored from: file:/sp/savepoint-1"));
}
