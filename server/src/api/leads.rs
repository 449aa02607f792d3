//! Leads: import, list (filtered, paged) and the lead card (attributes, identities, score with its
//! explanation as of now, a one-line behaviour summary, recent timeline).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use trellis_model::scoring::{Stage, Tier};
use utoipa::{IntoParams, ToSchema};

use crate::api::body::ApiJson;
use crate::auth::{Caller, Role};
use crate::db::entities::{account, event, lead, lead_identity, lead_score};
use crate::error::{ApiError, ApiResult};
use crate::leads::{IDENTITY_KINDS, Lead, select_leads};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeadQuery {
    /// `cold`, `warm` or `hot`.
    pub tier: Option<String>,
    /// `lead`, `mql` or `sql`.
    pub stage: Option<String>,
    pub owner: Option<String>,
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    /// Words the lead's id or attributes (name, company, anything) contain, any case.
    pub q: Option<String>,
    /// Only leads with this tag.
    pub tag: Option<String>,
    /// 1-based page (default 1).
    pub page: Option<u64>,
    /// Page size, 1–200 (default 50).
    pub per_page: Option<u64>,
    /// Also give each lead's attributes and behaviour state: what the studio rescores in
    /// the browser while weights are edited.
    pub with_state: Option<bool>,
}

/// `page` (1-based, default 1) and `per_page` (1–200, default 50) of a list query.
fn paging(page: Option<u64>, per_page: Option<u64>) -> ApiResult<(u64, u64)> {
    let per_page = per_page.unwrap_or(50);
    if !(1..=200).contains(&per_page) {
        return Err(ApiError::invalid("per_page", "per_page is 1–200"));
    }
    Ok((page.unwrap_or(1).max(1), per_page))
}

/// A tier or stage named by query parameter `param`, one of `allowed`.
fn level<T: serde::de::DeserializeOwned>(
    value: Option<&str>,
    param: &str,
    allowed: &str,
) -> ApiResult<Option<T>> {
    value
        .map(|v| {
            serde_json::from_value(Value::String(v.to_owned()))
                .map_err(|_| ApiError::invalid(param, format!("{param} is {allowed}")))
        })
        .transpose()
}

/// The leads a list query selects (not merged), before order and paging.
fn filtered(
    state: &AppState,
    caller: &Caller,
    q: &LeadQuery,
) -> ApiResult<sea_orm::Select<lead::Entity>> {
    use sea_orm::sea_query::{Expr as SqlExpr, ExprTrait, Func};
    let tier: Option<Tier> = level(q.tier.as_deref(), "tier", "cold, warm or hot")?;
    let stage: Option<Stage> = level(q.stage.as_deref(), "stage", "lead, mql or sql")?;
    let mut find = select_leads()
        .filter(lead::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .filter(lead::Column::MergedInto.is_null());
    if let Some(t) = tier {
        find = find.filter(lead_score::Column::Tier.eq(t));
    }
    if let Some(s) = stage {
        find = find.filter(lead_score::Column::Stage.eq(s));
    }
    if let Some(o) = q.owner.as_deref().filter(|o| !o.trim().is_empty()) {
        find = find.filter(lead::Column::Owner.eq(o.trim()));
    }
    if let Some(min) = q.min_score {
        find = find.filter(lead_score::Column::Score.gte(min));
    }
    if let Some(max) = q.max_score {
        find = find.filter(lead_score::Column::Score.lte(max));
    }
    if let Some(words) = q.q.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        if words.chars().count() > 100 {
            return Err(ApiError::invalid(
                "/q",
                "a search has at most 100 characters",
            ));
        }
        // LIKE's own characters are searched for as themselves.
        let pattern = format!(
            "%{}%",
            words
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let text = |col: SqlExpr| Func::lower(col.cast_as("TEXT"));
        find = find.filter(
            sea_orm::Condition::any()
                .add(
                    text(SqlExpr::col((lead::Entity, lead::Column::Id)))
                        .like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\')),
                )
                .add(
                    text(SqlExpr::col((lead::Entity, lead::Column::Attributes)))
                        .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
                ),
        );
    }
    if let Some(tag) = q.tag.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let holds = if crate::db::is_postgres(&state.db) {
            SqlExpr::cust_with_values("leads.attributes -> 'tags' ? $1", [tag.to_owned()])
        } else {
            SqlExpr::cust_with_values(
                "EXISTS (SELECT 1 FROM json_each(leads.attributes, '$.tags') WHERE json_each.value = ?)",
                [tag.to_owned()],
            )
        };
        find = find.filter(holds);
    }
    Ok(find)
}

fn summary_row(l: &Lead) -> Value {
    json!({
        "id": l.id,
        "name": l.attributes.get("name"),
        "company": l.attributes.get("company"),
        "tags": crate::lead_actions::tags_of(&l.attributes),
        "account_id": l.account_id,
        "owner": l.owner,
        "score": l.score,
        "tier": l.tier,
        "stage": l.stage,
        "probability": l.probability,
        "model_version": l.model_version,
        "last_event_at": l.last_event_at.and_then(DateTime::<Utc>::from_timestamp_millis),
        "updated_at": l.updated_at,
    })
}

/// Leads, best score first.
#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", params(LeadQuery),
    responses((status = 200, description = "`{leads, total, page, per_page}`", body = Object)))]
pub async fn list_leads(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<LeadQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("", e.to_string()))?;
    let (page, per_page) = paging(q.page, q.per_page)?;
    let find = filtered(&state, &caller, &q)?;
    let total = find.clone().count(&state.db).await?;
    let rows = find
        .order_by_desc(lead_score::Column::Score)
        .order_by_asc(lead::Column::Id)
        .offset((page - 1) * per_page)
        .limit(per_page)
        .into_model::<Lead>()
        .all(&state.db)
        .await?;
    Ok(Json(json!({
        "leads": rows.iter().map(|l| {
            let mut row = summary_row(l);
            if q.with_state == Some(true) {
                row["attributes"] = l.attributes.clone();
                row["state"] = l.state.clone();
            }
            row
        }).collect::<Vec<_>>(),
        "total": total,
        "page": page,
        "per_page": per_page,
    })))
}

/// The most leads one export holds.
pub const MAX_EXPORT: u64 = 50_000;

/// The leads a list query selects, best score first, as CSV (UTF-8 with a byte-order mark,
/// so spreadsheet programs read the Chinese right): id, name, company, owner, score, tier,
/// stage, tags, last activity. At most [`MAX_EXPORT`] rows; paging is ignored.
#[utoipa::path(get, path = "/api/v1/leads/export", tag = "leads", params(LeadQuery),
    responses((status = 200, description = "text/csv", content_type = "text/csv")))]
pub async fn export_leads(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<LeadQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let Query(q) = query.map_err(|e| ApiError::invalid("", e.to_string()))?;
    let rows = filtered(&state, &caller, &q)?
        .order_by_desc(lead_score::Column::Score)
        .order_by_asc(lead::Column::Id)
        .limit(MAX_EXPORT)
        .into_model::<Lead>()
        .all(&state.db)
        .await?;
    let mut out = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    out.write_record([
        "id",
        "name",
        "company",
        "owner",
        "score",
        "tier",
        "stage",
        "tags",
        "last_activity",
    ])
    .map_err(ApiError::internal)?;
    for l in &rows {
        out.write_record([
            l.id.clone(),
            text(l.attributes.get("name")),
            text(l.attributes.get("company")),
            l.owner.clone().unwrap_or_default(),
            format!("{:.1}", l.score),
            json!(l.tier).as_str().unwrap_or_default().to_owned(),
            json!(l.stage).as_str().unwrap_or_default().to_owned(),
            crate::lead_actions::tags_of(&l.attributes).join(";"),
            l.last_event_at
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        ])
        .map_err(ApiError::internal)?;
    }
    let body = out.into_inner().map_err(ApiError::internal)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"leads.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeadAt {
    /// Score as of this time (RFC 3339; default now): decayed behaviour counts less later.
    pub at: Option<DateTime<Utc>>,
}

/// One lead: attributes, identities, its score as of now (or `at`) with each feature's
/// contribution, and its 50 latest events. A merged lead answers with the lead it was
/// merged into.
#[utoipa::path(get, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = String, Path), LeadAt),
    responses((status = 200, description = "lead card", body = Object), (status = 404, description = "no such lead")))]
pub async fn get_lead(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<LeadAt>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ApiError::invalid("at", e.to_string()))?;
    let workspace = caller.workspace_id.as_str();
    let row = crate::leads::find(&state.db, workspace, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("lead {id:?} does not exist")))?;
    let identities: Vec<Value> = lead_identity::Entity::find()
        .filter(lead_identity::Column::WorkspaceId.eq(workspace))
        .filter(lead_identity::Column::LeadId.eq(row.id.as_str()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|i| json!({ "kind": i.kind, "value": i.value }))
        .collect();
    let timeline: Vec<Value> = event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(workspace))
        .filter(event::Column::LeadId.eq(row.id.as_str()))
        .order_by_desc(event::Column::Timestamp)
        .limit(50)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|e| json!({ "id": e.id, "name": e.name, "properties": e.properties, "timestamp": e.timestamp }))
        .collect();
    let at = q.at.unwrap_or_else(Utc::now).timestamp_millis();
    let published = state
        .intent
        .models
        .published(&state.db, workspace)
        .await
        .map_err(ApiError::internal)?;
    let scored = match published {
        Some((version, model)) => {
            let state = crate::leads::state_of(&row.state);
            let s = model.score(&row.attributes, &state, at);
            json!({
                "score": s.score, "tier": s.tier, "stage": s.stage, "probability": s.probability,
                "contributions": s.contributions, "model_version": version,
                "explanation": s.contributions.iter().map(|c| c.explanation.clone()).collect::<Vec<_>>(),
                "explanation_en": s.contributions.iter().map(|c| c.explanation_en.clone()).collect::<Vec<_>>(),
                "at": DateTime::<Utc>::from_timestamp_millis(at),
            })
        }
        None => Value::Null,
    };
    let mut out = summary_row(&row);
    out["attributes"] = row.attributes.clone();
    out["identities"] = json!(identities);
    out["account"] = match &row.account_id {
        Some(a) => account::Entity::find_by_id((workspace.to_owned(), a.clone()))
            .one(&state.db)
            .await?
            .map_or(
                Value::Null,
                |a| json!({ "id": a.id, "name": a.name, "attributes": a.attributes }),
            ),
        None => Value::Null,
    };
    out["current"] = scored.clone();
    out["stored"] = json!({
        "score": row.score, "tier": row.tier, "stage": row.stage,
        "scored_at": DateTime::<Utc>::from_timestamp_millis(row.scored_at),
    });
    let score_facts = match &scored {
        Value::Null => crate::leads::score_facts(&row),
        s => {
            json!({ "score": s["score"], "tier": s["tier"], "stage": s["stage"], "probability": s["probability"] })
        }
    };
    let events = crate::leads::events_of(&state.db, workspace, &row.id).await?;
    let facts = crate::leads::facts(&row, &events, score_facts, at);
    let rules = crate::leads::nba_rules(&state.db, workspace)
        .await
        .map_err(ApiError::internal)?;
    out["next_actions"] = json!(rules.next_actions(&facts, 3));
    out["signals"] = json!(facts.signals);
    // What the customer said, as read, with any correction, for labelling from the card.
    out["utterances"] = json!(crate::leads::utterances(&events, at, 10));
    // What the next-best-action rules read, so the rules page can try a draft on this lead.
    out["facts"] = json!(facts);
    out["summary"] = json!(trellis_model::summary::summarize(&events, at, 7));
    out["timeline"] = json!(timeline);
    // What the lead may receive now, per channel, and why not where it may not.
    out["contact"] = state
        .contacts
        .may_receive(&state.db, workspace, &row, Utc::now().timestamp_millis())
        .await?;
    if row.id != id {
        out["merged_from"] = json!(id);
    }
    Ok(Json(out))
}

/// Most leads one import call takes; `trellis leads import` sends batches of 1,000.
pub const MAX_IMPORT: usize = 5_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    pub leads: Vec<ImportLead>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportLead {
    /// The lead's id (an existing lead is updated).
    pub id: String,
    /// Attributes to set; `null` removes one. An outcome column for backtests is an
    /// attribute like any other.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub owner: Option<String>,
    /// `{user_id | external_contact_id | email | phone | anonymous_id: value}`.
    #[serde(default)]
    pub identities: BTreeMap<String, String>,
}

/// Imports leads (a CRM export, history with outcomes), in one transaction: each is created
/// or updated and rescored with the published model. A backfill records no
/// `lead.tier_changed` events.
#[utoipa::path(post, path = "/api/v1/leads/import", tag = "leads", request_body = ImportIn,
    responses((status = 200, description = "`{created, updated}`", body = Object), (status = 422, description = "a bad lead, with its pointer")))]
pub async fn import_leads(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ImportIn>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Operator)?;
    if body.leads.len() > MAX_IMPORT {
        return Err(ApiError::invalid(
            "/leads",
            format!(
                "at most {MAX_IMPORT} leads per call, not {}",
                body.leads.len()
            ),
        ));
    }
    let mut identities = Vec::with_capacity(body.leads.len());
    for (i, l) in body.leads.iter().enumerate() {
        if l.id.trim().is_empty() || l.id.len() > 200 {
            return Err(ApiError::invalid(
                format!("/leads/{i}/id"),
                "id must be 1-200 characters",
            ));
        }
        let mut ids = Vec::new();
        for (kind, value) in &l.identities {
            if !IDENTITY_KINDS.contains(&kind.as_str()) {
                return Err(ApiError::invalid(
                    format!("/leads/{i}/identities/{kind}"),
                    format!("identity kinds are {}", IDENTITY_KINDS.join(", ")),
                ));
            }
            if value.trim().is_empty() || value.len() > 200 {
                return Err(ApiError::invalid(
                    format!("/leads/{i}/identities/{kind}"),
                    "an identity is 1-200 characters",
                ));
            }
            ids.push((kind.clone(), value.trim().to_owned()));
        }
        identities.push(ids);
    }
    let workspace = caller.workspace_id.as_str();
    let txn = state.db.begin().await?;
    let published = state
        .intent
        .models
        .published(&txn, workspace)
        .await
        .map_err(ApiError::internal)?;
    let (mut created, mut updated) = (0u64, 0u64);
    let mut pending = crate::leads::Pending::new();
    for (l, ids) in body.leads.iter().zip(&identities) {
        let new = crate::leads::upsert(
            &txn,
            published.as_ref(),
            workspace,
            l.id.trim(),
            &l.attributes,
            l.owner.as_deref(),
            ids,
            &mut pending,
        )
        .await
        .map_err(ApiError::internal)?;
        if new {
            created += 1;
        } else {
            updated += 1;
        }
    }
    crate::leads::save_imported(&txn, pending).await?;
    txn.commit().await?;
    // The leads are stored: a failure here only leaves the planner's estimates stale.
    if let Err(e) = crate::db::refresh_lead_statistics(&state.db).await {
        tracing::warn!(error = %e, "refreshing the lead tables' statistics failed");
    }
    Ok(Json(json!({ "created": created, "updated": updated })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    /// 1-based page (default 1).
    pub page: Option<u64>,
    /// Page size, 1–200 (default 50).
    pub per_page: Option<u64>,
}

/// Accounts (companies; a lead's `company` attribute links it), best lead first: each with
/// its number of leads, its best score and how many of its leads are hot.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "leads", params(AccountQuery),
    responses((status = 200, description = "`{accounts: [{id, name, leads, best_score, hot}], total, page, per_page}`", body = Object)))]
pub async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AccountQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    use sea_orm::{ConnectionTrait, Statement};
    let Query(q) = query.map_err(|e| ApiError::invalid("", e.to_string()))?;
    let (page, per_page) = paging(q.page, q.per_page)?;
    let workspace = caller.workspace_id.as_str();
    let total = account::Entity::find()
        .filter(account::Column::WorkspaceId.eq(workspace))
        .count(&state.db)
        .await?;
    let backend = state.db.get_database_backend();
    let p = |n: usize| crate::db::placeholder(backend, n);
    let sql = format!(
        "SELECT a.id AS id, a.name AS name, COUNT(l.id) AS leads, MAX(s.score) AS best_score, \
         SUM(CASE WHEN s.tier = 'hot' THEN 1 ELSE 0 END) AS hot \
         FROM accounts a LEFT JOIN leads l ON l.workspace_id = a.workspace_id \
         AND l.account_id = a.id AND l.merged_into IS NULL \
         LEFT JOIN lead_scores s ON s.workspace_id = l.workspace_id AND s.lead_id = l.id \
         WHERE a.workspace_id = {} GROUP BY a.id, a.name \
         ORDER BY best_score DESC NULLS LAST, a.name, a.id LIMIT {} OFFSET {}",
        p(1),
        p(2),
        p(3)
    );
    let rows = state
        .db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                workspace.into(),
                (per_page as i64).into(),
                (((page - 1) * per_page) as i64).into(),
            ],
        ))
        .await?;
    let mut accounts = Vec::with_capacity(rows.len());
    for r in rows {
        accounts.push(json!({
            "id": r.try_get::<String>("", "id")?,
            "name": r.try_get::<String>("", "name")?,
            "leads": r.try_get::<i64>("", "leads")?,
            "best_score": r.try_get::<Option<f64>>("", "best_score")?,
            "hot": r.try_get::<Option<i64>>("", "hot")?.unwrap_or(0),
        }));
    }
    Ok(Json(json!({
        "accounts": accounts,
        "total": total,
        "page": page,
        "per_page": per_page,
    })))
}

/// One account with its leads, best score first.
#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "leads", params(("id" = String, Path)),
    responses((status = 200, description = "`{id, name, attributes, leads}`", body = Object), (status = 404, description = "no such account")))]
pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let workspace = caller.workspace_id.as_str();
    let a = account::Entity::find_by_id((workspace.to_owned(), id.clone()))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("account {id:?} does not exist")))?;
    let leads = select_leads()
        .filter(lead::Column::WorkspaceId.eq(workspace))
        .filter(lead::Column::AccountId.eq(id.as_str()))
        .filter(lead::Column::MergedInto.is_null())
        .order_by_desc(lead_score::Column::Score)
        .order_by_asc(lead::Column::Id)
        .limit(500)
        .into_model::<Lead>()
        .all(&state.db)
        .await?;
    Ok(Json(json!({
        "id": a.id,
        "name": a.name,
        "attributes": a.attributes,
        "created_at": a.created_at,
        "leads": leads.iter().map(summary_row).collect::<Vec<_>>(),
    })))
}
