//! Sentences with values in them, in the studio's two languages: a flow's problems ("第 3 个
//! 节点「评分」：缺少「线索」"), the names of fields and ports. Fixed words live in
//! [`crate::i18n`]; a field's own words come from its schema ([`trellis_model::forms`]).

use serde_json::Value;
use trellis_model::forms::{FieldForm, Issue, port_words};
use trellis_model::node_types::{NodeKind, node_type};
use trellis_model::{Catalog, Diagnostic, FlowDoc, Node};

use crate::i18n::Lang;

/// The schema a node's config is edited by: its node type's, or for a connector node its
/// operation's (from the catalog).
pub fn config_schema(node: &Node, catalog: &Catalog) -> Option<Value> {
    if node.kind() == Some(NodeKind::Connector) {
        let entry = catalog.get(node.connector.as_deref()?)?;
        return entry
            .operation(node.operation.as_deref()?)
            .map(|o| o.config_schema.clone());
    }
    node_type(&node.node_type).map(|s| s.config_schema.clone())
}

/// A config field's label (the property name where the schema gives none).
pub fn field_label(schema: Option<&Value>, name: &str, lang: Lang) -> String {
    schema
        .and_then(|s| FieldForm::of(s, name))
        .and_then(|f| f.label(lang.code()))
        .unwrap_or_else(|| name.to_owned())
}

/// A port's name in words (a `switch` case keeps the name its author gave it).
pub fn port_label(port: &str, lang: Lang) -> String {
    match port_words(port) {
        Some((zh, en)) => match lang {
            Lang::Zh => zh.to_owned(),
            Lang::En => en.to_owned(),
        },
        None => port.to_owned(),
    }
}

/// A node type's title.
pub fn type_title(node_type_name: &str, lang: Lang) -> String {
    node_type(node_type_name)
        .and_then(|s| s.title.get(lang.code()).copied())
        .unwrap_or(node_type_name)
        .to_owned()
}

/// "第 3 个节点「评分」" / "Node 3 (Score)": its position in the flow and its label, or
/// its type's title when it has none.
fn node_phrase(doc: &FlowDoc, index: usize, lang: Lang) -> String {
    let name = doc
        .nodes
        .get(index)
        .map(|n| match &n.label {
            Some(l) if !l.trim().is_empty() => l.clone(),
            _ => type_title(&n.node_type, lang),
        })
        .unwrap_or_default();
    match lang {
        Lang::Zh => format!("第 {} 个节点「{name}」", index + 1),
        Lang::En => format!("Node {} ({name})", index + 1),
    }
}

/// The node index of a pointer `/nodes/N/…`.
fn node_index(pointer: &str) -> Option<usize> {
    pointer
        .strip_prefix("/nodes/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// A flow problem in the user's words: where (which node) and what.
pub fn describe(d: &Diagnostic, doc: &FlowDoc, catalog: &Catalog, lang: Lang) -> String {
    let index = node_index(&d.pointer);
    let node = index.and_then(|i| doc.nodes.get(i));
    let schema = node.and_then(|n| config_schema(n, catalog));
    let field = d
        .field
        .as_deref()
        .map(|f| field_label(schema.as_ref(), f, lang));
    let example = d
        .field
        .as_deref()
        .and_then(|f| schema.as_ref().and_then(|s| FieldForm::of(s, f)))
        .and_then(|f| f.example());
    let zh = lang == Lang::Zh;
    let what = match (d.code, d.issue, field) {
        ("invalid_config", Some(Issue::Missing), Some(f)) => {
            if zh {
                format!("缺少「{f}」")
            } else {
                format!("\"{f}\" is missing")
            }
        }
        ("invalid_config", Some(Issue::Unknown), Some(f)) => {
            if zh {
                format!("没有「{f}」这项设置")
            } else {
                format!("there is no setting \"{f}\"")
            }
        }
        ("invalid_config", _, Some(f)) => match (zh, example) {
            (true, Some(e)) => format!("「{f}」填写不对，例如：{e}"),
            (true, None) => format!("「{f}」填写不对"),
            (false, Some(e)) => format!("\"{f}\" is not right; for example: {e}"),
            (false, None) => format!("\"{f}\" is not right"),
        },
        ("invalid_config", _, None) if d.pointer.ends_with("/connector") => if zh {
            "请选择连接器"
        } else {
            "choose a connector"
        }
        .to_owned(),
        ("invalid_config", _, None) if d.pointer.ends_with("/operation") => if zh {
            "请选择操作"
        } else {
            "choose an operation"
        }
        .to_owned(),
        ("invalid_expression", _, f) => {
            let place = d
                .position
                .as_ref()
                .map(|p| {
                    if zh {
                        format!("（第 {} 行第 {} 列）", p.line, p.column)
                    } else {
                        format!(" (line {}, column {})", p.line, p.column)
                    }
                })
                .unwrap_or_default();
            match (zh, f) {
                (true, Some(f)) => format!("「{f}」的写法有误{place}：{}", d.message),
                (true, None) => format!("写法有误{place}：{}", d.message),
                (false, Some(f)) => format!("\"{f}\" does not read{place}: {}", d.message),
                (false, None) => format!("does not read{place}: {}", d.message),
            }
        }
        ("invalid_duration", _, f) => {
            let f = f.unwrap_or_else(|| if zh { "时长" } else { "the duration" }.to_owned());
            if zh {
                format!("「{f}」不是有效的时长，例如 30m、2h、3d")
            } else {
                format!("\"{f}\" is not a duration; for example 30m, 2h, 3d")
            }
        }
        (code, _, _) => fixed(code, lang).unwrap_or_else(|| d.message.clone()),
    };
    match index {
        Some(i) if d.pointer.starts_with("/nodes/") => {
            let sep = if zh { "：" } else { ": " };
            format!("{}{sep}{what}", node_phrase(doc, i, lang))
        }
        _ => what,
    }
}

/// Problems that need no values.
fn fixed(code: &str, lang: Lang) -> Option<String> {
    let (zh, en) = match code {
        "no_trigger" => (
            "流程还没有触发器：从左侧拖入一个「触发器」",
            "the flow has no trigger: drag a Trigger in from the left",
        ),
        "multiple_triggers" => ("一个流程只能有一个触发器", "a flow has one trigger"),
        "dangling_edge" => ("连线的一端没有节点", "a connection ends at no node"),
        "duplicate_edge" => ("两条连线重复", "two connections are the same"),
        "duplicate_node_id" => ("两个节点的编号相同", "two nodes have the same id"),
        "edge_into_trigger" => ("触发器不能有连入的线", "nothing connects into a trigger"),
        "unknown_port" => (
            "连线从节点没有的出口出发",
            "a connection leaves from an exit the node does not have",
        ),
        "unreachable_node" => (
            "从触发器走不到这里：把它连进流程，或删除它",
            "the trigger never reaches it: connect it, or delete it",
        ),
        "cycle" => (
            "流程绕回了自己且中间没有等待，会不停运行",
            "the flow loops back on itself without a wait, so it would never stop",
        ),
        "unknown_node_type" => ("未知的节点类型", "an unknown kind of node"),
        "unknown_connector" => (
            "这个连接器没有安装或未在本工作区启用",
            "this connector is not installed or not enabled here",
        ),
        "unknown_operation" => ("连接器没有这个操作", "the connector has no such operation"),
        _ => return None,
    };
    Some(match lang {
        Lang::Zh => zh.to_owned(),
        Lang::En => en.to_owned(),
    })
}

/// An RFC 3339 time as the browser's local time, `YYYY-MM-DD HH:MM` (or `—`).
pub fn local_time(iso: Option<&str>) -> String {
    let Some(iso) = iso.filter(|s| !s.is_empty()) else {
        return "—".to_owned();
    };
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(iso));
    if d.get_time().is_nan() {
        return iso.to_owned();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes()
    )
}

/// A contact channel in words (`wecom_group_send` → 企业微信客户群发); an unknown one as is.
pub fn channel_label(channel: &str, lang: Lang) -> String {
    let words = match channel {
        "wecom_group_send" => Some(("企业微信客户群发", "WeCom group send")),
        "wecom" => Some(("企业微信（全部）", "WeCom (all)")),
        "email" => Some(("邮件", "Email")),
        "sms" => Some(("短信", "SMS")),
        _ => None,
    };
    match (words, lang) {
        (Some((zh, _)), Lang::Zh) => zh.to_owned(),
        (Some((_, en)), Lang::En) => en.to_owned(),
        (None, _) => channel.to_owned(),
    }
}
