//! Integration tests: one binary, a shared harness (temp Git repositories, the CLI, real
//! Flink where a test needs it).

mod harness;

mod corpus;
mod plan_cli;
mod rest_wire;
