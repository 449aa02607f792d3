//! Durations as flows write them: `"2s"`, `"15m"`, `"3d"`, `"1h 30m"`.

use std::time::Duration;

/// Parses a human duration such as `"2s"` or `"3d"`; the error says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (expected e.g. \"30s\", \"15m\", \"3d\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert!(parse_duration("soon").is_err());
    }
}
