//! People: sign in and out with a session cookie, who is signed in, the workspace's users,
//! invitations and password resets (admins), and redeeming a ticket.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::api::body::ApiJson;
use crate::auth::{Caller, Role, session_cookie};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::users::{self, Invitation, SESSION_COOKIE, SESSION_DAYS, SignedIn};

/// The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's
/// page sends it), for the whole site.
fn set_cookie(value: &str, max_age_days: i64) -> HeaderValue {
    let c = cookie::Cookie::build((SESSION_COOKIE, value.to_owned()))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::days(max_age_days))
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn signed_in_response(status: StatusCode, token: &str, signed: &SignedIn) -> Response {
    let mut resp = (status, Json(json!(signed))).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(token, SESSION_DAYS));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// Email address or phone number.
    pub login: String,
    pub password: String,
    /// The workspace to open (default: the user's first).
    pub workspace: Option<String>,
}

/// Signs in: sets the session cookie and answers who is signed in, with the CSRF value to
/// send in `X-Trellis-CSRF`.
#[utoipa::path(post, path = "/api/v1/session", tag = "users", request_body = SignIn,
    responses((status = 200, description = "`{user, workspace, role, csrf}` and the cookie", body = Object),
        (status = 401, description = "wrong login or password")))]
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let (token, signed) = users::sign_in(
        &state.db,
        &body.login,
        &body.password,
        body.workspace.as_deref(),
    )
    .await?;
    crate::db::audit(
        &state.db,
        &signed.workspace,
        &signed.user.name,
        "user.sign_in",
        &signed.user.id,
        json!({}),
    )
    .await?;
    Ok(signed_in_response(StatusCode::OK, &token, &signed))
}

/// Who is signed in with this browser's session cookie.
#[utoipa::path(get, path = "/api/v1/session", tag = "users",
    responses((status = 200, description = "`{user, workspace, role, csrf}`", body = Object),
        (status = 401, description = "no live session")))]
pub async fn current(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let token = session_cookie(&headers).ok_or_else(|| ApiError::unauthorized("not signed in"))?;
    let signed = users::signed_in(&state.db, &token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session has ended; sign in again"))?;
    let mut resp = Json(json!(signed)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Signs out: ends the session and clears the cookie. Needs the CSRF header.
#[utoipa::path(delete, path = "/api/v1/session", tag = "users",
    responses((status = 204, description = "signed out")))]
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    _caller: Caller,
) -> ApiResult<Response> {
    if let Some(token) = session_cookie(&headers) {
        users::sign_out(&state.db, &token).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    Ok(resp)
}

/// The workspace's users and their roles (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "`{users: [{id, name, email, phone, role, created_at}]}`", body = Object)))]
pub async fn list_users(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let users: Vec<Value> = users::members(&state.db, &caller.workspace_id)
        .await?
        .into_iter()
        .map(|(u, role)| {
            json!({ "id": u.id, "name": u.name, "email": u.email, "phone": u.phone,
                    "role": role, "created_at": u.created_at, "disabled": u.disabled_at.is_some() })
        })
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// The workspace's people as the studio's pickers offer them (owners, recipients): each
/// one's login (email, else phone) and name. For builders and up; disabled people are left
/// out.
#[utoipa::path(get, path = "/api/v1/people", tag = "users",
    responses((status = 200, description = "`{people: [{login, name}]}`", body = Object)))]
pub async fn list_people(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(Role::Builder)?;
    let people: Vec<Value> = users::members(&state.db, &caller.workspace_id)
        .await?
        .into_iter()
        .filter(|(u, _)| u.disabled_at.is_none())
        .filter_map(|(u, _)| {
            let login = u.email.clone().or_else(|| u.phone.clone())?;
            Some(json!({ "login": login, "name": u.name }))
        })
        .collect();
    Ok(Json(json!({ "people": people })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub role: Role,
}

/// Invites someone (admins): the answer holds a one-time ticket (shown once), which the
/// invited person opens in the studio (`#/ticket/<ticket>`) to set a password.
#[utoipa::path(post, path = "/api/v1/users/invites", tag = "users", request_body = NewInvite,
    responses((status = 201, description = "`{ticket, expires_at}`", body = Object)))]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewInvite>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let (ticket, expires) = users::invite(
        &state.db,
        &caller.workspace_id,
        &caller.name,
        Invitation {
            name: body.name.clone(),
            email: body.email,
            phone: body.phone,
            role: body.role,
        },
    )
    .await?;
    crate::api::audit(
        &state.db,
        &caller,
        "user.invite",
        &body.name,
        json!({ "role": body.role }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "ticket": ticket, "expires_at": chrono::DateTime::from_timestamp_millis(expires) }),
        ),
    ))
}

/// Issues a password reset for a user (admins): a one-time ticket, as for an invitation.
#[utoipa::path(post, path = "/api/v1/users/{id}/reset", tag = "users",
    params(("id" = String, Path)),
    responses((status = 201, description = "`{ticket, expires_at}`", body = Object)))]
pub async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let (ticket, expires) =
        users::issue_reset(&state.db, &caller.workspace_id, &caller.name, &id).await?;
    crate::api::audit(&state.db, &caller, "user.reset", &id, json!({})).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "ticket": ticket, "expires_at": chrono::DateTime::from_timestamp_millis(expires) }),
        ),
    ))
}

/// What a ticket is for (no sign-in needed: the ticket is the proof).
#[utoipa::path(get, path = "/api/v1/tickets/{ticket}", tag = "users",
    params(("ticket" = String, Path)),
    responses((status = 200, description = "`{kind, name, email, phone}`", body = Object),
        (status = 404, description = "used, expired or unknown")))]
pub async fn get_ticket(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = users::ticket(&state.db, &ticket).await?;
    Ok(Json(
        json!({ "kind": t.kind, "name": t.name, "email": t.email, "phone": t.phone }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    /// The new password: at least 8 characters.
    pub password: String,
}

/// Redeems a ticket with a password: an invitation makes the account, a reset sets the
/// password (and ends the user's other sessions). Signs in.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket}", tag = "users",
    params(("ticket" = String, Path)), request_body = Redeem,
    responses((status = 200, description = "`{user, workspace, role, csrf}` and the cookie", body = Object)))]
pub async fn redeem(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
    ApiJson(body): ApiJson<Redeem>,
) -> ApiResult<Response> {
    let (token, signed) = users::redeem(&state.db, &ticket, &body.password).await?;
    Ok(signed_in_response(StatusCode::OK, &token, &signed))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// Another role in this workspace.
    pub role: Option<Role>,
    /// `true` disables the account (it cannot sign in; its sessions end), `false` enables
    /// it again.
    pub disabled: Option<bool>,
}

/// Changes a user (admins): their role, or whether the account is disabled. The last
/// enabled admin stays an enabled admin, and nobody disables their own account (409).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path)), request_body = UserChange,
    responses((status = 200, description = "`{id, role?, disabled?}`", body = Object),
        (status = 409, description = "the workspace's last admin, or the caller's own account")))]
pub async fn change_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserChange>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    if body.role.is_none() && body.disabled.is_none() {
        return Err(ApiError::invalid(
            "",
            "say what changes: `role`, `disabled` or both",
        ));
    }
    let me = caller.token_id.strip_prefix("user:");
    // Refused before anything changes, so a combined change is not half done.
    if body.disabled == Some(true) && me == Some(id.as_str()) {
        return Err(users::AccountError::OwnAccount.into());
    }
    let mut out = json!({ "id": id });
    if let Some(role) = body.role {
        users::set_role(&state.db, &caller.workspace_id, &id, role).await?;
        crate::api::audit(
            &state.db,
            &caller,
            "user.role",
            &id,
            json!({ "role": role }),
        )
        .await?;
        out["role"] = json!(role);
    }
    if let Some(disabled) = body.disabled {
        users::set_disabled(&state.db, &caller.workspace_id, me, &id, disabled).await?;
        let what = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        crate::api::audit(&state.db, &caller, what, &id, json!({})).await?;
        out["disabled"] = json!(disabled);
    }
    Ok(Json(out))
}
