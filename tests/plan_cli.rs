//! plan on real Git histories.
