//! Shared helpers for ethergate benchmarks.
