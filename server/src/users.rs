//! People who sign in: user accounts with a password hashed by argon2id, their role per
//! workspace, sessions (a random cookie value, kept here only as its SHA-256; CSRF-safe
//! through `SameSite=Strict` and a header derived from the cookie), invitations an admin
//! sends and password resets an admin issues (one-time tickets, also kept as hashes). API
//! tokens ([`crate::auth`]) stay for machines.

use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::Serialize;

use crate::credentials::{Role, hash_token, new_token};
use crate::db::entities::{membership, session, user, user_ticket};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "trellis_session";
/// The header a cookie-signed-in request that changes something must carry.
pub const CSRF_HEADER: &str = "x-trellis-csrf";
/// How long a session lasts.
pub const SESSION_DAYS: i64 = 14;
/// How long an invitation or a reset stays usable.
pub const TICKET_DAYS: i64 = 7;
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

const DAY_MS: i64 = 86_400_000;

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the login or the password is wrong")]
    BadLogin,
    #[error("{detail}")]
    Invalid { pointer: String, detail: String },
    #[error("this link was already used, has expired, or does not exist")]
    BadTicket,
    #[error("{0} is already used by another account")]
    Taken(String),
    #[error("no user {0:?} in this workspace")]
    NoUser(String),
    #[error("the workspace's last admin stays an admin: make someone else admin first")]
    LastAdmin,
    #[error("you cannot disable your own account: another admin can")]
    OwnAccount,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

fn invalid(pointer: &str, detail: impl Into<String>) -> AccountError {
    AccountError::Invalid {
        pointer: pointer.to_owned(),
        detail: detail.into(),
    }
}

/// A password's argon2id hash (PHC string, with its own random salt).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The CSRF value of a session: derived from the cookie's value, which a page on another
/// site can neither read nor compute.
pub fn csrf_of(session_token: &str) -> String {
    hash_token(&format!("csrf:{session_token}"))
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(invalid(
            "/password",
            format!("a password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > 1024 {
        return Err(invalid("/password", "a password has at most 1024 bytes"));
    }
    Ok(())
}

/// An email (lower-cased) or a phone number (digits and a leading `+`), as stored.
fn normalise_login(login: &str) -> (Option<String>, Option<String>) {
    let login = login.trim();
    if login.contains('@') {
        (Some(login.to_lowercase()), None)
    } else {
        let phone: String = login
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        (None, (!phone.is_empty()).then_some(phone))
    }
}

/// Who is signed in, as the studio sees it.
#[derive(Clone, Debug, Serialize)]
pub struct SignedIn {
    pub user: UserView,
    pub workspace: String,
    pub role: Role,
    /// Send this in `X-Trellis-CSRF` with every request that changes something.
    pub csrf: String,
}

impl SignedIn {
    /// What the session `token` of `user` in `workspace` shows the studio.
    fn new(user: &user::Model, workspace: &str, role: Role, token: &str) -> Self {
        SignedIn {
            user: user.into(),
            workspace: workspace.to_owned(),
            role,
            csrf: csrf_of(token),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl From<&user::Model> for UserView {
    fn from(u: &user::Model) -> Self {
        UserView {
            id: u.id.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            phone: u.phone.clone(),
        }
    }
}

async fn find_by_login<C: ConnectionTrait>(
    conn: &C,
    login: &str,
) -> Result<Option<user::Model>, sea_orm::DbErr> {
    let (email, phone) = normalise_login(login);
    let mut q = user::Entity::find();
    match (email, phone) {
        (Some(e), _) => q = q.filter(user::Column::Email.eq(e)),
        (None, Some(p)) => q = q.filter(user::Column::Phone.eq(p)),
        (None, None) => return Ok(None),
    }
    q.one(conn).await
}

/// Starts a session for `user` in `workspace`; gives the cookie's value.
async fn open_session<C: ConnectionTrait>(
    conn: &C,
    user: &user::Model,
    workspace: &str,
    role: Role,
) -> Result<(String, SignedIn), AccountError> {
    let token = format!("trs_{}", &new_token()[4..]);
    let now = Utc::now();
    session::Entity::insert(session::ActiveModel {
        id_hash: Set(hash_token(&token)),
        user_id: Set(user.id.clone()),
        workspace_id: Set(workspace.to_owned()),
        created_at: Set(now),
        expires_at: Set(now.timestamp_millis() + SESSION_DAYS * DAY_MS),
    })
    .exec_without_returning(conn)
    .await?;
    let signed = SignedIn::new(user, workspace, role, &token);
    Ok((token, signed))
}

/// The user's role in `workspace` (or in their first workspace when `None`).
async fn membership_of<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    workspace: Option<&str>,
) -> Result<Option<(String, Role)>, sea_orm::DbErr> {
    let mut q = membership::Entity::find().filter(membership::Column::UserId.eq(user_id));
    if let Some(ws) = workspace {
        q = q.filter(membership::Column::WorkspaceId.eq(ws));
    }
    Ok(q.order_by_asc(membership::Column::CreatedAt)
        .one(conn)
        .await?
        .and_then(|m| Role::parse(&m.role).map(|r| (m.workspace_id, r))))
}

/// Checks a login and password and opens a session. A wrong login costs the same time as
/// a wrong password, so logins cannot be probed.
pub async fn sign_in(
    db: &DatabaseConnection,
    login: &str,
    password: &str,
    workspace: Option<&str>,
) -> Result<(String, SignedIn), AccountError> {
    let found = find_by_login(db, login).await?;
    let hash = found.as_ref().and_then(|u| u.password_hash.clone());
    let ok = match &hash {
        Some(h) => verify_password(h, password),
        None => {
            // Spend what a verification costs.
            let _ = hash_password(password);
            false
        }
    };
    let Some(user) = found.filter(|u| ok && u.disabled_at.is_none()) else {
        return Err(AccountError::BadLogin);
    };
    let Some((ws, role)) = membership_of(db, &user.id, workspace).await? else {
        return Err(AccountError::BadLogin);
    };
    open_session(db, &user, &ws, role).await
}

/// The session a cookie's value opens, if it is live.
pub async fn session_of(
    db: &DatabaseConnection,
    token: &str,
) -> Result<Option<(user::Model, String, Role)>, sea_orm::DbErr> {
    let Some(s) = session::Entity::find_by_id(hash_token(token))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if s.expires_at <= Utc::now().timestamp_millis() {
        return Ok(None);
    }
    let Some(u) = user::Entity::find_by_id(s.user_id.clone())
        .one(db)
        .await?
        .filter(|u| u.disabled_at.is_none())
    else {
        return Ok(None);
    };
    // The role as it is now: a change takes effect at once.
    let Some((ws, role)) = membership_of(db, &u.id, Some(&s.workspace_id)).await? else {
        return Ok(None);
    };
    Ok(Some((u, ws, role)))
}

/// What the studio needs about the session a cookie opens.
pub async fn signed_in(
    db: &DatabaseConnection,
    token: &str,
) -> Result<Option<SignedIn>, sea_orm::DbErr> {
    Ok(session_of(db, token)
        .await?
        .map(|(u, ws, role)| SignedIn::new(&u, &ws, role, token)))
}

/// Ends a session.
pub async fn sign_out(db: &DatabaseConnection, token: &str) -> Result<(), sea_orm::DbErr> {
    session::Entity::delete_by_id(hash_token(token))
        .exec(db)
        .await?;
    Ok(())
}

/// What an admin invites someone as.
#[derive(Clone, Debug)]
pub struct Invitation {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub role: Role,
}

fn blank_ticket() -> user_ticket::Model {
    user_ticket::Model {
        token_hash: String::new(),
        kind: String::new(),
        workspace_id: String::new(),
        user_id: None,
        role: None,
        name: None,
        email: None,
        phone: None,
        created_by: String::new(),
        created_at: Utc::now(),
        expires_at: 0,
        used_at: None,
    }
}

/// Stores `ticket` under a new one-time value; gives the value (shown once) and when it
/// expires (epoch ms).
async fn store_ticket(
    db: &DatabaseConnection,
    ticket: user_ticket::Model,
) -> Result<(String, i64), AccountError> {
    let value = format!("trt_{}", &new_token()[4..]);
    let expires = Utc::now().timestamp_millis() + TICKET_DAYS * DAY_MS;
    user_ticket::ActiveModel::from(user_ticket::Model {
        token_hash: hash_token(&value),
        created_at: Utc::now(),
        expires_at: expires,
        ..ticket
    })
    .insert(db)
    .await?;
    Ok((value, expires))
}

/// Invites someone into `workspace`; gives the ticket (shown once) and its expiry.
pub async fn invite(
    db: &DatabaseConnection,
    workspace: &str,
    by: &str,
    inv: Invitation,
) -> Result<(String, i64), AccountError> {
    let name = inv.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("/name", "a name has 1–100 characters"));
    }
    let email = inv.email.as_deref().and_then(|e| normalise_login(e).0);
    let phone = inv.phone.as_deref().and_then(|p| normalise_login(p).1);
    if email.is_none() && phone.is_none() {
        return Err(invalid(
            "/email",
            "give an email address or a phone number to sign in with",
        ));
    }
    if let Some(e) = &email
        && !e.contains('.')
    {
        return Err(invalid("/email", format!("{e:?} is not an email address")));
    }
    store_ticket(
        db,
        user_ticket::Model {
            kind: "invite".into(),
            workspace_id: workspace.to_owned(),
            role: Some(inv.role.as_str().into()),
            name: Some(name),
            email,
            phone,
            created_by: by.to_owned(),
            ..blank_ticket()
        },
    )
    .await
}

/// Issues a password reset for a user of `workspace`; gives the ticket and its expiry.
pub async fn issue_reset(
    db: &DatabaseConnection,
    workspace: &str,
    by: &str,
    user_id: &str,
) -> Result<(String, i64), AccountError> {
    if membership_of(db, user_id, Some(workspace)).await?.is_none() {
        return Err(AccountError::NoUser(user_id.to_owned()));
    }
    store_ticket(
        db,
        user_ticket::Model {
            kind: "reset".into(),
            workspace_id: workspace.to_owned(),
            user_id: Some(user_id.to_owned()),
            created_by: by.to_owned(),
            ..blank_ticket()
        },
    )
    .await
}

/// A live ticket.
pub async fn ticket(
    db: &DatabaseConnection,
    ticket: &str,
) -> Result<user_ticket::Model, AccountError> {
    user_ticket::Entity::find_by_id(hash_token(ticket))
        .one(db)
        .await?
        .filter(|t| t.used_at.is_none() && t.expires_at > Utc::now().timestamp_millis())
        .ok_or(AccountError::BadTicket)
}

/// Uses a ticket: an invitation makes the account (and its membership), a reset sets the
/// password and ends the user's other sessions. Either way the user is signed in.
pub async fn redeem(
    db: &DatabaseConnection,
    ticket_value: &str,
    password: &str,
) -> Result<(String, SignedIn), AccountError> {
    check_password(password)?;
    let hash = hash_password(password)?;
    let txn = db.begin().await?;
    let t = user_ticket::Entity::find_by_id(hash_token(ticket_value))
        .lock_exclusive()
        .one(&txn)
        .await?
        .filter(|t| t.used_at.is_none() && t.expires_at > Utc::now().timestamp_millis())
        .ok_or(AccountError::BadTicket)?;
    let now = Utc::now();
    let user = if t.kind == "invite" {
        for (taken, what) in [(&t.email, "email"), (&t.phone, "phone")] {
            let Some(v) = taken else { continue };
            let column = if what == "email" {
                user::Column::Email
            } else {
                user::Column::Phone
            };
            if user::Entity::find()
                .filter(column.eq(v.as_str()))
                .count(&txn)
                .await?
                > 0
            {
                return Err(AccountError::Taken(v.clone()));
            }
        }
        let u = user::Model {
            id: uuid::Uuid::now_v7().to_string(),
            name: t.name.clone().unwrap_or_default(),
            email: t.email.clone(),
            phone: t.phone.clone(),
            password_hash: Some(hash),
            created_at: now,
            disabled_at: None,
        };
        user::ActiveModel::from(u.clone()).insert(&txn).await?;
        membership::Entity::insert(membership::ActiveModel {
            workspace_id: Set(t.workspace_id.clone()),
            user_id: Set(u.id.clone()),
            role: Set(t
                .role
                .clone()
                .unwrap_or_else(|| Role::Viewer.as_str().into())),
            created_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        u
    } else {
        let id = t.user_id.clone().unwrap_or_default();
        let found = user::Entity::find_by_id(id.clone())
            .one(&txn)
            .await?
            .ok_or(AccountError::NoUser(id.clone()))?;
        // A reset issued before the account was disabled no longer opens it.
        if found.disabled_at.is_some() {
            return Err(AccountError::BadTicket);
        }
        let mut u: user::ActiveModel = found.into();
        u.password_hash = Set(Some(hash));
        let u = u.update(&txn).await?;
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(id))
            .exec(&txn)
            .await?;
        u
    };
    let mut used: user_ticket::ActiveModel = t.clone().into();
    used.used_at = Set(Some(now));
    used.update(&txn).await?;
    let role = membership_of(&txn, &user.id, Some(&t.workspace_id))
        .await?
        .map_or(Role::Viewer, |(_, r)| r);
    let out = open_session(&txn, &user, &t.workspace_id, role).await?;
    txn.commit().await?;
    Ok(out)
}

/// The ids of `workspace`'s admins whose accounts are enabled.
async fn enabled_admins<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
) -> Result<Vec<String>, sea_orm::DbErr> {
    // Every admin membership is locked (PostgreSQL), so two admins disabling or demoting
    // each other at once cannot both pass.
    let ids: Vec<String> = membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace))
        .filter(membership::Column::Role.eq(Role::Admin.as_str()))
        .lock_exclusive()
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .filter(user::Column::DisabledAt.is_null())
        .all(conn)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect())
}

/// Fails with `LastAdmin` when `user_id` is `workspace`'s only enabled admin.
async fn keep_an_admin<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    user_id: &str,
) -> Result<(), AccountError> {
    let admins = enabled_admins(conn, workspace).await?;
    if admins.iter().all(|id| id == user_id) {
        return Err(AccountError::LastAdmin);
    }
    Ok(())
}

/// The user's membership of `workspace`, locked for the transaction (PostgreSQL).
async fn membership_for_update<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    user_id: &str,
) -> Result<membership::Model, AccountError> {
    membership::Entity::find_by_id((workspace.to_owned(), user_id.to_owned()))
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or_else(|| AccountError::NoUser(user_id.to_owned()))
}

/// Gives a user of `workspace` another role. The workspace's last admin stays an admin.
pub async fn set_role(
    db: &DatabaseConnection,
    workspace: &str,
    user_id: &str,
    role: Role,
) -> Result<(), AccountError> {
    let txn = db.begin().await?;
    let m = membership_for_update(&txn, workspace, user_id).await?;
    if m.role == Role::Admin.as_str() && role != Role::Admin {
        keep_an_admin(&txn, workspace, user_id).await?;
    }
    let mut m: membership::ActiveModel = m.into();
    m.role = Set(role.as_str().into());
    m.update(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Disables (or enables again) the account of a user of `workspace`. A disabled account
/// cannot sign in, its sessions end at once, and pickers leave it out; its history stays.
/// Nobody disables their own account, and the last enabled admin stays enabled.
pub async fn set_disabled(
    db: &DatabaseConnection,
    workspace: &str,
    by_user: Option<&str>,
    user_id: &str,
    disabled: bool,
) -> Result<(), AccountError> {
    let txn = db.begin().await?;
    let m = membership_for_update(&txn, workspace, user_id).await?;
    let Some(u) = user::Entity::find_by_id(user_id.to_owned())
        .one(&txn)
        .await?
    else {
        return Err(AccountError::NoUser(user_id.to_owned()));
    };
    if disabled {
        if by_user == Some(user_id) {
            return Err(AccountError::OwnAccount);
        }
        if m.role == Role::Admin.as_str() {
            keep_an_admin(&txn, workspace, user_id).await?;
        }
    }
    if u.disabled_at.is_some() != disabled {
        let mut u: user::ActiveModel = u.into();
        u.disabled_at = Set(disabled.then(Utc::now));
        u.update(&txn).await?;
    }
    if disabled {
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Deletes expired sessions and expired or used tickets.
pub async fn forget_expired(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let now = Utc::now().timestamp_millis();
    session::Entity::delete_many()
        .filter(session::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    user_ticket::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(user_ticket::Column::ExpiresAt.lte(now))
                .add(user_ticket::Column::UsedAt.is_not_null()),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// The workspace's users with their roles, by name.
pub async fn members(
    db: &DatabaseConnection,
    workspace: &str,
) -> Result<Vec<(user::Model, Role)>, sea_orm::DbErr> {
    let ms = membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace))
        .all(db)
        .await?;
    let mut out = Vec::new();
    for m in ms {
        if let (Some(u), Some(role)) = (
            user::Entity::find_by_id(m.user_id).one(db).await?,
            Role::parse(&m.role),
        ) {
            out.push((u, role));
        }
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

/// The login of the first administrator, made on the first start.
pub const FIRST_ADMIN_LOGIN: &str = "admin@trellis.local";

/// When no user exists yet: makes the first administrator of `workspace`, writes its
/// password to `<data dir>/admin-password` (mode 0600) and gives it.
pub async fn ensure_first_admin(
    db: &DatabaseConnection,
    data_dir: &Path,
    workspace: &str,
) -> anyhow::Result<Option<String>> {
    if user::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    // 16 random characters from a readable alphabet.
    let password: String = new_token()[4..20].to_owned();
    let now = Utc::now();
    let id = uuid::Uuid::now_v7().to_string();
    let txn = db.begin().await?;
    user::ActiveModel::from(user::Model {
        id: id.clone(),
        name: "管理员".into(),
        email: Some(FIRST_ADMIN_LOGIN.into()),
        phone: None,
        password_hash: Some(hash_password(&password)?),
        created_at: now,
        disabled_at: None,
    })
    .insert(&txn)
    .await?;
    membership::Entity::insert(membership::ActiveModel {
        workspace_id: Set(workspace.to_owned()),
        user_id: Set(id),
        role: Set(Role::Admin.as_str().into()),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    crate::files::write_secret_file(&data_dir.join("admin-password"), &password)?;
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsf"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(h, hash_password("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn logins_are_emails_or_phone_numbers() {
        assert_eq!(
            normalise_login(" Zhang.Wei@Example.CN "),
            (Some("zhang.wei@example.cn".into()), None)
        );
        assert_eq!(
            normalise_login("+86 138-0013-8000"),
            (None, Some("+8613800138000".into()))
        );
        assert_eq!(normalise_login("  "), (None, None));
        assert!(check_password("short").is_err());
        assert_ne!(csrf_of("a"), csrf_of("b"));
    }
}
