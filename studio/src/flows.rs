//! Flow list actions: rename, duplicate, delete (confirmed), export and import as JSON.

use leptos::prelude::*;
use serde_json::Value;

use crate::Session;
use crate::api::{self, ApiError};
use crate::i18n::Text;

/// Runs an action that changes the list, then refreshes it (or reports the error).
pub fn act<F>(error: RwSignal<Option<String>>, refresh: Callback<()>, fut: F)
where
    F: std::future::Future<Output = Result<(), ApiError>> + 'static,
{
    leptos::task::spawn_local(async move {
        match fut.await {
            Ok(()) => {
                error.set(None);
                refresh.run(());
            }
            Err(e) => error.set(Some(format!("{e:?}"))),
        }
    });
}

pub async fn rename(session: Session, id: String) -> Result<(), ApiError> {
    let token = session.token.get_untracked().unwrap_or_default();
    let flow = api::get_flow(&token, &id).await?;
    let Some(name) = session
        .dialogs
        .ask(session.t(Text::RenamePrompt), flow.name.clone())
        .await
    else {
        return Ok(());
    };
    // A rename is the flow's, not a version's.
    api::patch_json(
        &token,
        &format!("/api/v1/flows/{id}"),
        &serde_json::json!({ "name": name.trim() }),
    )
    .await
    .map(|_| ())
}

pub async fn duplicate(session: Session, id: String) -> Result<(), ApiError> {
    let token = session.token.get_untracked().unwrap_or_default();
    let flow = api::get_flow(&token, &id).await?;
    let mut doc = flow.doc.clone();
    doc["name"] = Value::String(format!("{}{}", flow.name, session.t(Text::CopySuffix)));
    api::copy_flow(&token, &id, &doc).await.map(|_| ())
}

pub async fn delete(session: Session, id: String, name: String) -> Result<(), ApiError> {
    let question = format!("{} “{name}”?", session.t(Text::DeleteFlow));
    if !session.dialogs.confirm(question).await {
        return Ok(());
    }
    let token = session.token.get_untracked().unwrap_or_default();
    api::delete(&token, &format!("/api/v1/flows/{id}")).await
}

/// Downloads the flow's latest document as `<name>.json`.
pub async fn export(session: Session, id: String) -> Result<(), ApiError> {
    let token = session.token.get_untracked().unwrap_or_default();
    let flow = api::get_flow(&token, &id).await?;
    let text = serde_json::to_string_pretty(&flow.doc).unwrap_or_default();
    crate::save_file(&text, "application/json", &format!("{}.json", flow.name))
        .map_err(ApiError::Other)?;
    Ok(())
}

/// Creates a flow from a chosen `.json` file (validated by the server like any save).
pub async fn import(session: Session, file: web_sys::File) -> Result<(), ApiError> {
    let token = session.token.get_untracked().unwrap_or_default();
    let text = wasm_bindgen_futures::JsFuture::from(file.text())
        .await
        .ok()
        .and_then(|v| v.as_string())
        .ok_or(ApiError::Other("the file could not be read".into()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::Other(format!("{}: {e}", file.name())))?;
    api::create_flow(&token, &doc).await.map(|_| ())
}
