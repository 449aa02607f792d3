//! The built-in node types: their config types (and JSON Schemas generated from them),
//! output ports, and where their configs hold CEL expressions and templates.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The port an edge without `port` leaves from.
pub const DEFAULT_PORT: &str = "out";
/// The port a node routes to when it fails after its retries, if connected.
pub const ERROR_PORT: &str = "error";

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
}

impl TriggerKind {
    /// The name documents and the trigger-route table use.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Manual => "manual",
            TriggerKind::Webhook => "webhook",
            TriggerKind::Event => "event",
            TriggerKind::Schedule => "schedule",
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
    Note,
}

impl NodeKind {
    pub const ALL: [NodeKind; 13] = [
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
        NodeKind::Trigger | NodeKind::Connector | NodeKind::Note => Vec::new(),
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
            Ports::Fixed(OUT),
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
            vec![
                ("kind", kind_field),
                ("path", path),
                ("secret", secret),
                ("event", event),
                ("cron", cron),
                ("timezone", timezone),
            ]
        }
        NodeKind::Branch => vec![(
            "when",
            field(
                w("条件", "Condition"),
                w(
                    "条件成立时走「满足条件」，否则走「不满足」",
                    "When it holds the run goes on at \"Condition met\", otherwise at \"Not met\"",
                ),
                Some("trigger.event.properties.category == 'pricing'"),
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
