//! The executor (being written).
