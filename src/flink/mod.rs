//! Everything that knows Flink: the manifest model ([`spec`]), the lifecycle rules
//! ([`lifecycle`], pure) and the REST client ([`rest`]).
pub mod lifecycle;
pub mod rest;
pub mod spec;
