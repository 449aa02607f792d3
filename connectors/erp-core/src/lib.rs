//! What the ERP connectors (`erp-kingdee`, `erp-sap`, `erp-yonyou`) share.
//!
//! - [`OrderLine`]: one sales-order line in the same words whichever ERP it came from —
//!   customer, order, line, product, quantities ordered / confirmed / shipped / open, the
//!   promised and confirmed dates, and where it stands.
//! - [`PollState`]: what a poll remembers between runs, kept in its cursor (so it is
//!   saved only after the poll's events are recorded: a crash repeats a poll, it never
//!   loses or doubles one): the modification watermark the next read starts from, and the
//!   open lines being watched. [`PollState::advance`] folds the lines read since into it
//!   and gives the events: `erp.order_changed` for each line read, `erp.delivery_completed`
//!   when a watched line is fully shipped, and `erp.delivery_overdue` when a watched line's
//!   confirmed date has passed with quantity still open — once per line and date (its
//!   event id names both, so the intake keeps one), and again only when the date moves.
//!
//! Pure: the connectors' HTTP is theirs; this part runs in native tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use trellis_connector_sdk::{Error, Event, JsonSchema, Value, json};

/// Event names (a contract: flows trigger on them).
pub const ORDER_CHANGED: &str = "erp.order_changed";
pub const DELIVERY_OVERDUE: &str = "erp.delivery_overdue";
pub const DELIVERY_COMPLETED: &str = "erp.delivery_completed";

/// The most lines a poll watches (each is kept in the cursor).
pub const MAX_WATCHED: usize = 20_000;

/// The customer an order is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// The ERP's customer number.
    pub id: String,
    /// Its name (the account leads attach to, by name); the number when the ERP gives none.
    pub name: String,
}

/// Where a line stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    /// Quantity still to ship.
    Open,
    /// Held by a delivery block (still counts as open, and can be overdue).
    Blocked,
    /// Everything shipped.
    Completed,
    /// Closed or rejected without shipping the rest.
    Closed,
}

/// One sales-order line, normalised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub customer: Customer,
    pub order: String,
    pub line: String,
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    pub qty_ordered: f64,
    pub qty_confirmed: f64,
    pub qty_shipped: f64,
    pub qty_open: f64,
    /// The date the customer was promised (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised_date: Option<String>,
    /// The date the ERP confirms delivery for (`YYYY-MM-DD`); overdue counts from it (or
    /// from the promised date when none is confirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_date: Option<String>,
    pub status: LineStatus,
    /// The ERP's last-change stamp of the order, as the next read filters on it.
    pub modified: String,
}

impl OrderLine {
    fn key(&self) -> String {
        format!("{}/{}", self.order, self.line)
    }

    /// The date overdue counts from.
    pub fn due_date(&self) -> Option<NaiveDate> {
        self.confirmed_date
            .as_deref()
            .or(self.promised_date.as_deref())
            .and_then(date_of)
    }

    fn is_open(&self) -> bool {
        matches!(self.status, LineStatus::Open | LineStatus::Blocked) && self.qty_open > 0.0
    }

    /// The line as events carry it; `company` is the customer's name, so the event
    /// links to the account leads attach to.
    pub fn to_json(&self, system: &str) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        v["system"] = json!(system);
        v["company"] = json!(self.customer.name);
        v
    }
}

/// A calendar date from an ERP's date or timestamp text (`2026-12-01`,
/// `2026-12-01T00:00:00`, `2026-12-01 08:00:00`).
pub fn date_of(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// Today in a time zone `offset_hours` east of UTC, at `now_ms`.
pub fn today(now_ms: u64, offset_hours: i32) -> NaiveDate {
    let at = DateTime::from_timestamp_millis(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .unwrap_or_default()
        + Duration::hours(i64::from(offset_hours.clamp(-12, 14)));
    at.date_naive()
}

/// What every ERP poll is configured with, beside its system's own fields.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct Watch {
    /// The ERP's time zone, in hours east of UTC (China: 8); "today" is counted there.
    #[serde(default = "china")]
    #[schemars(extend("x-trellis" = { "label": {"zh": "时区（东几区）", "en": "Time zone (hours east of UTC)"} }))]
    pub utc_offset_hours: i32,
    /// The first poll reads orders changed since this date (`YYYY-MM-DD`; default: 90 days
    /// ago).
    #[serde(default)]
    #[schemars(extend("x-trellis" = { "label": {"zh": "首次读取起始日期", "en": "First read from"} }))]
    pub start_from: Option<String>,
}

fn china() -> i32 {
    8
}

impl Watch {
    /// Where the first read starts, as a date.
    pub fn first_read(&self, today: NaiveDate) -> Result<NaiveDate, Error> {
        match &self.start_from {
            Some(text) => date_of(text).ok_or_else(|| {
                Error::InvalidInput(format!("start_from {text:?} is not a date (YYYY-MM-DD)"))
            }),
            None => Ok(today - Duration::days(90)),
        }
    }
}

/// A watched line and the date its overdue was raised for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Watched {
    pub line: OrderLine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raised: Option<String>,
}

/// What a poll keeps between runs (its cursor).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PollState {
    /// The latest modification stamp read; the next read takes changes from it on
    /// (inclusive: lines stamped the same moment are read again, which is harmless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Open lines, by `order/line`.
    #[serde(default)]
    pub lines: BTreeMap<String, Watched>,
    /// Other overdues a system raises (a planned goods issue passed without movement), by
    /// key, with the date each was raised for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raised: BTreeMap<String, String>,
}

impl PollState {
    /// The state a cursor holds (none: a first poll).
    pub fn from_cursor(cursor: Option<&str>) -> Result<PollState, Error> {
        match cursor.filter(|c| !c.is_empty()) {
            None => Ok(PollState::default()),
            Some(c) => serde_json::from_str(c)
                .map_err(|e| Error::Internal(format!("the poll's cursor does not read: {e}"))),
        }
    }

    pub fn to_cursor(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Folds the lines read since the last poll in (in any order), then raises what is
    /// overdue on `today`; gives the events (see the crate's description).
    pub fn advance(
        &mut self,
        system: &str,
        mut changed: Vec<OrderLine>,
        today: NaiveDate,
    ) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        changed.sort_by(|a, b| a.modified.cmp(&b.modified));
        for line in changed {
            let key = line.key();
            let before = self.lines.get(&key);
            let mut payload = line.to_json(system);
            if let Some(b) = before {
                payload["previous"] = json!({
                    "status": b.line.status, "qty_open": b.line.qty_open,
                    "confirmed_date": b.line.confirmed_date,
                });
            }
            events.push(Event {
                name: ORDER_CHANGED.into(),
                id: Some(format!("{system}:changed:{key}:{}", line.modified)),
                payload,
            });
            if self
                .since
                .as_deref()
                .is_none_or(|s| s < line.modified.as_str())
            {
                self.since = Some(line.modified.clone());
            }
            if line.is_open() {
                let raised = before.and_then(|b| b.raised.clone());
                self.lines.insert(key, Watched { line, raised });
            } else if let Some(was) = self.lines.remove(&key)
                && line.status == LineStatus::Completed
            {
                let mut payload = line.to_json(system);
                if let Some(due) = was.line.due_date() {
                    payload["days_late"] = json!((today - due).num_days().max(0));
                }
                events.push(Event {
                    name: DELIVERY_COMPLETED.into(),
                    id: Some(format!("{system}:completed:{key}")),
                    payload,
                });
            }
        }
        if self.lines.len() > MAX_WATCHED {
            return Err(Error::Internal(format!(
                "more than {MAX_WATCHED} open order lines to watch; narrow the poll (start_from)"
            )));
        }
        for (key, watched) in &mut self.lines {
            let Some(due) = watched.line.due_date() else {
                continue;
            };
            let date = due.format("%Y-%m-%d").to_string();
            if due >= today || watched.raised.as_deref() == Some(date.as_str()) {
                continue;
            }
            let mut payload = watched.line.to_json(system);
            payload["days_overdue"] = json!((today - due).num_days());
            payload["due_date"] = json!(date);
            events.push(Event {
                name: DELIVERY_OVERDUE.into(),
                id: Some(format!("{system}:overdue:{key}:{date}")),
                payload,
            });
            watched.raised = Some(date);
        }
        Ok(events)
    }
}

impl PollState {
    /// `erp.delivery_overdue` for each overdue the system found itself, `(key, date,
    /// payload)`, unless raised before for that date; what is no longer pending is
    /// forgotten.
    pub fn raise_pending(
        &mut self,
        system: &str,
        pending: Vec<(String, String, Value)>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let mut still = BTreeMap::new();
        for (key, date, payload) in pending {
            if self.raised.get(&key) != Some(&date) {
                events.push(Event {
                    name: DELIVERY_OVERDUE.into(),
                    id: Some(format!("{system}:overdue:{key}:{date}")),
                    payload,
                });
            }
            still.insert(key, date);
        }
        self.raised = still;
        events
    }
}

/// A number an ERP sends as a number or as text (`"12.000"`).
pub fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Text an ERP sends as text or as a number (ids); empty for anything else.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(order: &str, date: &str, open: f64, status: LineStatus, modified: &str) -> OrderLine {
        OrderLine {
            customer: Customer {
                id: "C001".into(),
                name: "华东精密".into(),
            },
            order: order.into(),
            line: "1".into(),
            product: "X5".into(),
            product_name: None,
            qty_ordered: 10.0,
            qty_confirmed: 10.0,
            qty_shipped: 10.0 - open,
            qty_open: open,
            promised_date: Some(date.into()),
            confirmed_date: Some(date.into()),
            status,
            modified: modified.into(),
        }
    }

    fn day(s: &str) -> NaiveDate {
        date_of(s).unwrap()
    }

    fn names(events: &[Event]) -> Vec<(&str, &str)> {
        events
            .iter()
            .map(|e| (e.name.as_str(), e.id.as_deref().unwrap_or("")))
            .collect()
    }

    #[test]
    fn an_overdue_is_raised_once_per_line_and_date() {
        let mut s = PollState::default();
        let events = s
            .advance(
                "sap",
                vec![
                    line("A", "2026-12-01", 4.0, LineStatus::Open, "t1"),
                    line("B", "2026-12-20", 4.0, LineStatus::Open, "t2"),
                ],
                day("2026-12-07"),
            )
            .unwrap();
        assert_eq!(
            names(&events),
            [
                (ORDER_CHANGED, "sap:changed:A/1:t1"),
                (ORDER_CHANGED, "sap:changed:B/1:t2"),
                (DELIVERY_OVERDUE, "sap:overdue:A/1:2026-12-01"),
            ]
        );
        assert_eq!(events[2].payload["days_overdue"], 6);
        assert_eq!(events[2].payload["company"], "华东精密");
        assert_eq!(s.since.as_deref(), Some("t2"));

        // Through the cursor, nothing new: nothing raised again.
        let mut s = PollState::from_cursor(Some(&s.to_cursor())).unwrap();
        assert!(
            s.advance("sap", vec![], day("2026-12-08"))
                .unwrap()
                .is_empty()
        );

        // Time passes B's date: it is raised without any change read.
        let events = s.advance("sap", vec![], day("2026-12-21")).unwrap();
        assert_eq!(
            names(&events),
            [(DELIVERY_OVERDUE, "sap:overdue:B/1:2026-12-20")]
        );

        // A's date moves (still past): raised again, for the new date.
        let events = s
            .advance(
                "sap",
                vec![line("A", "2026-12-05", 4.0, LineStatus::Open, "t3")],
                day("2026-12-21"),
            )
            .unwrap();
        assert_eq!(
            names(&events),
            [
                (ORDER_CHANGED, "sap:changed:A/1:t3"),
                (DELIVERY_OVERDUE, "sap:overdue:A/1:2026-12-05"),
            ]
        );
        assert_eq!(
            events[0].payload["previous"]["confirmed_date"],
            "2026-12-01"
        );
    }

    #[test]
    fn a_watched_line_fully_shipped_completes_and_is_no_longer_watched() {
        let mut s = PollState::default();
        s.advance(
            "kingdee",
            vec![line("A", "2026-12-01", 4.0, LineStatus::Open, "t1")],
            day("2026-12-03"),
        )
        .unwrap();
        let events = s
            .advance(
                "kingdee",
                vec![line("A", "2026-12-01", 0.0, LineStatus::Completed, "t2")],
                day("2026-12-04"),
            )
            .unwrap();
        assert_eq!(
            names(&events),
            [
                (ORDER_CHANGED, "kingdee:changed:A/1:t2"),
                (DELIVERY_COMPLETED, "kingdee:completed:A/1"),
            ]
        );
        assert_eq!(events[1].payload["days_late"], 3);
        assert!(s.lines.is_empty());
        // A line first seen already shipped is history: no completion.
        let events = s
            .advance(
                "kingdee",
                vec![line("Z", "2026-11-01", 0.0, LineStatus::Completed, "t3")],
                day("2026-12-04"),
            )
            .unwrap();
        assert_eq!(names(&events), [(ORDER_CHANGED, "kingdee:changed:Z/1:t3")]);
    }

    #[test]
    fn closed_and_future_lines_raise_nothing_and_today_is_counted_in_the_erp_zone() {
        let mut s = PollState::default();
        let events = s
            .advance(
                "yonyou",
                vec![
                    line("C", "2026-12-01", 4.0, LineStatus::Closed, "t1"),
                    line("D", "2026-12-07", 4.0, LineStatus::Blocked, "t2"),
                ],
                day("2026-12-07"),
            )
            .unwrap();
        assert_eq!(events.len(), 2, "two changes, nothing overdue yet");
        assert_eq!(s.lines.len(), 1, "the blocked line is watched");
        // 2026-12-06T17:00Z is already the 7th in China.
        assert_eq!(today(1_796_576_400_000, 8), day("2026-12-07"));
        assert_eq!(today(1_796_576_400_000, 0), day("2026-12-06"));
    }

    #[test]
    fn pending_overdues_are_raised_once_and_forgotten_when_resolved() {
        let mut s = PollState::default();
        let p = |date: &str| vec![("gi:80001/10".to_owned(), date.to_owned(), json!({}))];
        assert_eq!(s.raise_pending("sap", p("2026-12-01")).len(), 1);
        assert!(s.raise_pending("sap", p("2026-12-01")).is_empty());
        let moved = s.raise_pending("sap", p("2026-12-03"));
        assert_eq!(
            moved[0].id.as_deref(),
            Some("sap:overdue:gi:80001/10:2026-12-03")
        );
        assert!(s.raise_pending("sap", vec![]).is_empty());
        assert!(s.raised.is_empty());
    }

    #[test]
    fn numbers_and_texts_read_both_ways() {
        assert_eq!(number(&json!("12.500")), 12.5);
        assert_eq!(number(&json!(3)), 3.0);
        assert_eq!(text(&json!(1_234_567_890_123_u64)), "1234567890123");
        assert_eq!(date_of("2026-12-01T00:00:00"), Some(day("2026-12-01")));
        assert_eq!(date_of("12/01/2026"), None);
    }
}
