//! How a run's calls are served: every call a step makes (`Next::Call`) goes to the
//! [`CallHost`] that serves its connector name. The connector registry serves published
//! plugins; reserved names (`trellis.intent@1`, and the next built-in hosts) are served by
//! the server itself through the same trait.

use std::sync::Arc;
use std::time::Duration;

use trellis_runtime::connector::ConnectorError;
use trellis_runtime::{CallRequest, CallResult};

/// What the worker must know about a call before making it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPlan {
    /// The call changes something outside: the run is committed before it (so a crash
    /// repeats it with the same idempotency key) and after it (so it is not made again).
    pub side_effects: bool,
    /// The longest the call may take, for which the run's claim is held; `None` for a call
    /// served in this process well within the claim.
    pub timeout: Option<Duration>,
    /// The call reaches a customer: it passes the contact policy first (and is counted in
    /// the checkpoint before it). Only a call with side effects has one (checked when a
    /// connector is published).
    pub contact: Option<trellis_model::contact_policy::ContactDecl>,
}

/// The run a call is made for.
#[derive(Clone, Copy, Debug)]
pub struct CallSite<'a> {
    pub workspace: &'a str,
    pub run_id: &'a str,
    pub flow_id: &'a str,
}

/// Serves calls for runs.
#[async_trait::async_trait]
pub trait CallHost: Send + Sync + std::fmt::Debug {
    /// How the worker must treat `request` (`pinned`: the version the run already used).
    async fn plan(&self, workspace: &str, request: &CallRequest, pinned: Option<&str>) -> CallPlan;

    /// Makes the call. Gives the result and, for a versioned host, the exact version that
    /// served it (the run keeps using that version).
    async fn call(
        &self,
        site: CallSite<'_>,
        request: &CallRequest,
        pinned: Option<&str>,
    ) -> (CallResult, Option<String>);
}

/// The hosts of this process, by the connector names they serve.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    /// Built-in hosts, each serving exactly one reserved name.
    reserved: Vec<(&'static str, Arc<dyn CallHost>)>,
    /// Everything else: the connector registry (`None`: this process runs no connectors).
    connectors: Option<Arc<dyn CallHost>>,
}

impl Hosts {
    pub fn new(connectors: Option<Arc<dyn CallHost>>) -> Hosts {
        Hosts {
            reserved: Vec::new(),
            connectors,
        }
    }

    /// Serves calls to `name` with `host`.
    pub fn reserve(mut self, name: &'static str, host: Arc<dyn CallHost>) -> Hosts {
        self.reserved.push((name, host));
        self
    }

    /// The host serving `connector`.
    pub fn serving(&self, connector: &str) -> Option<&Arc<dyn CallHost>> {
        self.reserved
            .iter()
            .find(|(name, _)| *name == connector)
            .map(|(_, host)| host)
            .or(self.connectors.as_ref())
    }

    /// The answer to a call no host serves.
    pub fn unserved(request: &CallRequest) -> CallResult {
        CallResult::Err {
            error: ConnectorError::NotFound {
                message: format!(
                    "this server runs no connectors, so {} cannot be called",
                    request.connector
                ),
            },
            version: None,
        }
    }
}

/// The answer of a host that is part of the server (a reserved name), journaled with the
/// host's `version`; no run is pinned to it (it changes with the server).
pub fn served(
    result: Result<serde_json::Value, ConnectorError>,
    version: &str,
) -> (CallResult, Option<String>) {
    let result = match result {
        Ok(output) => CallResult::Ok {
            output,
            version: version.to_owned(),
        },
        Err(error) => CallResult::Err {
            error,
            version: Some(version.to_owned()),
        },
    };
    (result, None)
}
