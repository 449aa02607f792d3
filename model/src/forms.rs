//! Forms in business language: what the studio shows for each config field (a label, help
//! text, an example, labelled choices, when the field applies), the words for output ports,
//! and config problems as kinds the studio can put into words.
//!
//! A field's words live in its JSON Schema under `x-trellis`, so built-in node types (whose
//! schemas this module annotates) and connector operations (whose authors write the same
//! keyword in their manifests) are described one way:
//!
//! ```json
//! { "type": "string",
//!   "x-trellis": {
//!     "label": { "zh": "事件名称", "en": "Event name" },
//!     "help": { "zh": "……", "en": "…" },
//!     "example": "page_view",
//!     "choices": { "manual": { "zh": "手动", "en": "Manual" } },
//!     "shown_when": { "kind": ["event"] } } }
//! ```
//!
//! Words are an object by language code or one plain string; without `x-trellis` the
//! standard `title`, `description` and `examples` serve.

use serde::Serialize;
use serde_json::{Value, json};

use crate::node_types::NodeKind;

/// The annotation keyword.
pub const KEYWORD: &str = "x-trellis";

/// `words` in `lang`: an object by language code (falling back to English, then Chinese),
/// or one plain string.
pub fn words(words: &Value, lang: &str) -> Option<String> {
    match words {
        Value::String(s) => Some(s.clone()),
        Value::Object(by_lang) => [lang, "en", "zh"]
            .iter()
            .find_map(|l| by_lang.get(*l).and_then(Value::as_str))
            .map(str::to_owned),
        _ => None,
    }
}

/// Resolves `$ref: #/$defs/X` against the root schema.
pub fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) => root.pointer(&format!("/$defs/{name}")).unwrap_or(schema),
        None => schema,
    }
}

/// How one config field is presented: read from its (resolved) property schema.
#[derive(Clone, Copy, Debug)]
pub struct FieldForm<'a> {
    /// The property as written (where `x-trellis` sits, beside a `$ref`).
    prop: &'a Value,
    /// The property with its `$ref` resolved (its `title`, `description`, `enum`).
    schema: &'a Value,
}

impl<'a> FieldForm<'a> {
    /// The form of property `name` of an object schema (`root`), if it has one.
    pub fn of(root: &'a Value, name: &str) -> Option<FieldForm<'a>> {
        let prop = root.get("properties")?.get(name)?;
        Some(FieldForm {
            prop,
            schema: resolve(root, prop),
        })
    }

    fn annotation(&self, key: &str) -> Option<&'a Value> {
        self.prop
            .get(KEYWORD)
            .or_else(|| self.schema.get(KEYWORD))?
            .get(key)
    }

    /// The field's label, or `None` where the schema gives none (show the property name).
    pub fn label(&self, lang: &str) -> Option<String> {
        self.annotation("label")
            .or_else(|| self.schema.get("title"))
            .and_then(|w| words(w, lang))
    }

    /// What the field is for, in a sentence or two.
    pub fn help(&self, lang: &str) -> Option<String> {
        self.annotation("help")
            .or_else(|| self.schema.get("description"))
            .and_then(|w| words(w, lang))
    }

    /// An example value, as the input shows it (a placeholder).
    pub fn example(&self) -> Option<String> {
        let example = self
            .annotation("example")
            .or_else(|| self.schema.get("examples").and_then(|e| e.get(0)))?;
        Some(match example {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// The label of choice `value` (an `enum` member), or the value itself.
    pub fn choice_label(&self, value: &str, lang: &str) -> String {
        self.annotation("choices")
            .and_then(|c| c.get(value))
            .and_then(|w| words(w, lang))
            .unwrap_or_else(|| value.to_owned())
    }

    /// Whether the field applies to `config`: every field named in `shown_when` holds one
    /// of the values listed for it.
    pub fn applies(&self, config: &Value) -> bool {
        let Some(Value::Object(when)) = self.annotation("shown_when") else {
            return true;
        };
        when.iter().all(|(field, allowed)| {
            let current = config.get(field).unwrap_or(&Value::Null);
            match allowed {
                Value::Array(values) => values.contains(current),
                one => one == current,
            }
        })
    }
}

/// The words for an output port of a built-in node type, `(zh, en)`; `None` for a port the
/// user named (a `switch` case).
pub fn port_words(port: &str) -> Option<(&'static str, &'static str)> {
    Some(match port {
        "out" => ("下一步", "Next"),
        "true" => ("满足条件", "Condition met"),
        "false" => ("不满足", "Not met"),
        "default" => ("其他情况", "No case matched"),
        "event" => ("事件已到达", "Event arrived"),
        "timeout" => ("等待超时", "Timed out"),
        "error" => ("出错时", "On error"),
        _ => return None,
    })
}

/// What is wrong with a config field, as the studio puts it into words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Issue {
    /// A required field is not filled in.
    Missing,
    /// A field holds a value of the wrong kind, not one of its choices, out of range, too
    /// short or long, or not in the expected form.
    Invalid,
    /// A field the node does not have.
    Unknown,
}

/// One problem of a config against its schema.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigProblem {
    /// JSON pointer inside the config.
    pub pointer: String,
    /// The top-level config field concerned (the missing one, for [`Issue::Missing`]).
    pub field: Option<String>,
    pub issue: Issue,
    /// The validator's own words (English), for IT and the API.
    pub message: String,
}

/// The problems of `config` against a compiled schema; `skip` leaves out errors at a
/// pointer it accepts (a connector's `{{ }}` templates are checked at run time).
pub fn schema_problems(
    validator: &jsonschema::Validator,
    config: &Value,
    skip: impl Fn(&str) -> bool,
) -> Vec<ConfigProblem> {
    use jsonschema::error::ValidationErrorKind as K;
    validator
        .iter_errors(config)
        .filter(|e| !skip(e.instance_path().as_str()))
        .map(|e| {
            let pointer = e.instance_path().as_str().to_owned();
            let top = pointer
                .split('/')
                .nth(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"));
            let (issue, field) = match e.kind() {
                K::Required { property } if pointer.is_empty() => {
                    (Issue::Missing, property.as_str().map(str::to_owned))
                }
                K::AdditionalProperties { unexpected } if pointer.is_empty() => {
                    (Issue::Unknown, unexpected.first().cloned())
                }
                _ => (Issue::Invalid, top),
            };
            ConfigProblem {
                pointer,
                field,
                issue,
                message: e.to_string(),
            }
        })
        .collect()
}

/// Adds the built-in node type `kind`'s field words to its generated config schema.
pub(crate) fn annotate(kind: NodeKind, schema: &mut Value) {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, form) in builtin_fields(kind) {
        if let Some(prop) = props.get_mut(name).and_then(Value::as_object_mut) {
            prop.insert(KEYWORD.to_owned(), form);
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
    use crate::node_types::node_type;

    #[test]
    fn every_builtin_field_has_words_in_both_languages() {
        for kind in NodeKind::ALL {
            let schema = &kind.spec().config_schema;
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for name in props.keys() {
                let form = FieldForm::of(schema, name).expect("a property");
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
        let form = |name| FieldForm::of(schema, name).expect(name);
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
    fn a_connector_schema_without_annotations_uses_title_and_description() {
        let schema = json!({"type": "object", "properties": {
            "url": {"type": "string", "title": "URL", "description": "Where to send it",
                    "examples": ["https://crm.example.cn/api"]}}});
        let form = FieldForm::of(&schema, "url").expect("url");
        assert_eq!(form.label("zh").as_deref(), Some("URL"));
        assert_eq!(form.help("zh").as_deref(), Some("Where to send it"));
        assert_eq!(
            form.example().as_deref(),
            Some("https://crm.example.cn/api")
        );
        assert!(FieldForm::of(&schema, "other").is_none());
    }

    #[test]
    fn problems_name_the_missing_or_wrong_field() {
        let spec = node_type("wait_for_event").expect("type");
        let problems = spec.check_config(&json!({"timeout": 7}));
        let missing = problems
            .iter()
            .find(|p| p.issue == Issue::Missing)
            .expect("missing");
        assert_eq!(missing.field.as_deref(), Some("event"));
        assert_eq!(missing.pointer, "");
        let wrong = problems
            .iter()
            .find(|p| p.issue == Issue::Invalid)
            .expect("invalid");
        assert_eq!(wrong.field.as_deref(), Some("timeout"));
        assert_eq!(wrong.pointer, "/timeout");
        let unknown = spec.check_config(&json!({"event": "e", "timeout": "1d", "extra": 1}));
        assert_eq!(unknown[0].issue, Issue::Unknown);
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
                    is_case || port_words(&port).is_some(),
                    "{} {port}",
                    kind.name()
                );
            }
        }
        assert_eq!(port_words("hot"), None);
    }
}
