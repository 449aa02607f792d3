//! Forms in business language: what the studio shows for each config field (a label, help
//! text, an example, labelled choices, when the field applies), the words for output ports,
//! and config problems as kinds the studio can put into words.
//!
//! A field's words live in its JSON Schema under `x-trellis`, so built-in node types (whose
//! schemas `node_types` annotates) and connector operations (whose authors write the same
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
use serde_json::Value;

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
    // An optional field (`Option<T>`) reads as `anyOf: [T, null]`: it is edited as `T`.
    if let Some([one, other]) = schema
        .get("anyOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
        match (is_null(one), is_null(other)) {
            (false, true) => return resolve(root, one),
            (true, false) => return resolve(root, other),
            _ => {}
        }
    }
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

    /// The studio widget that edits the field, when its type alone does not say
    /// (`list`, `map`, `template`, `flow`, `condition`, `behaviour`).
    pub fn widget(&self) -> Option<&'a str> {
        self.annotation("widget").and_then(Value::as_str)
    }

    /// Whether the field names people of the workspace (an owner, recipients): the studio
    /// offers them, by name, while any other id can still be typed.
    pub fn names_people(&self) -> bool {
        self.annotation("people").and_then(Value::as_bool) == Some(true)
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
        "blocked" => ("被联系策略拦截", "Blocked by the contact policy"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
