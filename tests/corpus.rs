//! The invalid-manifest corpus.
