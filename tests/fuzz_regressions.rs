//! Every input the fuzzer failed on (`fuzz/regressions/manifest_reader`, each file named
//! after what went wrong) must now pass the fuzz target's checks.

use crate::fuzz_property::read_as_everyone_does;
use crate::harness;

#[test]
fn fuzz_regressions_pass_the_fuzz_checks() {
    let dir = harness::root().join("fuzz/regressions/manifest_reader");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read fuzz/regressions/manifest_reader")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    for path in files {
        let data = std::fs::read(&path).expect("read input");
        let result = std::panic::catch_unwind(|| read_as_everyone_does(&data));
        assert!(result.is_ok(), "{} fails the fuzz checks", path.display());
    }
}
