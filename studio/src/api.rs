//! The server's HTTP API, as the studio uses it.

use gloo_net::http::Request;
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// 401: the token is unknown or revoked.
    Unauthorized,
    /// Anything else, with a message for the user.
    Other(String),
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LastRun {
    pub id: String,
    pub status: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct FlowSummary {
    pub id: String,
    pub name: String,
    pub latest_version: i64,
    pub published_version: Option<i64>,
    pub last_run: Option<LastRun>,
}

#[derive(Deserialize)]
struct FlowList {
    flows: Vec<FlowSummary>,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    detail: String,
}

pub async fn list_flows(token: &str) -> Result<Vec<FlowSummary>, ApiError> {
    let response = with_credential(Request::get("/api/v1/flows"), token)
        .send()
        .await
        .map_err(|e| ApiError::Other(e.to_string()))?;
    match response.status() {
        200 => response
            .json::<FlowList>()
            .await
            .map(|l| l.flows)
            .map_err(|e| ApiError::Other(e.to_string())),
        401 => Err(ApiError::Unauthorized),
        status => {
            let detail = response
                .json::<Problem>()
                .await
                .map(|p| p.detail)
                .unwrap_or_default();
            Err(ApiError::Other(format!("{status}: {detail}")))
        }
    }
}

/// A flow as the editor loads it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct FlowDetail {
    pub id: String,
    pub name: String,
    pub latest_version: i64,
    pub published_version: Option<i64>,
    pub doc: serde_json::Value,
}

/// What a save can answer besides success.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveError {
    /// 409: someone saved `current` meanwhile.
    Conflict {
        current: i64,
    },
    /// 422: the flow is invalid (the message says why).
    Invalid(String),
    Other(ApiError),
}

/// How a request proves who sends it. `credential` is an API token (`trl_…`, for IT and
/// machines: sent as a bearer token) or, for a person signed in with a session cookie, the
/// session's CSRF value (the browser sends the cookie itself; the header proves the
/// request comes from the studio's own page).
fn with_credential(
    builder: gloo_net::http::RequestBuilder,
    credential: &str,
) -> gloo_net::http::RequestBuilder {
    if credential.starts_with("trl_") {
        builder.header("Authorization", &format!("Bearer {credential}"))
    } else if credential.is_empty() {
        builder
    } else {
        builder.header("X-Trellis-CSRF", credential)
    }
}

async fn problem_detail(response: gloo_net::http::Response) -> String {
    let status = response.status();
    let detail = response
        .json::<Problem>()
        .await
        .map(|p| p.detail)
        .unwrap_or_default();
    format!("{status}: {detail}")
}

pub async fn get_flow(token: &str, id: &str) -> Result<FlowDetail, ApiError> {
    let response = with_credential(Request::get(&format!("/api/v1/flows/{id}")), token)
        .send()
        .await
        .map_err(|e| ApiError::Other(e.to_string()))?;
    match response.status() {
        200 => response
            .json()
            .await
            .map_err(|e| ApiError::Other(e.to_string())),
        401 => Err(ApiError::Unauthorized),
        _ => Err(ApiError::Other(problem_detail(response).await)),
    }
}

/// Creates a flow; returns its id.
pub async fn create_flow(token: &str, doc: &serde_json::Value) -> Result<String, ApiError> {
    create_flow_at("/api/v1/flows", token, doc).await
}

/// Creates a copy of flow `source`: webhook secrets it shows as set keep their values.
pub async fn copy_flow(
    token: &str,
    source: &str,
    doc: &serde_json::Value,
) -> Result<String, ApiError> {
    let url = format!(
        "/api/v1/flows?copy_of={}",
        js_sys::encode_uri_component(source)
    );
    create_flow_at(&url, token, doc).await
}

async fn create_flow_at(
    url: &str,
    token: &str,
    doc: &serde_json::Value,
) -> Result<String, ApiError> {
    let response = with_credential(Request::post(url), token)
        .json(doc)
        .map_err(|e| ApiError::Other(e.to_string()))?
        .send()
        .await
        .map_err(|e| ApiError::Other(e.to_string()))?;
    match response.status() {
        201 => {
            let v: serde_json::Value = response
                .json()
                .await
                .map_err(|e| ApiError::Other(e.to_string()))?;
            Ok(v["id"].as_str().unwrap_or_default().to_owned())
        }
        401 => Err(ApiError::Unauthorized),
        _ => Err(ApiError::Other(problem_detail(response).await)),
    }
}

/// Saves a new version based on `base_version`; returns the new version number.
pub async fn save_flow(
    token: &str,
    id: &str,
    base_version: i64,
    doc: &serde_json::Value,
    message: &str,
) -> Result<i64, SaveError> {
    let body = serde_json::json!({ "base_version": base_version, "doc": doc, "message": message });
    let request = with_credential(Request::put(&format!("/api/v1/flows/{id}")), token);
    send_save(request, &body, base_version).await
}

/// Saves a workspace document (the contact policy, URL categories…) at `path` as the
/// version after `base_version`; returns the new version number.
pub async fn save_doc(
    token: &str,
    path: &str,
    base_version: i64,
    doc: &serde_json::Value,
) -> Result<i64, SaveError> {
    let request = with_credential(
        Request::put(&format!("{path}?base_version={base_version}")),
        token,
    );
    send_save(request, doc, base_version).await
}

/// Sends a save and reads its answer: the new version, or why not.
async fn send_save(
    request: gloo_net::http::RequestBuilder,
    body: &serde_json::Value,
    base_version: i64,
) -> Result<i64, SaveError> {
    let response = request
        .json(body)
        .map_err(|e| SaveError::Other(ApiError::Other(e.to_string())))?
        .send()
        .await
        .map_err(|e| SaveError::Other(ApiError::Other(e.to_string())))?;
    match response.status() {
        200 => {
            let v: serde_json::Value = response
                .json()
                .await
                .map_err(|e| SaveError::Other(ApiError::Other(e.to_string())))?;
            Ok(v["version"].as_i64().unwrap_or(base_version + 1))
        }
        409 => {
            let v: serde_json::Value = response.json().await.unwrap_or_default();
            Err(SaveError::Conflict {
                current: v["current_version"].as_i64().unwrap_or(0),
            })
        }
        422 => Err(SaveError::Invalid(problem_detail(response).await)),
        401 => Err(SaveError::Other(ApiError::Unauthorized)),
        _ => Err(SaveError::Other(ApiError::Other(
            problem_detail(response).await,
        ))),
    }
}

async fn send_json(
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, ApiError> {
    let builder = match method {
        "POST" => Request::post(path),
        "PUT" => Request::put(path),
        "PATCH" => Request::patch(path),
        _ => Request::get(path),
    };
    let builder = with_credential(builder, token);
    let request = match body {
        Some(b) => builder
            .json(b)
            .map_err(|e| ApiError::Other(e.to_string()))?,
        None => builder
            .build()
            .map_err(|e| ApiError::Other(e.to_string()))?,
    };
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::Other(e.to_string()))?;
    match response.status() {
        204 => Ok(serde_json::Value::Null),
        200..=299 => response
            .json()
            .await
            .map_err(|e| ApiError::Other(e.to_string())),
        401 => Err(ApiError::Unauthorized),
        _ => Err(ApiError::Other(problem_detail(response).await)),
    }
}

/// `PUT` a JSON body to the API.
pub async fn put_json(
    token: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    send_json("PUT", path, token, Some(body)).await
}

/// `PATCH` a JSON body to the API.
pub async fn patch_json(
    token: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    send_json("PATCH", path, token, Some(body)).await
}

/// The connector operations flows can use (`GET /api/v1/node-types`).
pub async fn catalog(token: &str) -> Result<trellis_model::Catalog, ApiError> {
    let v = get_json(token, "/api/v1/node-types").await?;
    let entries: Vec<trellis_model::ConnectorEntry> =
        serde_json::from_value(v["connectors"].clone())
            .map_err(|e| ApiError::Other(e.to_string()))?;
    Ok(trellis_model::Catalog::new(entries))
}

/// `GET` a JSON document from the API.
pub async fn get_json(token: &str, path: &str) -> Result<serde_json::Value, ApiError> {
    send_json("GET", path, token, None).await
}

/// `POST` a JSON body to the API.
pub async fn post_json(
    token: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    send_json("POST", path, token, Some(body)).await
}

/// A text resource (a CSV export).
pub async fn get_text(token: &str, path: &str) -> Result<String, ApiError> {
    let response = with_credential(Request::get(path), token)
        .send()
        .await
        .map_err(|e| ApiError::Other(e.to_string()))?;
    match response.status() {
        200 => response
            .text()
            .await
            .map_err(|e| ApiError::Other(e.to_string())),
        401 => Err(ApiError::Unauthorized),
        _ => Err(ApiError::Other(problem_detail(response).await)),
    }
}

/// Why an import was refused: each problem (`{line, column, message}`), or another error.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportError {
    Problems(Vec<serde_json::Value>),
    Other(ApiError),
}

/// `POST`s a CSV file; the answer, or the problems the server found in it.
pub async fn post_csv(
    token: &str,
    path: &str,
    text: String,
) -> Result<serde_json::Value, ImportError> {
    let response = with_credential(Request::post(path), token)
        .header("Content-Type", "text/csv; charset=utf-8")
        .body(text)
        .map_err(|e| ImportError::Other(ApiError::Other(e.to_string())))?
        .send()
        .await
        .map_err(|e| ImportError::Other(ApiError::Other(e.to_string())))?;
    match response.status() {
        200..=299 => response
            .json()
            .await
            .map_err(|e| ImportError::Other(ApiError::Other(e.to_string()))),
        401 => Err(ImportError::Other(ApiError::Unauthorized)),
        422 => {
            let v: serde_json::Value = response.json().await.unwrap_or_default();
            match v["problems"].as_array() {
                Some(p) if !p.is_empty() => Err(ImportError::Problems(p.clone())),
                _ => Err(ImportError::Other(ApiError::Other(
                    v["detail"].as_str().unwrap_or("422").to_owned(),
                ))),
            }
        }
        _ => Err(ImportError::Other(ApiError::Other(
            problem_detail(response).await,
        ))),
    }
}

/// `DELETE` a resource.
pub async fn delete(token: &str, path: &str) -> Result<(), ApiError> {
    let response = with_credential(Request::delete(path), token)
        .send()
        .await
        .map_err(|e| ApiError::Other(e.to_string()))?;
    match response.status() {
        200..=299 => Ok(()),
        401 => Err(ApiError::Unauthorized),
        _ => Err(ApiError::Other(problem_detail(response).await)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`, recursively.
    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read the source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The studio speaks HTTP only through this module: no other file names the HTTP
    /// client or the browser's request APIs.
    #[test]
    fn only_this_module_makes_requests() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let this = src.join("api.rs");
        let mut offenders = Vec::new();
        for file in files.iter().filter(|f| **f != this) {
            let text = std::fs::read_to_string(file).expect("read a source file");
            for needle in ["gloo_net", "fetch_with", "XmlHttpRequest", "EventSource"] {
                if text.contains(needle) {
                    offenders.push(format!("{}: {needle}", file.display()));
                }
            }
        }
        assert!(files.len() > 1, "no sources found under {}", src.display());
        assert_eq!(offenders, Vec::<String>::new());
    }
}
