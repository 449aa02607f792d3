//! `trellis.units@1`: the call host of the `create_task_unit` node. Its input is the
//! node's config with its CEL fields evaluated (`account`, `lead`, `event`, `severity`);
//! the unit is keyed by the call's idempotency key, so a repeated call (after a crash)
//! gives the unit the first one made.

use serde_json::{Value, json};
use trellis_model::node_types::CreateTaskUnitConfig;
use trellis_runtime::connector::ConnectorError;
use trellis_runtime::{CallRequest, CallResult};

use super::{NewUnit, TaskUnits, UnitError};
use crate::runs::{CallHost, CallPlan, CallSite};

/// The version the unit calls are journaled with.
const UNITS_VERSION: &str = "trellis.units@1.0.0";

#[async_trait::async_trait]
impl CallHost for TaskUnits {
    /// Served in this process within the claim; a repeated call finds its unit.
    async fn plan(&self, _: &str, _: &CallRequest, _: Option<&str>) -> CallPlan {
        CallPlan {
            side_effects: false,
            timeout: None,
            contact: None,
        }
    }

    async fn call(
        &self,
        site: CallSite<'_>,
        request: &CallRequest,
        _pinned: Option<&str>,
    ) -> (CallResult, Option<String>) {
        let result = match request.operation.as_str() {
            "create_task_unit" => self.create_node(site, request).await,
            other => Err(ConnectorError::NotFound {
                message: format!("no task-unit operation {other:?}"),
            }),
        };
        crate::runs::served(result, UNITS_VERSION)
    }
}

/// A CEL field's value as text (an id or a name), if it gave one.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The unit in a few Markdown lines, Chinese first: goal, who is in it and why,
/// milestones with their deadlines (Beijing time), knowledge links, roles left unfilled.
fn brief(unit: &Value) -> String {
    let mut out = vec![
        format!("**{}**", unit["unit"]["name"].as_str().unwrap_or_default()),
        format!("目标：{}", unit["goal"].as_str().unwrap_or_default()),
    ];
    for p in unit["picks"].as_array().into_iter().flatten() {
        out.push(format!(
            "- {}（{}）：{}",
            p["name"].as_str().unwrap_or_default(),
            p["role"].as_str().unwrap_or_default(),
            p["zh"].as_str().unwrap_or_default()
        ));
    }
    for m in unit["milestones"].as_array().into_iter().flatten() {
        let due = m["due_at"]
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| {
                (t + chrono::Duration::hours(8))
                    .format("%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        out.push(format!(
            "> 里程碑 {} 截止 {due}",
            m["name"].as_str().unwrap_or_default()
        ));
    }
    for k in unit["knowledge"].as_array().into_iter().flatten() {
        out.push(format!(
            "[{}]({})",
            k["title"].as_str().unwrap_or_default(),
            k["url"].as_str().unwrap_or_default()
        ));
    }
    for u in unit["unfilled"].as_array().into_iter().flatten() {
        out.push(format!(
            "<font color=\"warning\">{}</font>",
            u["zh"].as_str().unwrap_or_default()
        ));
    }
    out.join("\n")
}

impl TaskUnits {
    async fn create_node(
        &self,
        site: CallSite<'_>,
        request: &CallRequest,
    ) -> Result<Value, ConnectorError> {
        let input = &request.input;
        let config: CreateTaskUnitConfig = serde_json::from_value(json!({
            "template": input["template"],
            "manager": input.get("manager"),
        }))
        .map_err(|e| ConnectorError::InvalidInput {
            message: e.to_string(),
        })?;
        let severity = input["severity"].as_f64().unwrap_or(0.0).clamp(0.0, 5.0) as u8;
        let new = NewUnit {
            template: config.template,
            account: text(&input["account"]),
            lead: text(&input["lead"]),
            event: input.get("event").cloned().unwrap_or(Value::Null),
            severity,
            manager: config.manager.filter(|m| !m.trim().is_empty()),
            overrides: Vec::new(),
            origin_key: Some(request.idempotency_key.clone()),
            by: format!("flow {}", site.flow_id),
        };
        let now = crate::runs::now_ms(chrono::Utc::now());
        let unit = self
            .create(site.workspace, new, now)
            .await
            .map_err(|e| match e {
                UnitError::Missing(message) => ConnectorError::NotFound { message },
                UnitError::Invalid { detail, .. } => {
                    ConnectorError::InvalidInput { message: detail }
                }
                other => ConnectorError::Internal {
                    message: other.to_string(),
                },
            })?;
        let members = unit["picks"]
            .as_array()
            .map(|picks| {
                picks
                    .iter()
                    .map(|p| json!({ "id": p["member"], "name": p["name"], "role": p["role"], "why": p["zh"] }))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let ids: Vec<&str> = members.iter().filter_map(|m| m["id"].as_str()).collect();
        let id = unit["unit"]["id"].as_str().unwrap_or_default();
        Ok(json!({
            "unit": id,
            "name": unit["unit"]["name"],
            "priority": unit["unit"]["priority"],
            "members": members,
            "member_ids": ids,
            "touser": ids.join("|"),
            // A WeCom group chat id of the unit's own (letters and digits, 32), so a
            // retried step finds the same chat.
            "chat_id": id.replace('-', ""),
            "brief": brief(&unit),
            "unfilled": unit["unfilled"],
            "milestones": unit["milestones"],
            "knowledge": unit["knowledge"],
            "wecom_group": unit["wecom_group"],
        }))
    }
}
