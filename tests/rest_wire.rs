//! Flink REST client against a scripted HTTP server: error paths a real Flink cannot be made to show.
