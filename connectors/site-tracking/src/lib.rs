//! Website tracking, compatible with Segment's HTTP tracking API.
//!
//! Segment's own client libraries work against it unchanged: point their host at
//! `http://HOST/hooks/connectors/site-tracking` (analytics.js: `apiHost:
//! "HOST/hooks/connectors/site-tracking/v1"`). It takes `track`, `page`, `identify`,
//! `screen`, `group` and `alias` at `/v1/<call>` (and the browser library's one-letter
//! paths), and `batch` at `/v1/batch` (`/v1/b`). The write key comes as the HTTP Basic user
//! (or as `writeKey` in the body, as analytics.js sends it) and must be one of the keys in
//! the secret `write_key` (several may be listed, separated by commas or new lines). A
//! wrong or missing key gets 401 and records nothing. Each call becomes one event (see
//! [`segment`]): `messageId` is its id, so a resent batch is recorded once; calls from
//! robots are dropped and counted in the answer; a bad entry of a batch is refused with
//! its index while the rest are recorded.

#![cfg_attr(
    not(target_arch = "wasm32"),
    allow(
        dead_code,
        reason = "the entry points are exported only in the wasm32 component; native builds run the unit tests"
    )
)]

pub mod segment;

use std::io::Read as _;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use trellis_connector_sdk::{
    Call, Connector, Context, Error, Event, Inbound, InboundRequest, JsonSchema, Manifest,
    Operation, Output, Value, http, json, secrets,
};

use segment::{CallType, Outcome};

/// The largest body taken after decompression (Segment's batch limit is 500 KB).
const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoConfig {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PreviewInput {
    /// One Segment call as a client library sends it, with its `type`
    /// (e.g. `{"type": "page", "anonymousId": "a1", "properties": {"path": "/pricing"}}`).
    call: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
struct PreviewOutput {
    /// `recorded`, `bot` (dropped) or `refused`.
    outcome: String,
    /// The event's name, id and payload, when it would be recorded.
    event: Option<Value>,
    /// Why it would be refused.
    error: Option<String>,
}

struct SiteTracking;

impl Connector for SiteTracking {
    fn manifest() -> Manifest {
        Manifest::new("site-tracking", env!("CARGO_PKG_VERSION"))
            .display("网站行为追踪", "Site tracking")
            .description(
                "Records visitors' page views, clicks, downloads and sign-ups from your \
                 website; compatible with Segment's tracking API and client libraries.",
            )
            .secret("write_key")
            .inbound()
            .operation(Operation::new::<NoConfig, PreviewInput, PreviewOutput>(
                "preview_call",
                "预览追踪事件",
                "Preview a tracking call",
            ))
    }

    fn invoke(call: Call) -> Result<Output, Error> {
        match call.operation() {
            "preview_call" => call.handle(preview),
            other => Err(Error::unknown_operation(other)),
        }
    }

    fn handle_inbound(request: InboundRequest) -> Result<Inbound, Error> {
        Ok(match receive(&request) {
            Ok(inbound) => inbound,
            Err(refusal) => Inbound {
                events: Vec::new(),
                response: refusal.into_response(),
            },
        })
    }
}

/// What the Segment call `call` would record now.
fn preview(_: NoConfig, input: PreviewInput, _: &Context) -> Result<PreviewOutput, Error> {
    let now = i64::try_from(trellis_connector_sdk::now_ms()).unwrap_or(i64::MAX);
    Ok(
        match segment::normalise(&input.call, None, None, None, None, now) {
            Ok(Outcome::Event(t)) => PreviewOutput {
                outcome: "recorded".into(),
                event: Some(json!({ "name": t.name, "id": t.id, "payload": t.payload })),
                error: None,
            },
            Ok(Outcome::Bot) => PreviewOutput {
                outcome: "bot".into(),
                event: None,
                error: None,
            },
            Err(e) => PreviewOutput {
                outcome: "refused".into(),
                event: None,
                error: Some(e),
            },
        },
    )
}

/// A request answered without recording anything.
#[derive(Debug)]
struct Refusal {
    status: u16,
    title: &'static str,
    detail: String,
}

impl Refusal {
    fn new(status: u16, title: &'static str, detail: impl Into<String>) -> Self {
        Refusal {
            status,
            title,
            detail: detail.into(),
        }
    }

    /// An RFC 9457 problem body (with Segment's `success: false`, `code` and `message`).
    fn into_response(self) -> http::Response {
        let mut r = http::Response::json(
            self.status,
            &json!({
                "success": false, "type": "about:blank", "title": self.title,
                "status": self.status, "detail": self.detail,
                // What Segment's libraries read from an error answer.
                "code": self.title.replace(' ', "_"), "message": self.detail,
            }),
        );
        r.headers = vec![("content-type".into(), "application/problem+json".into())];
        with_cors(r)
    }
}

/// Browsers post from the site's own origin: let them read the answer (no cookie is
/// involved, the write key is in the request).
fn with_cors(mut response: http::Response) -> http::Response {
    response
        .headers
        .push(("access-control-allow-origin".into(), "*".into()));
    response
}

/// What a request path asks for: one call, or a batch.
fn route(path: &str) -> Option<Option<CallType>> {
    let name = path.trim_end_matches('/').strip_prefix("/v1/")?;
    match name {
        "batch" | "b" | "import" => Some(None),
        other => CallType::parse(other).map(Some),
    }
}

/// The first-party snippet a site pastes (`<script async src=".../snippet.js"
/// data-key="WRITE_KEY">`): page views, downloads and outbound clicks, time on page,
/// campaign, identify from forms and WeCom links; Do-Not-Track and consent honoured.
pub const SNIPPET: &str = include_str!("snippet.js");

fn receive(request: &InboundRequest) -> Result<Inbound, Refusal> {
    if request.path == "/snippet.js" && matches!(request.method.as_str(), "GET" | "HEAD") {
        return Ok(Inbound {
            events: Vec::new(),
            response: http::Response {
                status: 200,
                headers: vec![
                    (
                        "content-type".into(),
                        "application/javascript; charset=utf-8".into(),
                    ),
                    ("cache-control".into(), "public, max-age=3600".into()),
                ],
                body: SNIPPET.as_bytes().to_vec(),
            },
        });
    }
    let Some(call) = route(&request.path) else {
        return Err(Refusal::new(
            404,
            "not found",
            format!(
                "no tracking call at {:?}: use /v1/track, /v1/page, /v1/identify, /v1/screen, \
                 /v1/group, /v1/alias or /v1/batch",
                request.path
            ),
        ));
    };
    if request.method == "OPTIONS" {
        let mut r = with_cors(http::Response {
            status: 204,
            ..http::Response::default()
        });
        r.headers.push((
            "access-control-allow-headers".into(),
            "authorization, content-type".into(),
        ));
        r.headers
            .push(("access-control-allow-methods".into(), "POST".into()));
        return Ok(Inbound {
            events: Vec::new(),
            response: r,
        });
    }
    if request.method != "POST" {
        return Err(Refusal::new(
            405,
            "method not allowed",
            "tracking calls are POSTed",
        ));
    }
    let body = body_of(request)?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| Refusal::new(400, "bad request", format!("the body is not JSON: {e}")))?;
    check_write_key(request, &doc)?;

    let now = i64::try_from(trellis_connector_sdk::now_ms()).unwrap_or(i64::MAX);
    let agent = request.header("user-agent");
    let single;
    let (entries, sent_at, context): (&[Value], _, _) = match call {
        Some(_) => {
            single = [doc.clone()];
            (&single, None, None)
        }
        None => match doc.get("batch") {
            Some(Value::Array(entries)) => (entries, doc.get("sentAt"), doc.get("context")),
            _ => {
                return Err(Refusal::new(
                    400,
                    "bad request",
                    "a batch is an object whose `batch` is an array of calls",
                ));
            }
        },
    };
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    let mut bots = 0u32;
    for (index, entry) in entries.iter().enumerate() {
        match segment::normalise(entry, call, sent_at, context, agent, now) {
            Ok(Outcome::Event(t)) => events.push(Event {
                name: t.name,
                id: t.id,
                payload: t.payload,
            }),
            Ok(Outcome::Bot) => bots += 1,
            Err(error) => rejected.push(json!({
                "index": index, "pointer": format!("/batch/{index}"), "error": error,
            })),
        }
    }
    if call.is_some()
        && let Some(r) = rejected.first()
    {
        return Err(Refusal::new(
            400,
            "bad request",
            r["error"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let answer = json!({
        "success": true,
        "accepted": events.len(),
        "rejected": rejected,
        "bots": bots,
    });
    Ok(Inbound {
        events,
        response: with_cors(http::Response::json(200, &answer)),
    })
}

/// The body, gunzipped when the client says so (Segment's server libraries may).
fn body_of(request: &InboundRequest) -> Result<Vec<u8>, Refusal> {
    let gzip = request
        .header("content-encoding")
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(request.body.clone());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(request.body.as_slice())
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Refusal::new(
                400,
                "bad request",
                format!("the gzip body does not decode: {e}"),
            )
        })?;
    if out.len() as u64 > MAX_BODY_BYTES {
        return Err(Refusal::new(
            413,
            "payload too large",
            format!("the body is over {MAX_BODY_BYTES} bytes once decompressed"),
        ));
    }
    Ok(out)
}

/// The write key a client sent: the Basic user, else the body's `writeKey`.
fn given_write_key(request: &InboundRequest, doc: &Value) -> Option<String> {
    let basic = request.header("authorization").and_then(|h| {
        let (scheme, value) = h.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let user = text.split(':').next().unwrap_or_default().to_owned();
        (!user.is_empty()).then_some(user)
    });
    basic.or_else(|| {
        doc.get("writeKey")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
    })
}

fn check_write_key(request: &InboundRequest, doc: &Value) -> Result<(), Refusal> {
    let keys = secrets::get("write_key").map_err(|_| {
        Refusal::new(
            401,
            "unauthorized",
            "no write key is set up: an admin grants site-tracking the secret write_key and sets it",
        )
    })?;
    let Some(given) = given_write_key(request, doc) else {
        return Err(Refusal::new(
            401,
            "unauthorized",
            "send the write key as the HTTP Basic user (or as writeKey in the body)",
        ));
    };
    let known = keys
        .split([',', '\n', '\r', ' '])
        .filter(|k| !k.is_empty())
        .fold(false, |found, k| {
            trellis_connector_sdk::same_secret(k.as_bytes(), given.as_bytes()) | found
        });
    if known {
        Ok(())
    } else {
        Err(Refusal::new(
            401,
            "unauthorized",
            "the write key is not one of this workspace's",
        ))
    }
}

// Exported only in the component: natively (where the unit tests run) the export names
// (`poll`, `invoke`…) would shadow the C library's.
#[cfg(target_arch = "wasm32")]
trellis_connector_sdk::export!(SiteTracking);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    fn request(path: &str, headers: &[(&str, &str)], body: &[u8]) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            path: path.into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
            workspace: "default".into(),
        }
    }

    #[test]
    fn the_manifest_asks_for_the_write_key_and_receives_webhooks() {
        let text = format!("{:?}", SiteTracking::manifest());
        for must in [
            "site-tracking",
            "write_key",
            "inbound: true",
            "preview_call",
        ] {
            assert!(text.contains(must), "{must} in {text}");
        }
    }

    #[test]
    fn paths_name_calls_or_a_batch() {
        assert_eq!(route("/v1/track"), Some(Some(CallType::Track)));
        assert_eq!(route("/v1/p"), Some(Some(CallType::Page)));
        assert_eq!(route("/v1/batch"), Some(None));
        assert_eq!(route("/v1/b/"), Some(None));
        assert_eq!(route("/v2/track"), None);
        assert_eq!(route("/v1/buy"), None);
    }

    #[test]
    fn the_write_key_is_the_basic_user_or_the_body_field() {
        let basic = base64::engine::general_purpose::STANDARD.encode("wk_123:");
        let r = request(
            "/v1/batch",
            &[("Authorization", &format!("Basic {basic}"))],
            b"{}",
        );
        assert_eq!(given_write_key(&r, &json!({})).as_deref(), Some("wk_123"));
        let r = request("/v1/t", &[], b"{}");
        assert_eq!(
            given_write_key(&r, &json!({"writeKey": "wk_9"})).as_deref(),
            Some("wk_9")
        );
        assert_eq!(given_write_key(&r, &json!({})), None);
    }

    #[test]
    fn the_snippet_is_served_small_and_first_party() {
        let mut r = request("/snippet.js", &[], b"");
        r.method = "GET".into();
        let answer = receive(&r).unwrap();
        assert!(answer.events.is_empty());
        assert_eq!(answer.response.status, 200);
        assert!(
            answer
                .response
                .header("content-type")
                .unwrap()
                .starts_with("application/javascript")
        );
        assert!(SNIPPET.len() < 6 * 1024, "{} bytes", SNIPPET.len());
        // No request leaves for anyone but the server it was loaded from.
        assert!(!SNIPPET.contains("http://") && !SNIPPET.contains("https://cdn"));
        for must in [
            "doNotTrack",
            "sendBeacon",
            "page_leave",
            "utm_",
            "download",
            "consent",
        ] {
            assert!(SNIPPET.contains(must), "{must}");
        }
    }

    #[test]
    fn gzip_bodies_are_decoded() {
        use std::io::Write as _;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(br#"{"batch": []}"#).unwrap();
        let gz = z.finish().unwrap();
        let r = request("/v1/batch", &[("Content-Encoding", "gzip")], &gz);
        assert_eq!(body_of(&r).unwrap(), br#"{"batch": []}"#);
        let r = request("/v1/batch", &[("Content-Encoding", "gzip")], b"not gzip");
        assert_eq!(body_of(&r).unwrap_err().status, 400);
    }
}
