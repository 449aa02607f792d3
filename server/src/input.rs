//! Checks on what comes in from outside, before anything is stored: how deeply JSON nests,
//! strings neither database can keep (PostgreSQL stores no NUL character, so both refuse
//! it alike), and the lengths of names and ids.

use serde_json::Value;

use crate::error::ApiError;

/// The longest event name, event id or lead id, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// Refuses JSON nested deeper than `max_depth`, or with a NUL character in a string or a
/// key; the error names the place (`prefix` is the pointer of `value` in the body).
pub fn check_json(value: &Value, prefix: &str, max_depth: usize) -> Result<(), ApiError> {
    use trellis_model::measure::{first_nul, too_deep};
    if let Some(at) = too_deep(value, max_depth) {
        return Err(ApiError::invalid(
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

fn nul(pointer: &str) -> ApiError {
    ApiError::invalid(
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
) -> Result<(), ApiError> {
    check_name(id, "/id", "id")?;
    check_name(name, "/name", "name")?;
    if let Some(lead) = lead {
        check_name(lead, "/lead", "lead")?;
    }
    if !(properties.is_object() || properties.is_null()) {
        return Err(ApiError::invalid(
            "/properties",
            "properties must be an object",
        ));
    }
    check_json(properties, "/properties", crate::limits::MAX_INPUT_DEPTH)
}

/// Refuses an empty, over-long or NUL-carrying name or id (`pointer` names the field).
pub fn check_name(value: &str, pointer: &str, what: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(
            pointer,
            format!("{what} must not be empty"),
        ));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(ApiError::invalid(
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
        assert_eq!(e.pointer.as_deref(), Some("/properties/a/1"));
        let e = check_json(&json!({"k\u{0}": 1}), "", 4).unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/k\u{0}"));
        let e = check_json(&json!({"a": [[[1]]]}), "/body", 2).unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/body/a/0"));
        assert!(check_name("page_view", "/name", "name").is_ok());
        assert!(check_name(" ", "/name", "name").is_err());
        let e = check_name(&"x".repeat(201), "/id", "id").unwrap_err();
        assert!(e.detail.contains("201 bytes"), "{}", e.detail);
    }
}
