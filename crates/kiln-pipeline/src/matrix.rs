//! `strategy.matrix` expansion.
