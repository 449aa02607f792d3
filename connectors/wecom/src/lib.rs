//! WeCom (企业微信): its callbacks as events, and app messages to employees.
//!
//! **Callbacks** (`GET|POST /hooks/connectors/wecom/callback`, with the query WeCom sends:
//! `msg_signature`, `timestamp`, `nonce`, and `echostr` for the URL check) are checked and
//! decrypted per WXBizMsgCrypt ([`crypto`]) with the secrets `token`, `encoding_aes_key`
//! and `corp_id`: a wrong signature, a timestamp outside the replay window, another corp's
//! message or a broken ciphertext is refused with a 4xx and records nothing. A decrypted
//! message becomes one event ([`callback`]).
//!
//! **Operations**: `send_app_message` (text, markdown, text card, news) through the app
//! `agent_id` (the node's, else the secret `agent_id` given when WeCom was connected), with the access token from `gettoken` (secrets `corp_id` and `secret`)
//! kept in the key-value store until shortly before it expires; a call answered with an
//! expired or invalid token (`40014`, `42001`) refreshes it once and is made again;
//! `45009`, `45011` and `45033` are `rate_limited`; any other `errcode` is a `remote`
//! error with WeCom's code and message. The API's address is the config's `api_base`
//! (default `https://qyapi.weixin.qq.com`), so private deployments and tests point it
//! elsewhere.

#![cfg_attr(
    not(target_arch = "wasm32"),
    allow(
        dead_code,
        reason = "the entry points are exported only in the wasm32 component; native builds run the unit tests"
    )
)]

pub mod callback;
pub mod crypto;
mod ops;

use serde::{Deserialize, Serialize};
use trellis_connector_sdk::{
    Call, Connector, Context, Error, Event, Inbound, InboundRequest, JsonSchema, Manifest,
    Operation, Output, Polled, Value, http, json, kv, secrets,
};

use crypto::{CryptoError, MsgCrypt};

/// How far a callback's timestamp may be from now (WeCom retries within seconds).
const REPLAY_WINDOW_SECS: i64 = 300;
/// A token is refreshed this long before WeCom says it expires.
const TOKEN_MARGIN_MS: u64 = 5 * 60 * 1000;
const DEFAULT_API_BASE: &str = "https://qyapi.weixin.qq.com";

pub(crate) fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AppConfig {
    /// The app's AgentId (应用 ID), a number shown in WeCom's admin console. Left out, the
    /// one given when WeCom was connected (the secret `agent_id`).
    #[serde(default)]
    #[schemars(extend("x-trellis" = { "label": {"zh": "应用 AgentId（留空用连接时填写的）", "en": "App AgentId (empty: the one given when connecting)"} }))]
    agent_id: Option<i64>,
    /// WeCom's API address; change it only for a private deployment.
    #[serde(default = "default_api_base")]
    #[schemars(extend("x-trellis" = { "label": {"zh": "接口地址", "en": "API address"} }))]
    api_base: String,
}

/// One article of a news message.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Article {
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    picurl: Option<String>,
}

/// What is sent, in WeCom's own message shapes. (Not `deny_unknown_fields`: it is
/// flattened into the input beside `touser`.)
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "msgtype", rename_all = "snake_case")]
pub(crate) enum AppMessage {
    /// Plain text (at most 2,048 bytes).
    Text { content: String },
    /// Markdown (WeCom's subset).
    Markdown { content: String },
    /// A card with a title, a description and a link.
    Textcard {
        title: String,
        description: String,
        url: String,
        #[serde(default)]
        btntxt: Option<String>,
    },
    /// One to eight articles.
    News { articles: Vec<Article> },
}

impl AppMessage {
    /// Writes `msgtype` and the message's own object into a request body, as WeCom's
    /// `message/send` and `appchat/send` take them.
    pub(crate) fn write_into(self, body: &mut Value) -> Result<(), Error> {
        match self {
            AppMessage::Text { content } => {
                body["msgtype"] = json!("text");
                body["text"] = json!({ "content": content });
            }
            AppMessage::Markdown { content } => {
                body["msgtype"] = json!("markdown");
                body["markdown"] = json!({ "content": content });
            }
            AppMessage::Textcard {
                title,
                description,
                url,
                btntxt,
            } => {
                body["msgtype"] = json!("textcard");
                body["textcard"] = json!({ "title": title, "description": description, "url": url,
                                           "btntxt": btntxt.unwrap_or_else(|| "详情".into()) });
            }
            AppMessage::News { articles } => {
                if articles.is_empty() || articles.len() > 8 {
                    return Err(Error::InvalidInput(
                        "a news message has 1 to 8 articles".into(),
                    ));
                }
                body["msgtype"] = json!("news");
                body["news"] = json!({ "articles": articles });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
struct SendInput {
    /// The employees' WeCom user ids.
    #[schemars(extend("x-trellis" = { "people": true }))]
    touser: Vec<String>,
    #[serde(flatten)]
    message: AppMessage,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SendOutput {
    /// WeCom's id of the message (to recall it).
    msgid: String,
    /// Recipients WeCom did not accept (not in the app's visible range, unknown).
    invalid_users: Vec<String>,
}

struct WeCom;

impl Connector for WeCom {
    fn manifest() -> Manifest {
        Manifest::new("wecom", env!("CARGO_PKG_VERSION"))
            .display("企业微信", "WeCom")
            .description(
                "Receives WeCom callbacks (customers added or removed, group chats, tags, \
                 messages to the app) and sends app messages to employees.",
            )
            // The default address is qyapi.weixin.qq.com; a private deployment grants its own.
            .host("*")
            .secret("corp_id")
            .secret("secret")
            .secret("agent_id")
            .secret("token")
            .secret("encoding_aes_key")
            .kv()
            .inbound()
            .poll()
            .operation(
                Operation::new::<AppConfig, SendInput, SendOutput>(
                    "send_app_message",
                    "发送应用消息",
                    "Send an app message",
                )
                .side_effects(),
            )
            .operation(ops::operations::create_group_send())
            .operation(ops::operations::get_group_send_result())
            .operation(ops::operations::get_external_contact())
            .operation(ops::operations::mark_tags())
            .operation(ops::operations::create_group_chat())
            .operation(ops::operations::send_group_chat())
            .operation(ops::operations::upload_media())
            .operation(ops::operations::list_department_members())
    }

    fn invoke(call: Call) -> Result<Output, Error> {
        match call.operation() {
            "send_app_message" => call.handle(send_app_message),
            "create_group_send" => call.handle(ops::create_group_send),
            "get_group_send_result" => call.handle(ops::get_group_send_result),
            "get_external_contact" => call.handle(ops::get_external_contact),
            "mark_tags" => call.handle(ops::mark_tags),
            "create_group_chat" => call.handle(ops::create_group_chat),
            "send_group_chat" => call.handle(ops::send_group_chat),
            "upload_media" => call.handle(ops::upload_media),
            "list_department_members" => call.handle(ops::list_department_members),
            other => Err(Error::unknown_operation(other)),
        }
    }

    fn poll(config: Value, cursor: Option<String>, _: Context) -> Result<Polled, Error> {
        ops::reconcile(config, cursor)
    }

    fn handle_inbound(request: InboundRequest) -> Result<Inbound, Error> {
        Ok(match receive(&request) {
            Ok(inbound) => inbound,
            Err((status, detail)) => Inbound {
                events: Vec::new(),
                response: problem(status, &detail),
            },
        })
    }
}

fn problem(status: u16, detail: &str) -> http::Response {
    let mut r = http::Response::json(
        status,
        &json!({ "type": "about:blank", "title": "callback refused", "status": status, "detail": detail }),
    );
    r.headers = vec![("content-type".into(), "application/problem+json".into())];
    r
}

fn text(status: u16, body: &str) -> http::Response {
    http::Response {
        status,
        headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// The status a refused callback gets.
fn status_of(e: &CryptoError) -> u16 {
    match e {
        CryptoError::BadSignature | CryptoError::Stale | CryptoError::WrongReceiver(_) => 403,
        _ => 400,
    }
}

/// The callback crypto from the workspace's secrets.
fn msg_crypt() -> Result<MsgCrypt, (u16, String)> {
    let get = |name: &str| {
        secrets::get(name).map_err(|_| {
            (
                503,
                format!(
                    "the WeCom callback is not set up: an admin grants wecom the secrets token, \
                     encoding_aes_key and corp_id and sets them ({name} is missing)"
                ),
            )
        })
    };
    MsgCrypt::new(&get("token")?, &get("encoding_aes_key")?, &get("corp_id")?)
        .map_err(|e| (503, format!("the WeCom callback is not set up right: {e}")))
}

fn receive(request: &InboundRequest) -> Result<Inbound, (u16, String)> {
    if request.path.trim_end_matches('/') != "/callback" {
        return Err((
            404,
            format!(
                "no WeCom endpoint at {:?}: the callback address ends in /callback",
                request.path
            ),
        ));
    }
    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(request.query.as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| (400, format!("the query parameter {name} is missing")))
    };
    let (signature, timestamp, nonce) = (
        param("msg_signature")?,
        param("timestamp")?,
        param("nonce")?,
    );
    let crypt = msg_crypt()?;
    let now = i64::try_from(trellis_connector_sdk::now_ms() / 1000).unwrap_or(i64::MAX);
    let refuse = |e: CryptoError| (status_of(&e), e.to_string());
    match request.method.as_str() {
        // URL verification: answer the decrypted echostr, as is.
        "GET" => {
            let echo = param("echostr")?;
            crypt
                .check_signature(signature, timestamp, nonce, echo)
                .map_err(refuse)?;
            crypto::check_fresh(timestamp, now, REPLAY_WINDOW_SECS).map_err(refuse)?;
            let plain = crypt.decrypt(echo).map_err(refuse)?;
            Ok(Inbound {
                events: Vec::new(),
                response: text(200, &plain),
            })
        }
        "POST" => {
            let body = std::str::from_utf8(&request.body)
                .map_err(|_| (400, "the callback body is not UTF-8".to_owned()))?;
            let outer = callback::fields(body).map_err(|e| (400, e))?;
            let encrypt = outer
                .get("Encrypt")
                .ok_or_else(|| (400, "the callback has no Encrypt element".to_owned()))?;
            crypt
                .check_signature(signature, timestamp, nonce, encrypt)
                .map_err(refuse)?;
            crypto::check_fresh(timestamp, now, REPLAY_WINDOW_SECS).map_err(refuse)?;
            let xml = crypt.decrypt(encrypt).map_err(refuse)?;
            let e = callback::event(&xml).map_err(|e| (400, e))?;
            Ok(Inbound {
                events: vec![Event {
                    name: e.name,
                    id: Some(e.id),
                    payload: e.payload,
                }],
                // WeCom wants a 200 within 5 s; an empty body is "received".
                response: text(200, ""),
            })
        }
        other => Err((
            405,
            format!("WeCom calls back with GET or POST, not {other}"),
        )),
    }
}

/// A WeCom answer: `errcode` 0, or a typed error.
fn check(v: Value) -> Result<Value, Error> {
    let code = v["errcode"].as_i64().unwrap_or(0);
    if code == 0 {
        return Ok(v);
    }
    let message = format!(
        "WeCom error {code}: {}",
        v["errmsg"].as_str().unwrap_or_default()
    );
    Err(match code {
        45009 | 45011 | 45033 => Error::RateLimited {
            retry_after_ms: Some(60_000),
            message,
        },
        // 40001 invalid secret, 40013 invalid corp id, 40056/40091 invalid agent/secret.
        40001 | 40013 | 40056 | 40091 | 41004 => Error::AuthFailed(message),
        // -1: system busy.
        _ => Error::Remote {
            code: u32::try_from(code).unwrap_or(u32::MAX),
            message,
            retryable: code == -1,
        },
    })
}

fn is_token_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Remote {
            code: 40014 | 42001,
            ..
        }
    )
}

const TOKEN_KEY: &str = "access_token";
/// Held (in kv, with a TTL) by the one call refreshing the token.
const REFRESH_LOCK: &str = "access_token.refreshing";
/// How long a refresh may hold the lock; a call that dies holding it frees it this late.
const REFRESH_LOCK_MS: u64 = 10_000;
/// How long a call waits for another's refresh before refreshing itself.
const REFRESH_WAIT_MS: u64 = 5_000;

/// The cached token, unless it is `stale` (the one WeCom just refused).
fn cached_token(stale: Option<&str>) -> Result<Option<String>, Error> {
    let now = trellis_connector_sdk::now_ms();
    Ok(kv::get(TOKEN_KEY)?
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(|c| c["expires_at"].as_u64().is_some_and(|t| t > now))
        .and_then(|c| c["token"].as_str().map(str::to_owned))
        .filter(|t| Some(t.as_str()) != stale))
}

/// The access token: the cached one, else a fresh one from `gettoken`, cached until
/// shortly before it expires. One call refreshes at a time: it takes a lock in kv, the
/// others wait for the token it stores (no stampede of `gettoken` requests when many
/// calls find it missing at once). `stale` is a token WeCom refused (`40014`, `42001`).
fn access_token(api_base: &str, stale: Option<&str>) -> Result<String, Error> {
    if let Some(token) = cached_token(stale)? {
        return Ok(token);
    }
    let give_up = trellis_connector_sdk::now_ms() + REFRESH_WAIT_MS;
    while !kv::add(REFRESH_LOCK, b"1", Some(REFRESH_LOCK_MS))? {
        trellis_connector_sdk::sleep_ms(25);
        if let Some(token) = cached_token(stale)? {
            return Ok(token);
        }
        if trellis_connector_sdk::now_ms() > give_up {
            // The refresher is stuck or gone: refresh without the lock.
            break;
        }
    }
    // The previous holder may have stored a token between our look and our lock.
    let fresh = match cached_token(stale) {
        Ok(Some(token)) => Ok(token),
        _ => fetch_token(api_base),
    };
    let _ = kv::delete(REFRESH_LOCK);
    fresh
}

/// `gettoken`, and the token cached.
fn fetch_token(api_base: &str) -> Result<String, Error> {
    let now = trellis_connector_sdk::now_ms();
    let corp_id = secrets::get("corp_id")?;
    let secret = secrets::get("secret")?;
    let url = format!(
        "{api_base}/cgi-bin/gettoken?corpid={}&corpsecret={}",
        form_urlencoded::byte_serialize(corp_id.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
    );
    let v = check(
        http::Request::get(url)
            .send()?
            .error_for_status()?
            .json_value()?,
    )?;
    let token = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Remote {
            code: 0,
            message: "gettoken answered without access_token".into(),
            retryable: true,
        })?
        .to_owned();
    let lifetime = v["expires_in"].as_u64().unwrap_or(7200) * 1000;
    let keep = lifetime.saturating_sub(TOKEN_MARGIN_MS).max(1000);
    kv::set(
        TOKEN_KEY,
        json!({ "token": token, "expires_at": now + keep })
            .to_string()
            .as_bytes(),
        Some(keep),
    )?;
    Ok(token)
}

/// Calls WeCom's `path` (with its own query, if any) with the access token: a POST of
/// `body`, or a GET without one. An expired or invalid token is refreshed once and the
/// call made again.
pub(crate) fn call_api(api_base: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
    call_api_with(api_base, path, |url| match body {
        Some(b) => http::Request::post(url).json(b),
        None => Ok(http::Request::get(url)),
    })
}

/// [`call_api`] with the request `build` makes for the URL (with its access token).
pub(crate) fn call_api_with(
    api_base: &str,
    path: &str,
    build: impl Fn(String) -> Result<http::Request, Error>,
) -> Result<Value, Error> {
    let api_base = api_base.trim_end_matches('/');
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut refused: Option<String> = None;
    loop {
        let token = access_token(api_base, refused.as_deref())?;
        let request = build(format!("{api_base}{path}{sep}access_token={token}"))?;
        let answer = request
            .send()?
            .error_for_status()?
            .json_value()
            .and_then(check);
        match answer {
            Err(e) if is_token_error(&e) && refused.is_none() => refused = Some(token),
            other => return other,
        }
    }
}

/// The node's AgentId, else the one given when WeCom was connected.
fn agent_id(config: &AppConfig) -> Result<i64, Error> {
    if let Some(id) = config.agent_id {
        return Ok(id);
    }
    let missing = || {
        Error::InvalidInput(
            "no AgentId: set agent_id on the node, or connect WeCom with the app's AgentId \
             (the secret agent_id)"
                .into(),
        )
    };
    let text = secrets::get("agent_id").map_err(|_| missing())?;
    text.trim().parse().map_err(|_| {
        Error::InvalidInput(format!(
            "the secret agent_id is {text:?}; an AgentId is a number such as 1000002"
        ))
    })
}

fn send_app_message(config: AppConfig, input: SendInput, _: &Context) -> Result<SendOutput, Error> {
    let to: Vec<&str> = input
        .touser
        .iter()
        .map(|u| u.trim())
        .filter(|u| !u.is_empty())
        .collect();
    if to.is_empty() {
        return Err(Error::InvalidInput("touser names nobody".into()));
    }
    let mut body = json!({ "touser": to.join("|"), "agentid": agent_id(&config)? });
    input.message.write_into(&mut body)?;
    let v = call_api(&config.api_base, "/cgi-bin/message/send", Some(&body))?;
    Ok(SendOutput {
        msgid: v["msgid"].as_str().unwrap_or_default().to_owned(),
        invalid_users: v["invaliduser"]
            .as_str()
            .unwrap_or_default()
            .split('|')
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

// Exported only in the component: natively (where the unit tests run) the export names
// (`poll`, `invoke`…) would shadow the C library's.
#[cfg(target_arch = "wasm32")]
trellis_connector_sdk::export!(WeCom);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn errcodes_are_typed() {
        assert!(check(json!({"errcode": 0, "errmsg": "ok", "msgid": "m"})).is_ok());
        assert!(matches!(
            check(json!({"errcode": 45009, "errmsg": "api freq out of limit"})),
            Err(Error::RateLimited { .. })
        ));
        let expired =
            check(json!({"errcode": 42001, "errmsg": "access_token expired"})).unwrap_err();
        assert!(is_token_error(&expired));
        assert!(matches!(
            check(json!({"errcode": 40013, "errmsg": "invalid corpid"})),
            Err(Error::AuthFailed(m)) if m.contains("40013")
        ));
        assert!(matches!(
            check(json!({"errcode": 81013, "errmsg": "user & party & tag all invalid"})),
            Err(Error::Remote {
                code: 81013,
                retryable: false,
                ..
            })
        ));
    }

    #[test]
    fn the_manifest_names_its_secrets_and_operation() {
        let text = format!("{:?}", WeCom::manifest());
        for must in [
            "create_group_send",
            "get_group_send_result",
            "get_external_contact",
            "mark_tags",
            "create_group_chat",
            "send_group_chat",
            "upload_media",
            "wecom",
            "encoding_aes_key",
            "agent_id",
            "corp_id",
            "send_app_message",
            "inbound: true",
        ] {
            assert!(text.contains(must), "{must} in {text}");
        }
    }
}
