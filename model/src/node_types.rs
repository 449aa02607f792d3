//! The built-in node types: their config types (and JSON Schemas generated from them),
//! output ports, and where their configs hold CEL expressions and templates.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::behaviour::Behaviour;

/// The port an edge without `port` leaves from.
pub const DEFAULT_PORT: &str = "out";
/// The port a node routes to when it fails after its retries, if connected.
pub const ERROR_PORT: &str = "error";
/// Where a connector node goes when the contact policy refuses its call.
pub const BLOCKED_PORT: &str = "blocked";

/// What a node type's outputs look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ports {
    /// A fixed list.
    Fixed(&'static [&'static str]),
    /// `switch`: one per case plus `default`.
    SwitchCases,
}

/// A node type as the palette, the validator and the executor see it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeTypeSpec {
    #[serde(rename = "type")]
    pub name: &'static str,
    #[serde(skip)]
    pub kind: NodeKind,
    /// The config a node of this type gets when dropped on the canvas.
    #[serde(skip)]
    pub default_config: Value,
    pub category: &'static str,
    pub title: BTreeMap<&'static str, &'static str>,
    pub description: BTreeMap<&'static str, &'static str>,
    pub config_schema: Value,
    #[serde(skip)]
    pub ports: Ports,
    /// Output ports for display (`switch` lists `default` only; cases add theirs).
    #[serde(rename = "ports")]
    pub port_names: Vec<&'static str>,
    /// Whether reaching this node parks the run (and so may close a cycle).
    pub waits: bool,
    /// Whether the node ends the run's path (no outgoing edges expected).
    pub terminal: bool,
    #[serde(skip)]
    validator: Option<std::sync::Arc<jsonschema::Validator>>,
}

impl NodeTypeSpec {
    /// The output ports this node offers, given its config.
    pub fn output_ports(&self, config: &Value) -> Vec<String> {
        let mut ports: Vec<String> = match self.ports {
            Ports::Fixed(list) => list.iter().map(|p| p.to_string()).collect(),
            Ports::SwitchCases => {
                let mut ports: Vec<String> = serde_json::from_value::<SwitchConfig>(config.clone())
                    .map(|c| c.cases.into_iter().map(|c| c.port).collect())
                    .unwrap_or_default();
                ports.push("default".into());
                ports
            }
        };
        ports.push(ERROR_PORT.into());
        ports
    }

    /// The config's problems against the type's schema.
    pub fn check_config(&self, config: &Value) -> Vec<crate::forms::ConfigProblem> {
        match &self.validator {
            Some(v) => crate::forms::schema_problems(v, config, |_| false),
            None => Vec::new(),
        }
    }
}

/// How a trigger starts runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Manual,
    Webhook,
    Event,
    Schedule,
    // When a lead's behaviour condition becomes true (an event it names arrives and
    // completes it). A doc comment here would make the schema a `oneOf`, not an `enum`.
    Behaviour,
}

impl TriggerKind {
    /// The name documents and the trigger-route table use.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Manual => "manual",
            TriggerKind::Webhook => "webhook",
            TriggerKind::Event => "event",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Behaviour => "behaviour",
        }
    }
}

/// The built-in node types. A flow document names them by [`NodeKind::name`]; code
/// matches the kind, and reads the rest of what it needs to know from [`NodeTypeSpec`]
/// ([`NodeKind::spec`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    Trigger,
    Branch,
    Switch,
    Set,
    Wait,
    WaitForEvent,
    Respond,
    Fail,
    Connector,
    Score,
    DetectSignals,
    NextBestAction,
    UpdateLead,
    AssignOwner,
    Notify,
    Enroll,
    Suppress,
    CheckBehaviour,
    CreateTaskUnit,
    Note,
}

impl NodeKind {
    pub const ALL: [NodeKind; 20] = [
        NodeKind::Trigger,
        NodeKind::Branch,
        NodeKind::Switch,
        NodeKind::Set,
        NodeKind::Wait,
        NodeKind::WaitForEvent,
        NodeKind::Respond,
        NodeKind::Fail,
        NodeKind::Connector,
        NodeKind::Score,
        NodeKind::DetectSignals,
        NodeKind::NextBestAction,
        NodeKind::UpdateLead,
        NodeKind::AssignOwner,
        NodeKind::Notify,
        NodeKind::Enroll,
        NodeKind::Suppress,
        NodeKind::CheckBehaviour,
        NodeKind::CreateTaskUnit,
        NodeKind::Note,
    ];

    /// The `type` documents give it.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Trigger => "trigger",
            NodeKind::Branch => "branch",
            NodeKind::Switch => "switch",
            NodeKind::Set => "set",
            NodeKind::Wait => "wait",
            NodeKind::WaitForEvent => "wait_for_event",
            NodeKind::Respond => "respond",
            NodeKind::Fail => "fail",
            NodeKind::Connector => "connector",
            NodeKind::Score => "score",
            NodeKind::DetectSignals => "detect_signals",
            NodeKind::NextBestAction => "next_best_action",
            NodeKind::UpdateLead => "update_lead",
            NodeKind::AssignOwner => "assign_owner",
            NodeKind::Notify => "notify",
            NodeKind::Enroll => "enroll",
            NodeKind::Suppress => "suppress",
            NodeKind::CheckBehaviour => "behaviour",
            NodeKind::CreateTaskUnit => "create_task_unit",
            NodeKind::Note => "note",
        }
    }

    /// The kind a document's `type` names, if it is a built-in one.
    pub fn from_name(name: &str) -> Option<NodeKind> {
        Some(match name {
            "trigger" => NodeKind::Trigger,
            "branch" => NodeKind::Branch,
            "switch" => NodeKind::Switch,
            "set" => NodeKind::Set,
            "wait" => NodeKind::Wait,
            "wait_for_event" => NodeKind::WaitForEvent,
            "respond" => NodeKind::Respond,
            "fail" => NodeKind::Fail,
            "connector" => NodeKind::Connector,
            "score" => NodeKind::Score,
            "detect_signals" => NodeKind::DetectSignals,
            "next_best_action" => NodeKind::NextBestAction,
            "update_lead" => NodeKind::UpdateLead,
            "assign_owner" => NodeKind::AssignOwner,
            "notify" => NodeKind::Notify,
            "enroll" => NodeKind::Enroll,
            "suppress" => NodeKind::Suppress,
            "behaviour" => NodeKind::CheckBehaviour,
            "create_task_unit" => NodeKind::CreateTaskUnit,
            "note" => NodeKind::Note,
            _ => return None,
        })
    }

    /// Everything else known about it.
    pub fn spec(self) -> &'static NodeTypeSpec {
        &BUILTINS[self as usize]
    }

    /// The reserved call host serving its steps, for kinds the server executes as calls
    /// (`connector` nodes name their connector in their config instead).
    pub fn host(self) -> Option<&'static str> {
        match self {
            NodeKind::Score | NodeKind::DetectSignals | NodeKind::NextBestAction => {
                Some(INTENT_HOST)
            }
            NodeKind::UpdateLead
            | NodeKind::AssignOwner
            | NodeKind::Notify
            | NodeKind::Enroll
            | NodeKind::Suppress
            | NodeKind::CheckBehaviour => Some(LEADS_HOST),
            NodeKind::CreateTaskUnit => Some(TASK_UNITS_HOST),
            _ => None,
        }
    }

    /// The config a new node of this kind starts with.
    pub fn default_config(self) -> Value {
        use serde_json::json;
        match self {
            NodeKind::Trigger => json!({"kind": "manual"}),
            NodeKind::Branch => json!({"when": "true"}),
            NodeKind::Switch => json!({"cases": [{"port": "a", "when": "true"}]}),
            NodeKind::Set => json!({"vars": {}}),
            NodeKind::Wait => json!({"duration": "1h"}),
            NodeKind::WaitForEvent => json!({"event": "demo_booked", "timeout": "7d"}),
            NodeKind::Respond => json!({"body": "{'ok': true}"}),
            NodeKind::Fail => json!({"message": "failed"}),
            NodeKind::Score | NodeKind::NextBestAction => json!({"lead": "trigger.event.lead"}),
            NodeKind::DetectSignals => {
                json!({"text": "trigger.event.properties.text", "lead": "trigger.event.lead"})
            }
            NodeKind::UpdateLead => json!({"lead": LEAD_EXAMPLE, "add_tags": []}),
            NodeKind::AssignOwner => {
                json!({"lead": LEAD_EXAMPLE, "strategy": "round_robin", "owners": []})
            }
            NodeKind::Notify => json!({
                "to": "lead_owner", "lead": LEAD_EXAMPLE,
                "title": "线索 {{ trigger.event.lead }} 需要跟进", "message": ""
            }),
            NodeKind::Enroll => json!({"action": "enroll", "lead": LEAD_EXAMPLE, "flow": ""}),
            NodeKind::Suppress => json!({"lead": LEAD_EXAMPLE, "days": 30}),
            NodeKind::CheckBehaviour => json!({
                "lead": LEAD_EXAMPLE,
                "condition": {"kind": "at_least", "did": {"event": "page_view"}, "times": 3, "days": 14}
            }),
            NodeKind::CreateTaskUnit => json!({"template": "", "account": "", "severity": "0"}),
            NodeKind::Connector | NodeKind::Note => json!({"text": ""}),
        }
    }
}

/// `trigger`: how runs of the flow start.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    pub kind: TriggerKind,
    /// Webhook path under `/hooks/`, e.g. `lead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$"))]
    pub path: Option<String>,
    /// Webhook shared secret, sent by callers in the `X-Trellis-Secret` header. Write-only:
    /// documents read back show [`SECRET_SET`] in its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub secret: Option<String>,
    /// Event name for `kind: event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub event: Option<String>,
    /// Cron expression for `kind: schedule`: 5 fields, or 6 with seconds first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone of `cron` (default `Asia/Shanghai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// For `kind: behaviour`: the condition over the lead's history that starts a run
    /// when an arriving event makes it true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<Behaviour>,
    /// For event and behaviour triggers: CEL over `trigger` that the event must satisfy
    /// too (the condition builder writes it), e.g.
    /// `trigger.event.properties.category == 'pricing'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub when: Option<String>,
}

impl TriggerConfig {
    /// What routes to a trigger of this kind: the webhook path, the event name or the cron
    /// expression (`None` for a manual trigger).
    pub fn route_key(&self) -> Option<&str> {
        match self.kind {
            TriggerKind::Manual => None,
            TriggerKind::Webhook => self.path.as_deref(),
            TriggerKind::Event => self.event.as_deref(),
            TriggerKind::Schedule => self.cron.as_deref(),
            TriggerKind::Behaviour => None,
        }
    }
}

/// What a webhook secret reads as: the value itself is never shown. Saving a document with
/// this in place of the secret keeps the secret the flow had.
pub const SECRET_SET: &str = "•••••• (secret set)";

/// Replaces every trigger's secret in a flow document (as JSON) with [`SECRET_SET`].
pub fn redact_secrets(doc: &mut Value) {
    for node in doc
        .get_mut("nodes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if node.get("type").and_then(Value::as_str) == Some(NodeKind::Trigger.name())
            && let Some(secret) = node.pointer_mut("/config/secret")
            && secret.is_string()
        {
            *secret = Value::String(SECRET_SET.to_owned());
        }
    }
}

/// Puts back the secret of each trigger saved with [`SECRET_SET`] from `previous` (the
/// version the edit started from). A placeholder with nothing to keep is an error, as
/// `(pointer, message)`.
pub fn restore_secrets(doc: &mut Value, previous: Option<&Value>) -> Result<(), (String, String)> {
    let kept = |id: &Value| -> Option<Value> {
        previous?
            .get("nodes")?
            .as_array()?
            .iter()
            .find(|n| {
                n.get("id") == Some(id)
                    && n.get("type").and_then(Value::as_str) == Some(NodeKind::Trigger.name())
            })?
            .pointer("/config/secret")
            .filter(|s| s.as_str().is_some_and(|s| s != SECRET_SET))
            .cloned()
    };
    let Some(nodes) = doc.get_mut("nodes").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for (i, node) in nodes.iter_mut().enumerate() {
        if node.pointer("/config/secret").and_then(Value::as_str) != Some(SECRET_SET) {
            continue;
        }
        // Only a trigger keeps a trigger's secret: another node under the same id must not
        // receive it.
        if node.get("type").and_then(Value::as_str) != Some(NodeKind::Trigger.name()) {
            return Err((
                format!("/nodes/{i}/config/secret"),
                "only a trigger keeps a webhook secret; type the value".to_owned(),
            ));
        }
        let id = node.get("id").cloned().unwrap_or(Value::Null);
        match kept(&id) {
            Some(secret) => {
                if let Some(slot) = node.pointer_mut("/config/secret") {
                    *slot = secret;
                }
            }
            None => {
                return Err((
                    format!("/nodes/{i}/config/secret"),
                    "this trigger has no secret to keep; type a new one".to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// The reserved connector name under which the engine serves the intent nodes (`score`,
/// `detect_signals`): the executor issues them as calls, like connector operations.
pub const INTENT_HOST: &str = "trellis.intent@1";

/// The reserved name under which the server serves the lead actions (`update_lead`,
/// `assign_owner`, `notify`, `enroll`, `suppress`) and `behaviour` checks: they read and
/// change stored leads, so they are calls, journaled like connector operations.
pub const LEADS_HOST: &str = "trellis.leads@1";

/// The reserved name under which the server serves `create_task_unit`: it reads the
/// people directory and everyone's open units, and writes the unit.
pub const TASK_UNITS_HOST: &str = "trellis.units@1";

/// What a `create_task_unit` node reads when its config has no `event`: the trigger's
/// event, or nothing for a run started otherwise.
pub const TRIGGER_EVENT: &str = "has(trigger.event) ? trigger.event : {}";

/// `create_task_unit`: a task unit (作战单元) from a template, staffed from the people
/// directory; its output names the members (`touser` for a WeCom message), milestones and
/// anything left unfilled.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskUnitConfig {
    /// The unit template's id (empty until one is chosen; validation asks for it).
    pub template: String,
    /// CEL giving the account the unit is for (its id or name), e.g.
    /// `trigger.event.properties.customer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub account: Option<String>,
    /// CEL giving the lead it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub lead: Option<String>,
    /// CEL giving the event the template's dispatch rules read (default: the trigger's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub event: Option<String>,
    /// CEL giving how bad the trigger is, 0–5 (part of the unit's priority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub severity: Option<String>,
    /// Who is told when a role cannot be filled (a directory user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
}

/// The lifecycle stages a sales team moves a lead through by hand (the score's own
/// stages, lead / MQL / SQL, follow the model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    Subscriber,
    Lead,
    Mql,
    Sql,
    Opportunity,
    Customer,
    Evangelist,
    Disqualified,
}

/// `update_lead`: set attributes, add or remove tags, set the lifecycle stage.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLeadConfig {
    /// CEL giving the lead id.
    #[schemars(extend("format" = "cel"))]
    pub lead: String,
    /// Attribute name → value; values may hold `{{ }}` templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_stage: Option<LifecycleStage>,
}

/// How `assign_owner` picks the owner. (Plain comments on the variants: doc comments would
/// make the schema a `oneOf`, and the studio shows an `enum` as a choice.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignStrategy {
    // Always `owner`.
    Fixed,
    // `owners` in turn.
    RoundRobin,
    // By the lead's `territory_attribute`: `territories` maps its value to an owner.
    Territory,
    // Whoever of `owners` owns the fewest leads.
    Load,
}

/// `assign_owner`: give the lead an owner.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignOwnerConfig {
    #[schemars(extend("format" = "cel"))]
    pub lead: String,
    pub strategy: AssignStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub territory_attribute: Option<String>,
    /// Attribute value → owner.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub territories: BTreeMap<String, String>,
    /// The owner when no territory matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Whether a lead that has an owner is given a new one.
    #[serde(default)]
    pub reassign: bool,
}

/// Who `notify` tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    LeadOwner,
    People,
}

/// `notify`: a message in the recipients' inbox.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub to: Recipient,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<String>,
    /// CEL giving the lead the message is about (and whose owner is told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub lead: Option<String>,
    /// May hold `{{ }}` templates.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// May hold `{{ }}` templates.
    #[serde(default)]
    #[schemars(length(max = 4000))]
    pub message: String,
}

/// What `enroll` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollAction {
    Enroll,
    Remove,
}

/// `enroll`: start another flow for the lead, or stop its runs of it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollConfig {
    pub action: EnrollAction,
    /// The flow's id (empty until one is chosen; validation asks for it).
    pub flow: String,
    #[schemars(extend("format" = "cel"))]
    pub lead: String,
}

/// `suppress`: no flow starts for the lead for a while (or until lifted).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressConfig {
    #[schemars(extend("format" = "cel"))]
    pub lead: String,
    /// How long; none: until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub days: Option<u32>,
    /// Lift a suppression instead.
    #[serde(default)]
    pub lift: bool,
}

/// `behaviour`: does a condition over the lead's history hold now?
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBehaviourConfig {
    #[schemars(extend("format" = "cel"))]
    pub lead: String,
    pub condition: Behaviour,
}

/// `score`: rescore a lead now with the published scoring model.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// CEL giving the lead id, e.g. `trigger.event.lead`.
    #[schemars(extend("format" = "cel"))]
    pub lead: String,
}

/// `detect_signals`: purchase signals in a text; with a lead, each becomes a
/// `signal.detected` event on its timeline.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectSignalsConfig {
    /// CEL giving the text, e.g. `trigger.event.properties.transcript`.
    #[schemars(extend("format" = "cel"))]
    pub text: String,
    /// CEL giving the lead id the signals belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub lead: Option<String>,
}

/// `next_best_action`: the lead's next actions by the workspace's rules.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NextBestActionConfig {
    /// CEL giving the lead id.
    #[schemars(extend("format" = "cel"))]
    pub lead: String,
}

/// `branch`: `true` or `false` by a CEL condition.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchConfig {
    /// CEL condition.
    #[schemars(extend("format" = "cel"))]
    pub when: String,
}

/// One `switch` case.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchCase {
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"))]
    pub port: String,
    #[schemars(extend("format" = "cel"))]
    pub when: String,
}

/// `switch`: the first case whose condition holds, else `default`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    #[schemars(length(min = 1))]
    pub cases: Vec<SwitchCase>,
}

/// `set`: assign run variables; later ones see earlier ones.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// Variable name → CEL expression, evaluated in order.
    pub vars: serde_json::Map<String, Value>,
}

/// `wait`: park the run for a duration or until a time.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitConfig {
    /// e.g. `"2s"`, `"3d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// CEL giving a timestamp (or RFC 3339 string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub until: Option<String>,
}

/// `wait_for_event`: park until a matching event arrives, or time out.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForEventConfig {
    #[schemars(length(min = 1))]
    pub event: String,
    /// CEL over `event` (and the run's scope) that must hold.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "cel"))]
    pub match_: Option<String>,
    /// e.g. `"7d"`.
    pub timeout: String,
}

/// `respond`: the synchronous answer of a webhook run.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondConfig {
    #[serde(default = "default_status")]
    #[schemars(range(min = 100, max = 599))]
    pub status: u16,
    /// CEL giving the JSON body.
    #[schemars(extend("format" = "cel"))]
    pub body: String,
}

fn default_status() -> u16 {
    200
}

/// `fail`: end the run as failed.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailConfig {
    /// Message; may hold `{{ }}` templates.
    #[schemars(length(min = 1))]
    pub message: String,
}

/// `note`: a comment on the canvas; does nothing.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteConfig {
    #[serde(default)]
    pub text: String,
}

/// Where a config holds CEL (`Cel`) or template strings (`Template`), by JSON pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprSite {
    Cel { pointer: String, source: String },
    Template { pointer: String, source: String },
}

/// The expression sites of a node's config (empty when the config does not parse).
pub fn expr_sites(node_type: &str, config: &Value) -> Vec<ExprSite> {
    let cel = |pointer: &str, source: &str| ExprSite::Cel {
        pointer: pointer.into(),
        source: source.into(),
    };
    let Some(kind) = NodeKind::from_name(node_type) else {
        return Vec::new();
    };
    match kind {
        NodeKind::Branch => parse::<BranchConfig>(config)
            .map(|c| vec![cel("/when", &c.when)])
            .unwrap_or_default(),
        NodeKind::Switch => parse::<SwitchConfig>(config)
            .map(|c| {
                c.cases
                    .iter()
                    .enumerate()
                    .map(|(i, case)| cel(&format!("/cases/{i}/when"), &case.when))
                    .collect()
            })
            .unwrap_or_default(),
        NodeKind::Set => parse::<SetConfig>(config)
            .map(|c| {
                c.vars
                    .iter()
                    .filter_map(|(k, v)| {
                        v.as_str()
                            .map(|s| cel(&format!("/vars/{}", escape_pointer(k)), s))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        NodeKind::Wait => parse::<WaitConfig>(config)
            .map(|c| c.until.iter().map(|u| cel("/until", u)).collect())
            .unwrap_or_default(),
        NodeKind::WaitForEvent => parse::<WaitForEventConfig>(config)
            .map(|c| c.match_.iter().map(|m| cel("/match", m)).collect())
            .unwrap_or_default(),
        NodeKind::Respond => parse::<RespondConfig>(config)
            .map(|c| vec![cel("/body", &c.body)])
            .unwrap_or_default(),
        NodeKind::Score => parse::<ScoreConfig>(config)
            .map(|c| vec![cel("/lead", &c.lead)])
            .unwrap_or_default(),
        NodeKind::NextBestAction => parse::<NextBestActionConfig>(config)
            .map(|c| vec![cel("/lead", &c.lead)])
            .unwrap_or_default(),
        NodeKind::DetectSignals => parse::<DetectSignalsConfig>(config)
            .map(|c| {
                let mut sites = vec![cel("/text", &c.text)];
                sites.extend(c.lead.iter().map(|l| cel("/lead", l)));
                sites
            })
            .unwrap_or_default(),
        NodeKind::Fail => parse::<FailConfig>(config)
            .map(|c| {
                vec![ExprSite::Template {
                    pointer: "/message".into(),
                    source: c.message,
                }]
            })
            .unwrap_or_default(),
        NodeKind::Trigger => parse::<TriggerConfig>(config)
            .map(|c| {
                let mut sites: Vec<ExprSite> = c.when.iter().map(|w| cel("/when", w)).collect();
                if let Some(b) = &c.behaviour {
                    sites.extend(
                        b.filters()
                            .into_iter()
                            .map(|(p, f)| cel(&format!("/behaviour{p}"), f)),
                    );
                }
                sites
            })
            .unwrap_or_default(),
        NodeKind::UpdateLead => parse::<UpdateLeadConfig>(config)
            .map(|c| {
                let mut sites = vec![cel("/lead", &c.lead)];
                sites.extend(c.attributes.iter().map(|(k, v)| ExprSite::Template {
                    pointer: format!("/attributes/{}", escape_pointer(k)),
                    source: v.clone(),
                }));
                sites
            })
            .unwrap_or_default(),
        NodeKind::AssignOwner => parse::<AssignOwnerConfig>(config)
            .map(|c| vec![cel("/lead", &c.lead)])
            .unwrap_or_default(),
        NodeKind::Notify => parse::<NotifyConfig>(config)
            .map(|c| {
                let mut sites: Vec<ExprSite> = c.lead.iter().map(|l| cel("/lead", l)).collect();
                sites.push(ExprSite::Template {
                    pointer: "/title".into(),
                    source: c.title,
                });
                sites.push(ExprSite::Template {
                    pointer: "/message".into(),
                    source: c.message,
                });
                sites
            })
            .unwrap_or_default(),
        NodeKind::Enroll => parse::<EnrollConfig>(config)
            .map(|c| vec![cel("/lead", &c.lead)])
            .unwrap_or_default(),
        NodeKind::Suppress => parse::<SuppressConfig>(config)
            .map(|c| vec![cel("/lead", &c.lead)])
            .unwrap_or_default(),
        NodeKind::CheckBehaviour => parse::<CheckBehaviourConfig>(config)
            .map(|c| {
                let mut sites = vec![cel("/lead", &c.lead)];
                sites.extend(
                    c.condition
                        .filters()
                        .into_iter()
                        .map(|(p, f)| cel(&format!("/condition{p}"), f)),
                );
                sites
            })
            .unwrap_or_default(),
        NodeKind::CreateTaskUnit => parse::<CreateTaskUnitConfig>(config)
            .map(|c| {
                let mut sites: Vec<ExprSite> = [
                    ("/account", &c.account),
                    ("/lead", &c.lead),
                    ("/severity", &c.severity),
                ]
                .into_iter()
                .filter_map(|(p, e)| {
                    e.as_deref()
                        .filter(|e| !e.trim().is_empty())
                        .map(|e| cel(p, e))
                })
                .collect();
                sites.push(cel("/event", c.event.as_deref().unwrap_or(TRIGGER_EVENT)));
                sites
            })
            .unwrap_or_default(),
        NodeKind::Connector | NodeKind::Note => Vec::new(),
    }
}

/// A connector node's config: whatever its operation's schema says (checked against the
/// connector catalog, not here).
pub type ConnectorNodeConfig = BTreeMap<String, Value>;

fn parse<T: serde::de::DeserializeOwned>(config: &Value) -> Option<T> {
    serde_json::from_value(config.clone()).ok()
}

/// Escapes a key for use in a JSON pointer (RFC 6901).
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn spec<T: JsonSchema>(
    kind: NodeKind,
    category: &'static str,
    (zh, en): (&'static str, &'static str),
    (dzh, den): (&'static str, &'static str),
    ports: Ports,
    waits: bool,
    terminal: bool,
) -> NodeTypeSpec {
    let name = kind.name();
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    if let Some(obj) = schema.as_object_mut() {
        // The meta-schema URI would make the validator look it up; the draft is implied.
        obj.remove("$schema");
    }
    if kind == NodeKind::Set
        && let Some(vars) = schema.pointer_mut("/properties/vars")
    {
        vars["additionalProperties"] = serde_json::json!({"type": "string", "format": "cel"});
        vars["propertyNames"] = serde_json::json!({"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"});
    }
    annotate(kind, &mut schema);
    let validator = jsonschema::validator_for(&schema)
        .ok()
        .map(std::sync::Arc::new);
    let port_names = match ports {
        Ports::Fixed(list) => list.to_vec(),
        Ports::SwitchCases => vec!["default"],
    };
    NodeTypeSpec {
        name,
        kind,
        default_config: kind.default_config(),
        category,
        title: BTreeMap::from([("zh", zh), ("en", en)]),
        description: BTreeMap::from([("zh", dzh), ("en", den)]),
        config_schema: schema,
        ports,
        port_names,
        waits,
        terminal,
        validator,
    }
}

static BUILTINS: LazyLock<Vec<NodeTypeSpec>> = LazyLock::new(|| {
    const OUT: &[&str] = &[DEFAULT_PORT];
    vec![
        spec::<TriggerConfig>(
            NodeKind::Trigger,
            "trigger",
            ("触发器", "Trigger"),
            (
                "流程的起点：手动、Webhook、事件或定时",
                "Where runs start: manual, webhook, event or schedule",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<BranchConfig>(
            NodeKind::Branch,
            "logic",
            ("条件分支", "Branch"),
            (
                "按 CEL 条件走 true 或 false",
                "Route to true or false by a CEL condition",
            ),
            Ports::Fixed(&["true", "false"]),
            false,
            false,
        ),
        spec::<SwitchConfig>(
            NodeKind::Switch,
            "logic",
            ("多路分支", "Switch"),
            (
                "第一个成立的条件决定出口，否则走 default",
                "First case that holds picks the port, else default",
            ),
            Ports::SwitchCases,
            false,
            false,
        ),
        spec::<SetConfig>(
            NodeKind::Set,
            "data",
            ("设置变量", "Set variables"),
            (
                "用 CEL 计算并保存运行变量",
                "Compute run variables with CEL",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<WaitConfig>(
            NodeKind::Wait,
            "timing",
            ("等待", "Wait"),
            (
                "等待一段时间或到某个时间点",
                "Wait for a duration or until a time",
            ),
            Ports::Fixed(OUT),
            true,
            false,
        ),
        spec::<WaitForEventConfig>(
            NodeKind::WaitForEvent,
            "timing",
            ("等待事件", "Wait for event"),
            (
                "等到匹配的事件到达或超时",
                "Wait until a matching event arrives, or time out",
            ),
            Ports::Fixed(&["event", "timeout"]),
            true,
            false,
        ),
        spec::<RespondConfig>(
            NodeKind::Respond,
            "io",
            ("响应", "Respond"),
            (
                "作为 Webhook 的同步 HTTP 响应",
                "The synchronous HTTP answer of a webhook run",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<FailConfig>(
            NodeKind::Fail,
            "logic",
            ("失败", "Fail"),
            ("以失败结束运行", "End the run as failed"),
            Ports::Fixed(&[]),
            false,
            true,
        ),
        spec::<ConnectorNodeConfig>(
            NodeKind::Connector,
            "connector",
            ("连接器", "Connector"),
            (
                "调用连接器插件的一个操作；配置由该操作的 Schema 校验",
                "Calls one operation of a connector plugin; its schema checks the config",
            ),
            Ports::Fixed(&[DEFAULT_PORT, BLOCKED_PORT]),
            false,
            false,
        ),
        spec::<ScoreConfig>(
            NodeKind::Score,
            "intent",
            ("线索评分", "Score lead"),
            (
                "用已发布的评分模型立即为线索重新评分，输出分数、等级和解释",
                "Rescore a lead now with the published model: score, tier, explanation",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<DetectSignalsConfig>(
            NodeKind::DetectSignals,
            "intent",
            ("识别购买信号", "Detect signals"),
            (
                "从文本中识别预算、时间、技术、竞品等购买信号，并记入线索时间线",
                "Find budget, timeline, technical, competitor… signals in a text and log them on the lead",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<NextBestActionConfig>(
            NodeKind::NextBestAction,
            "intent",
            ("下一步最佳行动", "Next best action"),
            (
                "按工作区规则给出线索的下一步行动（电话、资料包、演示…）",
                "The lead's next actions by the workspace's rules (call, content, demo…)",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<UpdateLeadConfig>(
            NodeKind::UpdateLead,
            "lead",
            ("更新线索", "Update lead"),
            (
                "设置线索属性、打上或去掉标签、设置生命周期阶段",
                "Set the lead's attributes, add or remove tags, set its lifecycle stage",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<AssignOwnerConfig>(
            NodeKind::AssignOwner,
            "lead",
            ("分配负责人", "Assign owner"),
            (
                "按固定人员、轮流、区域规则或当前负载给线索分配销售",
                "Give the lead an owner: fixed, in turn, by territory or by current load",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<NotifyConfig>(
            NodeKind::Notify,
            "lead",
            ("通知", "Notify"),
            (
                "给线索负责人或指定人员发一条站内消息",
                "Send the lead's owner or named people a message in their inbox",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<EnrollConfig>(
            NodeKind::Enroll,
            "lead",
            ("加入或移出流程", "Enroll in flow"),
            (
                "让线索进入另一个流程，或停止它在某个流程中的运行",
                "Start another flow for the lead, or stop its runs of one",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<SuppressConfig>(
            NodeKind::Suppress,
            "lead",
            ("暂停触达", "Suppress"),
            (
                "一段时间内不再为这条线索启动任何流程",
                "Start no flow for the lead for a while",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<CheckBehaviourConfig>(
            NodeKind::CheckBehaviour,
            "logic",
            ("行为条件", "Behaviour condition"),
            (
                "按线索最近的行为分支，例如 7 天内既看过对比页又下载过白皮书",
                "Branch on what the lead did lately, e.g. viewed the comparison and downloaded the whitepaper within 7 days",
            ),
            Ports::Fixed(&["true", "false"]),
            false,
            false,
        ),
        spec::<CreateTaskUnitConfig>(
            NodeKind::CreateTaskUnit,
            "team",
            ("创建作战单元", "Create task unit"),
            (
                "按模板组建跨部门作战单元：按技能、权限、区域和负载挑人，带里程碑",
                "Assemble a cross-functional task unit from a template: people picked by skills, permissions, region and load, with milestones",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
        spec::<NoteConfig>(
            NodeKind::Note,
            "misc",
            ("注释", "Note"),
            (
                "画布上的说明，不执行任何操作",
                "A comment on the canvas; does nothing",
            ),
            Ports::Fixed(OUT),
            false,
            false,
        ),
    ]
});

/// All built-in node types, in palette order.
pub fn builtin_node_types() -> &'static [NodeTypeSpec] {
    &BUILTINS
}

/// Looks a built-in node type up by name.
pub fn node_type(name: &str) -> Option<&'static NodeTypeSpec> {
    NodeKind::from_name(name).map(NodeKind::spec)
}

// The words of each built-in field, as `x-trellis` annotations (see `crate::forms`).

/// Adds the built-in node type `kind`'s field words to its generated config schema.
fn annotate(kind: NodeKind, schema: &mut Value) {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, form) in builtin_fields(kind) {
        if let Some(prop) = props.get_mut(name).and_then(Value::as_object_mut) {
            prop.insert(crate::forms::KEYWORD.to_owned(), form);
        }
    }
}

/// `{"zh": …, "en": …}`.
fn w(zh: &str, en: &str) -> Value {
    json!({ "zh": zh, "en": en })
}

/// The form of one field: label, help and example.
fn field(label: Value, help: Value, example: Option<&str>) -> Value {
    let mut form = json!({ "label": label, "help": help });
    if let Some(example) = example {
        form["example"] = Value::String(example.to_owned());
    }
    form
}

const LEAD_EXAMPLE: &str = "trigger.event.lead";

/// Names the studio widget that edits the field (`list`, `map`, `template`, `flow`,
/// `condition`, `behaviour`) when its type alone does not say it.
fn widget(mut form: Value, name: &str) -> Value {
    form["widget"] = Value::String(name.to_owned());
    form
}

/// Marks a field whose values are people of the workspace ([`FieldForm::names_people`]).
///
/// [`FieldForm::names_people`]: crate::forms::FieldForm::names_people
fn people(mut form: Value) -> Value {
    form["people"] = Value::Bool(true);
    form
}

fn lead_field(help: Value) -> Value {
    field(w("线索", "Lead"), help, Some(LEAD_EXAMPLE))
}

/// The words of every field of each built-in node type.
fn builtin_fields(kind: NodeKind) -> Vec<(&'static str, Value)> {
    match kind {
        NodeKind::Trigger => {
            let only = |kinds: &[&str]| json!(kinds);
            let mut kind_field = field(
                w("触发方式", "Starts on"),
                w(
                    "流程何时开始：手动测试、外部系统调用 Webhook、收到某个事件，或按时间表定时",
                    "When runs start: by hand, when another system calls the webhook, when an event arrives, or on a schedule",
                ),
                None,
            );
            kind_field["choices"] = json!({
                "manual": w("手动", "By hand"),
                "webhook": w("Webhook 调用", "Webhook call"),
                "event": w("收到事件", "An event arrives"),
                "schedule": w("定时", "On a schedule"),
                "behaviour": w("线索行为满足条件", "A lead's behaviour matches"),
            });
            let mut path = field(
                w("Webhook 路径", "Webhook path"),
                w(
                    "外部系统调用的地址是 /hooks/ 加上这个路径；只能用字母、数字和 _ . / -",
                    "Other systems call /hooks/ followed by this path; letters, digits and _ . / - only",
                ),
                Some("lead"),
            );
            path["shown_when"] = json!({ "kind": only(&["webhook"]) });
            let mut secret = field(
                w("共享密钥", "Shared secret"),
                w(
                    "调用方须在 X-Trellis-Secret 请求头中带上它；保存后不再显示",
                    "Callers send it in the X-Trellis-Secret header; never shown again once saved",
                ),
                None,
            );
            secret["shown_when"] = json!({ "kind": only(&["webhook"]) });
            let mut event = field(
                w("事件名称", "Event name"),
                w(
                    "收到这个名称的事件时开始，例如网页浏览 page_view、线索等级变化 lead.tier_changed",
                    "Starts when an event of this name arrives, e.g. page_view or lead.tier_changed",
                ),
                Some("page_view"),
            );
            event["shown_when"] = json!({ "kind": only(&["event"]) });
            let mut cron = field(
                w("时间表", "Schedule"),
                w(
                    "cron 格式：分 时 日 月 周，例如工作日早上 9 点是 0 9 * * 1-5",
                    "cron: minute hour day month weekday, e.g. weekdays at 9:00 is 0 9 * * 1-5",
                ),
                Some("0 9 * * 1-5"),
            );
            cron["shown_when"] = json!({ "kind": only(&["schedule"]) });
            let mut timezone = field(
                w("时区", "Time zone"),
                w(
                    "时间表按这个时区计算，默认北京时间",
                    "The schedule's time zone; Beijing time by default",
                ),
                Some("Asia/Shanghai"),
            );
            timezone["shown_when"] = json!({ "kind": only(&["schedule"]) });
            let mut behaviour = widget(
                field(
                    w("行为条件", "Behaviour"),
                    w(
                        "线索的行为满足这个条件时开始，例如 7 天内既看过对比页又下载过白皮书（顺序不限）",
                        "Starts when a lead's behaviour comes to match, e.g. viewed the comparison and downloaded the whitepaper within 7 days, in either order",
                    ),
                    None,
                ),
                "behaviour",
            );
            behaviour["shown_when"] = json!({ "kind": only(&["behaviour"]) });
            let mut when = widget(
                field(
                    w("而且事件满足", "And the event matches"),
                    w(
                        "只有满足这些条件的事件才开始流程；不填则都开始",
                        "Only events that match start the flow; empty: every one does",
                    ),
                    None,
                ),
                "condition",
            );
            when["shown_when"] = json!({ "kind": only(&["event", "behaviour"]) });
            vec![
                ("kind", kind_field),
                ("behaviour", behaviour),
                ("when", when),
                ("path", path),
                ("secret", secret),
                ("event", event),
                ("cron", cron),
                ("timezone", timezone),
            ]
        }
        NodeKind::Branch => vec![(
            "when",
            widget(
                field(
                    w("条件", "Condition"),
                    w(
                        "条件成立时走「满足条件」，否则走「不满足」",
                        "When it holds the run goes on at \"Condition met\", otherwise at \"Not met\"",
                    ),
                    Some("trigger.event.properties.category == 'pricing'"),
                ),
                "condition",
            ),
        )],
        NodeKind::Switch => vec![(
            "cases",
            field(
                w("分支", "Cases"),
                w(
                    "按顺序检查每个分支的条件，走第一个成立的分支；都不成立时走「其他情况」",
                    "Each case's condition is checked in order and the first that holds is taken; if none holds, \"No case matched\"",
                ),
                None,
            ),
        )],
        NodeKind::Set => vec![(
            "vars",
            field(
                w("变量", "Variables"),
                w(
                    "给本次运行记下的值，后面的步骤用 vars.名称 读取",
                    "Values this run keeps; later steps read them as vars.name",
                ),
                None,
            ),
        )],
        NodeKind::Wait => vec![
            (
                "duration",
                field(
                    w("等待时长", "Wait for"),
                    w(
                        "例如 30m（30 分钟）、2h（2 小时）、3d（3 天）；与「等到」二选一",
                        "e.g. 30m, 2h, 3d; set this or \"Until\", not both",
                    ),
                    Some("3d"),
                ),
            ),
            (
                "until",
                field(
                    w("等到", "Until"),
                    w(
                        "等到这个时间再继续；与「等待时长」二选一",
                        "Go on at this time; set this or \"Wait for\", not both",
                    ),
                    Some("timestamp(trigger.event.properties.meeting_at)"),
                ),
            ),
        ],
        NodeKind::WaitForEvent => vec![
            (
                "event",
                field(
                    w("等待的事件", "Event to wait for"),
                    w(
                        "收到这个名称的事件时走「事件已到达」",
                        "When an event of this name arrives the run goes on at \"Event arrived\"",
                    ),
                    Some("download"),
                ),
            ),
            (
                "match",
                field(
                    w("事件须满足", "The event must match"),
                    w(
                        "只有满足这个条件的事件才算数，例如同一条线索的事件",
                        "Only events for which this holds count, e.g. events of the same lead",
                    ),
                    Some("event.lead == trigger.event.lead"),
                ),
            ),
            (
                "timeout",
                field(
                    w("最长等待", "Give up after"),
                    w(
                        "到时仍未收到事件就走「等待超时」，例如 7d（7 天）",
                        "If no event arrives by then the run goes on at \"Timed out\", e.g. 7d",
                    ),
                    Some("7d"),
                ),
            ),
        ],
        NodeKind::Respond => vec![
            (
                "status",
                field(
                    w("HTTP 状态码", "HTTP status"),
                    w(
                        "返回给调用方的状态码，成功一般是 200",
                        "The status the caller gets; 200 for success",
                    ),
                    Some("200"),
                ),
            ),
            (
                "body",
                field(
                    w("返回内容", "Answer"),
                    w(
                        "返回给 Webhook 调用方的内容",
                        "What the webhook's caller gets back",
                    ),
                    Some("{'ok': true, 'tier': vars.tier}"),
                ),
            ),
        ],
        NodeKind::Fail => vec![(
            "message",
            field(
                w("失败原因", "Reason"),
                w(
                    "运行以失败结束，记录这句话；可以用 {{ }} 插入数据",
                    "The run ends as failed with this reason; {{ }} inserts data",
                ),
                Some("找不到线索 {{ trigger.event.lead }}"),
            ),
        )],
        NodeKind::UpdateLead => vec![
            ("lead", lead_field(w("要更新的线索", "The lead to update"))),
            (
                "attributes",
                widget(
                    field(
                        w("设置属性", "Set attributes"),
                        w(
                            "属性名和值，例如 意向 = 高；值里可以用 {{ }} 插入数据",
                            "Attribute names and values, e.g. intent = high; {{ }} inserts data",
                        ),
                        None,
                    ),
                    "map",
                ),
            ),
            (
                "add_tags",
                widget(
                    field(
                        w("打上标签", "Add tags"),
                        w("给线索加上这些标签", "Tags to put on the lead"),
                        Some("高意向"),
                    ),
                    "list",
                ),
            ),
            (
                "remove_tags",
                widget(
                    field(
                        w("去掉标签", "Remove tags"),
                        w("从线索上去掉这些标签", "Tags to take off the lead"),
                        None,
                    ),
                    "list",
                ),
            ),
            ("lifecycle_stage", {
                let mut f = field(
                    w("生命周期阶段", "Lifecycle stage"),
                    w(
                        "销售手动推进的阶段；不选则不变",
                        "The stage sales moves the lead to; unchanged when empty",
                    ),
                    None,
                );
                f["choices"] = json!({
                    "subscriber": w("订阅者", "Subscriber"),
                    "lead": w("线索", "Lead"),
                    "mql": w("市场认可线索 (MQL)", "Marketing qualified (MQL)"),
                    "sql": w("销售认可线索 (SQL)", "Sales qualified (SQL)"),
                    "opportunity": w("商机", "Opportunity"),
                    "customer": w("客户", "Customer"),
                    "evangelist": w("推荐者", "Evangelist"),
                    "disqualified": w("不合格", "Disqualified"),
                });
                f
            }),
        ],
        NodeKind::AssignOwner => {
            let only = |kinds: &[&str]| json!({ "strategy": kinds });
            let mut strategy = field(
                w("分配方式", "How"),
                w(
                    "固定给一个人、在几个人之间轮流、按区域规则，或给当前线索最少的人",
                    "Always one person, in turn, by territory, or whoever owns the fewest leads",
                ),
                None,
            );
            strategy["choices"] = json!({
                "fixed": w("固定人员", "One person"),
                "round_robin": w("轮流分配", "In turn"),
                "territory": w("按区域", "By territory"),
                "load": w("按当前负载", "By current load"),
            });
            let mut owner = people(field(
                w("负责人", "Owner"),
                w("线索交给这个人", "The lead goes to this person"),
                Some("zhang.wei"),
            ));
            owner["shown_when"] = only(&["fixed"]);
            let mut owners = widget(
                people(field(
                    w("候选人", "People"),
                    w(
                        "在这些人之间轮流或按负载分配",
                        "The people to take turns or balance the load between",
                    ),
                    Some("zhang.wei"),
                )),
                "list",
            );
            owners["shown_when"] = only(&["round_robin", "load"]);
            let mut attribute = field(
                w("区域属性", "Territory attribute"),
                w(
                    "线索的哪个属性表示区域，例如 region 或 省份",
                    "The lead attribute that names its territory, e.g. region",
                ),
                Some("region"),
            );
            attribute["shown_when"] = only(&["territory"]);
            let mut territories = widget(
                people(field(
                    w("区域与负责人", "Territories"),
                    w(
                        "区域属性的值 → 负责人，例如 华东 → zhang.wei",
                        "Territory value → owner, e.g. East China → zhang.wei",
                    ),
                    None,
                )),
                "map",
            );
            territories["shown_when"] = only(&["territory"]);
            let mut fallback = people(field(
                w("其他区域交给", "Otherwise"),
                w(
                    "没有对应区域时的负责人",
                    "The owner when no territory matches",
                ),
                None,
            ));
            fallback["shown_when"] = only(&["territory"]);
            vec![
                ("lead", lead_field(w("要分配的线索", "The lead to assign"))),
                ("strategy", strategy),
                ("owner", owner),
                ("owners", owners),
                ("territory_attribute", attribute),
                ("territories", territories),
                ("fallback", fallback),
                (
                    "reassign",
                    field(
                        w("已有负责人也重新分配", "Reassign owned leads"),
                        w(
                            "不勾选时，已有负责人的线索保持不变",
                            "When off, a lead that has an owner keeps it",
                        ),
                        None,
                    ),
                ),
            ]
        }
        NodeKind::Notify => {
            let mut to = field(
                w("通知谁", "Tell"),
                w(
                    "线索的负责人，或指定的人",
                    "The lead's owner, or the people named",
                ),
                None,
            );
            to["choices"] = json!({
                "lead_owner": w("线索负责人", "The lead's owner"),
                "people": w("指定人员", "Named people"),
            });
            let mut recipients = widget(
                people(field(
                    w("人员", "People"),
                    w("收到通知的人", "Who gets the message"),
                    Some("zhang.wei"),
                )),
                "list",
            );
            recipients["shown_when"] = json!({ "to": ["people"] });
            vec![
                ("to", to),
                ("people", recipients),
                (
                    "lead",
                    lead_field(w(
                        "通知关于哪条线索（负责人从它读取）",
                        "The lead the message is about (its owner is told)",
                    )),
                ),
                (
                    "title",
                    widget(
                        field(
                            w("标题", "Title"),
                            w(
                                "消息标题；可以用 {{ }} 插入数据",
                                "The message's title; {{ }} inserts data",
                            ),
                            Some("高意向线索：{{ trigger.event.lead }}"),
                        ),
                        "template",
                    ),
                ),
                (
                    "message",
                    widget(
                        field(
                            w("内容", "Message"),
                            w(
                                "消息正文；可以用 {{ }} 插入数据",
                                "The message's text; {{ }} inserts data",
                            ),
                            None,
                        ),
                        "template",
                    ),
                ),
            ]
        }
        NodeKind::Enroll => {
            let mut action = field(
                w("操作", "Action"),
                w(
                    "让线索进入流程，或停止它在流程中的运行",
                    "Start the flow for the lead, or stop its runs of it",
                ),
                None,
            );
            action["choices"] = json!({
                "enroll": w("加入流程", "Enroll"),
                "remove": w("移出流程", "Remove"),
            });
            vec![
                ("action", action),
                (
                    "flow",
                    widget(
                        field(
                            w("流程", "Flow"),
                            w("另一个已发布的流程", "Another published flow"),
                            None,
                        ),
                        "flow",
                    ),
                ),
                ("lead", lead_field(w("哪条线索", "Which lead"))),
            ]
        }
        NodeKind::Suppress => vec![
            (
                "lead",
                lead_field(w("暂停触达的线索", "The lead to suppress")),
            ),
            (
                "days",
                field(
                    w("暂停天数", "Days"),
                    w(
                        "这么多天内不为它启动任何流程；不填则一直暂停，直到解除",
                        "No flow starts for it for this many days; empty: until lifted",
                    ),
                    Some("30"),
                ),
            ),
            (
                "lift",
                field(
                    w("解除暂停", "Lift instead"),
                    w(
                        "勾选时解除这条线索的暂停",
                        "When on, lifts the lead's suppression",
                    ),
                    None,
                ),
            ),
        ],
        NodeKind::CheckBehaviour => vec![
            ("lead", lead_field(w("看哪条线索的行为", "Whose behaviour"))),
            (
                "condition",
                widget(
                    field(
                        w("行为", "Behaviour"),
                        w(
                            "成立时走「满足条件」，否则走「不满足」",
                            "When it holds the run goes on at \"Condition met\", otherwise at \"Not met\"",
                        ),
                        None,
                    ),
                    "behaviour",
                ),
            ),
        ],
        NodeKind::CreateTaskUnit => vec![
            (
                "template",
                field(
                    w("作战单元模板", "Unit template"),
                    w(
                        "用哪个模板组建：角色、里程碑和加派规则都来自它",
                        "The template the unit is made from: its roles, milestones and dispatch rules",
                    ),
                    Some("delivery-rescue"),
                ),
            ),
            (
                "account",
                field(
                    w("客户", "Account"),
                    w(
                        "单元服务的客户（客户 ID 或名称）；用于命名、客户价值和近期协作",
                        "The account the unit serves (id or name): its name, value and recent collaborators",
                    ),
                    Some("trigger.event.properties.customer"),
                ),
            ),
            (
                "lead",
                lead_field(w(
                    "单元关于哪条线索（可不填）",
                    "The lead it is about (optional)",
                )),
            ),
            (
                "event",
                field(
                    w("触发事件", "Trigger event"),
                    w(
                        "加派规则读取的事件；不填即本流程的触发事件",
                        "The event the dispatch rules read; empty: this flow's trigger event",
                    ),
                    Some("trigger.event"),
                ),
            ),
            (
                "severity",
                field(
                    w("严重程度", "Severity"),
                    w(
                        "0–5，越高越优先（例如超期天数）",
                        "0–5; higher goes first (e.g. days overdue)",
                    ),
                    Some("3"),
                ),
            ),
            (
                "manager",
                people(field(
                    w("负责经理", "Manager"),
                    w(
                        "有角色无人可派时通知谁",
                        "Who is told when a role cannot be filled",
                    ),
                    Some("mgr.li"),
                )),
            ),
        ],
        NodeKind::Note => vec![(
            "text",
            field(
                w("备注", "Note"),
                w(
                    "画布上的说明文字，不参与运行",
                    "A comment on the canvas; runs ignore it",
                ),
                None,
            ),
        )],
        NodeKind::Score => vec![(
            "lead",
            lead_field(w(
                "用已发布的评分模型给这条线索重新评分",
                "The lead to score again with the published scoring model",
            )),
        )],
        NodeKind::DetectSignals => vec![
            (
                "text",
                field(
                    w("文本", "Text"),
                    w(
                        "在这段文字里找购买信号（预算、时间表、竞品、风险等）",
                        "The text to look for purchase signals in (budget, timeline, competitors, risks…)",
                    ),
                    Some("trigger.event.properties.text"),
                ),
            ),
            (
                "lead",
                lead_field(w(
                    "填写后，每个信号记到这条线索的时间线上",
                    "If set, each signal goes on this lead's timeline",
                )),
            ),
        ],
        NodeKind::NextBestAction => vec![(
            "lead",
            lead_field(w(
                "按工作区的规则给出这条线索的下一步行动",
                "The lead whose next actions the workspace's rules give",
            )),
        )],
        NodeKind::Connector => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_has_its_spec_and_name() {
        assert_eq!(builtin_node_types().len(), NodeKind::ALL.len());
        for kind in NodeKind::ALL {
            assert_eq!(kind.spec().kind, kind);
            assert_eq!(NodeKind::from_name(kind.name()), Some(kind));
            assert_eq!(node_type(kind.name()).map(|s| s.name), Some(kind.name()));
            let config = kind.default_config();
            if kind != NodeKind::Connector {
                assert!(
                    kind.spec()
                        .validator
                        .as_ref()
                        .is_some_and(|v| v.is_valid(&config)),
                    "{}'s default config {config} fails its schema",
                    kind.name()
                );
            }
        }
        assert_eq!(NodeKind::from_name("nope"), None);
        assert_eq!(NodeKind::Score.host(), Some(INTENT_HOST));
        assert_eq!(NodeKind::Connector.host(), None);
    }

    #[test]
    fn every_builtin_has_a_compiled_schema() {
        for spec in builtin_node_types() {
            assert!(
                spec.validator.is_some(),
                "{} schema does not compile: {}",
                spec.name,
                spec.config_schema
            );
        }
    }

    #[test]
    fn config_errors_point_inside_the_config() {
        let branch = node_type("branch").unwrap();
        assert!(branch.check_config(&json!({"when": "true"})).is_empty());
        let errors = branch.check_config(&json!({"when": 3}));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pointer, "/when");
        let set = node_type("set").unwrap();
        assert_eq!(
            set.check_config(&json!({"vars": {"a": 1}}))[0].pointer,
            "/vars/a"
        );
    }

    #[test]
    fn switch_ports_follow_cases() {
        let sw = node_type("switch").unwrap();
        let ports = sw.output_ports(&json!({"cases": [{"port": "hot", "when": "true"}]}));
        assert_eq!(ports, vec!["hot", "default", "error"]);
    }

    #[test]
    fn every_builtin_field_has_words_in_both_languages() {
        for kind in NodeKind::ALL {
            let schema = &kind.spec().config_schema;
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for name in props.keys() {
                let form = crate::forms::FieldForm::of(schema, name).expect("a property");
                for lang in ["zh", "en"] {
                    assert!(
                        form.label(lang).is_some(),
                        "{} {name}: no {lang} label",
                        kind.name()
                    );
                    assert!(
                        form.help(lang).is_some(),
                        "{} {name}: no {lang} help",
                        kind.name()
                    );
                }
                assert_ne!(form.label("zh"), form.label("en"), "{} {name}", kind.name());
            }
        }
    }

    #[test]
    fn every_field_with_labelled_choices_is_an_enum() {
        for kind in NodeKind::ALL {
            let schema = &kind.spec().config_schema;
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for (name, prop) in props {
                let Some(choices) = prop
                    .pointer("/x-trellis/choices")
                    .and_then(Value::as_object)
                else {
                    continue;
                };
                let resolved = crate::forms::resolve(schema, prop);
                let values: Vec<&str> = resolved
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|e| e.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for choice in choices.keys() {
                    assert!(
                        values.contains(&choice.as_str()),
                        "{} {name}: choice {choice} is not in the schema's enum {resolved}",
                        kind.name()
                    );
                }
            }
        }
    }

    #[test]
    fn trigger_fields_apply_by_kind_and_choices_read_in_chinese() {
        let schema = &node_type("trigger").expect("trigger").config_schema;
        let form = |name| crate::forms::FieldForm::of(schema, name).expect(name);
        let webhook = json!({"kind": "webhook"});
        assert!(form("path").applies(&webhook));
        assert!(form("secret").applies(&webhook));
        assert!(!form("event").applies(&webhook));
        assert!(!form("cron").applies(&webhook));
        assert!(form("kind").applies(&webhook));
        assert!(form("event").applies(&json!({"kind": "event"})));
        assert_eq!(form("kind").choice_label("event", "zh"), "收到事件");
        assert_eq!(form("kind").choice_label("event", "en"), "An event arrives");
        assert_eq!(form("kind").choice_label("other", "zh"), "other");
        assert_eq!(form("cron").example().as_deref(), Some("0 9 * * 1-5"));
    }

    #[test]
    fn problems_name_the_missing_or_wrong_field() {
        let spec = node_type("wait_for_event").expect("type");
        let problems = spec.check_config(&json!({"timeout": 7}));
        let missing = problems
            .iter()
            .find(|p| p.issue == crate::forms::Issue::Missing)
            .expect("missing");
        assert_eq!(missing.field.as_deref(), Some("event"));
        assert_eq!(missing.pointer, "");
        let wrong = problems
            .iter()
            .find(|p| p.issue == crate::forms::Issue::Invalid)
            .expect("invalid");
        assert_eq!(wrong.field.as_deref(), Some("timeout"));
        assert_eq!(wrong.pointer, "/timeout");
        let unknown = spec.check_config(&json!({"event": "e", "timeout": "1d", "extra": 1}));
        assert_eq!(unknown[0].issue, crate::forms::Issue::Unknown);
        assert_eq!(unknown[0].field.as_deref(), Some("extra"));
    }

    #[test]
    fn builtin_ports_have_words() {
        for kind in NodeKind::ALL {
            let config = kind.default_config();
            for port in kind.spec().output_ports(&config) {
                let is_case = config["cases"]
                    .as_array()
                    .is_some_and(|cases| cases.iter().any(|c| c["port"] == json!(port)));
                assert!(
                    is_case || crate::forms::port_words(&port).is_some(),
                    "{} {port}",
                    kind.name()
                );
            }
        }
        assert_eq!(crate::forms::port_words("hot"), None);
    }
}
