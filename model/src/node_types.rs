//! The built-in node types: their config types (and JSON Schemas generated from them),
//! output ports, and where their configs hold CEL expressions and templates.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    crate::forms::annotate(kind, &mut schema);
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
}
