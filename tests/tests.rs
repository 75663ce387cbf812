//! Integration tests: one binary, a shared harness (temp Git repositories, the CLI, real
//! Flink where a test needs it).

mod harness;

mod agent_app;
mod agent_drift;
mod agent_engine;
mod agent_kube;
mod agent_recovery;
mod agent_session;
mod agent_snapshots;
mod corpus;
mod deploy_chart;
mod engine_drift;
mod engine_faults;
mod engine_rollback;
mod engine_scenarios;
mod fake_flink_selftest;
mod fuzz_property;
mod fuzz_regressions;
mod history_cli;
mod kube_lab;
mod leader_gate;
mod leader_lab;
mod notifications;
mod operator_rules;
mod ops;
mod plan_cli;
mod plan_matches_agent;
mod render;
mod rest_wire;
mod snapshot_scenarios;
mod yaml_forms;
