//! Checks on what comes in from outside, before anything is stored: how deeply JSON nests,
//! strings neither database can keep (PostgreSQL stores no NUL character, so both refuse
//! it alike), and the lengths of names and ids.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// What is wrong with a value from outside, and where (a JSON pointer; empty for the whole
/// body).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Invalid {
    pub pointer: String,
    pub detail: String,
}

impl Invalid {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Invalid {
        Invalid {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }

    /// The same problem inside a larger document (`prefix` is where this one sits).
    pub fn within(mut self, prefix: &str) -> Invalid {
        self.pointer = format!("{prefix}{}", self.pointer);
        self
    }
}

/// The longest event name, event id or lead id, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// Refuses JSON nested deeper than `max_depth`, or with a NUL character in a string or a
/// key; the error names the place (`prefix` is the pointer of `value` in the body).
pub fn check_json(value: &Value, prefix: &str, max_depth: usize) -> Result<(), Invalid> {
    use trellis_model::measure::{first_nul, too_deep};
    if let Some(at) = too_deep(value, max_depth) {
        return Err(Invalid::new(
            format!("{prefix}{at}"),
            format!(
                "{}: JSON may nest at most {max_depth} levels here",
                if at.is_empty() && prefix.is_empty() {
                    "body"
                } else {
                    "this value"
                }
            ),
        ));
    }
    match first_nul(value) {
        Some(at) => Err(nul(&format!("{prefix}{at}"))),
        None => Ok(()),
    }
}

fn nul(pointer: &str) -> Invalid {
    Invalid::new(
        pointer.to_owned(),
        format!(
            "{}: text may not contain the NUL character (\\u0000)",
            if pointer.is_empty() { "body" } else { pointer }
        ),
    )
}

/// Checks an event before it is recorded, wherever it comes from (`POST /api/v1/events`, a
/// connector's webhook or poll): its id, name and lead id, and its properties.
pub fn check_event(
    id: &str,
    name: &str,
    lead: Option<&str>,
    properties: &Value,
) -> Result<(), Invalid> {
    check_name(id, "/id", "id")?;
    check_name(name, "/name", "name")?;
    if let Some(lead) = lead {
        check_name(lead, "/lead", "lead")?;
    }
    if !(properties.is_object() || properties.is_null()) {
        return Err(Invalid::new("/properties", "properties must be an object"));
    }
    check_json(properties, "/properties", crate::limits::MAX_INPUT_DEPTH)
}

/// How far back an event may be dated.
pub const MAX_EVENT_AGE_DAYS: i64 = 3650;
/// How far ahead an event may be dated (clocks disagree a little).
pub const MAX_EVENT_LEAD_HOURS: i64 = 24;

/// Refuses a timestamp outside `[now − 10 years, now + 1 day]`: a date far in the future
/// would outweigh every real event in a lead's decayed score, one long past means nothing.
pub fn check_timestamp(t: DateTime<Utc>, pointer: &str) -> Result<(), Invalid> {
    let now = Utc::now();
    let earliest = now - chrono::Duration::days(MAX_EVENT_AGE_DAYS);
    let latest = now + chrono::Duration::hours(MAX_EVENT_LEAD_HOURS);
    if t < earliest || t > latest {
        return Err(Invalid::new(
            pointer,
            format!(
                "timestamp {} is outside what an event may carry: from 10 years ago to 1 day ahead ({} to {})",
                t.to_rfc3339(),
                earliest.format("%Y-%m-%d"),
                latest.format("%Y-%m-%d")
            ),
        ));
    }
    Ok(())
}

/// Refuses an empty, over-long or NUL-carrying name or id (`pointer` names the field).
pub fn check_name(value: &str, pointer: &str, what: &str) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        return Err(Invalid::new(pointer, format!("{what} must not be empty")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Invalid::new(
            pointer,
            format!(
                "{what} is {} bytes; at most {MAX_NAME_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(nul(pointer));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_place_of_each_problem() {
        assert!(check_json(&json!({"a": [1, "x"]}), "", 4).is_ok());
        let e = check_json(&json!({"a": [1, "x\u{0}y"]}), "/properties", 4).unwrap_err();
        assert_eq!(e.pointer, "/properties/a/1");
        let e = check_json(&json!({"k\u{0}": 1}), "", 4).unwrap_err();
        assert_eq!(e.pointer, "/k\u{0}");
        let e = check_json(&json!({"a": [[[1]]]}), "/body", 2).unwrap_err();
        assert_eq!(e.pointer, "/body/a/0");
        assert!(check_name("page_view", "/name", "name").is_ok());
        assert!(check_name(" ", "/name", "name").is_err());
        let e = check_name(&"x".repeat(201), "/id", "id").unwrap_err();
        assert!(e.detail.contains("201 bytes"), "{}", e.detail);
    }
}
