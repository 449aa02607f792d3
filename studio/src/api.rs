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
    let response = Request::get("/api/v1/flows")
        .header("Authorization", &format!("Bearer {token}"))
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
