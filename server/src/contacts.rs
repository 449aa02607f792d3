//! The contact policy at work: before a call that reaches a customer (an operation whose
//! input schema declares `x-trellis-contact`), the worker asks [`Contacts::gate`] in the
//! transaction of the run's checkpoint. The customer the call names is found as a lead by
//! identity; the workspace's policy (`workspace_docs`, kind `contact_policy`; the built-in
//! one until it saves its own) decides on the lead's consent, its recent contacts and its
//! local time. An allowed contact is written there and then, as `pending`, keyed by the
//! call's idempotency key, so the count survives a crash; the checkpoint after the call
//! settles it (`sent`, or `failed`, which does not count). A call whose contact is already
//! written was under way when the server stopped: it may have been delivered, so it is not
//! made again.
//!
//! Consent is revoked by events (a WeCom deletion, an unsubscribe) in the event intake's
//! transaction, or by an admin; [`may_receive`] says what a lead may receive now.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr as SqlExpr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use trellis_model::contact_policy::{
    ContactDecl, ContactPolicy, Decision, HISTORY_MS, LeadContacts, Revocation,
};
use trellis_runtime::connector::ConnectorError;
use trellis_runtime::{CallRequest, CallResult};

use crate::db::entities::consent_revocation::{self, ConsentSource};
use crate::db::entities::contact::{self, ContactState};
use crate::db::entities::doc_version::DocKind;
use crate::db::entities::lead_identity;
use crate::workspace_docs::CompiledDocs;

/// Each workspace's policy, checked.
pub type Policies = CompiledDocs<ContactPolicy>;

/// The policies' cache.
pub fn policies() -> Policies {
    CompiledDocs::new(
        DocKind::ContactPolicy,
        || Ok(ContactPolicy::builtin()),
        |text| {
            let policy: ContactPolicy =
                serde_json::from_str(text).context("stored contact policy")?;
            match policy.problems().first() {
                None => Ok(policy),
                Some((pointer, problem)) => {
                    anyhow::bail!("stored contact policy: {pointer}: {problem}")
                }
            }
        },
    )
}

/// What the policy lets a call do.
#[derive(Debug)]
pub enum Gate {
    /// Allowed; the contact is written (pending) in the caller's transaction.
    Go,
    /// Not made: the result the node gets instead (blocked, deferred, a recipient it cannot
    /// name, or interrupted).
    Instead(CallResult),
}

/// The contact policy's decisions and records.
#[derive(Debug)]
pub struct Contacts {
    pub policies: Policies,
}

impl Default for Contacts {
    fn default() -> Self {
        Contacts {
            policies: policies(),
        }
    }
}

/// The lead a customer's identity belongs to (following merges).
async fn lead_of<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    kind: &str,
    value: &str,
) -> Result<Option<crate::leads::Lead>, sea_orm::DbErr> {
    let Some(identity) = lead_identity::Entity::find_by_id((
        workspace.to_owned(),
        kind.to_owned(),
        value.to_owned(),
    ))
    .one(conn)
    .await?
    else {
        return Ok(None);
    };
    // Locked on PostgreSQL: two calls to one customer decide one after the other.
    crate::leads::find_for_update(conn, workspace, &identity.lead_id).await
}

/// What the policy needs to know of a lead (or, for a customer who is not a lead yet, of
/// the contacts made with that recipient), from `now_ms - HISTORY_MS` on.
async fn history<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    lead: Option<&crate::leads::Lead>,
    recipient: Option<&str>,
    now_ms: i64,
) -> Result<LeadContacts, sea_orm::DbErr> {
    let mut who = Condition::any();
    if let Some(l) = lead {
        who = who.add(contact::Column::LeadId.eq(l.id.as_str()));
    }
    if let Some(r) = recipient {
        who = who.add(contact::Column::Recipient.eq(r));
    }
    let sent = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(workspace))
        .filter(who)
        .filter(contact::Column::State.ne(ContactState::Failed))
        .filter(contact::Column::AtMs.gte(now_ms - HISTORY_MS))
        .all(conn)
        .await?
        .into_iter()
        .map(|c| (c.channel, c.at_ms))
        .collect();
    let revoked = match lead {
        None => Vec::new(),
        Some(l) => revocations(conn, workspace, &l.id)
            .await?
            .into_iter()
            .map(|r| Revocation {
                channel: r.channel,
                reason: r.reason,
                at_ms: r.at_ms,
            })
            .collect(),
    };
    Ok(LeadContacts {
        time_zone: lead
            .and_then(|l| l.attributes.get("time_zone"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        revoked,
        sent,
    })
}

async fn revocations<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    lead_id: &str,
) -> Result<Vec<consent_revocation::Model>, sea_orm::DbErr> {
    consent_revocation::Entity::find()
        .filter(consent_revocation::Column::WorkspaceId.eq(workspace))
        .filter(consent_revocation::Column::LeadId.eq(lead_id))
        .order_by_asc(consent_revocation::Column::AtMs)
        .all(conn)
        .await
}

impl Contacts {
    /// The workspace's policy; a stored one that no longer checks out gives way to the
    /// built-in one (logged), so a bad document never lets every call through.
    async fn policy<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
    ) -> std::sync::Arc<ContactPolicy> {
        match self.policies.get(conn, workspace).await {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(workspace, %error, "the built-in contact policy applies");
                std::sync::Arc::new(ContactPolicy::builtin())
            }
        }
    }

    /// Decides `request` (declared by `decl`) in `txn`, the run's checkpoint before the
    /// call, and writes the contact when it is allowed.
    pub async fn gate<C: ConnectionTrait>(
        &self,
        txn: &C,
        workspace: &str,
        run_id: &str,
        decl: &ContactDecl,
        request: &CallRequest,
        now: DateTime<Utc>,
    ) -> Result<Gate, sea_orm::DbErr> {
        let key = request.idempotency_key.as_str();
        if contact::Entity::find_by_id((workspace.to_owned(), key.to_owned()))
            .one(txn)
            .await?
            .is_some()
        {
            return Ok(Gate::Instead(CallResult::Err {
                error: ConnectorError::Interrupted {
                    message: "服务在发送途中停止，消息可能已送达客户；为避免重复打扰，不再重发（已计入频次） / the server stopped while this message was being sent; it may have reached the customer, so it is not sent again (it counts against the caps)".into(),
                },
                version: None,
            }));
        }
        let value = match decl.recipient_in(&request.input) {
            Ok(v) => v,
            Err(message) => {
                return Ok(Gate::Instead(CallResult::Err {
                    error: ConnectorError::InvalidInput { message },
                    version: None,
                }));
            }
        };
        let recipient = format!("{}:{value}", decl.identity);
        // Two calls to one customer decide one after the other, lead or not yet.
        crate::leads::lock_identity(txn, workspace, &decl.identity, &value).await?;
        let lead = lead_of(txn, workspace, &decl.identity, &value).await?;
        let now_ms = now.timestamp_millis();
        let known = history(txn, workspace, lead.as_ref(), Some(&recipient), now_ms).await?;
        let policy = self.policy(txn, workspace).await;
        let decision = policy.decide(&decl.channel, &known, now_ms);
        let described = |d: &Decision| {
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["channel"] = json!(decl.channel);
            v["recipient"] = json!(recipient);
            v["lead"] = json!(lead.as_ref().map(|l| l.id.as_str()));
            v
        };
        Ok(match &decision {
            Decision::Allow => {
                contact::Entity::insert(contact::ActiveModel {
                    workspace_id: Set(workspace.to_owned()),
                    idempotency_key: Set(key.to_owned()),
                    lead_id: Set(lead.as_ref().map(|l| l.id.clone())),
                    recipient: Set(recipient.clone()),
                    channel: Set(decl.channel.clone()),
                    run_id: Set(run_id.to_owned()),
                    node: Set(request.node.clone()),
                    state: Set(ContactState::Pending),
                    at_ms: Set(now_ms),
                })
                .exec_without_returning(txn)
                .await?;
                metrics::counter!("trellis_contacts_total", "decision" => "allow").increment(1);
                Gate::Go
            }
            Decision::Block { .. } => {
                metrics::counter!("trellis_contacts_total", "decision" => "block").increment(1);
                Gate::Instead(CallResult::Blocked {
                    decision: described(&decision),
                })
            }
            Decision::Wait { until_ms, .. } => {
                metrics::counter!("trellis_contacts_total", "decision" => "wait").increment(1);
                Gate::Instead(CallResult::Deferred {
                    until: DateTime::from_timestamp_millis(*until_ms).unwrap_or(now),
                    decision: described(&decision),
                })
            }
        })
    }

    /// Settles the contact of the call keyed `key` in the checkpoint after it, as
    /// [`outcome`] judged it.
    pub async fn settle<C: ConnectionTrait>(
        &self,
        txn: &C,
        workspace: &str,
        key: &str,
        state: ContactState,
    ) -> Result<(), sea_orm::DbErr> {
        contact::Entity::update_many()
            .col_expr(contact::Column::State, SqlExpr::value(state))
            .filter(contact::Column::WorkspaceId.eq(workspace))
            .filter(contact::Column::IdempotencyKey.eq(key))
            .exec(txn)
            .await?;
        Ok(())
    }

    /// What `lead` may receive now, per channel the policy or its history names: the
    /// decision with its words, the contacts counted, and its revocations.
    pub async fn may_receive<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        lead: &crate::leads::Lead,
        now_ms: i64,
    ) -> Result<Value, sea_orm::DbErr> {
        let known = history(conn, workspace, Some(lead), None, now_ms).await?;
        let policy = self.policy(conn, workspace).await;
        let mut channels: Vec<String> = policy.caps.iter().map(|c| c.channel.clone()).collect();
        channels.extend(known.sent.iter().map(|(c, _)| c.clone()));
        channels.sort();
        channels.dedup();
        let per_channel: Vec<Value> = channels
            .iter()
            .map(|c| {
                let recent: Vec<i64> = known
                    .sent
                    .iter()
                    .filter(|(ch, _)| ch == c)
                    .map(|(_, at)| *at)
                    .collect();
                json!({
                    "channel": c,
                    "decision": policy.decide(c, &known, now_ms),
                    "recent": recent,
                })
            })
            .collect();
        let revoked: Vec<Value> = revocations(conn, workspace, &lead.id)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id, "channel": r.channel, "reason": r.reason,
                    "source": r.source, "event": r.event_id, "author": r.author, "at_ms": r.at_ms,
                })
            })
            .collect();
        Ok(json!({ "channels": per_channel, "revoked": revoked }))
    }
}

/// What a customer call's result means for its contact, and the result the node gets: a
/// success was `sent`; an error that proves nothing went out (refused input, credentials,
/// a definite answer of the provider, a rate limit) `failed`, which does not count; any
/// other (a timeout, a broken connection, a stopped component) may have been delivered:
/// it counts, and the node gets a final `interrupted` error so that no retry sends it again.
/// A success whose output lists the `recipient` among the customers it could not reach
/// (`failed`, as WeCom's group send answers) went to nobody: `failed` too.
pub fn outcome(result: CallResult, recipient: Option<&str>) -> (CallResult, ContactState) {
    let CallResult::Err { error, version } = result else {
        let state = match &result {
            CallResult::Ok { output, .. } if reports_failed(output, recipient) => {
                ContactState::Failed
            }
            CallResult::Ok { .. } => ContactState::Sent,
            _ => ContactState::Failed,
        };
        return (result, state);
    };
    let nothing_sent = match &error {
        ConnectorError::InvalidInput { .. }
        | ConnectorError::AuthFailed { .. }
        | ConnectorError::RateLimited { .. }
        | ConnectorError::NotFound { .. }
        | ConnectorError::CapabilityDenied { .. } => true,
        // A provider's own error code is its answer; 502–504 are the SDK's words for a
        // request whose answer never came.
        ConnectorError::Remote { code, .. } => !(502..=504).contains(code),
        _ => false,
    };
    if nothing_sent {
        return (CallResult::Err { error, version }, ContactState::Failed);
    }
    let error = ConnectorError::Interrupted {
        message: format!(
            "{error}：消息可能已送达客户，为避免重复打扰不再重试（已计入频次） / it may have reached the customer, so it is not tried again (it counts against the caps)"
        ),
    };
    (CallResult::Err { error, version }, ContactState::Unknown)
}

/// Whether a call's output names `recipient` among the customers it could not reach.
fn reports_failed(output: &Value, recipient: Option<&str>) -> bool {
    let (Some(recipient), Some(failed)) =
        (recipient, output.get("failed").and_then(Value::as_array))
    else {
        return false;
    };
    failed.iter().any(|f| f.as_str() == Some(recipient))
}

/// The consent an event revokes: `(channel, reason)` (channel `None`: all).
fn revoked_by(name: &str, properties: &Value) -> Option<(Option<String>, String)> {
    match name {
        "wecom.external_contact_deleted" => Some((
            Some("wecom".into()),
            "销售在企业微信删除了该客户 / the rep removed the customer on WeCom".into(),
        )),
        "wecom.follow_user_deleted" => Some((
            Some("wecom".into()),
            "客户在企业微信删除了销售 / the customer removed the rep on WeCom".into(),
        )),
        "unsubscribe" | "unsubscribed" | "lead.unsubscribed" => {
            let channel = properties
                .get("channel")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            Some((channel, "客户退订 / the customer unsubscribed".into()))
        }
        _ => None,
    }
}

/// In the event intake's transaction: records the revocation an event means for its lead
/// (once per event).
pub async fn revoke_on_event<C: ConnectionTrait>(
    txn: &C,
    workspace: &str,
    lead_id: &str,
    event_id: &str,
    name: &str,
    properties: &Value,
    at_ms: i64,
) -> Result<(), sea_orm::DbErr> {
    let Some((channel, reason)) = revoked_by(name, properties) else {
        return Ok(());
    };
    consent_revocation::Entity::insert(consent_revocation::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        id: Set(format!("event:{event_id}")),
        lead_id: Set(lead_id.to_owned()),
        channel: Set(channel),
        reason: Set(reason),
        source: Set(ConsentSource::Event),
        event_id: Set(Some(event_id.to_owned())),
        author: Set(None),
        at_ms: Set(at_ms),
    })
    .on_conflict(
        OnConflict::columns([
            consent_revocation::Column::WorkspaceId,
            consent_revocation::Column::Id,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// An admin revokes a lead's consent (on `channel`, or all); returns the revocation's id.
pub async fn revoke_by_admin<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    lead_id: &str,
    channel: Option<String>,
    reason: String,
    author: &str,
) -> Result<String, sea_orm::DbErr> {
    let id = format!("admin:{}", uuid::Uuid::now_v7());
    consent_revocation::Entity::insert(consent_revocation::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        id: Set(id.clone()),
        lead_id: Set(lead_id.to_owned()),
        channel: Set(channel),
        reason: Set(reason),
        source: Set(ConsentSource::Admin),
        event_id: Set(None),
        author: Set(Some(author.to_owned())),
        at_ms: Set(Utc::now().timestamp_millis()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(id)
}

/// Lifts a revocation (an admin, when the customer agreed again); false when there was none.
pub async fn restore<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    lead_id: &str,
    id: &str,
) -> Result<bool, sea_orm::DbErr> {
    let gone = consent_revocation::Entity::delete_many()
        .filter(consent_revocation::Column::WorkspaceId.eq(workspace))
        .filter(consent_revocation::Column::LeadId.eq(lead_id))
        .filter(consent_revocation::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(gone.rows_affected == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome_of(result: CallResult) -> (CallResult, ContactState) {
        outcome(result, Some("wm1"))
    }

    #[test]
    fn a_customer_the_provider_could_not_include_was_not_contacted() {
        let ok = |output| CallResult::Ok {
            output,
            version: "wecom@0.1.0".into(),
        };
        let (r, state) = outcome(ok(json!({"msgid": "m", "failed": ["wm1"]})), Some("wm1"));
        assert_eq!(state, ContactState::Failed);
        assert!(
            matches!(r, CallResult::Ok { .. }),
            "the node still succeeds"
        );
        let (_, state) = outcome(ok(json!({"msgid": "m", "failed": ["wm2"]})), Some("wm1"));
        assert_eq!(state, ContactState::Sent);
        let (_, state) = outcome(ok(json!({"msgid": "m", "failed": []})), Some("wm1"));
        assert_eq!(state, ContactState::Sent);
    }

    #[test]
    fn a_call_that_may_have_been_delivered_counts_and_is_not_retried() {
        let err = |error| CallResult::Err {
            error,
            version: None,
        };
        let (_, state) = outcome(
            CallResult::Ok {
                output: json!({}),
                version: "wecom@0.1.0".into(),
            },
            Some("wm1"),
        );
        assert_eq!(state, ContactState::Sent);
        let (r, state) = outcome_of(err(ConnectorError::Remote {
            code: 41004,
            message: "invalid external userid".into(),
            retryable: false,
        }));
        assert_eq!(state, ContactState::Failed);
        assert!(matches!(
            r,
            CallResult::Err {
                error: ConnectorError::Remote { .. },
                ..
            }
        ));
        for ambiguous in [
            ConnectorError::Remote {
                code: 504,
                message: "timed out".into(),
                retryable: true,
            },
            ConnectorError::Deadline { limit_ms: 10_000 },
        ] {
            let (r, state) = outcome_of(err(ambiguous));
            assert_eq!(state, ContactState::Unknown);
            match r {
                CallResult::Err { error, .. } => {
                    assert_eq!(error.kind(), "interrupted");
                    assert!(!error.retryable());
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn deletions_on_wecom_and_unsubscribes_revoke_consent() {
        let (ch, why) = revoked_by("wecom.follow_user_deleted", &json!({})).unwrap();
        assert_eq!(ch.as_deref(), Some("wecom"));
        assert!(why.contains("客户"), "{why}");
        assert_eq!(
            revoked_by("unsubscribe", &json!({"channel": "email"}))
                .unwrap()
                .0,
            Some("email".into())
        );
        assert_eq!(revoked_by("unsubscribe", &json!({})).unwrap().0, None);
        assert!(revoked_by("page_view", &json!({})).is_none());
    }
}
