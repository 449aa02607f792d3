//! The connector host's sandbox, driven directly: every way a plugin can misbehave ends its
//! call with a typed error inside its limit, and an ordinary call beside it still succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_e2e::{TempDir, connector_wasm};
use trellis_runtime::connector::{
    CallContext, ConnectorError, ConnectorHost, Grants, HostConfig, HostServices, HttpFailure,
    HttpRequest, HttpResponse, Invocation, KvNamespace, KvUnavailable, Limits, LoadError, Loaded,
    Secret,
};

/// Key-value in memory; HTTP answers 200 with the request's URL, counting calls.
#[derive(Default)]
struct Services {
    kv: Mutex<HashMap<(KvNamespace, String), Vec<u8>>>,
    http_calls: Mutex<Vec<String>>,
}

impl HostServices for Services {
    fn http(&self, r: HttpRequest, _: Duration, _: u64) -> Result<HttpResponse, HttpFailure> {
        self.http_calls.lock().unwrap().push(r.url.clone());
        Ok(HttpResponse {
            status: 200,
            headers: vec![],
            body: json!({ "url": r.url }).to_string().into_bytes(),
        })
    }
    fn kv_get(&self, ns: &KvNamespace, key: &str) -> Result<Option<Vec<u8>>, KvUnavailable> {
        Ok(self
            .kv
            .lock()
            .unwrap()
            .get(&(ns.clone(), key.into()))
            .cloned())
    }
    fn kv_set(
        &self,
        ns: &KvNamespace,
        k: &str,
        v: &[u8],
        _: Option<Duration>,
    ) -> Result<(), KvUnavailable> {
        self.kv
            .lock()
            .unwrap()
            .insert((ns.clone(), k.into()), v.to_vec());
        Ok(())
    }
    fn kv_delete(&self, ns: &KvNamespace, key: &str) -> Result<(), KvUnavailable> {
        self.kv.lock().unwrap().remove(&(ns.clone(), key.into()));
        Ok(())
    }
    fn kv_add(
        &self,
        ns: &KvNamespace,
        k: &str,
        v: &[u8],
        _: Option<Duration>,
    ) -> Result<bool, KvUnavailable> {
        let mut kv = self.kv.lock().unwrap();
        let key = (ns.clone(), k.to_owned());
        if kv.contains_key(&key) {
            return Ok(false);
        }
        kv.insert(key, v.to_vec());
        Ok(true)
    }
}

fn host(cache: Option<&TempDir>) -> Arc<ConnectorHost> {
    ConnectorHost::new(HostConfig {
        cache_dir: cache.map(|c| c.0.join("cache")),
        ..HostConfig::default()
    })
    .unwrap()
}

fn adversarial(host: &ConnectorHost) -> Loaded {
    let bytes = std::fs::read(connector_wasm("adversarial")).unwrap();
    host.load(&bytes).unwrap()
}

fn call(
    host: &ConnectorHost,
    loaded: &Loaded,
    op: &str,
    input: Value,
    grants: Grants,
    limits: Limits,
) -> Result<Value, ConnectorError> {
    call_with(host, loaded, op, json!({}), input, grants, limits)
}

/// The http-json connector, loaded.
fn http_json(host: &ConnectorHost) -> Loaded {
    let bytes = std::fs::read(connector_wasm("http-json")).unwrap();
    host.load(&bytes).unwrap()
}

fn call_with(
    host: &ConnectorHost,
    loaded: &Loaded,
    op: &str,
    config: Value,
    input: Value,
    grants: Grants,
    limits: Limits,
) -> Result<Value, ConnectorError> {
    host.invoke(
        loaded,
        Invocation {
            operation: op,
            config: &config,
            input: &input,
            context: CallContext {
                run_id: "run-1".into(),
                step_id: op.into(),
                idempotency_key: format!("run-1/{op}/0/1"),
                workspace: "default".into(),
            },
            grants,
            limits,
        },
        Arc::new(Services::default()),
    )
}

#[test]
fn manifest_is_read_from_the_component() {
    let host = host(None);
    let loaded = adversarial(&host);
    assert_eq!(loaded.manifest.name, "adversarial");
    assert!(loaded.manifest.operation("echo").is_some());
    assert_eq!(loaded.manifest.capabilities.secrets, ["declared"]);
    let echo = call(
        &host,
        &loaded,
        "echo",
        json!({"value": 42}),
        Grants::default(),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(echo, json!({"value": 42, "key": "run-1/echo/0/1"}));
    // The guest sees the input as the JSON text the host wrote.
    let input = json!({"lead": "L-1", "公司": "宁德电驱", "score": 90.28571428571429});
    let measured = call(
        &host,
        &loaded,
        "measure",
        input.clone(),
        Grants::default(),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(
        measured,
        json!({"bytes": serde_json::to_string(&input).unwrap().len()})
    );
}

/// Inputs bigger than the SDK's allocation arena (so parsing them fills it and spills
/// into the system allocator midway, moving growing buffers across) come back unchanged.
#[test]
fn large_nested_inputs_round_trip_through_the_guest() {
    let host = host(None);
    let loaded = adversarial(&host);
    for n in [1, 100, 4_000] {
        let value = json!({
            "leads": (0..n).map(|i| json!({
                "id": format!("L-{i}"), "公司": "宁德电驱", "score": f64::from(i) / 7.0,
                "tags": ["ev", "parts", i.to_string()], "seen": i % 2 == 0, "owner": null,
                "events": { "page_view": i, "signal": { "budget": "预算已经批了" } },
            })).collect::<Vec<_>>(),
        });
        let size = value.to_string().len();
        let echo = call(
            &host,
            &loaded,
            "echo",
            json!({ "value": value }),
            Grants::default(),
            Limits::default(),
        )
        .unwrap_or_else(|e| panic!("{n} leads ({size} bytes): {e:?}"));
        assert!(
            echo["value"] == value,
            "{n} leads ({size} bytes) came back changed"
        );
    }
}

/// A call that allocates far more over its life than the memory limit, though little at
/// once, completes: freed memory is reused once the SDK's arena is full.
#[test]
fn freed_guest_memory_is_reused_under_the_memory_limit() {
    let host = host(None);
    let loaded = adversarial(&host);
    let limit = 4 << 20;
    let out = call(
        &host,
        &loaded,
        "churn",
        json!({ "rounds": 60 }),
        Grants::default(),
        Limits {
            memory_bytes: limit,
            ..Limits::default()
        },
    )
    .unwrap();
    assert_eq!(out["rounds"], json!(60));
    let bytes = out["bytes"].as_u64().unwrap();
    assert!(bytes > 8 * limit, "allocated {bytes} bytes over the call");
}

#[test]
fn input_is_checked_against_the_operation_schema() {
    let host = host(None);
    let loaded = adversarial(&host);
    let e = call(
        &host,
        &loaded,
        "nope",
        json!({}),
        Grants::default(),
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, ConnectorError::InvalidInput { .. }), "{e:?}");
    let http = http_json(&host);
    let e = call_with(
        &host,
        &http,
        "fetch",
        json!({"url": 5}),
        json!({}),
        Grants::default(),
        Limits::default(),
    )
    .unwrap_err();
    match e {
        ConnectorError::InvalidInput { message } => {
            assert!(message.contains("config/url"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_or_time() {
    let host = host(None);
    let loaded = adversarial(&host);
    let t = Instant::now();
    let e = call(
        &host,
        &loaded,
        "spin",
        json!(null),
        Grants::default(),
        Limits {
            fuel: 50_000_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(e, ConnectorError::FuelExhausted { limit: 50_000_000 });
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    let t = Instant::now();
    let limits = Limits {
        fuel: Limits::MAX.fuel,
        timeout_ms: 300,
        ..Limits::default()
    };
    let e = call(
        &host,
        &loaded,
        "spin",
        json!(null),
        Grants::default(),
        limits,
    )
    .unwrap_err();
    assert_eq!(e, ConnectorError::Deadline { limit_ms: 300 });
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let host = host(None);
    let loaded = adversarial(&host);
    let e = call(
        &host,
        &loaded,
        "memory_bomb",
        json!(null),
        Grants::default(),
        Limits {
            memory_bytes: 32 << 20,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e,
        ConnectorError::MemoryLimit {
            limit_bytes: 32 << 20
        }
    );
}

#[test]
fn a_50_mib_output_is_refused() {
    let host = host(None);
    let loaded = adversarial(&host);
    let limits = Limits {
        memory_bytes: 512 << 20,
        ..Limits::default()
    };
    let e = call(
        &host,
        &loaded,
        "huge_output",
        json!(null),
        Grants::default(),
        limits,
    )
    .unwrap_err();
    match e {
        ConnectorError::OutputTooLarge {
            limit_bytes,
            actual_bytes,
        } => {
            assert_eq!(limit_bytes, 1 << 20);
            assert!(actual_bytes > 50 << 20);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn undeclared_hosts_and_secrets_are_denied() {
    let host = host(None);
    let loaded = adversarial(&host);
    let all = Grants {
        hosts: vec!["*".into()],
        secrets: BTreeMap::new(),
        kv: true,
    };
    let e = call(
        &host,
        &loaded,
        "undeclared_host",
        json!(null),
        all.clone(),
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ConnectorError::CapabilityDenied {
            capability: "host".into(),
            name: "example.com:80".into(),
            reason: "declared".into()
        }
    );
    let e = call(
        &host,
        &loaded,
        "undeclared_secret",
        json!(null),
        all,
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ConnectorError::CapabilityDenied {
            capability: "secret".into(),
            name: "never_declared".into(),
            reason: "declared".into()
        }
    );
}

/// The SDK routes stdout, stderr and `getenv` to the world's own imports, so a component
/// built with it imports from WASI only the hash-map seed `std` asks for: each WASI
/// function linked costs every call's instantiation (README, connector benchmark).
#[test]
fn sdk_components_import_only_the_world_and_a_hash_seed() {
    let host = host(None);
    let loaded = adversarial(&host);
    let wasi: Vec<&str> = loaded
        .imports
        .iter()
        .map(String::as_str)
        .filter(|i| !i.starts_with("trellis:connector/"))
        .collect();
    assert!(
        wasi.len() == 1 && wasi[0].starts_with("wasi:random/insecure-seed@"),
        "{:?}",
        loaded.imports
    );
    assert!(
        loaded
            .imports
            .iter()
            .any(|i| i.starts_with("trellis:connector/log@")),
        "{:?}",
        loaded.imports
    );
}

/// A panic's message, which `std` writes to stderr (the SDK sends it to the `log` import),
/// is quoted in the trap.
#[test]
fn a_panic_is_a_trap_with_its_message() {
    let host = host(None);
    let loaded = adversarial(&host);
    match call(
        &host,
        &loaded,
        "panic",
        json!(null),
        Grants::default(),
        Limits::default(),
    )
    .unwrap_err()
    {
        ConnectorError::Trap { message } => {
            assert!(message.contains("the plugin gave up"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_key_value_store_needs_a_grant() {
    let host = host(None);
    let loaded = adversarial(&host);
    let e = call(
        &host,
        &loaded,
        "kv_roundtrip",
        json!(null),
        Grants::default(),
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ConnectorError::CapabilityDenied {
            capability: "kv".into(),
            name: "store".into(),
            reason: "granted".into()
        }
    );
    let grants = Grants {
        kv: true,
        ..Grants::default()
    };
    let out = call(
        &host,
        &loaded,
        "kv_roundtrip",
        json!(null),
        grants,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(out, json!({"value": "v"}));
}

#[test]
fn components_of_another_shape_are_refused() {
    let host = host(None);
    let core_module = b"\0asm\x01\0\0\0";
    assert!(matches!(
        host.load(core_module),
        Err(LoadError::NotAComponent(_))
    ));
    let empty_component = b"\0asm\x0d\0\x01\0";
    match host.load(empty_component) {
        Err(LoadError::WrongWorld(m)) => {
            assert!(m.contains("describe") || m.contains("export"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        host.load(b"not wasm"),
        Err(LoadError::NotAComponent(_))
    ));
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = TempDir::new();
    let bytes = std::fs::read(connector_wasm("http-json")).unwrap();
    let first = host(Some(&dir)).load(&bytes).unwrap();
    assert!(!first.from_cache);
    let second = host(Some(&dir)).load(&bytes).unwrap();
    assert!(second.from_cache);
    assert_eq!(first.manifest, second.manifest);
}

#[test]
fn a_runaway_call_does_not_hold_up_others() {
    let host = host(None);
    let loaded = Arc::new(adversarial(&host));
    let (h, l) = (host.clone(), loaded.clone());
    let spinner = std::thread::spawn(move || {
        let limits = Limits {
            fuel: Limits::MAX.fuel,
            timeout_ms: 2_000,
            ..Limits::default()
        };
        call(&h, &l, "spin", json!(null), Grants::default(), limits)
    });
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    for i in 0..50 {
        let out = call(
            &host,
            &loaded,
            "echo",
            json!({"value": i}),
            Grants::default(),
            Limits::default(),
        )
        .unwrap();
        assert_eq!(out["value"], i);
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        spinner.join().unwrap().unwrap_err(),
        ConnectorError::Deadline { limit_ms: 2_000 }
    );
}

#[test]
fn secrets_are_redacted_from_errors() {
    // The http-json connector sends the bearer secret; a denied host error must not echo it.
    let host = host(None);
    let loaded = http_json(&host);
    let grants = Grants {
        hosts: vec![],
        secrets: BTreeMap::from([("token".to_string(), Some(Secret("s3cr3t-value".into())))]),
        kv: false,
    };
    let e = call_with(
        &host,
        &loaded,
        "fetch",
        json!({"url": "http://127.0.0.1:9/s3cr3t-value", "method": "GET", "bearer_secret": "token"}),
        json!({}),
        grants,
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), "capability_denied");
    assert!(!format!("{e:?}").contains("s3cr3t-value"), "{e:?}");
}
