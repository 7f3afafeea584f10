//! Run with: cargo bench -p concertmaster-benches --bench expressions
//!
//! What one jq evaluation costs a node: a condition and a mapping on one
//! submitted item, as the filter, if and map-fields nodes evaluate them per
//! item. Each evaluation runs on an evaluator thread (so that one running
//! past its time limit can be given up on); the hand-off is part of it.

#![allow(missing_docs)]

use concertmaster_nodes::Expr;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

fn expressions(c: &mut Criterion) {
    let item = json!({
        "supplier": "ACME GmbH",
        "country": "DE",
        "score": 72,
        "contacts": [{"email": "a@acme.test"}, {"email": "b@acme.test"}],
    });
    let condition = Expr::compile(r#".score > 50 and (.country | test("^D"))"#).expect("compiles");
    let mapping =
        Expr::compile("{name: .supplier, emails: [.contacts[].email]}").expect("compiles");
    let mut group = c.benchmark_group("expressions");
    group.bench_function("condition", |b| {
        b.iter(|| assert!(condition.test(&item).expect("evaluates")))
    });
    group.bench_function("mapping", |b| {
        b.iter(|| mapping.eval_one(&item).expect("evaluates"))
    });
    group.finish();
}

criterion_group!(benches, expressions);
criterion_main!(benches);
