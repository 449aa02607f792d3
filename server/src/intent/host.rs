//! `trellis.intent@1`: the call host of the intent nodes (`score`, `detect_signals`,
//! `next_best_action`). A failure is a typed connector error, so the node's retry policy
//! and `error` port apply.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::{Value, json};
use trellis_runtime::connector::ConnectorError;
use trellis_runtime::{CallRequest, CallResult};

use super::Intent;
use crate::db::entities::lead_identity;
use crate::events::NewEvent;
use trellis_model::scoring::Score;

use crate::leads::{
    events_of, facts, find, find_for_update, nba_rules, rescore, score_facts, state_of,
};
use crate::runs::{CallHost, CallPlan};

/// The version the intent nodes' calls are journaled with.
const INTENT_VERSION: &str = "trellis.intent@1.0.0";

#[async_trait::async_trait]
impl CallHost for Intent {
    /// Served in this process within the claim; `detect_signals` records its event once
    /// per step (keyed by the step), so a repeated call does no harm.
    async fn plan(&self, _: &str, _: &CallRequest, _: Option<&str>) -> CallPlan {
        CallPlan {
            side_effects: false,
            timeout: None,
            contact: None,
        }
    }

    async fn call(
        &self,
        site: crate::runs::CallSite<'_>,
        request: &CallRequest,
        _pinned: Option<&str>,
    ) -> (CallResult, Option<String>) {
        let workspace = site.workspace;
        let result = match request.operation.as_str() {
            "score" => self.score_node(workspace, &request.input).await,
            "next_best_action" => self.nba_node(workspace, &request.input).await,
            "detect_signals" => {
                self.detect_node(workspace, &request.input, &request.idempotency_key)
                    .await
            }
            other => Err(ConnectorError::NotFound {
                message: format!("no intent operation {other:?}"),
            }),
        };
        crate::runs::served(result, INTENT_VERSION)
    }
}

impl Intent {
    /// Rescores the lead with the published model (recording a tier change in the same
    /// transaction) and gives its score with the explanation.
    async fn score_node(&self, workspace: &str, input: &Value) -> Result<Value, ConnectorError> {
        let id = lead_input(input)?;
        let txn = self.db.begin().await.map_err(|e| internal(&e))?;
        let Some((version, model)) = self
            .models
            .published(&txn, workspace)
            .await
            .map_err(|e| internal(&e))?
        else {
            return Err(ConnectorError::NotFound {
                message: "this workspace has no published scoring model".into(),
            });
        };
        let Some(row) = find_for_update(&txn, workspace, id)
            .await
            .map_err(|e| internal(&e))?
        else {
            return Err(ConnectorError::NotFound {
                message: format!("lead {id:?} does not exist"),
            });
        };
        let lead_id = row.id.clone();
        let now_ms = Utc::now().timestamp_millis();
        let change = rescore(&txn, workspace, row, version, &model, now_ms)
            .await
            .map_err(|e| internal(&e))?;
        if let Some(change) = change {
            self.events
                .record_tier_change(
                    &txn,
                    workspace,
                    &format!("score:{lead_id}:{now_ms}"),
                    change,
                )
                .await
                .map_err(|e| internal(&e))?;
        }
        let row = find(&txn, workspace, &lead_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| internal(&"the lead vanished"))?;
        txn.commit().await.map_err(|e| internal(&e))?;
        self.runs.wake();
        let score: Score = model.score(&row.attributes, &state_of(&row.state), now_ms);
        let explanation: Vec<&str> = score
            .contributions
            .iter()
            .map(|c| c.explanation.as_str())
            .collect();
        // Who the lead is, for the steps after: its owner (a WeCom user id, say) and its
        // identities by kind (its `external_contact_id` to reach it on WeCom).
        let identities: serde_json::Map<String, Value> = lead_identity::Entity::find()
            .filter(lead_identity::Column::WorkspaceId.eq(workspace))
            .filter(lead_identity::Column::LeadId.eq(lead_id.as_str()))
            .all(&self.db)
            .await
            .map_err(|e| internal(&e))?
            .into_iter()
            .map(|i| (i.kind, Value::String(i.value)))
            .collect();
        Ok(json!({
            "lead": lead_id,
            "owner": row.owner,
            "name": row.attributes.get("name"),
            "identities": identities,
            "score": row.score,
            "tier": row.tier,
            "stage": row.stage,
            "probability": row.probability,
            "model_version": version,
            "explanation": explanation,
            "contributions": score.contributions,
        }))
    }

    /// Finds purchase signals in `text`; with a `lead`, records them as a
    /// `signal.detected` event through the event intake.
    async fn detect_node(
        &self,
        workspace: &str,
        input: &Value,
        key: &str,
    ) -> Result<Value, ConnectorError> {
        let Some(text) = input.get("text").and_then(Value::as_str) else {
            return Err(ConnectorError::InvalidInput {
                message: format!("text must be a string, not {}", input["text"]),
            });
        };
        let detector = self.detectors.get(&self.db, workspace).await.map_err(|e| {
            ConnectorError::Internal {
                message: format!("{e:#}"),
            }
        })?;
        let signals = detector.detect(text);
        let lead = input.get("lead").and_then(Value::as_str).map(str::to_owned);
        if let Some(lead) = &lead
            && !signals.is_empty()
        {
            // Keyed by the step, so a retried step records the signals once.
            let event = NewEvent {
                id: format!("signals:{key}"),
                name: "signal.detected".into(),
                lead: Some(lead.clone()),
                properties: json!({ "signals": signals, "text": text.chars().take(500).collect::<String>() }),
                timestamp: None,
            };
            self.events
                .record(workspace, event)
                .await
                .map_err(|e| match e {
                    crate::events::IntakeError::Invalid(problem) => ConnectorError::InvalidInput {
                        message: format!("{} at {}", problem.detail, problem.pointer),
                    },
                    other => internal(&other),
                })?;
        }
        Ok(json!({ "signals": signals, "lead": lead }))
    }

    /// The lead's next best actions under the workspace's rules.
    async fn nba_node(&self, workspace: &str, input: &Value) -> Result<Value, ConnectorError> {
        let id = lead_input(input)?;
        let Some(row) = find(&self.db, workspace, id)
            .await
            .map_err(|e| internal(&e))?
        else {
            return Err(ConnectorError::NotFound {
                message: format!("lead {id:?} does not exist"),
            });
        };
        let rules = nba_rules(&self.db, workspace)
            .await
            .map_err(|e| internal(&e))?;
        let events = events_of(&self.db, workspace, &row.id)
            .await
            .map_err(|e| internal(&e))?;
        let facts = facts(
            &row,
            &events,
            score_facts(&row),
            Utc::now().timestamp_millis(),
        );
        let now_ms = Utc::now().timestamp_millis();
        Ok(json!({
            "lead": row.id,
            "next_actions": rules.next_actions(&facts, 3),
            // What the lead did lately, in a sentence (zh, en), for a message to its rep.
            "summary": trellis_model::summary::summarize(&events, now_ms, 7),
        }))
    }
}

/// A failure of the server's own, as a node's typed error.
fn internal(e: &dyn std::fmt::Display) -> ConnectorError {
    ConnectorError::Internal {
        message: e.to_string(),
    }
}

/// The `lead` an intent node was given.
fn lead_input(input: &Value) -> Result<&str, ConnectorError> {
    input
        .get("lead")
        .and_then(Value::as_str)
        .ok_or_else(|| ConnectorError::InvalidInput {
            message: format!("lead must be a lead id (a string), not {}", input["lead"]),
        })
}
