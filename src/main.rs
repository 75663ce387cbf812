//! The `flink-gitops` binary: parse the command line and hand over to [`flink_gitops::cli`].
fn main() -> std::process::ExitCode {
    flink_gitops::cli::main()
}
