//! Criterion benchmarks live beside this crate as `[[bench]]` targets.
