//! Connector plugins: the types both sides of the sandbox agree on, and the wasmtime host.
//!
//! A connector is a WebAssembly component of the `trellis:connector` world
//! (`connectors/wit`). [`ConnectorHost`] compiles and caches components, reads their
//! [`Manifest`], and runs each call in a fresh, limited `Store` ([`Limits`]). Everything a
//! call may reach outside the sandbox goes through [`Grants`] (what an admin granted) and
//! [`HostServices`] (how the server does HTTP and key-value storage).

mod host;
mod manifest;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use host::{
    ConnectorHost, HostConfig, Inbound, InboundEvent, InboundRequest, Invocation, LoadError,
    Loaded, PollCall, Polled,
};
pub use manifest::{
    Capabilities, DisplayName, Manifest, OperationSpec, check_host_pattern, host_matches, is_kebab,
};

/// Resource limits of one call. Defaults are documented in ARCHITECTURE.md; an admin can
/// change them per connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory a call may grow to, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time a call may take, in milliseconds (a node's `timeout` can shorten it).
    pub timeout_ms: u64,
    /// WebAssembly fuel (roughly, instructions) a call may burn.
    pub fuel: u64,
    /// Largest output (JSON text), in bytes.
    pub max_output_bytes: u64,
    /// Largest HTTP response body a call may read, in bytes.
    pub max_http_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            timeout_ms: 10_000,
            fuel: 2_000_000_000,
            max_output_bytes: 1 << 20,
            max_http_body_bytes: 8 << 20,
        }
    }
}

impl Limits {
    /// The most an admin may set: bounded by what the engine's pool reserves.
    pub const MAX: Limits = Limits {
        memory_bytes: 1 << 30,
        timeout_ms: 300_000,
        fuel: 1_000_000_000_000,
        max_output_bytes: 64 << 20,
        max_http_body_bytes: 64 << 20,
    };

    /// Checks every field is positive and within [`Limits::MAX`]; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        let fields = [
            ("memory_bytes", self.memory_bytes, Self::MAX.memory_bytes),
            ("timeout_ms", self.timeout_ms, Self::MAX.timeout_ms),
            ("fuel", self.fuel, Self::MAX.fuel),
            (
                "max_output_bytes",
                self.max_output_bytes,
                Self::MAX.max_output_bytes,
            ),
            (
                "max_http_body_bytes",
                self.max_http_body_bytes,
                Self::MAX.max_http_body_bytes,
            ),
        ];
        for (name, value, max) in fields {
            if value == 0 || value > max {
                return Err(format!("{name}: must be between 1 and {max}, got {value}"));
            }
        }
        Ok(())
    }
}

/// A secret value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What an admin granted this connector in one workspace, resolved for one call.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Granted host patterns (each within a declared one).
    pub hosts: Vec<String>,
    /// Granted secret names, with their values when set.
    pub secrets: BTreeMap<String, Option<Secret>>,
    pub kv: bool,
}

/// Facts about a call, passed to the guest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallContext {
    pub run_id: String,
    pub step_id: String,
    pub idempotency_key: String,
    pub workspace: String,
}

/// An outbound HTTP request a guest made, after the host allowed it.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why an allowed request got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpFailure {
    Timeout,
    Transport(String),
    TooLarge,
}

/// Where a connector's key-value entries live.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvNamespace {
    pub workspace: String,
    pub connector: String,
}

/// What the server does on a guest's behalf once the host has checked the grants. Calls
/// come from a blocking thread (the guest runs synchronously); implementations may block.
pub trait HostServices: Send + Sync + 'static {
    fn http(
        &self,
        request: HttpRequest,
        timeout: Duration,
        max_body: u64,
    ) -> Result<HttpResponse, HttpFailure>;
    fn kv_get(&self, ns: &KvNamespace, key: &str) -> Result<Option<Vec<u8>>, KvUnavailable>;
    fn kv_set(
        &self,
        ns: &KvNamespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), KvUnavailable>;
    fn kv_delete(&self, ns: &KvNamespace, key: &str) -> Result<(), KvUnavailable>;
    /// Stores `value` only when `key` holds no live value (atomically); true when stored.
    fn kv_add(
        &self,
        ns: &KvNamespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvUnavailable>;
}

/// The server's key-value store failed (the guest sees `unavailable` with the reason).
#[derive(Debug, thiserror::Error)]
#[error("the key-value store is unavailable: {0}")]
pub struct KvUnavailable(#[from] pub Box<dyn std::error::Error + Send + Sync>);

/// Why a call failed: the guest's own typed error, or what the host stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorError {
    // --- returned by the connector ---
    #[error("invalid input: {message}")]
    InvalidInput { message: String },
    #[error("authentication failed: {message}")]
    AuthFailed { message: String },
    #[error("rate limited: {message}")]
    RateLimited {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    #[error("remote error {code}: {message}")]
    Remote {
        code: u32,
        message: String,
        retryable: bool,
    },
    #[error("not found: {message}")]
    NotFound { message: String },
    #[error("connector error: {message}")]
    Internal { message: String },
    // --- stopped by the host ---
    #[error("the connector used more than its {limit_ms} ms deadline")]
    Deadline { limit_ms: u64 },
    #[error("the connector ran out of fuel ({limit} units)")]
    FuelExhausted { limit: u64 },
    #[error("the connector tried to use more than {limit_bytes} bytes of memory")]
    MemoryLimit { limit_bytes: u64 },
    #[error("the connector's output is over the {limit_bytes}-byte limit ({actual_bytes} bytes)")]
    OutputTooLarge { limit_bytes: u64, actual_bytes: u64 },
    #[error("{capability} {name:?} is not {reason}")]
    CapabilityDenied {
        /// `host`, `secret` or `kv`.
        capability: String,
        name: String,
        /// `declared` or `granted`.
        reason: String,
    },
    #[error("the connector trapped: {message}")]
    Trap { message: String },
    #[error("the connector's output is not valid: {message}")]
    InvalidOutput { message: String },
    #[error("{message}")]
    Unavailable { message: String },
    // --- stopped by the server ---
    /// The server stopped while a call that reaches a customer was under way: it may have
    /// been delivered, so it is not made again (a customer is never contacted twice).
    #[error("{message}")]
    Interrupted { message: String },
}

impl ConnectorError {
    /// Whether the node's retry policy applies.
    pub fn retryable(&self) -> bool {
        match self {
            ConnectorError::RateLimited { .. } => true,
            ConnectorError::Remote { retryable, .. } => *retryable,
            ConnectorError::Unavailable { .. } => true,
            _ => false,
        }
    }

    /// The least time to wait before retrying, when the remote said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::RateLimited {
                retry_after_ms: Some(ms),
                ..
            } => Some(Duration::from_millis(*ms)),
            _ => None,
        }
    }

    /// The snake_case kind, as serialized.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::InvalidInput { .. } => "invalid_input",
            ConnectorError::AuthFailed { .. } => "auth_failed",
            ConnectorError::RateLimited { .. } => "rate_limited",
            ConnectorError::Remote { .. } => "remote",
            ConnectorError::NotFound { .. } => "not_found",
            ConnectorError::Internal { .. } => "internal",
            ConnectorError::Deadline { .. } => "deadline",
            ConnectorError::FuelExhausted { .. } => "fuel_exhausted",
            ConnectorError::MemoryLimit { .. } => "memory_limit",
            ConnectorError::OutputTooLarge { .. } => "output_too_large",
            ConnectorError::CapabilityDenied { .. } => "capability_denied",
            ConnectorError::Trap { .. } => "trap",
            ConnectorError::InvalidOutput { .. } => "invalid_output",
            ConnectorError::Unavailable { .. } => "unavailable",
            ConnectorError::Interrupted { .. } => "interrupted",
        }
    }
}
