//! A run's durable state: everything needed to take it one step further after a restart.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
