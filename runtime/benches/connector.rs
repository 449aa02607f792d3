//! Per-call overhead of the connector host: fresh `Store`, instantiate from the pre-linked
//! `InstancePre` with the pooling allocator, invoke with a 1 KiB JSON input (schema checks
//! included); plus loading a component: first compile vs the disk cache.
//!
//! Needs the components built: `cargo xtask connectors` (or `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark: a panic is the failure report

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use trellis_runtime::connector::{
    CallContext, ConnectorHost, Grants, HostConfig, HostServices, HttpFailure, HttpRequest,
    HttpResponse, Invocation, KvNamespace, KvUnavailable, Limits,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct NoServices;

impl HostServices for NoServices {
    fn http(&self, _: HttpRequest, _: Duration, _: u64) -> Result<HttpResponse, HttpFailure> {
        Err(HttpFailure::Transport("no network in the benchmark".into()))
    }
    fn kv_get(&self, _: &KvNamespace, _: &str) -> Result<Option<Vec<u8>>, KvUnavailable> {
        Ok(None)
    }
    fn kv_set(
        &self,
        _: &KvNamespace,
        _: &str,
        _: &[u8],
        _: Option<Duration>,
    ) -> Result<(), KvUnavailable> {
        Ok(())
    }
    fn kv_delete(&self, _: &KvNamespace, _: &str) -> Result<(), KvUnavailable> {
        Ok(())
    }
    fn kv_add(
        &self,
        _: &KvNamespace,
        _: &str,
        _: &[u8],
        _: Option<Duration>,
    ) -> Result<bool, KvUnavailable> {
        Ok(true)
    }
}

fn component(name: &str) -> Vec<u8> {
    let dir = match std::env::var_os("TRELLIS_CONNECTORS_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()
            .unwrap()
            .ancestors()
            .nth(3)
            .unwrap()
            .join("wasm32-wasip2/release"),
    };
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the connectors first: cargo xtask connectors",
            path.display()
        )
    })
}

fn bench(c: &mut Criterion) {
    let bytes = component("adversarial");
    let host = ConnectorHost::new(HostConfig::default()).unwrap();
    let loaded = host.load(&bytes).unwrap();
    let services: Arc<dyn HostServices> = Arc::new(NoServices);
    // ~1 KiB of lead data.
    let input = json!({ "value": {
        "lead": "l-20261128-0042", "company": "宁德时代新能源科技股份有限公司", "industry": "ev_parts",
        "employees": 12000, "region": "福建", "score": 73.5, "tier": "hot",
        "events": (0..16).map(|i| json!({"type": "page", "path": format!("/products/bms/{i}"), "dwell_s": 30 + i})).collect::<Vec<_>>(),
    }});
    assert!(
        input.to_string().len() >= 1000,
        "{}",
        input.to_string().len()
    );
    let (config, empty) = (json!({}), json!({}));
    let call = || Invocation {
        operation: "echo",
        config: &config,
        input: &input,
        context: CallContext {
            run_id: "run".into(),
            step_id: "echo".into(),
            idempotency_key: "run/echo/0/1".into(),
            workspace: "default".into(),
        },
        grants: Grants::default(),
        limits: Limits::default(),
    };
    // Each call's `Invocation` (its context) is built outside the timed part; the host
    // borrows the input, which the caller builds before the call and frees after it.
    c.bench_function("connector/call_echo_1KiB", |b| {
        b.iter_batched(
            call,
            |call| host.invoke(&loaded, call, services.clone()).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // The same 1 KiB input to an operation that only reads its length: what carrying it
    // costs the host and the boundary, without the guest's own parsing.
    c.bench_function("connector/call_measure_1KiB", |b| {
        b.iter_batched(
            || Invocation {
                operation: "measure",
                ..call()
            },
            |call| host.invoke(&loaded, call, services.clone()).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // The same path with an empty input: what the host itself costs per call.
    c.bench_function("connector/call_echo_empty", |b| {
        b.iter_batched(
            || Invocation {
                input: &empty,
                ..call()
            },
            |call| host.invoke(&loaded, call, services.clone()).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let mut group = c.benchmark_group("connector/load");
    group.sample_size(10);
    group.bench_function("first_compile", |b| {
        b.iter(|| {
            let host = ConnectorHost::new(HostConfig::default()).unwrap();
            host.load(&bytes).unwrap()
        })
    });
    let cache = std::env::temp_dir().join(format!("trellis-bench-cache-{}", std::process::id()));
    let cached = ConnectorHost::new(HostConfig {
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    })
    .unwrap();
    cached.load(&bytes).unwrap();
    group.bench_function("from_disk_cache", |b| {
        b.iter(|| {
            let l = cached.load(&bytes).unwrap();
            assert!(l.from_cache);
            l
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(cache);
}

criterion_group!(benches, bench);
criterion_main!(benches);
