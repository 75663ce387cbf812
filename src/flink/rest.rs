//! Typed client for the Flink REST API.
