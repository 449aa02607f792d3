//! Size and nesting of JSON values, measured without writing them out and without
//! recursion, so a value of any shape can be measured safely before it is stored; and the
//! JSON pointer of the first place that breaks a rule, built only once it is found.

use serde_json::Value;

/// How big a JSON value is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measure {
    /// Length of its compact JSON text (escapes counted; fractional numbers as their
    /// longest form, 24 characters).
    pub bytes: u64,
    /// Nesting: a scalar is 0, `[]` and `{}` are 1, `[[1]]` is 2.
    pub depth: usize,
    /// Values in it, itself included: what converting or copying it touches.
    pub nodes: u64,
    /// Whether a string or a key holds the NUL character, which PostgreSQL cannot store.
    pub nul: bool,
}

/// Measures `value`.
pub fn measure(value: &Value) -> Measure {
    let mut m = Measure::default();
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        m.nodes += 1;
        match v {
            Value::Null => m.bytes += 4,
            Value::Bool(b) => m.bytes += if *b { 4 } else { 5 },
            Value::Number(n) => m.bytes += number_len(n),
            Value::String(s) => {
                m.bytes += string_len(s);
                m.nul |= s.contains('\0');
            }
            Value::Array(items) => {
                m.depth = m.depth.max(d + 1);
                m.bytes += 2 + items.len().saturating_sub(1) as u64;
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Value::Object(map) => {
                m.depth = m.depth.max(d + 1);
                m.bytes += 2 + map.len().saturating_sub(1) as u64;
                for (k, item) in map {
                    m.bytes += string_len(k) + 1;
                    m.nul |= k.contains('\0');
                    stack.push((item, d + 1));
                }
            }
        }
    }
    m
}

/// A string's length as JSON: quotes, and escapes for `"`, `\` and control characters.
fn string_len(s: &str) -> u64 {
    let extra: u64 = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    s.len() as u64 + 2 + extra
}

fn number_len(n: &serde_json::Number) -> u64 {
    if let Some(i) = n.as_i64() {
        let digits = i.unsigned_abs().checked_ilog10().unwrap_or(0) as u64 + 1;
        digits + u64::from(i < 0)
    } else if let Some(u) = n.as_u64() {
        u.checked_ilog10().unwrap_or(0) as u64 + 1
    } else {
        // Floats print at most 24 characters (`-1.7976931348623157e308`).
        24
    }
}

/// One step of a path into a value.
#[derive(Clone, Copy, Debug)]
enum Segment<'a> {
    Index(usize),
    Key(&'a str),
}

/// The JSON pointer of the first value (in document order) for which `bad(value, depth,
/// key)` holds; `depth` is how many levels down it sits, `key` the key it is under in an
/// object. Walks without recursion and keeps only the path to the current value, so a wide
/// or long-keyed document costs what it weighs.
pub fn find(value: &Value, bad: impl Fn(&Value, usize, Option<&str>) -> bool) -> Option<String> {
    enum Step<'a> {
        Enter(&'a Value, Option<Segment<'a>>),
        Leave,
    }
    let mut path: Vec<Segment<'_>> = Vec::new();
    let mut stack = vec![Step::Enter(value, None)];
    while let Some(step) = stack.pop() {
        let (v, segment) = match step {
            Step::Leave => {
                path.pop();
                continue;
            }
            Step::Enter(v, segment) => (v, segment),
        };
        if let Some(s) = segment {
            path.push(s);
            stack.push(Step::Leave);
        }
        let key = match segment {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        };
        if bad(v, path.len(), key) {
            return Some(pointer(&path));
        }
        match v {
            Value::Array(items) => stack.extend(
                items
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, item)| Step::Enter(item, Some(Segment::Index(i)))),
            ),
            Value::Object(map) => {
                let children: Vec<Step<'_>> = map
                    .iter()
                    .map(|(k, item)| Step::Enter(item, Some(Segment::Key(k))))
                    .collect();
                stack.extend(children.into_iter().rev());
            }
            _ => {}
        }
    }
    None
}

fn pointer(path: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for s in path {
        out.push('/');
        match s {
            Segment::Index(i) => out.push_str(&i.to_string()),
            Segment::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
        }
    }
    out
}

/// The JSON pointer of the first place in `value` nested deeper than `max` levels, if any:
/// where to look when a body is refused for its depth.
pub fn too_deep(value: &Value, max: usize) -> Option<String> {
    find(value, |v, depth, _| {
        matches!(v, Value::Array(_) | Value::Object(_)) && depth + 1 > max
    })
}

/// The JSON pointer of the first string or key holding a NUL character, if any.
pub fn first_nul(value: &Value) -> Option<String> {
    find(value, |v, _, key| {
        key.is_some_and(|k| k.contains('\0')) || v.as_str().is_some_and(|s| s.contains('\0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn measures_like_the_compact_text() {
        for v in [
            json!(null),
            json!(true),
            json!(-12),
            json!(0),
            json!(18446744073709551615u64),
            json!("héllo \"quoted\" \\ back\nslash \u{1} ctl"),
            json!([]),
            json!({}),
            json!([1, [2, 3], {"a": "b", "c\"d": [true, false, null]}]),
        ] {
            let text = serde_json::to_string(&v).unwrap_or_default();
            assert_eq!(measure(&v).bytes, text.len() as u64, "{text}");
        }
        assert_eq!(measure(&json!(1)).depth, 0);
        assert_eq!(measure(&json!([[1], {"a": {}}])).depth, 3);
        assert_eq!(measure(&json!([[1], {"a": {}}])).nodes, 5);
        assert!(measure(&json!({"k": ["a\u{0}"]})).nul);
        assert!(measure(&json!({"k\u{0}": 1})).nul);
        assert!(!measure(&json!({"k": "a"})).nul);
    }

    #[test]
    fn finds_the_first_place_too_deep() {
        let v = json!({"a": [1, {"b": [[2]]}], "c": 3});
        assert_eq!(too_deep(&v, 5), None);
        assert_eq!(too_deep(&v, 4).as_deref(), Some("/a/1/b/0"));
        assert_eq!(too_deep(&json!([]), 0).as_deref(), Some(""));
    }

    #[test]
    fn finds_the_first_nul_in_document_order() {
        let v = json!({"a": ["ok", "x\u{0}"], "b/c": {"d\u{0}": 1}});
        assert_eq!(first_nul(&v).as_deref(), Some("/a/1"));
        let v = json!({"a": 1, "b/c": {"d\u{0}": 1}});
        assert_eq!(first_nul(&v).as_deref(), Some("/b~1c/d\u{0}"));
        assert_eq!(first_nul(&json!({"a": ["b"]})), None);
    }

    /// A wide object under a long key: the walk keeps one path, not one per value.
    #[test]
    fn a_wide_document_with_a_long_key_is_cheap() {
        let wide: serde_json::Map<String, Value> =
            (0..60_000).map(|i| (format!("a{i}"), json!(0))).collect();
        let mut top = serde_json::Map::new();
        top.insert("/".repeat(500_000), Value::Object(wide));
        let v = Value::Object(top);
        assert_eq!(first_nul(&v), None);
        assert_eq!(too_deep(&v, 3), None);
    }
}
