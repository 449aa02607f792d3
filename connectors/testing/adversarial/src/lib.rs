//! A connector that misbehaves on purpose, one operation per way a plugin can go wrong.
//! The host's sandbox tests call each and expect a typed failure within its limit, while
//! the server keeps serving.

use serde::Deserialize;
use trellis_connector_sdk::{
    Call, Connector, Context, Error, Event, Inbound, InboundRequest, JsonSchema, Manifest,
    Operation, Output, Polled, Value, http, json, secrets,
};

#[derive(Deserialize, JsonSchema)]
struct Nothing {}

/// How many rounds of allocating and freeing [`churn`] does.
#[derive(Deserialize, JsonSchema)]
struct Churn {
    rounds: u32,
}

#[derive(Deserialize, JsonSchema)]
struct Echo {
    #[serde(default)]
    value: Value,
}

struct Adversarial;

impl Connector for Adversarial {
    fn manifest() -> Manifest {
        let op = |name: &str| Operation::new::<Nothing, Value, Value>(name, name, name);
        Manifest::new("adversarial", env!("CARGO_PKG_VERSION"))
            .display("沙箱测试", "Sandbox test")
            .host("127.0.0.1")
            .secret("declared")
            .kv()
            .inbound()
            .poll()
            .operation(Operation::new::<Nothing, Echo, Value>(
                "echo", "回显", "Echo",
            ))
            .operation(Operation::new::<Nothing, Churn, Value>(
                "churn",
                "内存周转",
                "Memory churn",
            ))
            .operation(Operation::new::<Nothing, Value, Value>(
                "measure",
                "输入大小",
                "Input size",
            ))
            .operation(op("spin"))
            .operation(op("memory_bomb"))
            .operation(op("huge_output"))
            .operation(op("undeclared_host"))
            .operation(op("undeclared_secret"))
            .operation(op("panic"))
            .operation(op("kv_roundtrip"))
            .operation(op("leak_secret"))
    }

    fn invoke(call: Call) -> Result<Output, Error> {
        match call.operation() {
            "echo" => call.handle(|_: Nothing, input: Echo, ctx| {
                Ok(json!({ "value": input.value, "key": ctx.idempotency_key }))
            }),
            "churn" => call.handle(|_: Nothing, input: Churn, _| Ok(churn(input.rounds))),
            // The input's size, read without parsing it: a call whose guest does no work
            // on its input, for the host's own per-call cost.
            "measure" => Ok(json!({ "bytes": call.input_json().len() }).into()),
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory_bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "huge_output" => Ok(Value::String("x".repeat(50 << 20)).into()),
            "undeclared_host" => {
                let r = http::Request::get("http://example.com/").send();
                Err(Error::Internal(format!("expected a denial, got {r:?}")))
            }
            "undeclared_secret" => {
                secrets::get("never_declared")?;
                Err(Error::Internal("read an undeclared secret".into()))
            }
            "panic" => panic!("the plugin gave up"),
            "kv_roundtrip" => {
                trellis_connector_sdk::kv::set("k", b"v", Some(60_000))?;
                let v = trellis_connector_sdk::kv::get("k")?;
                Ok(json!({ "value": v.map(|v| String::from_utf8_lossy(&v).into_owned()) }).into())
            }
            "leak_secret" => {
                let secret = secrets::get("declared")?;
                trellis_connector_sdk::log::info(&format!("the secret is {secret}"));
                eprintln!("stderr also has {secret}");
                Err(Error::Internal(format!("leaking {secret}")))
            }
            other => Err(Error::unknown_operation(other)),
        }
    }

    /// Three orders, one per poll, then nothing: the cursor is the last order number.
    fn poll(_config: Value, cursor: Option<String>, _context: Context) -> Result<Polled, Error> {
        let last: u32 = cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
        if last >= 3 {
            return Ok(Polled {
                events: Vec::new(),
                cursor: None,
            });
        }
        let next = last + 1;
        Ok(Polled {
            events: vec![Event {
                name: "erp.order_shipped".into(),
                id: Some(format!("o-{next}")),
                payload: json!({ "order": next }),
            }],
            cursor: Some(next.to_string()),
        })
    }

    /// `{"events": [{name, id, payload}]}` in, those events out, if the `x-signature`
    /// header says `valid` (a stand-in for a real signature check).
    fn handle_inbound(request: InboundRequest) -> Result<Inbound, Error> {
        if request.header("x-signature") != Some("valid") {
            return Ok(Inbound {
                events: Vec::new(),
                response: http::Response::json(401, &json!({ "error": "bad signature" })),
            });
        }
        let body: Value = trellis_connector_sdk::serde_json::from_slice(&request.body)
            .map_err(|e| Error::InvalidInput(format!("body: {e}")))?;
        let events: Vec<Event> = body["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| Event {
                name: e["name"].as_str().unwrap_or_default().to_owned(),
                id: e["id"].as_str().map(str::to_owned),
                payload: e["payload"].clone(),
            })
            .collect();
        let received = events.len();
        Ok(Inbound {
            events,
            response: http::Response::json(
                200,
                &json!({ "received": received, "path": request.path }),
            ),
        })
    }
}

/// Allocates 2,000 strings of 400 bytes and frees them, `rounds` times: far more memory over the
/// call than is ever live at once, and far more than the SDK's arena holds, so it fits a
/// small memory limit only if freed memory is reused.
fn churn(rounds: u32) -> Value {
    let filler = "x".repeat(380);
    let mut bytes = 0usize;
    for round in 0..rounds {
        let strings: Vec<String> = (0..2_000)
            .map(|i| format!("{round:08}-{i:08}-{filler}"))
            .collect();
        bytes += strings.iter().map(String::len).sum::<usize>();
        std::hint::black_box(&strings);
    }
    json!({ "rounds": rounds, "bytes": bytes })
}

trellis_connector_sdk::export!(Adversarial);
