//! A run's durable state: everything needed to take it one step further after a restart.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connector::ConnectorError;

/// One pending execution of a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    pub node: String,
    /// How many times this node was activated before in this run (loops through waits).
    #[serde(default)]
    pub visit: u32,
    /// 1 for the first attempt.
    #[serde(default = "one")]
    pub attempt: u32,
    /// For waits: when the wait ends (set on the first visit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<DateTime<Utc>>,
    /// For `wait_for_event`: the event that resumed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    /// Earliest time a retry may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// For connector nodes: the call issued for this attempt, and its result once known.
    /// A call without a result after a restart may have been in flight: it is issued again
    /// with the same idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<PendingCall>,
}

/// A connector call of the head activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingCall {
    pub request: CallRequest,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CallResult>,
}

/// What the executor asks the host to call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    pub node: String,
    /// `name@major`.
    pub connector: String,
    pub operation: String,
    pub config: Value,
    pub input: Value,
    pub idempotency_key: String,
    /// The node's per-attempt `timeout`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    Ok {
        output: Value,
        /// The exact connector version that ran (`name@x.y.z`).
        version: String,
    },
    Err {
        error: ConnectorError,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// The contact policy refused the call, which was not made: `decision` says which rule
    /// (`{decision, refusal: {rule, …}, zh, en}`). The node takes its `blocked` port.
    Blocked { decision: Value },
    /// The contact policy says not before `until` (quiet hours): the call is asked for
    /// again then.
    Deferred {
        until: chrono::DateTime<chrono::Utc>,
        decision: Value,
    },
}

fn one() -> u32 {
    1
}

impl Activation {
    pub fn new(node: &str, visit: u32) -> Self {
        Activation {
            node: node.to_owned(),
            visit,
            attempt: 1,
            due: None,
            event: None,
            not_before: None,
            call: None,
        }
    }
}

/// The synchronous answer a `respond` node produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

/// What a run parked in `wait_for_event` waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub event: String,
    /// CEL over `event` and the run's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<String>,
    pub node: String,
}

/// A run's state between steps; stored as JSON with the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Activations still to execute; the head is current.
    pub queue: VecDeque<Activation>,
    /// Run variables set by `set` nodes.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// `steps.<id>.output` of the latest completed activation of each node.
    #[serde(default)]
    pub steps: Map<String, Value>,
    /// Activations so far per node.
    #[serde(default)]
    pub visits: BTreeMap<String, u32>,
    /// Journal sequence number of the next record.
    #[serde(default)]
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    /// The exact connector version each `name@major` resolved to on its first call: the
    /// run keeps using it even if a newer one is enabled meanwhile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connectors: BTreeMap<String, String>,
    /// Bytes of JSON in `vars` and `steps`, kept up to date step by step so the run's size
    /// cap is checked without measuring everything again (0 in states from before it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kept_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RunState {
    /// A fresh run starting at `trigger`.
    pub fn start(trigger: &str) -> Self {
        let mut state = RunState::default();
        state.enqueue(trigger);
        state
    }

    /// Appends an activation of `node`.
    pub fn enqueue(&mut self, node: &str) {
        let visit = self.visits.entry(node.to_owned()).or_insert(0);
        let activation = Activation::new(node, *visit);
        *visit += 1;
        self.queue.push_back(activation);
    }

    /// Bytes of JSON in `vars` and `steps` (measured once for a state from before
    /// [`RunState::kept_bytes`] was kept).
    pub fn kept_bytes(&self) -> u64 {
        if self.kept_bytes > 0 || (self.vars.is_empty() && self.steps.is_empty()) {
            return self.kept_bytes;
        }
        self.vars
            .values()
            .chain(self.steps.values())
            .map(|v| trellis_model::measure::measure(v).bytes)
            .sum()
    }

    /// Records the result of the head activation's pending call; false if there is none.
    pub fn complete_call(&mut self, result: CallResult) -> bool {
        match self.queue.front_mut().and_then(|h| h.call.as_mut()) {
            Some(call) if call.result.is_none() => {
                call.result = Some(result);
                true
            }
            _ => false,
        }
    }

    /// Delivers `event` to the head activation when it waits for it; true if delivered.
    pub fn deliver(&mut self, node: &str, event: Value) -> bool {
        match self.queue.front_mut() {
            Some(head) if head.node == node && head.event.is_none() => {
                head.event = Some(event);
                true
            }
            _ => false,
        }
    }
}
