//! Segment's tracking calls turned into Trellis events: pure code, tested natively.
//!
//! Each call (`track`, `page`, `identify`, `screen`, `group`, `alias`, alone or in a
//! `batch`) becomes one event, named as the scoring models and flows know them
//! (`page_view`, `screen_view`, `identify`, `group`, `alias`, or the tracked event's own
//! name), whose payload carries the call's properties, the identities the event intake
//! stitches leads with (`user_id`, `anonymous_id`, and `email`/`phone` from identify
//! traits), the page (`url`, `path`, `referrer`, `title`, `search`), the campaign (`utm`),
//! and the corrected `timestamp`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The calls of Segment's HTTP tracking API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallType {
    Track,
    Page,
    Identify,
    Screen,
    Group,
    Alias,
}

impl CallType {
    /// The call a `type` field or the last path segment names. Segment's browser library
    /// posts to the one-letter paths (`/v1/t`, `/v1/p`…), its server libraries to the
    /// full names.
    pub fn parse(name: &str) -> Option<CallType> {
        Some(match name {
            "track" | "t" => CallType::Track,
            "page" | "p" => CallType::Page,
            "identify" | "i" => CallType::Identify,
            "screen" | "s" => CallType::Screen,
            "group" | "g" => CallType::Group,
            "alias" | "a" => CallType::Alias,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Track => "track",
            CallType::Page => "page",
            CallType::Identify => "identify",
            CallType::Screen => "screen",
            CallType::Group => "group",
            CallType::Alias => "alias",
        }
    }
}

/// How far back an event may be dated, and how far ahead (the event intake's bounds).
const MAX_AGE_MS: i64 = 3650 * 86_400_000;
const MAX_AHEAD_MS: i64 = 86_400_000;
/// The longest event name and identity, in bytes (the event intake's limit).
const MAX_NAME_BYTES: usize = 200;
/// The longest `messageId`: the intake's 200 bytes less the `site-tracking:` prefix.
const MAX_MESSAGE_ID_BYTES: usize = 186;

/// One call, ready for the event intake: its id (the `messageId`), name and payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracked {
    /// `None`: the call had no `messageId` and no time to tell a resend by (the host makes
    /// an id up).
    pub id: Option<String>,
    pub name: String,
    pub payload: Value,
}

/// What became of one call.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Event(Tracked),
    /// Sent by a known robot: dropped.
    Bot,
}

/// User agents of crawlers, monitors and headless browsers (lower case, matched anywhere).
/// `bot` alone would also match phones (Cubot): it counts only as a word's end before
/// `/`, `;`, `)` or `-`, as robots write it (`Googlebot/2.1`, `PetalBot;`).
const BOT_MARKERS: [&str; 24] = [
    "bot/",
    "bot;",
    "bot)",
    "bot-",
    "-bot",
    "crawler",
    "spider",
    "slurp",
    "crawling",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "facebookexternalhit",
    "bingpreview",
    "bytespider",
    "yisouspider",
    "360spider",
    "petalbot",
    "semrush",
    "ahrefs",
    "mj12",
];

/// Whether `user_agent` is a known robot's.
pub fn is_bot(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    BOT_MARKERS.iter().any(|m| ua.contains(m))
}

/// Turns one call into an event. `call` is the path's call for a single call (a batch
/// entry names its own in `type`); `batch_sent_at` and `batch_context` come from a batch's
/// envelope; `user_agent` is the request's; `received_ms` is now.
pub fn normalise(
    entry: &Value,
    call: Option<CallType>,
    batch_sent_at: Option<&Value>,
    batch_context: Option<&Value>,
    user_agent: Option<&str>,
    received_ms: i64,
) -> Result<Outcome, String> {
    let Some(obj) = entry.as_object() else {
        return Err("a call must be a JSON object".into());
    };
    let call = match obj.get("type") {
        Some(Value::String(t)) => CallType::parse(t).ok_or_else(|| {
            format!("unknown type {t:?}: track, page, identify, screen, group or alias")
        })?,
        Some(_) => return Err("type must be a string".into()),
        None => call.ok_or("a batch entry needs a type")?,
    };
    let context = merged_context(obj.get("context"), batch_context);
    let agent = context
        .get("userAgent")
        .and_then(Value::as_str)
        .or(user_agent);
    if agent.is_some_and(is_bot) {
        return Ok(Outcome::Bot);
    }
    let user_id = identity(obj, "userId")?;
    let anonymous_id = identity(obj, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err("userId or anonymousId is required".into());
    }
    let name = match call {
        CallType::Track => {
            let event = obj
                .get("event")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            if event.is_empty() {
                return Err("a track call needs an event name".into());
            }
            if event.len() > MAX_NAME_BYTES {
                return Err(format!("the event name is over {MAX_NAME_BYTES} bytes"));
            }
            event.to_owned()
        }
        CallType::Page => "page_view".into(),
        CallType::Screen => "screen_view".into(),
        CallType::Identify => "identify".into(),
        CallType::Group => "group".into(),
        CallType::Alias => "alias".into(),
    };

    let mut props = Map::new();
    match call {
        CallType::Track | CallType::Page | CallType::Screen => {
            match obj.get("properties") {
                None | Some(Value::Null) => {}
                Some(Value::Object(p)) => {
                    for (k, v) in p {
                        props.insert(kept_name(k), v.clone());
                    }
                }
                Some(_) => return Err("properties must be an object".into()),
            }
            if let Some(page_name) = obj.get("name").and_then(Value::as_str) {
                props.insert("page_name".into(), json!(page_name));
            }
            // Segment's page category ("Docs") is the site's own grouping; `category` is
            // left to the workspace's URL-category rules.
            if let Some(category) = obj.get("category").and_then(Value::as_str) {
                props.insert("page_category".into(), json!(category));
            }
        }
        CallType::Identify => {
            let traits = traits_of(obj, &context)?;
            for key in ["email", "phone", "external_contact_id"] {
                if let Some(v) = traits.get(key).and_then(Value::as_str) {
                    let v = v.trim();
                    let v = if key == "email" {
                        v.to_lowercase()
                    } else {
                        v.to_owned()
                    };
                    if !v.is_empty() {
                        props.insert(key.into(), json!(v));
                    }
                }
            }
            props.insert("traits".into(), Value::Object(traits));
        }
        CallType::Group => {
            let group_id = identity(obj, "groupId")?.ok_or("a group call needs a groupId")?;
            props.insert("group_id".into(), json!(group_id));
            // The company's traits, not the person's: they must not rename the lead.
            props.insert(
                "group_traits".into(),
                Value::Object(traits_of(obj, &context)?),
            );
        }
        CallType::Alias => {
            let previous =
                identity(obj, "previousId")?.ok_or("an alias call needs a previousId")?;
            if user_id.is_none() {
                return Err("an alias call needs a userId".into());
            }
            props.insert("previous_id".into(), json!(previous));
        }
    }

    // The page the call was made on: the call's own properties first (a page call's),
    // then the context's.
    if let Some(page) = context.get("page").and_then(Value::as_object) {
        for key in ["url", "path", "referrer", "title", "search"] {
            if let Some(v) = page.get(key).filter(|v| v.is_string()) {
                props.entry(key).or_insert_with(|| v.clone());
            }
        }
    }
    if let Some(campaign) = context.get("campaign").and_then(Value::as_object) {
        let mut utm = Map::new();
        for (from, to) in [
            ("source", "source"),
            ("medium", "medium"),
            ("name", "campaign"),
            ("term", "term"),
            ("content", "content"),
        ] {
            if let Some(v) = campaign.get(from).filter(|v| v.is_string()) {
                utm.insert(to.into(), v.clone());
            }
        }
        if !utm.is_empty() {
            props.insert("utm".into(), Value::Object(utm));
        }
    }
    if let Some(agent) = agent {
        props.insert("user_agent".into(), json!(agent));
    }
    if let Some(library) = context.get("library").filter(|v| v.is_object()) {
        props.insert("library".into(), library.clone());
    }
    match (call, &anonymous_id) {
        // An alias joins the previous id to the user: as an anonymous identity, the
        // intake merges its lead into the user's.
        (CallType::Alias, _) => {
            props.insert("anonymous_id".into(), props["previous_id"].clone());
        }
        (_, Some(a)) => {
            props.insert("anonymous_id".into(), json!(a));
        }
        _ => {}
    }
    if let Some(u) = &user_id {
        props.insert("user_id".into(), json!(u));
    }

    let dated = obj.get("timestamp").is_some_and(|t| !t.is_null());
    let timestamp = corrected_time(obj, batch_sent_at, received_ms)?;
    props.insert(
        "timestamp".into(),
        json!(timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    let id = match obj.get("messageId") {
        Some(Value::String(m)) if !m.trim().is_empty() => {
            if m.len() > MAX_MESSAGE_ID_BYTES || m.contains('\0') {
                return Err(format!(
                    "messageId must be at most {MAX_MESSAGE_ID_BYTES} bytes, without NUL"
                ));
            }
            Some(m.clone())
        }
        // Without a messageId, a dated call is known again by its content when resent;
        // an undated one is a new event each time.
        Some(Value::String(_)) | None | Some(Value::Null) => dated.then(|| content_id(entry)),
        Some(_) => return Err("messageId must be a string".into()),
    };
    if name.contains('\0') || entry.to_string().contains("\\u0000") {
        return Err("a call may not contain NUL characters".into());
    }
    Ok(Outcome::Event(Tracked {
        id,
        name,
        payload: Value::Object(props),
    }))
}

/// A property named like a field the host reads from the payload (`lead`, `timestamp`)
/// or like an identity the intake stitches leads with is kept under another name: a
/// tracked property never picks the lead, its time, or whose lead it joins
/// (`trellis('track', 'invite_sent', {email: colleague})` stays the visitor's).
fn kept_name(key: &str) -> String {
    match key {
        "lead"
        | "timestamp"
        | "traits"
        | "owner"
        | "user_id"
        | "anonymous_id"
        | "email"
        | "phone"
        | "external_contact_id" => format!("property_{key}"),
        _ => key.to_owned(),
    }
}

/// A batch entry's context over the batch's (entry keys win).
fn merged_context(own: Option<&Value>, batch: Option<&Value>) -> Map<String, Value> {
    let mut out = batch
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(own) = own.and_then(Value::as_object) {
        for (k, v) in own {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// An id field: a string or a number (Segment accepts both), trimmed, at most 200
/// characters; absent or empty is `None`.
fn identity(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    let text = match obj.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(format!("{field} must be a string")),
    };
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_NAME_BYTES || text.contains('\0') {
        return Err(format!(
            "{field} must be at most {MAX_NAME_BYTES} bytes, without NUL"
        ));
    }
    Ok(Some(text))
}

/// An identify or group call's traits (`traits`, else `context.traits`).
fn traits_of(
    obj: &Map<String, Value>,
    context: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    match obj.get("traits").or_else(|| context.get("traits")) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(t)) => Ok(t.clone()),
        Some(_) => Err("traits must be an object".into()),
    }
}

fn parse_time(v: &Value, field: &str) -> Result<DateTime<Utc>, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("{field} must be an ISO-8601 date-time string"))?;
    // Without an offset (a client's naive local time), UTC, as Segment reads it.
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|e| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| t.and_utc())
                .map_err(|_| e)
        })
        .map_err(|e| format!("{field} {text:?} is not an ISO-8601 date-time: {e}"))
}

/// When the call happened, as Segment dates it: the client's `timestamp` moved by the
/// difference between its clock and ours, measured by `sentAt` against the time we
/// received it (`timestamp = received − (sentAt − timestamp)`); without `sentAt` the
/// client's `timestamp`; without either, the time received.
fn corrected_time(
    obj: &Map<String, Value>,
    batch_sent_at: Option<&Value>,
    received_ms: i64,
) -> Result<DateTime<Utc>, String> {
    let received = DateTime::from_timestamp_millis(received_ms).unwrap_or_default();
    let timestamp = match obj
        .get("timestamp")
        .or_else(|| obj.get("originalTimestamp"))
    {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_time(v, "timestamp")?),
    };
    let sent_at = match obj.get("sentAt").or(batch_sent_at) {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_time(v, "sentAt")?),
    };
    let at = match (timestamp, sent_at) {
        (Some(t), Some(s)) => received - (s - t),
        (Some(t), None) => t,
        (None, _) => received,
    };
    let ms = at.timestamp_millis();
    if ms < received_ms - MAX_AGE_MS || ms > received_ms + MAX_AHEAD_MS {
        return Err(format!(
            "timestamp {} is outside what an event may carry: from 10 years ago to 1 day ahead",
            at.to_rfc3339()
        ));
    }
    Ok(at)
}

/// An id for a call that came without a `messageId`: a hash of its content (64-bit
/// FNV-1a over the JSON text), so the same call resent is still recorded once.
fn content_id(entry: &Value) -> String {
    format!(
        "content-{}",
        trellis_connector_sdk::fingerprint(entry.to_string().as_bytes())
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    const NOW: i64 = 1_796_000_000_000; // 2026-11-30T...

    fn event(entry: Value, call: Option<CallType>) -> Tracked {
        match normalise(&entry, call, None, None, None, NOW).unwrap() {
            Outcome::Event(t) => t,
            Outcome::Bot => panic!("dropped as a bot"),
        }
    }

    #[test]
    fn a_page_call_is_a_page_view_with_its_page_campaign_and_identities() {
        let t = event(
            json!({
                "anonymousId": "anon-1", "messageId": "m-1", "name": "对比",
                "properties": {"url": "https://x.cn/compare?a=1", "path": "/compare", "title": "参数对比"},
                "context": {
                    "page": {"url": "https://ignored", "referrer": "https://baidu.com/"},
                    "campaign": {"source": "baidu", "medium": "cpc", "name": "q4"},
                    "userAgent": "Mozilla/5.0 (Windows NT 10.0) Chrome/130"
                }
            }),
            Some(CallType::Page),
        );
        assert_eq!(
            (t.id.as_deref(), t.name.as_str()),
            (Some("m-1"), "page_view")
        );
        let p = &t.payload;
        assert_eq!(
            p["url"], "https://x.cn/compare?a=1",
            "the call's own url wins"
        );
        assert_eq!(p["referrer"], "https://baidu.com/");
        assert_eq!(p["page_name"], "对比");
        assert_eq!(
            p["utm"],
            json!({"source": "baidu", "medium": "cpc", "campaign": "q4"})
        );
        assert_eq!(p["anonymous_id"], "anon-1");
        assert!(p.get("user_id").is_none());
    }

    #[test]
    fn identify_carries_traits_and_the_identities_the_intake_stitches_with() {
        let call = json!({"type": "identify", "userId": 42, "anonymousId": "anon-1",
               "timestamp": "2026-11-29T08:00:00Z",
               "traits": {"name": "王磊", "email": " Wang.Lei@X.cn ", "company": "苏州精工"}});
        let t = event(call.clone(), None);
        assert_eq!(t.name, "identify");
        assert_eq!(t.payload["user_id"], "42");
        assert_eq!(
            t.payload["email"], "wang.lei@x.cn",
            "emails are compared lower-cased"
        );
        assert_eq!(t.payload["traits"]["company"], "苏州精工");
        let id = t.id.clone().unwrap();
        assert!(id.starts_with("content-"), "no messageId: {id}");
        assert_eq!(
            event(call, None).id,
            t.id,
            "the same dated call resent has the same id"
        );
        // Undated and without a messageId: a new event each time (the host makes an id).
        let login = event(
            json!({"type": "track", "event": "login", "userId": "u"}),
            None,
        );
        assert_eq!(login.id, None);
    }

    #[test]
    fn a_company_and_tracked_properties_do_not_change_whose_lead_it_is() {
        let g = event(
            json!({"type": "group", "userId": "u", "groupId": "g1", "traits": {"name": "苏州精工"}}),
            None,
        );
        assert!(g.payload.get("traits").is_none(), "{}", g.payload);
        assert_eq!(g.payload["group_traits"]["name"], "苏州精工");
        let t = event(
            json!({"type": "track", "event": "invite_sent", "anonymousId": "a",
                   "properties": {"email": "colleague@x.cn", "user_id": "someone"}}),
            None,
        );
        assert!(t.payload.get("email").is_none());
        assert!(t.payload.get("user_id").is_none());
        assert_eq!(t.payload["property_email"], "colleague@x.cn");
        assert!(is_bot("Mozilla/5.0 (compatible; Googlebot/2.1)"));
        assert!(!is_bot(
            "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) Chrome/120"
        ));
    }

    #[test]
    fn alias_joins_the_previous_id_as_an_anonymous_identity() {
        let t = event(
            json!({"userId": "u-9", "previousId": "anon-1"}),
            Some(CallType::Alias),
        );
        assert_eq!(t.payload["anonymous_id"], "anon-1");
        assert_eq!(t.payload["user_id"], "u-9");
        let err = normalise(
            &json!({"anonymousId": "a", "previousId": "b"}),
            Some(CallType::Alias),
            None,
            None,
            None,
            NOW,
        )
        .unwrap_err();
        assert!(err.contains("userId"), "{err}");
    }

    #[test]
    fn the_client_clock_is_corrected_by_sent_at() {
        let received = DateTime::from_timestamp_millis(NOW).unwrap();
        // The client's clock is 1 hour fast; the event happened 10 s before it was sent.
        let sent = received + chrono::Duration::hours(1);
        let happened = sent - chrono::Duration::seconds(10);
        let t = event(
            json!({"type": "track", "event": "download", "userId": "u",
                   "timestamp": happened.to_rfc3339(), "sentAt": sent.to_rfc3339()}),
            None,
        );
        let expected = (received - chrono::Duration::seconds(10))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(t.payload["timestamp"], json!(expected));
        // sentAt on the batch envelope does the same.
        let Outcome::Event(b) = normalise(
            &json!({"type": "track", "event": "download", "userId": "u", "timestamp": happened.to_rfc3339()}),
            None,
            Some(&json!(sent.to_rfc3339())),
            None,
            None,
            NOW,
        )
        .unwrap() else {
            panic!("bot")
        };
        assert_eq!(b.payload["timestamp"], json!(expected));
    }

    #[test]
    fn bad_calls_say_what_is_wrong() {
        let bad = |entry: Value| {
            normalise(&entry, None, None, None, None, NOW)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(json!([1])).contains("object"));
        assert!(bad(json!({"type": "buy", "userId": "u"})).contains("unknown type"));
        assert!(bad(json!({"type": "track", "userId": "u"})).contains("event name"));
        assert!(bad(json!({"type": "track", "event": "x"})).contains("userId or anonymousId"));
        assert!(
            bad(json!({"type": "track", "event": "x", "userId": "u", "timestamp": "yesterday"}))
                .contains("ISO-8601")
        );
        let naive = normalise(
            &json!({"type": "track", "event": "x", "userId": "u", "timestamp": "2026-11-29T08:00:00.5"}),
            None,
            None,
            None,
            None,
            NOW,
        );
        assert!(naive.is_ok(), "no offset reads as UTC: {naive:?}");
        assert!(
            bad(json!({"type": "track", "event": "x", "userId": "u", "timestamp": "1990-01-01T00:00:00Z"}))
                .contains("10 years")
        );
        assert!(
            bad(json!({"type": "track", "event": "x", "userId": "u", "properties": [1]}))
                .contains("properties")
        );
        assert!(bad(json!({"type": "group", "userId": "u"})).contains("groupId"));
    }

    #[test]
    fn robots_are_dropped_and_host_fields_are_not_overwritten() {
        let bot = normalise(
            &json!({"type": "page", "anonymousId": "a",
                    "context": {"userAgent": "Mozilla/5.0 (compatible; Baiduspider/2.0)"}}),
            None,
            None,
            None,
            None,
            NOW,
        )
        .unwrap();
        assert_eq!(bot, Outcome::Bot);
        let t = event(
            json!({"type": "track", "event": "x", "userId": "u",
                   "properties": {"lead": "someone-else", "timestamp": "whenever", "plan": "pro"}}),
            None,
        );
        assert!(t.payload.get("lead").is_none());
        assert_eq!(t.payload["property_lead"], "someone-else");
        assert_eq!(t.payload["property_timestamp"], "whenever");
        assert_eq!(t.payload["plan"], "pro");
    }
}
