//! Flow validation: the document's JSON Schema, then the graph rules. Every problem is
//! reported (not just the first), each with a JSON pointer and the node id when there is one.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde::Serialize;
use serde_json::Value;

use crate::connectors::Catalog;
use crate::duration::parse_duration;
use crate::expr::{Expr, Position, Template};
use crate::flow::FlowDoc;
use crate::forms::{ConfigProblem, Issue};
use crate::node_types::{self, ExprSite, NodeKind, TriggerConfig, TriggerKind, WaitConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable machine-readable kind, e.g. `dangling_edge`.
    pub code: &'static str,
    pub message: String,
    /// JSON pointer into the document.
    pub pointer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// For expressions: where inside the expression the problem is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The node's config field the problem is in, for the studio to name it and take the
    /// user there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `invalid_config`: what is wrong with `field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<Issue>,
}

impl Diagnostic {
    pub(crate) fn error(
        code: &'static str,
        pointer: impl Into<String>,
        node: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        let pointer = pointer.into();
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            field: config_field(&pointer),
            pointer,
            node: node.map(str::to_owned),
            position: None,
            issue: None,
        }
    }

    /// A problem of a node's config against its schema.
    fn config(i: usize, node: Option<&str>, what: &str, p: ConfigProblem) -> Self {
        Diagnostic {
            field: p.field,
            issue: Some(p.issue),
            ..Diagnostic::error(
                "invalid_config",
                format!("/nodes/{i}/config{}", p.pointer),
                node,
                format!("{what}: {}", p.message),
            )
        }
    }

    fn with_issue(self, issue: Issue) -> Self {
        Diagnostic {
            issue: Some(issue),
            ..self
        }
    }
}

/// The config field a document pointer is in: `f` of `/nodes/N/config/f/…`.
fn config_field(pointer: &str) -> Option<String> {
    let mut parts = pointer.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(""), Some("nodes"), Some(_), Some("config"), Some(field)) => {
            Some(field.replace("~1", "/").replace("~0", "~"))
        }
        _ => None,
    }
}

/// True when none of `diagnostics` is an error.
pub fn is_valid(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().all(|d| d.severity != Severity::Error)
}

static DOC_VALIDATOR: LazyLock<Option<jsonschema::Validator>> = LazyLock::new(|| {
    let mut schema = FlowDoc::json_schema();
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
    }
    jsonschema::validator_for(&schema).ok()
});

/// Validates a document given as raw JSON: its shape first, then the graph rules.
/// Returns the parsed document when the shape is right.
pub fn validate_value(value: &Value) -> (Option<FlowDoc>, Vec<Diagnostic>) {
    validate_value_with(value, &Catalog::default())
}

/// [`validate_value`] with connector nodes checked against `catalog`.
pub fn validate_value_with(value: &Value, catalog: &Catalog) -> (Option<FlowDoc>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    if let Some(validator) = DOC_VALIDATOR.as_ref() {
        for error in validator.iter_errors(value) {
            let pointer = error.instance_path().as_str().to_owned();
            let node = node_id_at(value, &pointer);
            diagnostics.push(Diagnostic::error(
                "malformed",
                pointer,
                node.as_deref(),
                error.to_string(),
            ));
        }
    }
    if !diagnostics.is_empty() {
        return (None, diagnostics);
    }
    match serde_json::from_value::<FlowDoc>(value.clone()) {
        Ok(doc) => {
            let diagnostics = validate_with(&doc, catalog);
            (Some(doc), diagnostics)
        }
        Err(e) => (
            None,
            vec![Diagnostic::error("malformed", "", None, e.to_string())],
        ),
    }
}

/// The node id of `/nodes/<i>/…` pointers, read from the raw document.
fn node_id_at(value: &Value, pointer: &str) -> Option<String> {
    let rest = pointer.strip_prefix("/nodes/")?;
    let index = rest.split('/').next()?;
    value
        .pointer(&format!("/nodes/{index}/id"))?
        .as_str()
        .map(str::to_owned)
}

/// What adding `edge` to `doc` would break: the errors the validator finds with the edge
/// that it does not find without it (a cycle with no wait, an edge into the trigger, a
/// repeated edge, a port the node lacks, …). Empty when the connection is fine. The studio
/// asks this while a wire is dragged, so its answer is the validator's.
pub fn connection_problems(doc: &FlowDoc, edge: &crate::flow::Edge) -> Vec<Diagnostic> {
    let errors = |d: &FlowDoc| -> Vec<Diagnostic> {
        validate(d)
            .into_iter()
            .filter(|x| x.severity == Severity::Error)
            .collect()
    };
    let before = errors(doc);
    let mut with = doc.clone();
    with.edges.push(edge.clone());
    errors(&with)
        .into_iter()
        .filter(|d| {
            !before
                .iter()
                .any(|b| b.code == d.code && b.pointer == d.pointer && b.message == d.message)
        })
        .collect()
}

/// Validates a parsed document against the graph rules, knowing no connectors.
pub fn validate(doc: &FlowDoc) -> Vec<Diagnostic> {
    validate_with(doc, &Catalog::default())
}

/// Validates a parsed document against the graph rules; connector nodes must name an
/// operation of a connector in `catalog`, with a config its schema accepts.
pub fn validate_with(doc: &FlowDoc, catalog: &Catalog) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    let mut triggers = Vec::new();
    for (i, node) in doc.nodes.iter().enumerate() {
        let id = node.id.as_str();
        if seen.insert(id, i).is_some() {
            out.push(Diagnostic::error(
                "duplicate_node_id",
                format!("/nodes/{i}/id"),
                Some(id),
                format!("node id {id:?} is used more than once"),
            ));
        }
        if node.kind() == Some(NodeKind::Trigger) {
            triggers.push(i);
        }
        check_node(doc, i, &mut out);
        if node.kind() == Some(NodeKind::Connector) {
            check_connector(node, i, catalog, &mut out);
        }
    }
    match triggers.as_slice() {
        [] => out.push(Diagnostic::error(
            "no_trigger",
            "/nodes",
            None,
            "the flow has no trigger node",
        )),
        [_] => {}
        [_, rest @ ..] => {
            for &i in rest {
                let id = doc.nodes[i].id.as_str();
                out.push(Diagnostic::error(
                    "multiple_triggers",
                    format!("/nodes/{i}"),
                    Some(id),
                    format!("node {id:?} is a second trigger; a flow has exactly one"),
                ));
            }
        }
    }
    check_edges(doc, &seen, &mut out);
    check_cycles(doc, &seen, &mut out);
    check_reachability(doc, &seen, &mut out);
    out
}

fn check_node(doc: &FlowDoc, i: usize, out: &mut Vec<Diagnostic>) {
    let node = &doc.nodes[i];
    let id = Some(node.id.as_str());
    let Some(spec) = node_types::node_type(&node.node_type) else {
        let known: Vec<&str> = node_types::builtin_node_types()
            .iter()
            .map(|s| s.name)
            .collect();
        out.push(Diagnostic::error(
            "unknown_node_type",
            format!("/nodes/{i}/type"),
            id,
            format!(
                "unknown node type {:?}; known types: {}",
                node.node_type,
                known.join(", ")
            ),
        ));
        return;
    };
    let config_errors = spec.check_config(&node.config);
    if !config_errors.is_empty() {
        for p in config_errors {
            out.push(Diagnostic::config(i, id, &node.node_type, p));
        }
        return;
    }
    for site in node_types::expr_sites(&node.node_type, &node.config) {
        let (pointer, result) = match &site {
            ExprSite::Cel { pointer, source } => (pointer, Expr::compile(source).map(|_| ())),
            ExprSite::Template { pointer, source } => {
                (pointer, Template::parse(source).map(|_| ()))
            }
        };
        if let Err(e) = result {
            out.push(Diagnostic {
                position: e.position.clone(),
                ..Diagnostic::error(
                    "invalid_expression",
                    format!("/nodes/{i}/config{pointer}"),
                    id,
                    format!("invalid CEL: {}", e.message),
                )
            });
        }
    }
    let mut duration = |pointer: String, text: &str| {
        if let Err(message) = parse_duration(text) {
            out.push(Diagnostic::error("invalid_duration", pointer, id, message));
        }
    };
    if let Some(timeout) = &node.timeout {
        duration(format!("/nodes/{i}/timeout"), timeout);
    }
    if let Some(retry) = &node.retry {
        duration(format!("/nodes/{i}/retry/backoff"), &retry.backoff);
        duration(format!("/nodes/{i}/retry/max_backoff"), &retry.max_backoff);
    }
    match node.kind() {
        Some(NodeKind::Wait) => {
            if let Ok(c) = serde_json::from_value::<WaitConfig>(node.config.clone()) {
                match (&c.duration, &c.until) {
                    (Some(d), None) => duration(format!("/nodes/{i}/config/duration"), d),
                    (None, Some(_)) => {}
                    (None, None) => out.push(
                        Diagnostic::error(
                            "invalid_config",
                            format!("/nodes/{i}/config/duration"),
                            id,
                            "wait: set exactly one of `duration` or `until`",
                        )
                        .with_issue(Issue::Missing),
                    ),
                    (Some(_), Some(_)) => out.push(
                        Diagnostic::error(
                            "invalid_config",
                            format!("/nodes/{i}/config/until"),
                            id,
                            "wait: set exactly one of `duration` or `until`",
                        )
                        .with_issue(Issue::Invalid),
                    ),
                }
            }
        }
        Some(NodeKind::WaitForEvent) => {
            if let Some(t) = node.config.get("timeout").and_then(Value::as_str) {
                duration(format!("/nodes/{i}/config/timeout"), t);
            }
        }
        Some(NodeKind::Trigger) => check_trigger(node, i, out),
        Some(
            NodeKind::AssignOwner
            | NodeKind::Notify
            | NodeKind::CheckBehaviour
            | NodeKind::Enroll
            | NodeKind::CreateTaskUnit,
        ) => check_lead_action(node, i, out),
        _ => {}
    }
}

/// What a lead action needs beyond its schema: the people its choice names.
fn check_lead_action(node: &crate::flow::Node, i: usize, out: &mut Vec<Diagnostic>) {
    use crate::node_types::{
        AssignOwnerConfig, AssignStrategy, CheckBehaviourConfig, CreateTaskUnitConfig,
        EnrollConfig, NotifyConfig, Recipient,
    };
    let id = Some(node.id.as_str());
    let mut missing = |field: &str, message: &str| {
        out.push(
            Diagnostic::error(
                "invalid_config",
                format!("/nodes/{i}/config/{field}"),
                id,
                message.to_owned(),
            )
            .with_issue(Issue::Missing),
        );
    };
    match node.kind() {
        Some(NodeKind::AssignOwner) => {
            let Ok(c) = serde_json::from_value::<AssignOwnerConfig>(node.config.clone()) else {
                return;
            };
            match c.strategy {
                AssignStrategy::Fixed if c.owner.as_deref().is_none_or(str::is_empty) => {
                    missing("owner", "assign owner: a fixed assignment needs `owner`")
                }
                AssignStrategy::RoundRobin | AssignStrategy::Load if c.owners.is_empty() => {
                    missing(
                        "owners",
                        "assign owner: name the people to choose from in `owners`",
                    )
                }
                AssignStrategy::Territory => {
                    if c.territory_attribute.as_deref().is_none_or(str::is_empty) {
                        missing(
                            "territory_attribute",
                            "assign owner: a territory assignment needs `territory_attribute`",
                        );
                    }
                    if c.territories.is_empty() && c.fallback.is_none() {
                        missing(
                            "territories",
                            "assign owner: map at least one territory to an owner in `territories`",
                        );
                    }
                }
                _ => {}
            }
        }
        Some(NodeKind::Notify) => {
            if let Ok(c) = serde_json::from_value::<NotifyConfig>(node.config.clone()) {
                if c.to == Recipient::People && c.people.is_empty() {
                    missing("people", "notify: name who gets the message in `people`");
                }
                if c.to == Recipient::LeadOwner && c.lead.is_none() {
                    missing("lead", "notify: telling the lead's owner needs `lead`");
                }
            }
        }
        Some(NodeKind::Enroll) => {
            if let Ok(c) = serde_json::from_value::<EnrollConfig>(node.config.clone())
                && c.flow.trim().is_empty()
            {
                missing("flow", "enroll: choose the flow in `flow`");
            }
        }
        Some(NodeKind::CreateTaskUnit) => {
            if let Ok(c) = serde_json::from_value::<CreateTaskUnitConfig>(node.config.clone())
                && c.template.trim().is_empty()
            {
                missing(
                    "template",
                    "create task unit: choose the unit template in `template`",
                );
            }
        }
        Some(NodeKind::CheckBehaviour) => {
            if let Ok(c) = serde_json::from_value::<CheckBehaviourConfig>(node.config.clone())
                && let Err((pointer, e)) = c.condition.compile()
            {
                out.push(
                    Diagnostic::error(
                        "invalid_config",
                        format!("/nodes/{i}/config/condition{pointer}"),
                        id,
                        format!("behaviour: {}", e.message),
                    )
                    .with_issue(Issue::Invalid),
                );
            }
        }
        _ => {}
    }
}

fn check_connector(
    node: &crate::flow::Node,
    i: usize,
    catalog: &Catalog,
    out: &mut Vec<Diagnostic>,
) {
    let id = Some(node.id.as_str());
    let Some(reference) = node.connector.as_deref() else {
        out.push(Diagnostic::error(
            "invalid_config",
            format!("/nodes/{i}/connector"),
            id,
            "connector: set `connector` to `name@major`",
        ));
        return;
    };
    let Some(entry) = catalog.get(reference) else {
        let known: Vec<String> = catalog.entries().map(|e| e.reference()).collect();
        out.push(Diagnostic::error(
            "unknown_connector",
            format!("/nodes/{i}/connector"),
            id,
            format!(
                "no enabled connector {reference:?}; available: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
        return;
    };
    let Some(operation) = node.operation.as_deref() else {
        out.push(Diagnostic::error(
            "invalid_config",
            format!("/nodes/{i}/operation"),
            id,
            "connector: set `operation`",
        ));
        return;
    };
    if entry.operation(operation).is_none() {
        let known: Vec<&str> = entry.operations.iter().map(|o| o.name.as_str()).collect();
        out.push(Diagnostic::error(
            "unknown_operation",
            format!("/nodes/{i}/operation"),
            id,
            format!(
                "{reference} has no operation {operation:?}; it has: {}",
                known.join(", ")
            ),
        ));
        return;
    }
    for p in catalog.check_config(reference, operation, &node.config) {
        out.push(Diagnostic::config(
            i,
            id,
            &format!("{reference} {operation}"),
            p,
        ));
    }
    let mut templates = Vec::new();
    template_sites(&node.config, String::new(), &mut templates);
    let config_sites = templates.len();
    if let Some(input) = &node.input {
        template_sites(input, String::new(), &mut templates);
    }
    for (k, (pointer, source)) in templates.into_iter().enumerate() {
        if let Err(e) = Template::parse(&source) {
            let field = if k < config_sites { "config" } else { "input" };
            out.push(Diagnostic {
                position: e.position.clone(),
                ..Diagnostic::error(
                    "invalid_expression",
                    format!("/nodes/{i}/{field}{pointer}"),
                    id,
                    format!("invalid template: {}", e.message),
                )
            });
        }
    }
}

/// Strings holding `{{` anywhere in `value`, with their pointers.
fn template_sites(value: &Value, pointer: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) if s.contains("{{") => out.push((pointer, s.clone())),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                template_sites(v, format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                template_sites(
                    v,
                    format!("{pointer}/{}", node_types::escape_pointer(k)),
                    out,
                );
            }
        }
        _ => {}
    }
}

fn check_trigger(node: &crate::flow::Node, i: usize, out: &mut Vec<Diagnostic>) {
    let Ok(c) = serde_json::from_value::<TriggerConfig>(node.config.clone()) else {
        return;
    };
    let id = Some(node.id.as_str());
    let mut need = |field: &str, present: bool, what: &str| {
        if !present {
            out.push(
                Diagnostic::error(
                    "invalid_config",
                    format!("/nodes/{i}/config/{field}"),
                    id,
                    format!("trigger: kind {what} needs `{field}`"),
                )
                .with_issue(Issue::Missing),
            );
        }
    };
    match c.kind {
        TriggerKind::Webhook => need("path", c.path.is_some(), "webhook"),
        TriggerKind::Event => need("event", c.event.is_some(), "event"),
        TriggerKind::Schedule => {
            need("cron", c.cron.is_some(), "schedule");
            if let Some(cron) = &c.cron
                && let Err(problem) = crate::schedule::Schedule::parse(cron, c.timezone.as_deref())
            {
                out.push(
                    Diagnostic::error(
                        "invalid_config",
                        format!("/nodes/{i}/config/{}", problem.field()),
                        id,
                        format!("trigger: {problem}"),
                    )
                    .with_issue(Issue::Invalid),
                );
            }
        }
        TriggerKind::Behaviour => {
            need("behaviour", c.behaviour.is_some(), "behaviour");
            if let Some(b) = &c.behaviour {
                let problem = if !b.can_start() {
                    Some((
                        "/kind".to_owned(),
                        "trigger: \"did not do\" only becomes true as time passes, so it cannot \
                         start a flow; use it in a behaviour branch"
                            .to_owned(),
                    ))
                } else {
                    b.compile()
                        .err()
                        .map(|(p, e)| (p, format!("trigger: {}", e.message)))
                };
                if let Some((pointer, message)) = problem {
                    out.push(
                        Diagnostic::error(
                            "invalid_config",
                            format!("/nodes/{i}/config/behaviour{pointer}"),
                            id,
                            message,
                        )
                        .with_issue(Issue::Invalid),
                    );
                }
            }
        }
        TriggerKind::Manual => {}
    }
}

fn check_edges(doc: &FlowDoc, ids: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) {
    let mut seen = HashSet::new();
    for (j, edge) in doc.edges.iter().enumerate() {
        let from = ids.get(edge.from.as_str()).map(|&i| &doc.nodes[i]);
        let to = ids.get(edge.to.as_str());
        if from.is_none() {
            out.push(Diagnostic::error(
                "dangling_edge",
                format!("/edges/{j}/from"),
                Some(edge.from.as_str()),
                format!(
                    "edge {j} starts at {:?}, which is not a node of this flow",
                    edge.from.as_str()
                ),
            ));
        }
        if to.is_none() {
            out.push(Diagnostic::error(
                "dangling_edge",
                format!("/edges/{j}/to"),
                Some(edge.to.as_str()),
                format!(
                    "edge {j} ends at {:?}, which is not a node of this flow",
                    edge.to.as_str()
                ),
            ));
        }
        if let Some(&t) = to
            && doc.nodes[t].kind() == Some(NodeKind::Trigger)
        {
            out.push(Diagnostic::error(
                "edge_into_trigger",
                format!("/edges/{j}/to"),
                Some(edge.to.as_str()),
                format!(
                    "edge {j} enters trigger {:?}; a trigger has no inputs",
                    edge.to.as_str()
                ),
            ));
        }
        if !seen.insert((edge.from.as_str(), edge.port(), edge.to.as_str())) {
            out.push(Diagnostic::error(
                "duplicate_edge",
                format!("/edges/{j}"),
                Some(edge.from.as_str()),
                format!(
                    "edge {j} repeats {} -[{}]-> {}",
                    edge.from,
                    edge.port(),
                    edge.to
                ),
            ));
        }
        if let Some(node) = from
            && let Some(spec) = node_types::node_type(&node.node_type)
        {
            let ports = spec.output_ports(&node.config);
            if !ports.iter().any(|p| p == edge.port()) {
                let pointer = if edge.port.is_some() {
                    format!("/edges/{j}/port")
                } else {
                    format!("/edges/{j}")
                };
                out.push(Diagnostic::error(
                    "unknown_port",
                    pointer,
                    Some(edge.from.as_str()),
                    format!(
                        "{} node {:?} has no output port {:?}; ports: {}",
                        node.node_type,
                        edge.from.as_str(),
                        edge.port(),
                        ports.join(", ")
                    ),
                ));
            }
        }
    }
}

/// Cycles are allowed only through nodes that park the run (`wait`, `wait_for_event`):
/// edges leaving such nodes are cut, and any cycle left is reported at its closing edge.
fn check_cycles(doc: &FlowDoc, ids: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) {
    let n = doc.nodes.len();
    let mut adjacency: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (j, edge) in doc.edges.iter().enumerate() {
        let (Some(&a), Some(&b)) = (ids.get(edge.from.as_str()), ids.get(edge.to.as_str())) else {
            continue;
        };
        let waits = node_types::node_type(&doc.nodes[a].node_type).is_some_and(|s| s.waits);
        if !waits {
            adjacency[a].push((b, j));
        }
    }
    // Iterative DFS: 0 = unvisited, 1 = on the stack, 2 = done.
    let mut colour = vec![0u8; n];
    for start in 0..n {
        if colour[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        colour[start] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&(w, j)) = adjacency[v].get(*next) {
                *next += 1;
                match colour[w] {
                    0 => {
                        colour[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let edge = &doc.edges[j];
                        out.push(Diagnostic::error("cycle", format!("/edges/{j}"), Some(edge.to.as_str()),
                            format!("edge {} -> {} closes a cycle with no wait in it; add a wait or wait_for_event node to the loop",
                                edge.from, edge.to)));
                    }
                    _ => {}
                }
            } else {
                colour[v] = 2;
                stack.pop();
            }
        }
    }
}

fn check_reachability(doc: &FlowDoc, ids: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) {
    let Some(trigger) = doc.trigger() else { return };
    let mut next: HashMap<&str, Vec<&str>> = HashMap::new();
    for edge in &doc.edges {
        next.entry(edge.from.as_str())
            .or_default()
            .push(edge.to.as_str());
    }
    let mut reached = HashSet::from([trigger.id.as_str()]);
    let mut stack = vec![trigger.id.as_str()];
    while let Some(v) = stack.pop() {
        for &to in next.get(v).into_iter().flatten() {
            if ids.contains_key(to) && reached.insert(to) {
                stack.push(to);
            }
        }
    }
    for (i, node) in doc.nodes.iter().enumerate() {
        if !reached.contains(node.id.as_str()) && node.kind() != Some(NodeKind::Note) {
            out.push(Diagnostic {
                severity: Severity::Warning,
                ..Diagnostic::error(
                    "unreachable_node",
                    format!("/nodes/{i}"),
                    Some(node.id.as_str()),
                    format!(
                        "node {:?} cannot be reached from the trigger",
                        node.id.as_str()
                    ),
                )
            });
        }
    }
}
