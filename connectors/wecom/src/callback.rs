//! WeCom's decrypted callback messages turned into Trellis events: pure code, tested
//! natively.
//!
//! | WeCom | event |
//! | --- | --- |
//! | `change_external_contact` / `add_external_contact` (and `add_half_external_contact`) | `wecom.external_contact_added`: the customer's `external_contact_id` (the lead's identity), the follow user, `State` as the channel |
//! | … / `edit_external_contact` | `wecom.external_contact_edited` |
//! | … / `del_external_contact` | `wecom.external_contact_deleted` (the employee removed the customer: contact consent ends) |
//! | … / `del_follow_user` | `wecom.follow_user_deleted` (the customer removed the employee: contact consent ends) |
//! | … / `transfer_fail` | `wecom.transfer_failed` |
//! | `change_external_chat` | `wecom.external_chat_changed` |
//! | `change_external_tag` | `wecom.external_tag_changed` |
//! | a message an employee sent to the app (`text`, `image`…) | `wecom.message_received` |
//! | any other event `X` | `wecom.X` |

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event as XmlEvent;
use serde_json::{Map, Value, json};

/// The leaf elements of a flat WeCom XML message, by name (a repeated name keeps the last).
pub fn fields(xml: &str) -> Result<BTreeMap<String, String>, String> {
    let mut reader = Reader::from_str(xml);
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(XmlEvent::Start(e)) => {
                current = Some(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Ok(XmlEvent::End(_)) => current = None,
            Ok(XmlEvent::Text(t)) => {
                if let Some(name) = &current {
                    let text = t.unescape().map_err(|e| format!("bad XML text: {e}"))?;
                    if !text.trim().is_empty() {
                        out.insert(name.clone(), text.into_owned());
                    }
                }
            }
            Ok(XmlEvent::CData(c)) => {
                if let Some(name) = &current {
                    out.insert(name.clone(), String::from_utf8_lossy(&c).into_owned());
                }
            }
            Ok(XmlEvent::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("the XML does not parse: {e}")),
        }
    }
    Ok(out)
}

/// A callback as one event: its name, id and payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Callback {
    pub name: String,
    pub id: String,
    pub payload: Value,
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        map.insert(key.into(), json!(v));
    }
}

/// The fingerprint of `parts` (each ended by NUL): an id for a callback WeCom may deliver again (it retries
/// three times when an answer is slow), so a retry is recorded once.
fn content_id(parts: &[&str]) -> String {
    let joined: Vec<u8> = parts
        .iter()
        .flat_map(|p| p.bytes().chain(std::iter::once(0)))
        .collect();
    trellis_connector_sdk::fingerprint(&joined)
}

/// The event a decrypted callback message is.
pub fn event(xml: &str) -> Result<Callback, String> {
    let f = fields(xml)?;
    let get = |k: &str| f.get(k);
    let msg_type = get("MsgType").cloned().unwrap_or_default();
    let created = get("CreateTime").and_then(|t| t.trim().parse::<i64>().ok());
    let mut p = Map::new();
    if let Some(t) = created.and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
        p.insert("timestamp".into(), json!(t.to_rfc3339()));
    }
    put(&mut p, "corp_id", get("ToUserName"));
    put(&mut p, "agent_id", get("AgentID"));
    let (name, id_parts): (String, Vec<&str>) = if msg_type == "event" {
        let event = get("Event").cloned().unwrap_or_default();
        let change = get("ChangeType").cloned().unwrap_or_default();
        put(&mut p, "change_type", get("ChangeType"));
        let name = match (event.as_str(), change.as_str()) {
            ("change_external_contact", "add_external_contact" | "add_half_external_contact") => {
                "wecom.external_contact_added".to_owned()
            }
            ("change_external_contact", "edit_external_contact") => {
                "wecom.external_contact_edited".into()
            }
            ("change_external_contact", "del_external_contact") => {
                "wecom.external_contact_deleted".into()
            }
            ("change_external_contact", "del_follow_user") => "wecom.follow_user_deleted".into(),
            ("change_external_contact", "transfer_fail") => "wecom.transfer_failed".into(),
            ("change_external_chat", _) => "wecom.external_chat_changed".into(),
            ("change_external_tag", _) => "wecom.external_tag_changed".into(),
            ("", _) => return Err("an event callback without Event".into()),
            (other, _) => format!("wecom.{other}"),
        };
        if event == "change_external_contact" {
            // The customer is the lead (identity `external_contact_id`); the employee who
            // follows them is its owner; `State` is the channel (the 联系我 QR code or link
            // it came through).
            put(&mut p, "external_contact_id", get("ExternalUserID"));
            put(&mut p, "follow_user", get("UserID"));
            if change == "add_external_contact" || change == "add_half_external_contact" {
                // The rep the customer added owns the lead (when it has no owner yet).
                put(&mut p, "owner", get("UserID"));
            }
            put(&mut p, "channel", get("State"));
            put(&mut p, "welcome_code", get("WelcomeCode"));
            put(&mut p, "fail_reason", get("FailReason"));
            if change == "add_external_contact" || change == "add_half_external_contact" {
                let mut traits = Map::new();
                put(&mut traits, "wecom_follow_user", get("UserID"));
                put(&mut traits, "channel", get("State"));
                if !traits.is_empty() {
                    p.insert("traits".into(), Value::Object(traits));
                }
            }
        } else if event == "change_external_chat" {
            put(&mut p, "chat_id", get("ChatId"));
            put(&mut p, "update_detail", get("UpdateDetail"));
            put(&mut p, "join_scene", get("JoinScene"));
            put(&mut p, "quit_scene", get("QuitScene"));
            put(&mut p, "member_change_count", get("MemChangeCnt"));
        } else if event == "change_external_tag" {
            put(&mut p, "tag_id", get("Id"));
            put(&mut p, "tag_type", get("TagType"));
            put(&mut p, "strategy_id", get("StrategyId"));
        } else {
            put(&mut p, "user_id", get("FromUserName"));
            put(&mut p, "event_key", get("EventKey"));
        }
        let mut parts = vec!["event"];
        for key in [
            "Event",
            "ChangeType",
            "CreateTime",
            "ExternalUserID",
            "UserID",
            "ChatId",
            "Id",
            "FromUserName",
        ] {
            parts.push(get(key).map_or("", String::as_str));
        }
        (name, parts)
    } else if !msg_type.is_empty() {
        // An employee wrote to the app.
        put(&mut p, "user_id", get("FromUserName"));
        put(&mut p, "msg_type", Some(&msg_type));
        put(&mut p, "content", get("Content"));
        put(&mut p, "media_id", get("MediaId"));
        put(&mut p, "msg_id", get("MsgId"));
        let parts = match get("MsgId") {
            Some(id) => vec!["msg", id.as_str()],
            None => vec![
                "msg",
                get("FromUserName").map_or("", String::as_str),
                get("CreateTime").map_or("", String::as_str),
            ],
        };
        ("wecom.message_received".into(), parts)
    } else {
        return Err("a callback without MsgType".into());
    };
    Ok(Callback {
        id: content_id(&id_parts),
        name,
        payload: Value::Object(p),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn a_new_external_contact_names_the_customer_its_follower_and_channel() {
        let xml = "<xml><ToUserName><![CDATA[ww1234]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
            <CreateTime>1796000000</CreateTime><MsgType><![CDATA[event]]></MsgType>\
            <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>\
            <UserID><![CDATA[zhangwei]]></UserID><ExternalUserID><![CDATA[wmABC123]]></ExternalUserID>\
            <State><![CDATA[expo-2026]]></State><WelcomeCode><![CDATA[WC1]]></WelcomeCode></xml>";
        let e = event(xml).unwrap();
        assert_eq!(e.name, "wecom.external_contact_added");
        assert_eq!(e.payload["external_contact_id"], "wmABC123");
        assert_eq!(e.payload["follow_user"], "zhangwei");
        assert_eq!(e.payload["channel"], "expo-2026");
        assert_eq!(e.payload["traits"]["channel"], "expo-2026");
        assert_eq!(e.payload["timestamp"], "2026-11-30T00:53:20+00:00");
        assert_eq!(
            event(xml).unwrap().id,
            e.id,
            "a retried callback has the same id"
        );
        let deleted = xml.replace("add_external_contact", "del_external_contact");
        let d = event(&deleted).unwrap();
        assert_eq!(d.name, "wecom.external_contact_deleted");
        assert_ne!(d.id, e.id);
        assert!(d.payload.get("traits").is_none());
    }

    #[test]
    fn chats_tags_and_messages() {
        let chat = "<xml><ToUserName>ww1</ToUserName><CreateTime>1796000000</CreateTime><MsgType>event</MsgType>\
            <Event>change_external_chat</Event><ChatId>wrOgQh</ChatId><ChangeType>update</ChangeType>\
            <UpdateDetail>add_member</UpdateDetail><JoinScene>1</JoinScene><MemChangeCnt>2</MemChangeCnt></xml>";
        let e = event(chat).unwrap();
        assert_eq!(
            (
                e.name.as_str(),
                &e.payload["chat_id"],
                &e.payload["update_detail"]
            ),
            (
                "wecom.external_chat_changed",
                &json!("wrOgQh"),
                &json!("add_member")
            )
        );
        let msg = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[lina]]></FromUserName>\
            <CreateTime>1796000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
            <Content><![CDATA[客户说预算批了 & 下周签]]></Content><MsgId>4561255354251345929</MsgId><AgentID>218</AgentID></xml>";
        let m = event(msg).unwrap();
        assert_eq!(m.name, "wecom.message_received");
        assert_eq!(m.payload["content"], "客户说预算批了 & 下周签");
        assert_eq!(m.payload["user_id"], "lina");
        assert!(event("<xml><ToUserName>x</ToUserName></xml>").is_err());
        assert!(event("<xml><a>").is_err());
    }
}
