//! Write Trellis connector plugins in one Rust file.
//!
//! A connector is a WebAssembly component (`wasm32-wasip2`) that Trellis runs in a sandbox.
//! You describe what it can do in a [`Manifest`] (operations with typed config, input and
//! output, and the capabilities it asks for), implement [`Connector`], and [`export!`] it.
//! The generated WIT bindings stay hidden; you get [`http`], [`secrets`], [`kv`], [`log`]
//! and [`now_ms`], each checked by the host against what an admin granted.
//!
//! ```no_run,standalone_crate
//! use serde::{Deserialize, Serialize};
//! use trellis_connector_sdk::{
//!     Call, Connector, Error, JsonSchema, Manifest, Operation, Output, Value, http,
//! };
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Config {
//!     /// The order API's base address.
//!     base_url: String,
//! }
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input {
//!     order_id: String,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct OrderStatus {
//!     status: String,
//! }
//!
//! struct Orders;
//!
//! impl Connector for Orders {
//!     fn manifest() -> Manifest {
//!         Manifest::new("orders", env!("CARGO_PKG_VERSION"))
//!             .display("订单", "Orders")
//!             .host("erp.example.com")
//!             .secret("api_key")
//!             .operation(Operation::new::<Config, Input, OrderStatus>("order_status", "查询订单状态", "Order status"))
//!     }
//!
//!     fn invoke(call: Call) -> Result<Output, Error> {
//!         match call.operation() {
//!             "order_status" => call.handle(|config: Config, input: Input, _ctx| {
//!                 let key = trellis_connector_sdk::secrets::get("api_key")?;
//!                 let response = http::Request::get(format!("{}/orders/{}", config.base_url, input.order_id))
//!                     .header("authorization", format!("Bearer {key}"))
//!                     .send()?
//!                     .error_for_status()?;
//!                 let body: Value = response.parse()?;
//!                 Ok(OrderStatus { status: body["status"].as_str().unwrap_or_default().to_owned() })
//!             }),
//!             other => Err(Error::unknown_operation(other)),
//!         }
//!     }
//! }
//!
//! trellis_connector_sdk::export!(Orders);
//! ```

pub mod arena;
/// Stdout, stderr and `getenv` without WASI: see the module's documentation.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod stdio;

/// Every call runs in a fresh instance: small allocations are bumped out of an arena that
/// the call's end throws away (see [`arena`]). Turn the `arena` feature off to bring your
/// own `#[global_allocator]`.
#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static ALLOCATOR: arena::CallArena<{ arena::ARENA }> = arena::CallArena::new();

use std::fmt;
use std::marker::PhantomData;

pub use schemars::{self, JsonSchema};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use serde_json::{self, Value, json};

#[doc(hidden)]
#[allow(clippy::too_many_arguments)] // generated ABI shims take one argument per flattened field
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "connector",
        pub_export_macro: true,
        export_macro_name: "__export_connector_world",
        default_bindings_module: "trellis_connector_sdk::bindings",
    });
}

use bindings::trellis::connector::types as wit;

/// A name in Simplified Chinese and in English.
#[derive(Clone, Debug, Default)]
pub struct DisplayName {
    pub zh: String,
    pub en: String,
}

/// What a connector is and can do; returned by [`Connector::manifest`].
#[derive(Clone, Debug)]
pub struct Manifest {
    name: String,
    version: String,
    display: DisplayName,
    description: String,
    operations: Vec<Operation>,
    hosts: Vec<String>,
    secrets: Vec<String>,
    kv: bool,
    inbound: bool,
    poll: bool,
}

impl Manifest {
    /// `name` is kebab-case (flows refer to `name@major`); `version` is semver, usually
    /// `env!("CARGO_PKG_VERSION")`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        let name = name.into();
        Manifest {
            display: DisplayName {
                zh: name.clone(),
                en: name.clone(),
            },
            name,
            version: version.into(),
            description: String::new(),
            operations: Vec::new(),
            hosts: Vec::new(),
            secrets: Vec::new(),
            kv: false,
            inbound: false,
            poll: false,
        }
    }

    /// The names shown in the studio's palette.
    pub fn display(mut self, zh: impl Into<String>, en: impl Into<String>) -> Self {
        self.display = DisplayName {
            zh: zh.into(),
            en: en.into(),
        };
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    pub fn operation(mut self, operation: Operation) -> Self {
        self.operations.push(operation);
        self
    }

    /// Asks for outbound HTTP to `host` (`api.example.com`, `api.example.com:8443`,
    /// `*.example.com`). An admin must grant it before any call goes out.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.hosts.push(host.into());
        self
    }

    /// Asks for the secret `name`, which an admin sets per workspace. A config field that
    /// names one of these secrets can say so with
    /// `#[schemars(extend("x-trellis-secret" = true))]`: the studio then offers the declared
    /// secrets to pick from (a reference; the value never enters the flow).
    pub fn secret(mut self, name: impl Into<String>) -> Self {
        self.secrets.push(name.into());
        self
    }

    /// Asks for the key-value store.
    pub fn kv(mut self) -> Self {
        self.kv = true;
        self
    }

    /// Declares that [`Connector::handle_inbound`] is implemented.
    pub fn inbound(mut self) -> Self {
        self.inbound = true;
        self
    }

    /// Declares that [`Connector::poll`] is implemented.
    pub fn poll(mut self) -> Self {
        self.poll = true;
        self
    }

    fn into_wit(self) -> wit::Manifest {
        wit::Manifest {
            name: self.name,
            version: self.version,
            display: self.display.into_wit(),
            description: self.description,
            operations: self
                .operations
                .into_iter()
                .map(Operation::into_wit)
                .collect(),
            capabilities: wit::Capabilities {
                hosts: self.hosts,
                secrets: self.secrets,
                kv: self.kv,
            },
            inbound: self.inbound,
            poll: self.poll,
        }
    }
}

impl DisplayName {
    fn into_wit(self) -> wit::DisplayName {
        wit::DisplayName {
            zh: self.zh,
            en: self.en,
        }
    }
}

/// One operation, with JSON Schemas generated from its config, input and output types.
#[derive(Clone, Debug)]
pub struct Operation {
    name: String,
    display: DisplayName,
    config_schema: Value,
    input_schema: Value,
    output_schema: Value,
    side_effects: bool,
}

impl Operation {
    /// An operation named `name` (snake_case) whose node config deserializes into `C`,
    /// input into `I`, and whose output serializes from `O`. Doc comments on their fields
    /// become the descriptions shown in the studio's inspector.
    pub fn new<C: JsonSchema, I: JsonSchema, O: JsonSchema>(
        name: impl Into<String>,
        zh: impl Into<String>,
        en: impl Into<String>,
    ) -> Self {
        Operation {
            name: name.into(),
            display: DisplayName {
                zh: zh.into(),
                en: en.into(),
            },
            config_schema: schemars::schema_for!(C).to_value(),
            input_schema: schemars::schema_for!(I).to_value(),
            output_schema: schemars::schema_for!(O).to_value(),
            side_effects: false,
        }
    }

    /// Marks the operation as changing something outside (sending, writing, creating).
    /// Its calls then carry [`Context::idempotency_key`], and a completed call is never
    /// repeated; pass the key on to remote APIs that deduplicate.
    pub fn side_effects(mut self) -> Self {
        self.side_effects = true;
        self
    }

    /// Marks the operation as reaching a customer on `channel` (`wecom_group_send`,
    /// `email`…): before each call Trellis checks its contact policy (consent, caps, quiet
    /// hours) for the lead whose `identity` (`external_contact_id`, `email`…) is at
    /// `recipient`, a JSON pointer into the input naming one customer; a refused call is
    /// not made and the node takes its `blocked` port. Implies [`Operation::side_effects`].
    pub fn reaches_customer(mut self, channel: &str, recipient: &str, identity: &str) -> Self {
        self.side_effects = true;
        if let Some(schema) = self.input_schema.as_object_mut() {
            schema.insert(
                "x-trellis-contact".into(),
                serde_json::json!({ "channel": channel, "recipient": recipient, "identity": identity }),
            );
        }
        self
    }

    fn into_wit(self) -> wit::Operation {
        wit::Operation {
            name: self.name,
            display: self.display.into_wit(),
            config_schema: self.config_schema.to_string(),
            input_schema: self.input_schema.to_string(),
            output_schema: self.output_schema.to_string(),
            side_effects: self.side_effects,
        }
    }
}

/// Facts about the current call.
#[derive(Clone, Debug)]
pub struct Context {
    pub run_id: String,
    pub step_id: String,
    /// Stable across a retry of the same attempt after a crash.
    pub idempotency_key: String,
    pub workspace: String,
    /// Milliseconds since the Unix epoch after which the host cuts the call off.
    pub deadline_ms: u64,
}

impl From<wit::CallContext> for Context {
    fn from(c: wit::CallContext) -> Self {
        Context {
            run_id: c.run_id,
            step_id: c.step_id,
            idempotency_key: c.idempotency_key,
            workspace: c.workspace,
            deadline_ms: c.deadline_ms,
        }
    }
}

/// One invocation: the operation's name, its config and input, and the context.
#[derive(Debug)]
pub struct Call {
    operation: String,
    config: String,
    input: String,
    context: Context,
}

impl Call {
    pub fn operation(&self) -> &str {
        &self.operation
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The node's config as `T`; a mismatch is [`Error::InvalidInput`] naming the field.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, Error> {
        parse("config", &self.config)
    }

    /// The node's input as `T`; a mismatch is [`Error::InvalidInput`] naming the field.
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Error> {
        parse("input", &self.input)
    }

    /// The node's input as the JSON text the host sent (already checked against the
    /// operation's input schema), for passing it on without parsing it.
    pub fn input_json(&self) -> &str {
        &self.input
    }

    /// Runs a typed handler: parses config and input, serializes the output.
    pub fn handle<C, I, O>(
        self,
        f: impl FnOnce(C, I, &Context) -> Result<O, Error>,
    ) -> Result<Output, Error>
    where
        C: DeserializeOwned,
        I: DeserializeOwned,
        O: Serialize,
    {
        let config = self.config::<C>()?;
        let input = self.input::<I>()?;
        Output::json(&f(config, input, &self.context)?)
    }
}

/// What an operation returns: its output, serialized to JSON once, straight from your type
/// (no intermediate [`Value`]). [`Call::handle`] makes one; so do `Output::json(&x)` for
/// any `Serialize` type and `.into()` for a [`Value`]:
///
/// ```standalone_crate
/// # use trellis_connector_sdk::{Output, json};
/// let out: Output = json!({ "status": "shipped" }).into();
/// assert_eq!(out.as_str(), r#"{"status":"shipped"}"#);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Output(String);

impl Output {
    /// Serializes `value`; a type JSON cannot represent (a map with non-string keys, say)
    /// is an [`Error::Internal`].
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Output, Error> {
        serde_json::to_string(value)
            .map(Output)
            .map_err(|e| Error::Internal(format!("output: {e}")))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Value> for Output {
    fn from(value: Value) -> Self {
        // A `Value` always serializes: its map keys are strings.
        Output(serde_json::to_string(&value).unwrap_or_else(|_| "null".into()))
    }
}

fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, Error> {
    let text = if text.is_empty() { "null" } else { text };
    serde_json::from_str(text).map_err(|e| Error::InvalidInput(format!("{what}: {e}")))
}

/// A typed failure; the host turns it into a failed step, and retries the retryable ones
/// under the node's retry policy.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// The config or input is wrong; retrying will not help.
    InvalidInput(String),
    /// Credentials were refused.
    AuthFailed(String),
    /// The remote asked to slow down; retried after `retry_after_ms` when given.
    RateLimited {
        retry_after_ms: Option<u64>,
        message: String,
    },
    /// The remote answered with an error.
    Remote {
        code: u32,
        message: String,
        retryable: bool,
    },
    NotFound(String),
    Internal(String),
}

impl Error {
    /// For the `_` arm of an operation match.
    pub fn unknown_operation(name: &str) -> Self {
        Error::InvalidInput(format!("unknown operation {name:?}"))
    }

    fn into_wit(self) -> wit::ConnectorError {
        match self {
            Error::InvalidInput(m) => wit::ConnectorError::InvalidInput(m),
            Error::AuthFailed(m) => wit::ConnectorError::AuthFailed(m),
            Error::RateLimited {
                retry_after_ms,
                message,
            } => wit::ConnectorError::RateLimited(wit::RateLimit {
                retry_after_ms,
                message,
            }),
            Error::Remote {
                code,
                message,
                retryable,
            } => wit::ConnectorError::Remote(wit::RemoteError {
                code,
                message,
                retryable,
            }),
            Error::NotFound(m) => wit::ConnectorError::NotFound(m),
            Error::Internal(m) => wit::ConnectorError::Internal(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::AuthFailed(m) => write!(f, "authentication failed: {m}"),
            Error::RateLimited { message, .. } => write!(f, "rate limited: {message}"),
            Error::Remote { code, message, .. } => write!(f, "remote error {code}: {message}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// An event produced by a webhook or a poll.
#[derive(Clone, Debug)]
pub struct Event {
    /// e.g. `erp.order_shipped`.
    pub name: String,
    /// Unique per source; the host drops repeats.
    pub id: Option<String>,
    /// The event's properties (an object); `lead` names the lead it is about and
    /// `timestamp` (RFC 3339) says when it happened (default: when it is recorded).
    pub payload: Value,
}

impl Event {
    fn into_wit(self) -> wit::Event {
        wit::Event {
            name: self.name,
            id: self.id,
            payload: self.payload.to_string(),
        }
    }
}

/// An HTTP request that reached `/hooks/connectors/{name}/{path}`.
#[derive(Clone, Debug)]
pub struct InboundRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub workspace: String,
}

impl InboundRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// What a webhook produced: events, and the answer for its caller.
#[derive(Clone, Debug)]
pub struct Inbound {
    pub events: Vec<Event>,
    pub response: http::Response,
}

/// What a poll produced: events, and the cursor for the next poll.
#[derive(Clone, Debug)]
pub struct Polled {
    pub events: Vec<Event>,
    pub cursor: Option<String>,
}

/// Implement this for your connector and [`export!`] it.
pub trait Connector {
    fn manifest() -> Manifest;

    /// Runs one operation; [`Call::handle`] parses its config and input for you.
    fn invoke(call: Call) -> Result<Output, Error>;

    /// Turns a webhook request into events. Declare it with [`Manifest::inbound`].
    fn handle_inbound(request: InboundRequest) -> Result<Inbound, Error> {
        let _ = request;
        Err(Error::NotFound(
            "this connector receives no webhooks".into(),
        ))
    }

    /// Pulls new events after `cursor`. Declare it with [`Manifest::poll`].
    fn poll(config: Value, cursor: Option<String>, context: Context) -> Result<Polled, Error> {
        let _ = (config, cursor, context);
        Err(Error::NotFound("this connector does not poll".into()))
    }
}

#[doc(hidden)]
#[derive(Debug)]
pub struct Adapter<T>(PhantomData<T>);

impl<T: Connector> bindings::Guest for Adapter<T> {
    fn describe() -> wit::Manifest {
        T::manifest().into_wit()
    }

    fn invoke(
        operation: String,
        config: String,
        input: String,
        context: wit::CallContext,
    ) -> Result<String, wit::ConnectorError> {
        let call = Call {
            operation,
            config,
            input,
            context: context.into(),
        };
        T::invoke(call).map(|o| o.0).map_err(Error::into_wit)
    }

    fn handle_inbound(
        request: wit::InboundRequest,
    ) -> Result<wit::InboundResult, wit::ConnectorError> {
        let request = InboundRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
            workspace: request.workspace,
        };
        T::handle_inbound(request)
            .map(|inbound| wit::InboundResult {
                events: inbound.events.into_iter().map(Event::into_wit).collect(),
                response: inbound.response.into_wit(),
            })
            .map_err(Error::into_wit)
    }

    fn poll(
        config: String,
        cursor: Option<String>,
        context: wit::CallContext,
    ) -> Result<wit::PollResult, wit::ConnectorError> {
        let config = parse::<Value>("config", &config).map_err(Error::into_wit)?;
        T::poll(config, cursor, context.into())
            .map(|p| wit::PollResult {
                events: p.events.into_iter().map(Event::into_wit).collect(),
                cursor: p.cursor,
            })
            .map_err(Error::into_wit)
    }
}

/// Exports a [`Connector`] as the component's implementation of the `trellis:connector`
/// world. Use it once, at the crate root.
#[macro_export]
macro_rules! export {
    ($connector:ty) => {
        type __TrellisConnector = $crate::Adapter<$connector>;
        $crate::bindings::__export_connector_world!(__TrellisConnector with_types_in $crate::bindings);
    };
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Outbound HTTP through the host, limited to the hosts an admin granted.
pub mod http {
    use super::{Error, Value, header, wit};
    use crate::bindings::trellis::connector::http as host;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// Why a request did not get an answer.
    #[derive(Clone, Debug, PartialEq)]
    pub enum HttpError {
        /// The host is not declared in the manifest or not granted to this workspace.
        Denied(String),
        Timeout,
        Transport(String),
        TooLarge,
    }

    impl From<HttpError> for Error {
        fn from(e: HttpError) -> Self {
            match e {
                HttpError::Denied(m) => {
                    Error::InvalidInput(format!("outbound request denied: {m}"))
                }
                HttpError::Timeout => Error::Remote {
                    code: 504,
                    message: "no answer before the deadline".into(),
                    retryable: true,
                },
                HttpError::Transport(m) => Error::Remote {
                    code: 502,
                    message: m,
                    retryable: true,
                },
                HttpError::TooLarge => Error::Remote {
                    code: 502,
                    message: "response body over the host's limit".into(),
                    retryable: false,
                },
            }
        }
    }

    /// An outbound request; build it, then [`Request::send`].
    #[derive(Clone, Debug)]
    pub struct Request {
        pub method: String,
        pub url: String,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Request {
        pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
            Request {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
            }
        }

        pub fn get(url: impl Into<String>) -> Self {
            Request::new("GET", url)
        }

        pub fn post(url: impl Into<String>) -> Self {
            Request::new("POST", url)
        }

        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }

        /// Sets a JSON body and its content type.
        pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, Error> {
            self.body = serde_json::to_vec(body)
                .map_err(|e| Error::Internal(format!("request body: {e}")))?;
            self.headers
                .push(("content-type".into(), "application/json".into()));
            Ok(self)
        }

        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
            self.body = body.into();
            self
        }

        pub fn send(self) -> Result<Response, HttpError> {
            let request = wit::HttpRequest {
                method: self.method,
                url: self.url,
                headers: self.headers,
                body: self.body,
            };
            match host::send(&request) {
                Ok(r) => Ok(Response {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                }),
                Err(host::HttpError::Denied(m)) => Err(HttpError::Denied(m)),
                Err(host::HttpError::Timeout) => Err(HttpError::Timeout),
                Err(host::HttpError::Transport(m)) => Err(HttpError::Transport(m)),
                Err(host::HttpError::TooLarge) => Err(HttpError::TooLarge),
            }
        }
    }

    /// An HTTP answer (from a remote, or for a webhook's caller).
    #[derive(Clone, Debug, Default)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        /// A JSON answer with `status`.
        pub fn json(status: u16, body: &Value) -> Self {
            Response {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_string().into_bytes(),
            }
        }

        /// The first header named `name` (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            header(&self.headers, name)
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// The body as `T`.
        pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
            serde_json::from_slice(&self.body).map_err(|e| Error::Remote {
                code: u32::from(self.status),
                message: format!("response is not the expected JSON: {e}"),
                retryable: false,
            })
        }

        /// The body as a JSON value.
        pub fn json_value(&self) -> Result<Value, Error> {
            self.parse()
        }

        /// Maps 401/403 to [`Error::AuthFailed`], 404 to [`Error::NotFound`], 429 to
        /// [`Error::RateLimited`] (honouring `Retry-After` seconds), and other non-2xx to
        /// [`Error::Remote`] (5xx retryable).
        pub fn error_for_status(self) -> Result<Self, Error> {
            let message = || {
                let text = self.text();
                let mut short: String = text.chars().take(300).collect();
                if short.is_empty() {
                    short = format!("HTTP {}", self.status);
                }
                short
            };
            match self.status {
                200..=299 => Ok(self),
                401 | 403 => Err(Error::AuthFailed(message())),
                404 => Err(Error::NotFound(message())),
                429 => Err(Error::RateLimited {
                    retry_after_ms: self
                        .header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| s * 1000),
                    message: message(),
                }),
                status => Err(Error::Remote {
                    code: u32::from(status),
                    message: message(),
                    retryable: status >= 500,
                }),
            }
        }

        pub(crate) fn into_wit(self) -> wit::HttpResponse {
            wit::HttpResponse {
                status: self.status,
                headers: self.headers,
                body: self.body,
            }
        }
    }
}

/// Secrets an admin set for this connector in the current workspace.
pub mod secrets {
    use super::Error;
    use crate::bindings::trellis::connector::secrets as host;

    /// The secret `name`; it must be declared with [`crate::Manifest::secret`] and granted.
    pub fn get(name: &str) -> Result<String, Error> {
        match host::get(name) {
            Ok(v) => Ok(v),
            Err(host::SecretError::Denied(m)) => {
                Err(Error::AuthFailed(format!("secret {name:?} denied: {m}")))
            }
            Err(host::SecretError::NotSet(m)) => Err(Error::AuthFailed(format!(
                "secret {name:?} is not set: {m}"
            ))),
        }
    }
}

/// A small key-value store, namespaced per connector and workspace.
pub mod kv {
    use super::Error;
    use crate::bindings::trellis::connector::kv as host;

    fn map(e: host::KvError) -> Error {
        match e {
            host::KvError::Denied => Error::Internal("key-value store not granted".into()),
            host::KvError::TooLarge => {
                Error::InvalidInput("value over the key-value size limit".into())
            }
            host::KvError::Unavailable(m) => Error::Remote {
                code: 503,
                message: format!("key-value store unavailable: {m}"),
                retryable: true,
            },
        }
    }

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
        host::get(key).map_err(map)
    }

    /// Stores `value` under `key`; `ttl_ms` of `None` keeps it until deleted.
    pub fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), Error> {
        host::set(key, value, ttl_ms).map_err(map)
    }

    pub fn delete(key: &str) -> Result<(), Error> {
        host::delete(key).map_err(map)
    }

    /// Stores `value` only when `key` holds no live value, atomically; `true` when it was
    /// stored. With a TTL, a lock: the call that gets `true` does the work (and deletes
    /// the key when done), the others [`crate::sleep_ms`] and read its result.
    pub fn add(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<bool, Error> {
        host::add(key, value, ttl_ms).map_err(map)
    }
}

/// Log lines, tagged by the host with the connector, run and step. `println!` and
/// `eprintln!` land here too, as `info` and `error` lines (a panic's message among them).
pub mod log {
    use crate::bindings::trellis::connector::log::{Level, log};

    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }

    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// A stable 64-bit fingerprint of `bytes` (FNV-1a, 16 hex digits): the same content gives
/// the same text in every build, so it can make an event id that a delivery sent again
/// repeats (and the host records once). Not a cryptographic hash.
///
/// ```standalone_crate
/// assert_eq!(trellis_connector_sdk::fingerprint(b"a"), "af63dc4c8601ec8c");
/// ```
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Whether two secrets (a write key, a signature) are equal, in time that does not depend
/// on where they differ.
///
/// ```standalone_crate
/// use trellis_connector_sdk::same_secret;
/// assert!(same_secret(b"abc", b"abc") && !same_secret(b"abc", b"abd") && !same_secret(b"abc", b"ab"));
/// ```
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The host's clock, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    bindings::trellis::connector::clock::now_ms()
}

/// Waits `ms` milliseconds (never past the call's deadline).
pub fn sleep_ms(ms: u32) {
    bindings::trellis::connector::clock::sleep_ms(ms)
}
