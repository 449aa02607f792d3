//! The contact policy: whether a lead may be contacted on a channel now. Pure, so the
//! runtime decides before a call that reaches a customer, and the studio and the lead card
//! show the same answer.
//!
//! - **Consent**: a lead whose consent on a channel (or on all) was revoked — the customer
//!   deleted the rep on WeCom, unsubscribed, or an admin said so — is not contacted there.
//! - **Frequency caps**: at most `max` contacts per calendar day, week (Monday first) or
//!   month on a channel, counted in the lead's time zone (WeCom's own group-send cap is
//!   per month).
//! - **Quiet hours**: no contact between `start` and `end` local time (crossing midnight
//!   when `start > end`), in the lead's time zone (default `Asia/Shanghai`); a call either
//!   waits until they end or is blocked, as the policy says.
//!
//! Every refusal names its rule, in words, so the journal and the lead card can say why.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A calendar period a cap counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
}

/// At most `max` contacts per `per` on `channel`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    /// `wecom_app_message`, `wecom_group_send`, `email`, `sms`… (the channel a connector
    /// operation declares).
    pub channel: String,
    pub max: u32,
    pub per: Period,
}

/// What a call in quiet hours does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenQuiet {
    /// Waits until the quiet hours end, then goes.
    #[default]
    Wait,
    /// Does not happen (the node takes its `blocked` port).
    Block,
}

/// No contact between `start` and `end`, local time (`"21:00"`, `"08:00"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub then: WhenQuiet,
}

/// A workspace's contact policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPolicy {
    #[serde(default)]
    pub caps: Vec<Cap>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// A lead without a `time_zone` attribute is taken to be here (IANA name).
    #[serde(default = "default_zone")]
    pub default_time_zone: String,
}

fn default_zone() -> String {
    "Asia/Shanghai".into()
}

impl Default for ContactPolicy {
    fn default() -> Self {
        ContactPolicy::builtin()
    }
}

/// Whether a revocation on `revoked` covers `channel`: the same channel, or a family of
/// them (`wecom` covers `wecom_group_send`, `wecom_welcome`…).
pub fn covers(revoked: &str, channel: &str) -> bool {
    channel
        .strip_prefix(revoked)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
}

/// Consent to be contacted on one channel or family of channels, or on every channel
/// (`channel: None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Revocation {
    pub channel: Option<String>,
    /// Why, in words ("客户删除了企业微信好友").
    pub reason: String,
    pub at_ms: i64,
}

/// What the policy needs to know about a lead.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadContacts {
    /// The lead's IANA time zone, if known.
    pub time_zone: Option<String>,
    pub revoked: Vec<Revocation>,
    /// Contacts made: channel and when.
    pub sent: Vec<(String, i64)>,
}

/// Which rule refused a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Refusal {
    Consent { reason: String },
    Cap { max: u32, per: Period, sent: u32 },
    QuietHours { start: String, end: String },
}

/// The policy's answer for one contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow,
    /// Not now and not later: the call does not happen.
    Block {
        refusal: Refusal,
        zh: String,
        en: String,
    },
    /// Not before `until_ms` (quiet hours); then ask again.
    Wait {
        until_ms: i64,
        refusal: Refusal,
        zh: String,
        en: String,
    },
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

fn period_words(p: Period) -> (&'static str, &'static str) {
    match p {
        Period::Day => ("每天", "a day"),
        Period::Week => ("每周", "a week"),
        Period::Month => ("每月", "a month"),
    }
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

impl ContactPolicy {
    /// Quiet from 21:00 to 08:00 (calls wait), one WeCom group send a day and four a
    /// month to each customer, in China's time zone.
    pub fn builtin() -> ContactPolicy {
        ContactPolicy {
            caps: vec![
                Cap {
                    channel: "wecom_group_send".into(),
                    max: 1,
                    per: Period::Day,
                },
                Cap {
                    channel: "wecom_group_send".into(),
                    max: 4,
                    per: Period::Month,
                },
            ],
            quiet_hours: Some(QuietHours {
                start: "21:00".into(),
                end: "08:00".into(),
                then: WhenQuiet::Wait,
            }),
            default_time_zone: default_zone(),
        }
    }

    /// Every problem with its JSON pointer.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if chrono_tz::Tz::from_str(&self.default_time_zone).is_err() {
            out.push((
                "/default_time_zone".into(),
                format!(
                    "{:?} is not a time zone name (e.g. Asia/Shanghai)",
                    self.default_time_zone
                ),
            ));
        }
        for (i, c) in self.caps.iter().enumerate() {
            if c.channel.trim().is_empty() {
                out.push((format!("/caps/{i}/channel"), "name the channel".into()));
            } else if c.channel.trim() != c.channel {
                out.push((
                    format!("/caps/{i}/channel"),
                    format!("{:?} has spaces around it", c.channel),
                ));
            }
            if c.max == 0 {
                out.push((
                    format!("/caps/{i}/max"),
                    "at least 1 (to stop a channel, revoke consent instead)".into(),
                ));
            }
        }
        if let Some(q) = &self.quiet_hours {
            for (field, v) in [("start", &q.start), ("end", &q.end)] {
                if parse_time(v).is_none() {
                    out.push((
                        format!("/quiet_hours/{field}"),
                        format!("{v:?} is not a time of day like 21:00"),
                    ));
                }
            }
            if parse_time(&q.start).is_some() && parse_time(&q.start) == parse_time(&q.end) {
                out.push((
                    "/quiet_hours/end".into(),
                    "the quiet hours end when they start".into(),
                ));
            }
        }
        out
    }

    fn zone(&self, lead: &LeadContacts) -> chrono_tz::Tz {
        lead.time_zone
            .as_deref()
            .and_then(|z| chrono_tz::Tz::from_str(z).ok())
            .or_else(|| chrono_tz::Tz::from_str(&self.default_time_zone).ok())
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// May `lead` be contacted on `channel` at `now_ms`? Consent first, then the caps, then
    /// the quiet hours.
    pub fn decide(&self, channel: &str, lead: &LeadContacts, now_ms: i64) -> Decision {
        if let Some(r) = lead
            .revoked
            .iter()
            .find(|r| r.channel.as_deref().is_none_or(|c| covers(c, channel)))
        {
            return Decision::Block {
                zh: format!("已撤回联系许可：{}", r.reason),
                en: format!("consent was revoked: {}", r.reason),
                refusal: Refusal::Consent {
                    reason: r.reason.clone(),
                },
            };
        }
        let tz = self.zone(lead);
        let now = tz.from_utc_datetime(
            &DateTime::<Utc>::from_timestamp_millis(now_ms)
                .unwrap_or_default()
                .naive_utc(),
        );
        for cap in self.caps.iter().filter(|c| c.channel == channel) {
            let start = period_start(now, cap.per);
            let sent = lead
                .sent
                .iter()
                .filter(|(c, at)| c == channel && *at >= start && *at <= now_ms)
                .count();
            let sent = u32::try_from(sent).unwrap_or(u32::MAX);
            if sent >= cap.max {
                let (pzh, pen) = period_words(cap.per);
                return Decision::Block {
                    zh: format!(
                        "超过频次上限：{channel} {pzh}最多 {} 次，已发 {sent} 次",
                        cap.max
                    ),
                    en: format!(
                        "over the cap: at most {} {channel} {pen}, {sent} sent",
                        cap.max
                    ),
                    refusal: Refusal::Cap {
                        max: cap.max,
                        per: cap.per,
                        sent,
                    },
                };
            }
        }
        if let Some(q) = &self.quiet_hours
            && let (Some(start), Some(end)) = (parse_time(&q.start), parse_time(&q.end))
        {
            let t = now.time();
            let quiet = if start < end {
                t >= start && t < end
            } else {
                t >= start || t < end
            };
            if quiet {
                let refusal = Refusal::QuietHours {
                    start: q.start.clone(),
                    end: q.end.clone(),
                };
                let (zh, en) = (
                    format!("免打扰时段（{}–{}，{}）", q.start, q.end, tz.name()),
                    format!("quiet hours ({}–{}, {})", q.start, q.end, tz.name()),
                );
                return match q.then {
                    WhenQuiet::Block => Decision::Block { refusal, zh, en },
                    WhenQuiet::Wait => {
                        // The next `end` after now, local time.
                        let mut day = now.date_naive();
                        if t >= end {
                            day = day.succ_opt().unwrap_or(day);
                        }
                        let until = tz
                            .from_local_datetime(&day.and_time(end))
                            .earliest()
                            .map_or(now_ms + 3_600_000, |d| d.timestamp_millis());
                        Decision::Wait {
                            until_ms: until,
                            refusal,
                            zh,
                            en,
                        }
                    }
                };
            }
        }
        Decision::Allow
    }
}

/// Where a connector operation that reaches a customer says so: the root of its input
/// schema carries `"x-trellis-contact": {"channel": …, "recipient": "/pointer", "identity": …}`.
pub const CONTACT_KEY: &str = "x-trellis-contact";

/// A customer-reaching operation's declaration: the channel it contacts on, where in its
/// input the recipient is (a JSON pointer to a string, or to an array holding one), and
/// which lead identity that value is (`external_contact_id`, `email`…).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDecl {
    pub channel: String,
    pub recipient: String,
    pub identity: String,
}

/// How far back a lead's contacts matter: the longest cap period (a month) and a day.
pub const HISTORY_MS: i64 = 32 * 24 * 3_600_000;

impl ContactDecl {
    /// The declaration of an operation with this input schema (`None`: it reaches no
    /// customer), or what is wrong with it.
    pub fn of_input_schema(schema: &serde_json::Value) -> Result<Option<ContactDecl>, String> {
        let Some(decl) = schema.get(CONTACT_KEY) else {
            return Ok(None);
        };
        let decl: ContactDecl = serde_json::from_value(decl.clone())
            .map_err(|e| format!("{CONTACT_KEY}: {e} (expected channel, recipient, identity)"))?;
        if decl.channel.trim().is_empty() || decl.channel.trim() != decl.channel {
            return Err(format!(
                "{CONTACT_KEY}: name the channel (no spaces around it)"
            ));
        }
        if !crate::identity::IDENTITY_KINDS.contains(&decl.identity.as_str()) {
            return Err(format!(
                "{CONTACT_KEY}: identity {:?} is not one a lead is known by ({})",
                decl.identity,
                crate::identity::IDENTITY_KINDS.join(", ")
            ));
        }
        if !decl.recipient.starts_with('/') {
            return Err(format!(
                "{CONTACT_KEY}: recipient {:?} is not a JSON pointer into the input (e.g. /external_userid)",
                decl.recipient
            ));
        }
        Ok(Some(decl))
    }

    /// The recipient a call's `input` names. The policy is per customer, so a call reaches
    /// one: a string, or an array holding exactly one.
    pub fn recipient_in(&self, input: &serde_json::Value) -> Result<String, String> {
        let value = input.pointer(&self.recipient);
        let one = match value {
            Some(serde_json::Value::Array(items)) if items.len() == 1 => items.first(),
            Some(serde_json::Value::Array(items)) => {
                return Err(format!(
                    "{} names {} customers; a call that reaches customers goes to one at a time, so the contact policy can be kept for each (use one run per customer)",
                    self.recipient,
                    items.len()
                ));
            }
            other => other,
        };
        match one.and_then(serde_json::Value::as_str).map(str::trim) {
            Some(s) if !s.is_empty() => Ok(s.to_owned()),
            _ => Err(format!(
                "{} must name the customer ({}) this call reaches",
                self.recipient, self.identity
            )),
        }
    }
}

/// The first millisecond of the calendar period `now` is in, in its time zone.
fn period_start(now: DateTime<chrono_tz::Tz>, per: Period) -> i64 {
    let date = now.date_naive();
    let first = match per {
        Period::Day => date,
        Period::Week => date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
        Period::Month => date.with_day(1).unwrap_or(date),
    };
    now.timezone()
        .from_local_datetime(&first.and_time(NaiveTime::MIN))
        .earliest()
        .map_or(now.timestamp_millis(), |d| d.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch ms of a Shanghai local time.
    fn sh(s: &str) -> i64 {
        chrono_tz::Asia::Shanghai
            .from_local_datetime(
                &chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap(),
            )
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn one_group_send_a_day_in_the_leads_day() {
        let p = ContactPolicy::builtin();
        let mut lead = LeadContacts::default();
        assert!(
            p.decide("wecom_group_send", &lead, sh("2026-12-07 10:00"))
                .allowed()
        );
        lead.sent
            .push(("wecom_group_send".into(), sh("2026-12-07 09:30")));
        let d = p.decide("wecom_group_send", &lead, sh("2026-12-07 15:00"));
        assert!(
            matches!(
                &d,
                Decision::Block {
                    refusal: Refusal::Cap {
                        max: 1,
                        per: Period::Day,
                        sent: 1
                    },
                    ..
                }
            ),
            "{d:?}"
        );
        // The next day (Shanghai), allowed again; other channels were never capped by it.
        assert!(
            p.decide("wecom_group_send", &lead, sh("2026-12-08 08:30"))
                .allowed()
        );
        assert!(p.decide("email", &lead, sh("2026-12-07 15:00")).allowed());
    }

    #[test]
    fn four_group_sends_a_calendar_month() {
        let p = ContactPolicy::builtin();
        let lead = LeadContacts {
            sent: [
                "2026-11-30 12:00",
                "2026-12-01 12:00",
                "2026-12-02 12:00",
                "2026-12-03 12:00",
                "2026-12-04 12:00",
            ]
            .iter()
            .map(|t| ("wecom_group_send".to_owned(), sh(t)))
            .collect(),
            ..Default::default()
        };
        // November's does not count in December: four this month.
        assert!(
            !p.decide("wecom_group_send", &lead, sh("2026-12-20 12:00"))
                .allowed()
        );
        let fewer = LeadContacts {
            sent: lead.sent[..4].to_vec(),
            ..Default::default()
        };
        assert!(
            p.decide("wecom_group_send", &fewer, sh("2026-12-20 12:00"))
                .allowed()
        );
    }

    #[test]
    fn quiet_hours_wait_until_morning_in_the_leads_time_zone() {
        let p = ContactPolicy::builtin();
        let lead = LeadContacts::default();
        match p.decide("wecom_app_message", &lead, sh("2026-12-07 22:30")) {
            Decision::Wait { until_ms, zh, .. } => {
                assert_eq!(until_ms, sh("2026-12-08 08:00"));
                assert!(zh.contains("免打扰"), "{zh}");
            }
            d => panic!("{d:?}"),
        }
        match p.decide("wecom_app_message", &lead, sh("2026-12-08 06:00")) {
            Decision::Wait { until_ms, .. } => assert_eq!(until_ms, sh("2026-12-08 08:00")),
            d => panic!("{d:?}"),
        }
        // 22:30 in Shanghai is 15:30 in Berlin: a lead there may be contacted.
        let berlin = LeadContacts {
            time_zone: Some("Europe/Berlin".into()),
            ..Default::default()
        };
        assert!(
            p.decide("wecom_app_message", &berlin, sh("2026-12-07 22:30"))
                .allowed()
        );
        let strict = ContactPolicy {
            quiet_hours: Some(QuietHours {
                start: "12:00".into(),
                end: "13:30".into(),
                then: WhenQuiet::Block,
            }),
            ..ContactPolicy::builtin()
        };
        assert!(matches!(
            strict.decide("email", &lead, sh("2026-12-07 12:15")),
            Decision::Block {
                refusal: Refusal::QuietHours { .. },
                ..
            }
        ));
        assert!(
            strict
                .decide("email", &lead, sh("2026-12-07 13:30"))
                .allowed()
        );
    }

    #[test]
    fn revoked_consent_blocks_its_channel_or_all() {
        let p = ContactPolicy::builtin();
        let lead = LeadContacts {
            revoked: vec![Revocation {
                channel: Some("wecom_group_send".into()),
                reason: "客户删除了企业微信好友".into(),
                at_ms: sh("2026-12-01 10:00"),
            }],
            ..Default::default()
        };
        let d = p.decide("wecom_group_send", &lead, sh("2026-12-07 10:00"));
        assert!(
            matches!(&d, Decision::Block { refusal: Refusal::Consent { .. }, zh, .. } if zh.contains("删除")),
            "{d:?}"
        );
        assert!(p.decide("email", &lead, sh("2026-12-07 10:00")).allowed());
        let all = LeadContacts {
            revoked: vec![Revocation {
                channel: None,
                reason: "unsubscribed".into(),
                at_ms: 0,
            }],
            ..Default::default()
        };
        assert!(!p.decide("email", &all, sh("2026-12-07 10:00")).allowed());
        let family = LeadContacts {
            revoked: vec![Revocation {
                channel: Some("wecom".into()),
                reason: "deleted".into(),
                at_ms: 0,
            }],
            ..Default::default()
        };
        assert!(!p.decide("wecom_group_send", &family, 0).allowed());
        assert!(
            p.decide("wecomx", &family, sh("2026-12-07 10:00"))
                .allowed()
        );
        assert!(p.decide("email", &family, sh("2026-12-07 10:00")).allowed());
    }

    #[test]
    fn problems_are_reported_by_pointer() {
        let bad = ContactPolicy {
            caps: vec![Cap {
                channel: " ".into(),
                max: 0,
                per: Period::Week,
            }],
            quiet_hours: Some(QuietHours {
                start: "9pm".into(),
                end: "9pm".into(),
                then: WhenQuiet::Wait,
            }),
            default_time_zone: "China".into(),
        };
        // The same time written two ways is still the same time.
        let endless = ContactPolicy {
            caps: vec![Cap {
                channel: " sms".into(),
                max: 1,
                per: Period::Day,
            }],
            quiet_hours: Some(QuietHours {
                start: "09:00".into(),
                end: "9:00".into(),
                then: WhenQuiet::Wait,
            }),
            ..ContactPolicy::builtin()
        };
        let pointers: Vec<String> = endless.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(pointers, ["/caps/0/channel", "/quiet_hours/end"]);
        let pointers: Vec<String> = bad.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            pointers,
            [
                "/default_time_zone",
                "/caps/0/channel",
                "/caps/0/max",
                "/quiet_hours/start",
                "/quiet_hours/end",
            ]
        );
        assert!(ContactPolicy::builtin().problems().is_empty());
        // A week starts on Monday: Sunday's send counts, last Saturday's does not.
        let weekly = ContactPolicy {
            caps: vec![Cap {
                channel: "sms".into(),
                max: 1,
                per: Period::Week,
            }],
            quiet_hours: None,
            ..ContactPolicy::builtin()
        };
        let lead = |t: &str| LeadContacts {
            sent: vec![("sms".into(), sh(t))],
            ..Default::default()
        };
        // 2026-12-07 is a Monday.
        assert!(
            weekly
                .decide("sms", &lead("2026-12-05 10:00"), sh("2026-12-07 10:00"))
                .allowed()
        );
        assert!(
            !weekly
                .decide("sms", &lead("2026-12-07 09:00"), sh("2026-12-13 23:00"))
                .allowed()
        );
    }

    #[test]
    fn an_operation_declares_its_channel_and_recipient() {
        use serde_json::json;
        let schema = json!({"type": "object", CONTACT_KEY: {
            "channel": "wecom_group_send", "recipient": "/external_userid", "identity": "external_contact_id"}});
        let decl = ContactDecl::of_input_schema(&schema).unwrap().unwrap();
        assert_eq!(decl.channel, "wecom_group_send");
        assert_eq!(
            decl.recipient_in(&json!({"external_userid": ["wmABC"]})),
            Ok("wmABC".into())
        );
        assert_eq!(
            decl.recipient_in(&json!({"external_userid": "wmABC"})),
            Ok("wmABC".into())
        );
        let two = decl
            .recipient_in(&json!({"external_userid": ["a", "b"]}))
            .unwrap_err();
        assert!(two.contains("2 customers"), "{two}");
        assert!(decl.recipient_in(&json!({})).is_err());
        assert!(
            decl.recipient_in(&json!({"external_userid": [""]}))
                .is_err()
        );
        assert_eq!(
            ContactDecl::of_input_schema(&json!({"type": "object"})),
            Ok(None)
        );
        let bad = ContactDecl::of_input_schema(&json!({CONTACT_KEY: {
            "channel": "x", "recipient": "external_userid", "identity": "email"}}));
        assert!(bad.unwrap_err().contains("JSON pointer"));
        assert!(ContactDecl::of_input_schema(&json!({CONTACT_KEY: {"channel": "x"}})).is_err());
        let typo = ContactDecl::of_input_schema(&json!({CONTACT_KEY: {
            "channel": "x", "recipient": "/to", "identity": "external_id"}}));
        assert!(typo.unwrap_err().contains("external_contact_id"));
    }
}
