//! The connector registry API: publish components, list versions, enable or disable them,
//! grant capabilities, set write-only secrets and per-connector limits.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_runtime::connector::{Limits, Manifest};
use utoipa::ToSchema;

use super::audit;
use crate::api::body::ApiJson;
use crate::auth::{Caller, Role};
use crate::connectors::{PublishError, host_declared, kind};
use crate::db::entities::{
    connector, connector_grant, connector_poll, connector_secret, connector_version,
};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;

/// Publishes a component (`application/wasm` body). A new version is enabled at once;
/// publishing the same bytes again answers 200.
#[utoipa::path(post, path = "/api/v1/connectors", tag = "connectors",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, description = "published", body = Object),
              (status = 200, description = "this exact component was already published", body = Object),
              (status = 409, description = "the version exists with other content"),
              (status = 422, description = "not a component of the trellis:connector world, or an invalid manifest")))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "",
            "send the component's bytes as the request body (Content-Type: application/wasm)",
        ));
    }
    let registry = state.registry()?;
    let published = registry
        .publish(&caller.workspace_id, &caller.name, body.to_vec())
        .await
        .map_err(|e| match e {
            PublishError::Invalid(e) => {
                let problems = match &e {
                    trellis_runtime::connector::LoadError::InvalidManifest(p) => p.clone(),
                    other => vec![other.to_string()],
                };
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid connector",
                    e.to_string(),
                )
                .with_extra(json!({ "problems": problems }))
            }
            e @ PublishError::VersionTaken { .. } => ApiError::conflict(e.to_string()),
            PublishError::Internal(e) => ApiError::internal(format!("{e:#}")),
        })?;
    let m = &published.manifest;
    if published.created {
        audit(
            &state.db,
            &caller,
            "connector.publish",
            &m.name,
            json!({ "version": m.version, "sha256": published.sha256 }),
        )
        .await?;
    }
    let status = if published.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({
            "name": m.name,
            "version": m.version,
            "reference": format!("{}@{}", m.name, m.major()),
            "sha256": published.sha256,
            "enabled": true,
            "manifest": m.as_ref(),
        })),
    ))
}

/// Everything about one connector for the admin page; secret values never appear.
async fn describe(state: &AppState, workspace: &str, name: &str) -> ApiResult<Option<Value>> {
    let registry = state.registry()?;
    let versions: Vec<connector_version::Model> = registry
        .versions(workspace)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|v| v.name == name)
        .collect();
    let Some(latest) = versions.first() else {
        return Ok(None);
    };
    let manifest: Manifest = serde_json::from_str(&latest.manifest).map_err(ApiError::internal)?;
    let requested = requested(&versions);
    let grants = registry
        .grant_rows(workspace, name)
        .await
        .map_err(ApiError::internal)?;
    let granted = |k: &str| -> Vec<String> {
        grants
            .iter()
            .filter(|g| g.kind == k)
            .map(|g| g.value.clone())
            .collect()
    };
    let set = registry
        .secrets_set(workspace, name)
        .await
        .map_err(ApiError::internal)?;
    let limits = registry
        .limits(workspace, name)
        .await
        .map_err(ApiError::internal)?;
    let poll = connector_poll::Entity::find_by_id((workspace.to_owned(), name.to_owned()))
        .one(&state.db)
        .await?
        .map(|p| {
            json!({
                "interval_seconds": p.interval_seconds,
                "enabled": p.enabled,
                "config": p.config,
                "cursor": p.cursor,
                "last_polled_at": p.last_polled_at,
                "last_error": p.last_error.and_then(|e| serde_json::from_str::<Value>(&e).ok()),
            })
        });
    let inbound_health = if manifest.inbound {
        state.inbound.read(&state.db, workspace, name).await?
    } else {
        None
    };
    Ok(Some(json!({
        "poll": poll,
        "inbound_health": inbound_health,
        "polls": manifest.poll,
        "inbound": manifest.inbound,
        "name": name,
        "display": manifest.display,
        "description": manifest.description,
        "latest": latest.version,
        "versions": versions.iter().map(|v| json!({
            "version": v.version,
            "reference": format!("{}@{}", v.name, v.major),
            "sha256": v.sha256,
            "enabled": v.enabled,
            "created_at": v.created_at,
            "created_by": v.created_by,
            "operations": serde_json::from_str::<Manifest>(&v.manifest)
                .map(|m| m.operations.iter().map(|o| json!({
                    "name": o.name, "display": o.display, "side_effects": o.side_effects,
                })).collect::<Vec<_>>())
                .unwrap_or_default(),
        })).collect::<Vec<_>>(),
        "requested": {
            "hosts": requested.hosts,
            "secrets": requested.secrets,
            "kv": requested.kv,
        },
        "grants": {
            "hosts": granted(kind::HOST),
            "secrets": granted(kind::SECRET),
            "kv": !granted(kind::KV).is_empty(),
        },
        "secrets": requested.secrets.iter().map(|s| json!({
            "name": s,
            "set": set.contains(s),
        })).collect::<Vec<_>>(),
        "limits": limits,
        "default_limits": Limits::default(),
    })))
}

struct Requested {
    hosts: Vec<String>,
    secrets: Vec<String>,
    kv: bool,
}

/// The union of what every version of a connector asks for.
fn requested(versions: &[connector_version::Model]) -> Requested {
    let mut hosts = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut kv = false;
    for v in versions {
        if let Ok(m) = serde_json::from_str::<Manifest>(&v.manifest) {
            hosts.extend(m.capabilities.hosts);
            secrets.extend(m.capabilities.secrets);
            kv |= m.capabilities.kv;
        }
    }
    Requested {
        hosts: hosts.into_iter().collect(),
        secrets: secrets.into_iter().collect(),
        kv,
    }
}

/// Connectors in the caller's workspace with versions, requested capabilities, grants and
/// which secrets are set.
#[utoipa::path(get, path = "/api/v1/connectors", tag = "connectors",
    responses((status = 200, description = "`{connectors: [...]}`", body = Object)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let registry = state.registry()?;
    let names: BTreeSet<String> = registry
        .versions(&caller.workspace_id)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|v| v.name)
        .collect();
    let mut out = Vec::new();
    for name in names {
        if let Some(c) = describe(&state, &caller.workspace_id, &name).await? {
            out.push(c);
        }
    }
    Ok(Json(json!({ "connectors": out })))
}

async fn found(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Value> {
    describe(state, &caller.workspace_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no connector {name:?} in this workspace")))
}

#[utoipa::path(get, path = "/api/v1/connectors/{name}", tag = "connectors",
    params(("name" = String, Path)), responses((status = 200, body = Object), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(found(&state, &caller, &name).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionPatch {
    pub enabled: bool,
}

/// Enables or disables one version. Flows reference `name@major`, which runs the highest
/// enabled version of that major; runs already pinned to a version keep it.
#[utoipa::path(patch, path = "/api/v1/connectors/{name}/versions/{version}", tag = "connectors",
    params(("name" = String, Path), ("version" = String, Path)), request_body = VersionPatch,
    responses((status = 200, body = Object), (status = 404)))]
pub async fn patch_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
    ApiJson(body): ApiJson<VersionPatch>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let row = connector_version::Entity::find_by_id((
        caller.workspace_id.clone(),
        name.clone(),
        version.clone(),
    ))
    .one(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no version {version:?} of {name:?}")))?;
    let mut active: connector_version::ActiveModel = row.into();
    active.enabled = Set(body.enabled);
    connector_version::Entity::update(active)
        .exec(&state.db)
        .await?;
    state.registry()?.forget(&caller.workspace_id, &name);
    audit(
        &state.db,
        &caller,
        if body.enabled {
            "connector.enable"
        } else {
            "connector.disable"
        },
        &name,
        json!({ "version": version }),
    )
    .await?;
    Ok(Json(found(&state, &caller, &name).await?))
}

/// The full set of grants for a connector in the caller's workspace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantSet {
    /// Host patterns, each within one the connector declared.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Secret names the connector declared.
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub kv: bool,
}

#[utoipa::path(get, path = "/api/v1/connectors/{name}/grants", tag = "connectors",
    params(("name" = String, Path)), responses((status = 200, body = Object)))]
pub async fn get_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = found(&state, &caller, &name).await?;
    Ok(Json(
        json!({ "requested": c["requested"], "grants": c["grants"] }),
    ))
}

/// Replaces the connector's grants (grant = add to the set, revoke = remove from it).
/// Each item must be something the connector asked for.
#[utoipa::path(put, path = "/api/v1/connectors/{name}/grants", tag = "connectors",
    params(("name" = String, Path)), request_body = GrantSet,
    responses((status = 200, body = Object), (status = 422, description = "an item the connector did not ask for")))]
pub async fn put_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<GrantSet>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let registry = state.registry()?;
    let versions: Vec<connector_version::Model> = registry
        .versions(&caller.workspace_id)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|v| v.name == name)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "no connector {name:?} in this workspace"
        )));
    }
    let requested = requested(&versions);
    for (i, host) in body.hosts.iter().enumerate() {
        if let Err(e) = trellis_runtime::connector::check_host_pattern(host) {
            return Err(ApiError::invalid(format!("/hosts/{i}"), e));
        }
        if !host_declared(&requested.hosts, host) {
            return Err(ApiError::invalid(
                format!("/hosts/{i}"),
                format!(
                    "{name} did not ask for host {host:?}; it asked for: {}",
                    requested.hosts.join(", ")
                ),
            ));
        }
    }
    for (i, secret) in body.secrets.iter().enumerate() {
        if !requested.secrets.contains(secret) {
            return Err(ApiError::invalid(
                format!("/secrets/{i}"),
                format!("{name} did not ask for secret {secret:?}"),
            ));
        }
    }
    if body.kv && !requested.kv {
        return Err(ApiError::invalid(
            "/kv",
            format!("{name} did not ask for the key-value store"),
        ));
    }
    let now = Utc::now();
    let row = |k: &str, v: &str| connector_grant::ActiveModel {
        workspace_id: Set(caller.workspace_id.clone()),
        name: Set(name.clone()),
        kind: Set(k.to_owned()),
        value: Set(v.to_owned()),
        granted_by: Set(caller.name.clone()),
        granted_at: Set(now),
    };
    let mut rows: Vec<connector_grant::ActiveModel> = Vec::new();
    let hosts: BTreeSet<&String> = body.hosts.iter().collect();
    let secrets: BTreeSet<&String> = body.secrets.iter().collect();
    rows.extend(hosts.iter().map(|h| row(kind::HOST, h)));
    rows.extend(secrets.iter().map(|s| row(kind::SECRET, s)));
    if body.kv {
        rows.push(row(kind::KV, "store"));
    }
    let txn = state.db.begin().await?;
    connector_grant::Entity::delete_many()
        .filter(connector_grant::Column::WorkspaceId.eq(caller.workspace_id.as_str()))
        .filter(connector_grant::Column::Name.eq(name.as_str()))
        .exec(&txn)
        .await?;
    if !rows.is_empty() {
        connector_grant::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
    }
    audit(
        &txn,
        &caller,
        "connector.grants",
        &name,
        json!({ "hosts": hosts, "secrets": secrets, "kv": body.kv }),
    )
    .await?;
    txn.commit().await?;
    state.registry()?.forget(&caller.workspace_id, &name);
    get_grants(State(state), caller, Path(name)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    pub value: String,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// Sets a secret (write-only: no endpoint returns it). The name must be one the connector
/// declared.
#[utoipa::path(put, path = "/api/v1/connectors/{name}/secrets/{secret}", tag = "connectors",
    params(("name" = String, Path), ("secret" = String, Path)), request_body = SecretValue,
    responses((status = 204), (status = 422)))]
pub async fn put_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, secret)): Path<(String, String)>,
    ApiJson(body): ApiJson<SecretValue>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let c = found(&state, &caller, &name).await?;
    let declared = c["requested"]["secrets"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s == secret.as_str()));
    if !declared {
        return Err(ApiError::not_found(format!(
            "{name} declares no secret {secret:?}"
        )));
    }
    if body.value.is_empty() || body.value.len() > 16 << 10 {
        return Err(ApiError::invalid("/value", "a secret is 1 byte to 16 KiB"));
    }
    state
        .registry()?
        .set_secret(&caller.workspace_id, &name, &secret, &body.value)
        .await
        .map_err(ApiError::internal)?;
    audit(
        &state.db,
        &caller,
        "connector.secret.set",
        &name,
        json!({ "secret": secret }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/connectors/{name}/secrets/{secret}", tag = "connectors",
    params(("name" = String, Path), ("secret" = String, Path)), responses((status = 204)))]
pub async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, secret)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    connector_secret::Entity::delete_by_id((
        caller.workspace_id.clone(),
        name.clone(),
        secret.clone(),
    ))
    .exec(&state.db)
    .await?;
    state.registry()?.forget(&caller.workspace_id, &name);
    audit(
        &state.db,
        &caller,
        "connector.secret.delete",
        &name,
        json!({ "secret": secret }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the connector's per-call limits (memory, time, fuel, output and response sizes).
#[utoipa::path(put, path = "/api/v1/connectors/{name}/limits", tag = "connectors",
    params(("name" = String, Path)), request_body = Object,
    responses((status = 200, body = Object), (status = 422)))]
pub async fn put_limits(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(limits): ApiJson<Limits>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    if let Err(e) = limits.check() {
        let field = e.split(':').next().unwrap_or_default().to_owned();
        return Err(ApiError::invalid(format!("/{field}"), e));
    }
    let row = connector::Entity::find_by_id((caller.workspace_id.clone(), name.clone()))
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no connector {name:?} in this workspace")))?;
    let mut active: connector::ActiveModel = row.into();
    active.limits = Set(Some(
        serde_json::to_value(limits).map_err(ApiError::internal)?,
    ));
    connector::Entity::update(active).exec(&state.db).await?;
    state.registry()?.forget(&caller.workspace_id, &name);
    audit(&state.db, &caller, "connector.limits", &name, json!(limits)).await?;
    Ok(Json(found(&state, &caller, &name).await?))
}

/// How often to poll a connector in this workspace, and with what config.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSettings {
    /// Seconds between polls, 1 to 86,400.
    pub interval_seconds: i64,
    /// Passed to the connector's `poll` (an object).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Value,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Sets the connector's poll schedule in the caller's workspace; the first poll is due
/// at once. The cursor the connector returned last is kept.
#[utoipa::path(put, path = "/api/v1/connectors/{name}/poll", tag = "connectors",
    params(("name" = String, Path)), request_body = PollSettings,
    responses((status = 200, body = Object), (status = 422, description = "bad interval or config, or the connector does not poll")))]
pub async fn put_poll(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PollSettings>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    if !(1..=86_400).contains(&body.interval_seconds) {
        return Err(ApiError::invalid(
            "/interval_seconds",
            "the interval is 1 to 86,400 seconds",
        ));
    }
    let config = if body.config.is_null() {
        json!({})
    } else {
        body.config.clone()
    };
    if !config.is_object() {
        return Err(ApiError::invalid("/config", "config must be an object"));
    }
    let registry = state.registry()?;
    let polls = registry
        .versions(&caller.workspace_id)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|v| v.name == name && v.enabled)
        .any(|v| serde_json::from_str::<Manifest>(&v.manifest).is_ok_and(|m| m.poll));
    if !polls {
        return Err(ApiError::invalid(
            "",
            format!("no enabled version of {name:?} polls (its manifest does not declare `poll`)"),
        ));
    }
    let now = Utc::now();
    connector_poll::Entity::insert(connector_poll::ActiveModel {
        workspace_id: Set(caller.workspace_id.clone()),
        name: Set(name.clone()),
        config: Set(config.clone()),
        interval_seconds: Set(body.interval_seconds),
        enabled: Set(body.enabled),
        cursor: Set(None),
        next_at: Set(now.timestamp_millis()),
        last_polled_at: Set(None),
        last_error: Set(None),
        updated_at: Set(now),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::columns([
            connector_poll::Column::WorkspaceId,
            connector_poll::Column::Name,
        ])
        .update_columns([
            connector_poll::Column::Config,
            connector_poll::Column::IntervalSeconds,
            connector_poll::Column::Enabled,
            connector_poll::Column::NextAt,
            connector_poll::Column::UpdatedAt,
        ])
        .to_owned(),
    )
    .exec_without_returning(&state.db)
    .await?;
    audit(
        &state.db,
        &caller,
        "connector.poll",
        &name,
        json!({ "interval_seconds": body.interval_seconds, "enabled": body.enabled }),
    )
    .await?;
    Ok(Json(found(&state, &caller, &name).await?))
}
