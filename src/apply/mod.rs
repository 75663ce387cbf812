//! Executor and runtimes.
