//! What the manifest reader must do with any bytes at all, checked by the fuzz target
//! (`fuzz/fuzz_targets/manifest_reader.rs` includes this file) and by
//! `fuzz_regressions` on every input the fuzzer once failed on.

use flink_gitops::diff::load::{parse_sides, Files};
use flink_gitops::flink::lifecycle::record::Record;
use flink_gitops::flink::spec::{validate::Options, ManifestSet};
use flink_gitops::git::source::parse_files;

const FILE: &str = "apps/fuzz.yaml";

fn parse_file(path: String, bytes: Vec<u8>) -> ManifestSet {
    parse_files(vec![(path, bytes)])
}

/// Reads `data` as one file of a repository, as validate, plan and the agent do, and
/// panics if they disagree:
///
/// - every diagnostic names the file and can be shown;
/// - a plan reads the file exactly as `validate` does (`diff::load` parses documents one by
///   one and moves them to their lines);
/// - every spec read survives the status branch (the agent writes the applied spec there
///   and reads it back after a restart).
pub fn read_as_everyone_does(data: &[u8]) {
    let files: Files = vec![(FILE.to_string(), data.to_vec())];
    let options = Options::default();
    let mut set = parse_files(files.clone());
    set.validate(&options);
    for d in &set.diagnostics {
        assert_eq!(d.file, FILE);
        let _ = d.to_string();
    }

    let (base, head) = parse_sides(Files::new(), files, parse_file, &options);
    assert!(base.manifests.is_empty());
    assert_eq!(
        head.manifests, set.manifests,
        "plan and validate read different resources"
    );
    assert_eq!(
        head.diagnostics, set.diagnostics,
        "plan and validate report differently"
    );
    assert_eq!(head.unreadable_files, set.unreadable_files);

    for m in &set.manifests {
        let mut record = Record::new(&m.key);
        record.last_reconciled_spec = Some(m.spec.clone());
        let text = record.to_yaml();
        let back = Record::from_yaml(&text)
            .unwrap_or_else(|e| panic!("status record of {} does not read back: {e}", m.key));
        let spec = back
            .last_reconciled_spec
            .unwrap_or_else(|| panic!("applied spec of {} does not read back", m.key));
        assert_eq!(
            spec.hash(),
            m.spec.hash(),
            "spec of {} changes on the status branch",
            m.key
        );
    }
}
