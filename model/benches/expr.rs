//! What the CEL cost budget buys: evaluations priced close to `COST_LIMIT` (one
//! comprehension over a long list, a nested one, string building), each timed with its
//! price, plus the price check alone on a small expression (what every evaluation pays).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the report

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use trellis_model::expr::COST_LIMIT;
use trellis_model::{Expr, Scope};

/// The longest list `expr` may range over within the budget.
fn longest(expr: &Expr, scope_of: impl Fn(usize) -> Scope<'static>) -> usize {
    let (mut lo, mut hi) = (1usize, 1usize << 24);
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if expr.cost(&scope_of(mid)) <= COST_LIMIT {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn bench(c: &mut Criterion) {
    let list = |n: usize| Scope::new().with("trigger", json!({"l": (0..n).collect::<Vec<_>>()}));
    let cases = [
        ("map over a list", "trigger.l.map(x, x * 2).size()"),
        (
            "filter then exists",
            "trigger.l.filter(x, x % 3 == 0).exists(x, x == -1)",
        ),
        (
            "nested comprehension",
            "trigger.l.map(a, trigger.l.filter(b, b < a).size()).size()",
        ),
    ];
    for (name, src) in cases {
        let e = Expr::compile(src).unwrap();
        let n = longest(&e, list);
        let scope = list(n);
        eprintln!("{name}: {n} items, priced {} units", e.cost(&scope));
        c.bench_function(&format!("near the budget: {name}"), |b| {
            b.iter(|| e.eval(&scope).unwrap())
        });
    }
    let strings = Expr::compile("size(vars.s + vars.s + vars.s)").unwrap();
    let n = longest(&strings, |n| {
        Scope::new().with("vars", json!({ "s": "x".repeat(n) }))
    });
    let scope = Scope::new().with("vars", json!({ "s": "x".repeat(n) }));
    eprintln!(
        "string building: {n} bytes, priced {} units",
        strings.cost(&scope)
    );
    c.bench_function("near the budget: string building", |b| {
        b.iter(|| strings.eval(&scope).unwrap())
    });
    let small =
        Expr::compile("trigger.body.score >= 70.0 && trigger.body.event in ['a', 'b']").unwrap();
    let scope = Scope::new().with("trigger", json!({"body": {"score": 71.5, "event": "a"}}));
    c.bench_function("price check alone, small expression", |b| {
        b.iter(|| small.cost(&scope))
    });
    c.bench_function("small expression evaluated (price included)", |b| {
        b.iter(|| small.eval(&scope).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
