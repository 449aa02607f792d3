//! Executes one node activation at a time over a compiled flow.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use trellis_model::behaviour::CompiledBehaviour;
use trellis_model::duration::parse_duration;
use trellis_model::expr::render_json;
use trellis_model::measure::measure;
use trellis_model::node_types::{
    BLOCKED_PORT, BranchConfig, DEFAULT_PORT, ERROR_PORT, FailConfig, NodeKind, RespondConfig,
    SetConfig, SwitchConfig, TriggerConfig, WaitConfig, WaitForEventConfig,
};
use trellis_model::{Expr, FlowDoc, Node, Scope, Template};

use crate::connector::ConnectorError;
use crate::limits::RunLimits;
use crate::retry;
use crate::state::{
    Activation, CallRequest, CallResult, PendingCall, Response, RunState, Subscription,
};

/// Status of one journal record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Completed,
    /// The attempt failed and another is scheduled.
    Retrying,
    /// The node failed for good (routed to its `error` port, or failing the run).
    Failed,
    /// The node parked the run (wait, wait_for_event, a call deferred by quiet hours).
    Waiting,
    /// The contact policy refused the node's call: it was not made.
    Blocked,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Completed => "completed",
            StepStatus::Retrying => "retrying",
            StepStatus::Failed => "failed",
            StepStatus::Waiting => "waiting",
            StepStatus::Blocked => "blocked",
        }
    }
}

/// One journal entry: what one activation attempt did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub seq: u64,
    pub node: String,
    pub node_type: String,
    pub visit: u32,
    pub attempt: u32,
    pub status: StepStatus,
    pub input: Value,
    pub output: Value,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `run/node/visit/attempt`: the key a side-effecting call carries.
    pub idempotency_key: String,
}

/// What the caller does after a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// More activations are ready now.
    Continue,
    /// Nothing to do until `until` (a wait, a retry backoff, a wait-for-event timeout),
    /// or until an event matching `subscription` arrives.
    Park {
        until: DateTime<Utc>,
        subscription: Option<Subscription>,
    },
    /// Call a connector, then [`RunState::complete_call`] and step again. When the
    /// operation has side effects, commit the state first: after a crash the call is
    /// issued again with the same idempotency key.
    Call(CallRequest),
    Succeeded,
    Failed {
        error: String,
    },
}

/// A flow version with every expression compiled, shared by all runs pinned to it.
#[derive(Debug)]
pub struct CompiledFlow {
    doc: FlowDoc,
    index: HashMap<String, usize>,
    /// Per node, per JSON pointer into its config: looked up without building a key.
    exprs: HashMap<String, HashMap<String, Expr>>,
    templates: HashMap<String, HashMap<String, Template>>,
    /// Each node's outgoing edges as `(port, target)`, so a step finds its successors
    /// without a scan.
    successors: HashMap<String, Vec<(String, String)>>,
    /// The step outputs each node's expressions read; `None`: any of them.
    reads: HashMap<String, Option<BTreeSet<String>>>,
    /// The trigger's behaviour condition, for a `kind: behaviour` trigger.
    behaviour: Option<CompiledBehaviour>,
}

/// An expression or template of a flow that does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node {node}: {pointer}: {reason}")]
pub struct CompileError {
    pub node: String,
    /// Where in the node's config.
    pub pointer: String,
    pub reason: String,
}

impl CompiledFlow {
    /// Compiles a validated document; an expression that does not parse is an error
    /// naming the node.
    pub fn compile(doc: FlowDoc) -> Result<Arc<CompiledFlow>, CompileError> {
        let mut exprs: HashMap<String, HashMap<String, Expr>> = HashMap::new();
        let mut templates: HashMap<String, HashMap<String, Template>> = HashMap::new();
        for node in &doc.nodes {
            for site in trellis_model::node_types::expr_sites(&node.node_type, &node.config) {
                match site {
                    trellis_model::node_types::ExprSite::Cel { pointer, source } => {
                        let e = Expr::compile(&source).map_err(|e| CompileError {
                            node: node.id.to_string(),
                            pointer: pointer.clone(),
                            reason: e.to_string(),
                        })?;
                        exprs
                            .entry(node.id.to_string())
                            .or_default()
                            .insert(pointer, e);
                    }
                    trellis_model::node_types::ExprSite::Template { pointer, source } => {
                        let t = Template::parse(&source).map_err(|e| CompileError {
                            node: node.id.to_string(),
                            pointer: pointer.clone(),
                            reason: e.to_string(),
                        })?;
                        templates
                            .entry(node.id.to_string())
                            .or_default()
                            .insert(pointer, t);
                    }
                }
            }
        }
        let index = doc
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.to_string(), i))
            .collect();
        let mut successors: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for e in &doc.edges {
            successors
                .entry(e.from.to_string())
                .or_default()
                .push((e.port().to_owned(), e.to.to_string()));
        }
        let mut reads: HashMap<String, Option<BTreeSet<String>>> = HashMap::new();
        let mut read = |node: &str, refs: Option<BTreeSet<String>>| {
            let slot = reads
                .entry(node.to_owned())
                .or_insert_with(|| Some(BTreeSet::new()));
            match (slot.as_mut(), refs) {
                (Some(all), Some(more)) => all.extend(more),
                _ => *slot = None,
            }
        };
        for (node, at) in &exprs {
            for e in at.values() {
                read(node, e.step_refs());
            }
        }
        for (node, at) in &templates {
            for t in at.values() {
                read(node, t.step_refs());
            }
        }
        // Connector configs and inputs are rendered at run time: read their holes too.
        for node in &doc.nodes {
            for value in [Some(&node.config), node.input.as_ref()]
                .into_iter()
                .flatten()
            {
                read(node.id.as_str(), json_step_refs(value));
            }
        }
        let behaviour = match doc.trigger().and_then(|t| {
            serde_json::from_value::<TriggerConfig>(t.config.clone())
                .ok()
                .and_then(|c| c.behaviour)
                .map(|b| (t.id.to_string(), b))
        }) {
            Some((node, b)) => Some(b.compile().map_err(|(pointer, e)| CompileError {
                node,
                pointer: format!("/behaviour{pointer}"),
                reason: e.to_string(),
            })?),
            None => None,
        };
        Ok(Arc::new(CompiledFlow {
            doc,
            index,
            exprs,
            templates,
            successors,
            reads,
            behaviour,
        }))
    }

    /// The nodes an edge from `node`'s `port` leads to.
    pub fn successors<'s>(&'s self, node: &str, port: &'s str) -> impl Iterator<Item = &'s str> {
        self.successors
            .get(node)
            .into_iter()
            .flatten()
            .filter(move |(p, _)| p == port)
            .map(|(_, to)| to.as_str())
    }

    pub fn doc(&self) -> &FlowDoc {
        &self.doc
    }

    pub fn trigger_id(&self) -> Option<&str> {
        self.doc.trigger().map(|t| t.id.as_str())
    }

    /// The trigger's `when`: what an event must satisfy (over `trigger`) to start a run.
    pub fn trigger_when(&self) -> Option<&Expr> {
        self.exprs.get(self.trigger_id()?)?.get("/when")
    }

    /// Whether `trigger` (what the trigger node would see) passes the trigger's `when`;
    /// an error evaluating it is the error's text.
    pub fn admits(&self, trigger: &Value) -> Result<bool, String> {
        match self.trigger_when() {
            None => Ok(true),
            Some(when) => when
                .eval_bool(
                    &Scope::new()
                        .with_budget(crate::limits::STEP_BUDGET)
                        .with_ref("trigger", trigger)
                        .with("now", Value::String(Utc::now().to_rfc3339())),
                )
                .map_err(|e| e.to_string()),
        }
    }

    /// The trigger's behaviour condition, for a `kind: behaviour` trigger.
    pub fn trigger_behaviour(&self) -> Option<&CompiledBehaviour> {
        self.behaviour.as_ref()
    }

    fn node(&self, id: &str) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.doc.nodes[i])
    }

    fn expr(&self, node: &str, pointer: &str) -> Result<&Expr, String> {
        self.exprs
            .get(node)
            .and_then(|at| at.get(pointer))
            .ok_or_else(|| format!("node {node}: no compiled expression at {pointer}"))
    }
}

/// The steps the `{{ }}` holes in the strings of `value` read; `None` if any may be.
fn json_step_refs(value: &Value) -> Option<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s.contains("{{") => {
                ids.extend(Template::parse(s).ok()?.step_refs()?);
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    Some(ids)
}

/// Per-run facts the executor needs besides the state.
#[derive(Clone, Debug)]
pub struct Executor<'a> {
    pub flow: &'a CompiledFlow,
    pub run_id: &'a str,
    /// `trigger` in CEL: `{body, headers, query}` for webhooks, `{event}` for events,
    /// `{input}` for manual runs.
    pub trigger: &'a Value,
    /// `lead` in CEL, when the run concerns one.
    pub lead: Option<&'a Value>,
    /// Size caps on what the run keeps.
    pub limits: RunLimits,
    /// `now` in CEL (RFC 3339): the time of the step being executed, for relative dates
    /// (`timestamp(x) >= timestamp(now) - duration('168h')`).
    now: std::cell::Cell<DateTime<Utc>>,
}

enum Outcome {
    Done {
        port: Vec<String>,
        output: Value,
        input: Value,
        /// A `set` node's assigned variables, applied with the output once both fit the
        /// caps.
        vars: Option<Map<String, Value>>,
        /// A `respond` node's answer.
        response: Option<Response>,
    },
    Park {
        until: DateTime<Utc>,
        subscription: Option<Subscription>,
        input: Value,
    },
    Fail {
        error: String,
        input: Value,
        /// No further attempt (the retry policy does not apply).
        final_: bool,
        /// The run ends here, error port or not (a `fail` node).
        ends_run: bool,
    },
    Call(CallRequest),
    CallFailed {
        error: ConnectorError,
        input: Value,
    },
    /// The contact policy refused the call: the `blocked` port.
    Blocked {
        output: Value,
        input: Value,
    },
    /// The contact policy deferred the call until `until`.
    Deferred {
        until: DateTime<Utc>,
        output: Value,
        input: Value,
    },
}

impl<'a> Executor<'a> {
    /// An executor for a run that concerns no lead.
    pub fn new(flow: &'a CompiledFlow, run_id: &'a str, trigger: &'a Value) -> Self {
        Executor {
            flow,
            run_id,
            trigger,
            lead: None,
            limits: RunLimits::DEFAULT,
            now: std::cell::Cell::new(Utc::now()),
        }
    }

    /// The CEL scope for the current state, every step output in it.
    pub fn scope(&self, state: &RunState) -> Scope<'a> {
        self.scope_reading(state, None)
    }

    /// The scope `node`'s expressions see: of the step outputs, only those they read, so a
    /// step costs the same however many steps came before it.
    fn scope_for(&self, node: &str, state: &RunState) -> Scope<'a> {
        self.scope_reading(state, self.flow.reads.get(node).and_then(Option::as_ref))
    }

    fn scope_reading(&self, state: &RunState, only: Option<&BTreeSet<String>>) -> Scope<'a> {
        let mut steps = Map::new();
        match only {
            Some(ids) => {
                for id in ids {
                    if let Some(out) = state.steps.get(id) {
                        steps.insert(id.clone(), json!({ "output": out }));
                    }
                }
            }
            None => {
                for (id, out) in &state.steps {
                    steps.insert(id.clone(), json!({ "output": out }));
                }
            }
        }
        let mut scope = Scope::new()
            .with_budget(crate::limits::STEP_BUDGET)
            .with_ref("trigger", self.trigger)
            .with("vars", Value::Object(state.vars.clone()))
            .with("steps", Value::Object(steps))
            .with("now", Value::String(self.now.get().to_rfc3339()));
        if let Some(lead) = self.lead {
            scope = scope.with_ref("lead", lead);
        }
        scope
    }

    /// Executes the head activation. `jitter` in `[0, 1)` randomises retry delays.
    pub fn step(
        &self,
        state: &mut RunState,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> (Option<StepRecord>, Next) {
        self.now.set(now);
        let Some(head) = state.queue.front().cloned() else {
            return (None, Next::Succeeded);
        };
        if let Some(not_before) = head.not_before
            && not_before > now
        {
            return (
                None,
                Next::Park {
                    until: not_before,
                    subscription: None,
                },
            );
        }
        let Some(node) = self.flow.node(&head.node) else {
            let error = format!("node {:?} is not in this flow version", head.node);
            return (None, Next::Failed { error });
        };
        // The clock is read only for a node with a `timeout`.
        let clock = node.timeout.is_some().then(std::time::Instant::now);
        let mut outcome = self.execute(node, &head, state, now, clock);
        // A refused call ends the node on its `blocked` port, its output held to the caps
        // like any other.
        let mut blocked = false;
        if let Outcome::Blocked { output, input } = outcome {
            blocked = true;
            outcome = Outcome::Done {
                port: vec![BLOCKED_PORT.to_owned()],
                output,
                input,
                vars: None,
                response: None,
            };
        }
        let mut kept = None;
        let elapsed = clock.map(|c| c.elapsed());
        outcome = self.within_limits(node, outcome, state, elapsed, &mut kept);
        if let Some(kept) = kept {
            state.kept_bytes = kept;
        }
        if let Outcome::Call(request) = outcome {
            if let Some(front) = state.queue.front_mut() {
                front.call = Some(PendingCall {
                    request: request.clone(),
                    started_at: now,
                    result: None,
                });
            }
            return (None, Next::Call(request));
        }
        let started_at = head.call.as_ref().map_or(now, |c| c.started_at);
        let mut retry_after = None;
        let mut error_detail = None;
        if let Outcome::CallFailed { error, input, .. } = outcome {
            retry_after = error.retry_after();
            error_detail = serde_json::to_value(&error).ok();
            outcome = Outcome::Fail {
                final_: !error.retryable(),
                error: error.to_string(),
                input,
                ends_run: false,
            };
        }
        let seq = state.seq;
        state.seq += 1;
        let mut record = StepRecord {
            seq,
            node: head.node.clone(),
            node_type: node.node_type.clone(),
            visit: head.visit,
            attempt: head.attempt,
            status: StepStatus::Completed,
            input: Value::Null,
            output: Value::Null,
            error: None,
            started_at,
            finished_at: now,
            idempotency_key: format!(
                "{}/{}/{}/{}",
                self.run_id, head.node, head.visit, head.attempt
            ),
        };
        let next = match outcome {
            Outcome::Deferred {
                until,
                output,
                input,
            } => {
                record.status = StepStatus::Waiting;
                record.input = input;
                record.output = output;
                if let Some(front) = state.queue.front_mut() {
                    front.not_before = Some(until);
                    front.call = None;
                }
                Next::Park {
                    until,
                    subscription: None,
                }
            }
            // These were turned into other outcomes above.
            Outcome::Call(_) | Outcome::CallFailed { .. } | Outcome::Blocked { .. } => {
                Next::Failed {
                    error: format!("node {}: internal: unexpected call outcome", head.node),
                }
            }
            Outcome::Done {
                port,
                output,
                input,
                vars,
                response,
            } => {
                if blocked {
                    record.status = StepStatus::Blocked;
                }
                record.input = input;
                record.output = output.clone();
                state.queue.pop_front();
                state.steps.insert(head.node.clone(), output);
                if let Some(vars) = vars {
                    state.vars.extend(vars);
                }
                if response.is_some() {
                    state.response = response;
                }
                for p in &port {
                    for t in self.flow.successors(&head.node, p) {
                        state.enqueue(t);
                    }
                }
                if state.queue.is_empty() {
                    Next::Succeeded
                } else {
                    Next::Continue
                }
            }
            Outcome::Park {
                until,
                subscription,
                input,
            } => {
                record.status = StepStatus::Waiting;
                record.input = input;
                record.output = json!({ "until": until });
                if let Some(front) = state.queue.front_mut() {
                    front.due = Some(until);
                }
                Next::Park {
                    until,
                    subscription,
                }
            }
            Outcome::Fail {
                error,
                input,
                final_,
                ends_run,
            } => {
                let error = plain_text(error);
                record.input = input;
                record.error = Some(error.clone());
                if let Some(detail) = &error_detail {
                    record.output = json!({ "error": detail });
                }
                let delay = if final_ {
                    None
                } else {
                    retry::delay(node.retry.as_ref(), head.attempt + 1, jitter)
                        .map(|d| retry_after.map_or(d, |r| d.max(r)))
                };
                match delay {
                    Some(d) => {
                        record.status = StepStatus::Retrying;
                        let at =
                            now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
                        if let Some(front) = state.queue.front_mut() {
                            front.attempt += 1;
                            front.not_before = Some(at);
                            front.call = None;
                        }
                        Next::Park {
                            until: at,
                            subscription: None,
                        }
                    }
                    None => {
                        record.status = StepStatus::Failed;
                        state.queue.pop_front();
                        let handlers: Vec<String> = self
                            .flow
                            .successors(&head.node, ERROR_PORT)
                            .map(str::to_owned)
                            .collect();
                        // A `fail` node ends the run; any other failure goes to the error
                        // port when one is connected.
                        if handlers.is_empty() || ends_run {
                            state.queue.clear();
                            Next::Failed {
                                error: format!("node {}: {error}", head.node),
                            }
                        } else {
                            let mut out = json!({ "error": error, "node": head.node });
                            if let Some(detail) = error_detail {
                                out["detail"] = detail;
                            }
                            record.output = out.clone();
                            let size = |v: Option<&Value>| v.map_or(0, |v| measure(v).bytes);
                            state.kept_bytes = state
                                .kept_bytes()
                                .saturating_sub(size(state.steps.get(&head.node)))
                                .saturating_add(size(Some(&out)));
                            state.steps.insert(head.node.clone(), out);
                            for t in handlers {
                                state.enqueue(&t);
                            }
                            Next::Continue
                        }
                    }
                }
            }
        };
        (Some(record), next)
    }

    /// Holds a step's outcome to the node's `timeout` and the run's size caps: a step that
    /// took too long or would store too much fails, and changes nothing.
    fn within_limits(
        &self,
        node: &Node,
        outcome: Outcome,
        state: &RunState,
        elapsed: Option<std::time::Duration>,
        kept: &mut Option<u64>,
    ) -> Outcome {
        // Doing the same again would break the same limit: no retry, but the error port.
        let failed = |error: String| Outcome::Fail {
            error,
            input: Value::Null,
            final_: true,
            ends_run: false,
        };
        match outcome {
            Outcome::Call(request) => {
                for (what, value) in [("config", &request.config), ("input", &request.input)] {
                    if let Err(e) = self
                        .limits
                        .check_value(&format!("the call's rendered {what}"), value)
                    {
                        return failed(e);
                    }
                }
                Outcome::Call(request)
            }
            Outcome::Done {
                port,
                output,
                input,
                vars,
                response,
            } => {
                if let Some(e) = over_time(node, elapsed) {
                    return Outcome::Fail {
                        error: e,
                        input: Value::Null,
                        final_: false,
                        ends_run: false,
                    };
                }
                let what = format!("the output of node {}", node.id);
                // A `set` node's output repeats variables each checked on their own.
                let checked = if vars.is_some() {
                    self.limits.check_shape(&what, &output)
                } else {
                    self.limits.check_value(&what, &output)
                };
                let out = match checked {
                    Ok(m) => m.bytes,
                    Err(e) => return failed(e),
                };
                // The run's size after the step, from its size before: only what the step
                // replaces is measured.
                let bytes = |v: Option<&Value>| v.map_or(0, |v| measure(v).bytes);
                let mut total = state.kept_bytes();
                total = total.saturating_sub(bytes(state.steps.get(node.id.as_str()))) + out;
                for (name, value) in vars.iter().flatten() {
                    total = total.saturating_sub(bytes(state.vars.get(name))) + bytes(Some(value));
                }
                if let Err(e) = self.limits.check_total(total) {
                    return failed(e);
                }
                *kept = Some(total);
                Outcome::Done {
                    port,
                    output,
                    input,
                    vars,
                    response,
                }
            }
            other => other,
        }
    }

    fn execute(
        &self,
        node: &Node,
        head: &Activation,
        state: &RunState,
        now: DateTime<Utc>,
        started: Option<std::time::Instant>,
    ) -> Outcome {
        let id = node.id.as_str();
        let config = &node.config;
        let done = |port: &str, output: Value, input: Value| Outcome::Done {
            port: vec![port.to_owned()],
            output,
            input,
            vars: None,
            response: None,
        };
        let fail = |error: String| Outcome::Fail {
            error,
            input: Value::Null,
            final_: false,
            ends_run: false,
        };
        let Some(kind) = node.kind() else {
            // Future node types: render the config's templates so the journal shows what
            // would be sent, then fail clearly.
            let input = render_json(config, &self.scope_for(node.id.as_str(), state))
                .unwrap_or(Value::Null);
            return Outcome::Fail {
                error: format!("node type {:?} cannot run on this server", node.node_type),
                input,
                final_: true,
                ends_run: true,
            };
        };
        match kind {
            NodeKind::Trigger => done(DEFAULT_PORT, self.trigger.clone(), Value::Null),
            NodeKind::Note => done(DEFAULT_PORT, Value::Null, Value::Null),
            NodeKind::Branch => {
                let Ok(c) = serde_json::from_value::<BranchConfig>(config.clone()) else {
                    return fail(bad_config(id));
                };
                match self.flow.expr(id, "/when").and_then(|e| {
                    e.eval_bool(&self.scope_for(node.id.as_str(), state))
                        .map_err(|e| e.to_string())
                }) {
                    Ok(b) => done(
                        if b { "true" } else { "false" },
                        json!({ "result": b }),
                        json!({ "when": c.when }),
                    ),
                    Err(e) => fail(e),
                }
            }
            NodeKind::Switch => {
                let Ok(c) = serde_json::from_value::<SwitchConfig>(config.clone()) else {
                    return fail(bad_config(id));
                };
                let scope = self.scope_for(node.id.as_str(), state);
                for (i, case) in c.cases.iter().enumerate() {
                    match self
                        .flow
                        .expr(id, &format!("/cases/{i}/when"))
                        .and_then(|e| e.eval_bool(&scope).map_err(|e| e.to_string()))
                    {
                        Ok(true) => {
                            return done(&case.port, json!({ "port": case.port }), Value::Null);
                        }
                        Ok(false) => {}
                        Err(e) => return fail(e),
                    }
                    if let Some(e) = over_time(node, started.map(|s| s.elapsed())) {
                        return fail(e);
                    }
                }
                done("default", json!({ "port": "default" }), Value::Null)
            }
            NodeKind::Set => {
                let Ok(c) = serde_json::from_value::<SetConfig>(config.clone()) else {
                    return fail(bad_config(id));
                };
                let mut scope = self.scope_for(node.id.as_str(), state);
                let mut assigned = Map::new();
                for name in c.vars.keys() {
                    let pointer =
                        format!("/vars/{}", trellis_model::node_types::escape_pointer(name));
                    match self
                        .flow
                        .expr(id, &pointer)
                        .and_then(|e| e.eval(&scope).map_err(|e| e.to_string()))
                    {
                        Ok(v) => {
                            if let Err(e) = self.limits.check_value(&format!("variable {name}"), &v)
                            {
                                return fail(e);
                            }
                            // Later variables see this one.
                            scope.set_field("vars", name, v.clone());
                            assigned.insert(name.clone(), v);
                        }
                        Err(e) => return fail(format!("{name}: {e}")),
                    }
                }
                Outcome::Done {
                    port: vec![DEFAULT_PORT.to_owned()],
                    output: Value::Object(assigned.clone()),
                    input: Value::Null,
                    vars: Some(assigned),
                    response: None,
                }
            }
            NodeKind::Wait => {
                let due = match head.due {
                    Some(due) => due,
                    None => {
                        let Ok(c) = serde_json::from_value::<WaitConfig>(config.clone()) else {
                            return fail(bad_config(id));
                        };
                        match (c.duration, c.until) {
                            (Some(d), _) => match parse_duration(&d) {
                                Ok(d) => {
                                    now + chrono::Duration::from_std(d)
                                        .unwrap_or(chrono::Duration::zero())
                                }
                                Err(e) => return fail(e),
                            },
                            (None, Some(_)) => match self.flow.expr(id, "/until").and_then(|e| {
                                e.eval(&self.scope_for(node.id.as_str(), state))
                                    .map_err(|e| e.to_string())
                            }) {
                                Ok(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
                                    Ok(t) => t.with_timezone(&Utc),
                                    Err(e) => {
                                        return fail(format!(
                                            "until: {s:?} is not an RFC 3339 time: {e}"
                                        ));
                                    }
                                },
                                Ok(other) => {
                                    return fail(format!(
                                        "until: expected a timestamp, got {other}"
                                    ));
                                }
                                Err(e) => return fail(e),
                            },
                            (None, None) => return fail(bad_config(id)),
                        }
                    }
                };
                if now >= due {
                    done(DEFAULT_PORT, json!({ "waited_until": due }), Value::Null)
                } else {
                    Outcome::Park {
                        until: due,
                        subscription: None,
                        input: Value::Null,
                    }
                }
            }
            NodeKind::WaitForEvent => {
                let Ok(c) = serde_json::from_value::<WaitForEventConfig>(config.clone()) else {
                    return fail(bad_config(id));
                };
                if let Some(event) = &head.event {
                    return done("event", event.clone(), Value::Null);
                }
                let due = match head.due {
                    Some(due) => due,
                    None => match parse_duration(&c.timeout) {
                        Ok(d) => {
                            now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero())
                        }
                        Err(e) => return fail(e),
                    },
                };
                if now >= due {
                    done("timeout", json!({ "timed_out_at": due }), Value::Null)
                } else {
                    let subscription = Subscription {
                        event: c.event.clone(),
                        matcher: c.match_.clone(),
                        node: id.to_owned(),
                    };
                    Outcome::Park {
                        until: due,
                        subscription: Some(subscription),
                        input: json!({ "event": c.event }),
                    }
                }
            }
            NodeKind::Respond => {
                let Ok(c) = serde_json::from_value::<RespondConfig>(config.clone()) else {
                    return fail(bad_config(id));
                };
                match self.flow.expr(id, "/body").and_then(|e| {
                    e.eval(&self.scope_for(node.id.as_str(), state))
                        .map_err(|e| e.to_string())
                }) {
                    Ok(body) => {
                        let response = Response {
                            status: c.status,
                            body,
                        };
                        Outcome::Done {
                            port: vec![DEFAULT_PORT.to_owned()],
                            output: json!({ "status": response.status, "body": response.body }),
                            input: Value::Null,
                            vars: None,
                            response: Some(response),
                        }
                    }
                    Err(e) => fail(e),
                }
            }
            NodeKind::Fail => {
                let Ok(c) = serde_json::from_value::<FailConfig>(config.clone()) else {
                    return fail(bad_config(id));
                };
                let message = match self
                    .flow
                    .templates
                    .get(id)
                    .and_then(|at| at.get("/message"))
                {
                    Some(t) => t
                        .render(&self.scope_for(node.id.as_str(), state))
                        .unwrap_or_else(|e| format!("{} ({e})", c.message)),
                    None => c.message,
                };
                Outcome::Fail {
                    error: message,
                    input: Value::Null,
                    final_: true,
                    ends_run: true,
                }
            }
            NodeKind::Connector => self.connector(node, head, state),
            NodeKind::Score
            | NodeKind::DetectSignals
            | NodeKind::NextBestAction
            | NodeKind::UpdateLead
            | NodeKind::AssignOwner
            | NodeKind::Notify
            | NodeKind::Enroll
            | NodeKind::Suppress
            | NodeKind::CheckBehaviour
            | NodeKind::CreateTaskUnit => self.served(kind, node, head, state),
        }
    }
}

impl Executor<'_> {
    /// A node the server serves (the intent nodes `score`, `detect_signals`,
    /// `next_best_action` on `trellis.intent@1`; the lead actions and `behaviour` on
    /// `trellis.leads@1`; `create_task_unit` on `trellis.units@1`): its CEL fields are
    /// evaluated here, a lead action's templates
    /// rendered, and the server makes the call (it needs stored leads, events, the lexicon),
    /// so it journals and resumes like a connector call. A `behaviour` check goes on at
    /// `true` or `false` by the answer's `holds`.
    fn served(&self, kind: NodeKind, node: &Node, head: &Activation, state: &RunState) -> Outcome {
        if head.call.is_some() {
            let outcome = self.connector(node, head, state);
            return match outcome {
                Outcome::Done {
                    output,
                    input,
                    vars,
                    response,
                    ..
                } if kind == NodeKind::CheckBehaviour => {
                    let holds = output.get("holds").and_then(Value::as_bool) == Some(true);
                    Outcome::Done {
                        port: vec![if holds { "true" } else { "false" }.to_owned()],
                        output,
                        input,
                        vars,
                        response,
                    }
                }
                other => other,
            };
        }
        let id = node.id.as_str();
        let scope = self.scope_for(node.id.as_str(), state);
        let mut input = Map::new();
        if kind == NodeKind::CreateTaskUnit
            && let Value::Object(config) = &node.config
        {
            // The template and manager as written; the CEL fields are evaluated below.
            input = config.clone();
        }
        if kind.host() == Some(trellis_model::node_types::LEADS_HOST) {
            match render_json(&node.config, &scope) {
                Ok(Value::Object(rendered)) => input = rendered,
                Ok(_) => {}
                Err(e) => {
                    return Outcome::Fail {
                        error: e.to_string(),
                        input: Value::Null,
                        final_: false,
                        ends_run: false,
                    };
                }
            }
        }
        for field in ["lead", "text", "account", "event", "severity"] {
            let Ok(e) = self.flow.expr(id, &format!("/{field}")) else {
                continue;
            };
            match e.eval(&scope) {
                Ok(v) => {
                    input.insert(field.to_owned(), v);
                }
                Err(e) => {
                    return Outcome::Fail {
                        error: format!("{field}: {e}"),
                        input: Value::Null,
                        final_: false,
                        ends_run: false,
                    };
                }
            }
        }
        Outcome::Call(CallRequest {
            node: node.id.to_string(),
            connector: kind.host().unwrap_or_default().to_owned(),
            operation: kind.name().to_owned(),
            config: json!({}),
            input: Value::Object(input),
            idempotency_key: format!(
                "{}/{}/{}/{}",
                self.run_id, head.node, head.visit, head.attempt
            ),
            timeout_ms: None,
        })
    }

    /// A connector node: first visit renders the call; once the host delivered the result,
    /// the node completes or fails with the connector's typed error.
    fn connector(&self, node: &Node, head: &Activation, state: &RunState) -> Outcome {
        let journal_input = |r: &CallRequest| {
            json!({
                "connector": r.connector,
                "operation": r.operation,
                "config": r.config,
                "input": r.input,
            })
        };
        if let Some(call) = &head.call {
            return match &call.result {
                Some(CallResult::Ok { output, version }) => {
                    let mut input = journal_input(&call.request);
                    input["version"] = json!(version);
                    Outcome::Done {
                        port: vec![DEFAULT_PORT.to_owned()],
                        output: output.clone(),
                        input,
                        vars: None,
                        response: None,
                    }
                }
                Some(CallResult::Err { error, version }) => {
                    let mut input = journal_input(&call.request);
                    if let Some(v) = version {
                        input["version"] = json!(v);
                    }
                    Outcome::CallFailed {
                        error: error.clone(),
                        input,
                    }
                }
                Some(CallResult::Blocked { decision }) => Outcome::Blocked {
                    output: json!({ "blocked": true, "policy": decision }),
                    input: journal_input(&call.request),
                },
                Some(CallResult::Deferred { until, decision }) => Outcome::Deferred {
                    until: *until,
                    output: json!({ "until": until, "policy": decision }),
                    input: journal_input(&call.request),
                },
                // Issued before a restart with no result recorded: issue it again, same key.
                None => Outcome::Call(call.request.clone()),
            };
        }
        let (Some(connector), Some(operation)) = (&node.connector, &node.operation) else {
            return Outcome::Fail {
                error: bad_config(node.id.as_str()),
                input: Value::Null,
                final_: true,
                ends_run: true,
            };
        };
        let scope = self.scope_for(node.id.as_str(), state);
        let rendered = render_json(&node.config, &scope).and_then(|config| {
            let input = match &node.input {
                Some(i) => render_json(i, &scope)?,
                None => json!({}),
            };
            Ok((config, input))
        });
        let (config, input) = match rendered {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Fail {
                    error: e.to_string(),
                    input: Value::Null,
                    final_: false,
                    ends_run: false,
                };
            }
        };
        Outcome::Call(CallRequest {
            node: node.id.to_string(),
            connector: connector.clone(),
            operation: operation.clone(),
            config,
            input,
            idempotency_key: format!(
                "{}/{}/{}/{}",
                self.run_id, head.node, head.visit, head.attempt
            ),
            timeout_ms: node
                .timeout
                .as_deref()
                .and_then(|t| parse_duration(t).ok())
                .map(|d| d.as_millis() as u64),
        })
    }
}

/// The longest error text kept in the journal and on the run.
pub const MAX_ERROR_BYTES: usize = 4096;

/// Error text as stored: cut at [`MAX_ERROR_BYTES`], NUL characters (which PostgreSQL cannot
/// store, and which a connector or a rendered message may carry) replaced.
pub fn plain_text(mut text: String) -> String {
    if text.len() > MAX_ERROR_BYTES {
        let mut at = MAX_ERROR_BYTES;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let total = text.len();
        text.truncate(at);
        text.push_str(&format!("… ({total} bytes)"));
    }
    if text.contains('\0') {
        text = text.replace('\0', "\u{fffd}");
    }
    text
}

/// The error of a node that ran past its `timeout`, if it did.
fn over_time(node: &Node, elapsed: Option<std::time::Duration>) -> Option<String> {
    let elapsed = elapsed?;
    let limit = node
        .timeout
        .as_deref()
        .and_then(|t| parse_duration(t).ok())?;
    (elapsed > limit).then(|| {
        format!(
            "timeout: the node took {} ms; its timeout is {} ms",
            elapsed.as_millis(),
            limit.as_millis()
        )
    })
}

fn bad_config(id: &str) -> String {
    format!("node {id}: config does not match its node type; validate the flow")
}
