//! A generic JSON-over-HTTP call, limited to the hosts an admin granted.
//!
//! The manifest asks for `*` (any host): nothing goes out until an admin grants concrete
//! hosts for a workspace, and each request's host is checked against those grants.

use serde::{Deserialize, Serialize};
use trellis_connector_sdk::{
    Call, Connector, Context, Error, JsonSchema, Manifest, Operation, Output, Value, http, secrets,
};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RequestConfig {
    /// HTTP method.
    #[serde(default = "post")]
    method: Method,
    /// The address to call, e.g. `https://api.example.com/v1/leads`.
    url: String,
    /// Extra request headers.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// Name of a secret sent as `Authorization: Bearer <secret>`.
    #[serde(default)]
    #[schemars(extend("x-trellis-secret" = true))]
    bearer_secret: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

fn post() -> Method {
    Method::Post
}

#[derive(Debug, Deserialize, JsonSchema)]
struct RequestInput {
    /// The JSON body to send (ignored for GET and DELETE).
    #[serde(default)]
    body: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct RequestOutput {
    /// HTTP status of the answer.
    status: u16,
    /// The answer's JSON body (`null` when empty or not JSON).
    body: Value,
}

struct HttpJson;

impl Connector for HttpJson {
    fn manifest() -> Manifest {
        Manifest::new("http-json", env!("CARGO_PKG_VERSION"))
            .display("HTTP JSON 接口", "HTTP JSON")
            .description("Calls a JSON API on a host an admin granted.")
            .host("*")
            .secret("token")
            .operation(
                Operation::new::<RequestConfig, RequestInput, RequestOutput>(
                    "request",
                    "发送请求",
                    "Send request",
                )
                .side_effects(),
            )
            .operation(
                Operation::new::<RequestConfig, RequestInput, RequestOutput>(
                    "fetch",
                    "读取数据",
                    "Fetch data",
                ),
            )
    }

    fn invoke(call: Call) -> Result<Output, Error> {
        match call.operation() {
            "request" | "fetch" => call.handle(request),
            other => Err(Error::unknown_operation(other)),
        }
    }
}

fn request(
    config: RequestConfig,
    input: RequestInput,
    ctx: &Context,
) -> Result<RequestOutput, Error> {
    let mut request = http::Request::new(config.method.as_str(), config.url);
    for (name, value) in &config.headers {
        request = request.header(name, value);
    }
    if let Some(name) = &config.bearer_secret {
        request = request.header("authorization", format!("Bearer {}", secrets::get(name)?));
    }
    request = request.header("idempotency-key", ctx.idempotency_key.clone());
    if let (Some(body), Method::Post | Method::Put | Method::Patch) = (&input.body, config.method) {
        request = request.json(body)?;
    }
    let response = request.send()?.error_for_status()?;
    let body = if response.body.is_empty() {
        Value::Null
    } else {
        response.json_value().unwrap_or(Value::Null)
    };
    Ok(RequestOutput {
        status: response.status,
        body,
    })
}

trellis_connector_sdk::export!(HttpJson);
