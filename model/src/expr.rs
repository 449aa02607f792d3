//! CEL expressions and `{{ }}` string templates over one evaluation scope
//! (`trigger`, `vars`, `steps`, `lead`, `event`, `now`).
//!
//! Expressions are parsed by the maintained `cel` crate; this module adds JSON
//! conversion, the `min`, `max` and `round(x, digits)` helpers, and error positions.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use serde::Serialize;
use serde_json::{Map as JsonMap, Value};

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Where an expression went wrong: 1-based line and column in its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// An expression that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
    pub position: Option<Position>,
}

/// An expression that parsed but failed while evaluating.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{expression:?}: {message}")]
pub struct EvalError {
    pub expression: String,
    pub message: String,
}

/// A compiled CEL expression with its source text.
#[derive(Clone)]
pub struct Expr {
    source: String,
    program: Arc<Program>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl Expr {
    /// Parses `source`; the error carries the line and column of the first problem.
    pub fn compile(source: &str) -> Result<Expr, ExprError> {
        if source.trim().is_empty() {
            return Err(ExprError {
                message: "expression is empty".into(),
                position: None,
            });
        }
        match ENV.compile(source) {
            Ok(program) => Ok(Expr {
                source: source.to_owned(),
                program: Arc::new(program),
            }),
            Err(errors) => {
                let first = errors.errors.first();
                Err(ExprError {
                    message: first
                        .map(|e| e.msg.clone())
                        .unwrap_or_else(|| "syntax error".to_owned()),
                    position: first.map(|e| Position {
                        line: e.pos.0.max(1) as u32,
                        column: e.pos.1.max(1) as u32,
                    }),
                })
            }
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `scope` and converts the result to JSON.
    pub fn eval(&self, scope: &Scope) -> Result<Value, EvalError> {
        let mut ctx = Context::with_env(ENV.clone());
        let fail = |message: String| EvalError {
            expression: self.source.clone(),
            message,
        };
        // `min`/`max` come from the crate; `round(x, digits)` is ours.
        ctx.add_function("min", cel::functions::min)
            .map_err(|e| fail(e.to_string()))?;
        ctx.add_function("max", cel::functions::max)
            .map_err(|e| fail(e.to_string()))?;
        ctx.add_function("round", round)
            .map_err(|e| fail(e.to_string()))?;
        for (name, value) in &scope.vars {
            ctx.add_variable_from_value(name.clone(), json_to_cel(value));
        }
        let result = self.program.execute(&ctx).map_err(|e| fail(describe(&e)))?;
        cel_to_json(&result).map_err(fail)
    }

    /// Evaluates and requires a boolean.
    pub fn eval_bool(&self, scope: &Scope) -> Result<bool, EvalError> {
        match self.eval(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError {
                expression: self.source.clone(),
                message: format!("expected a boolean, got {other}"),
            }),
        }
    }
}

fn describe(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::UndeclaredReference(name) => format!("undeclared reference: {name}"),
        other => other.to_string(),
    }
}

fn round(x: f64, digits: i64) -> f64 {
    let factor = 10f64.powi(digits.clamp(0, 15) as i32);
    (x * factor).round() / factor
}

/// The variables an expression or template sees.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    vars: Vec<(String, Value)>,
}

impl Scope {
    pub fn new() -> Self {
        Scope::default()
    }

    /// Binds `name`, replacing an earlier binding of the same name.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.set(name, value);
        self
    }

    pub fn set(&mut self, name: &str, value: Value) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name.to_owned(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// JSON → CEL. Integers that fit `i64` become `int` (not `uint`), so `x + 1` works on
/// JSON numbers as users expect.
pub fn json_to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(json_to_cel).collect())),
        Value::Object(map) => {
            let mut out: HashMap<Key, CelValue> = HashMap::with_capacity(map.len());
            for (k, v) in map {
                out.insert(Key::String(Arc::new(k.clone())), json_to_cel(v));
            }
            CelValue::Map(Map { map: Arc::new(out) })
        }
    }
}

/// CEL → JSON; functions and other non-data values are an error.
pub fn cel_to_json(value: &CelValue) -> Result<Value, String> {
    match value {
        CelValue::Float(f) if !f.is_finite() => Err(format!("result {f} is not a finite number")),
        CelValue::Map(map) => {
            // Keys sorted: CEL maps are unordered, our outputs are deterministic.
            let mut entries: Vec<(String, &CelValue)> =
                map.map.iter().map(|(k, v)| (key_to_string(k), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = JsonMap::new();
            for (k, v) in entries {
                out.insert(k, cel_to_json(v)?);
            }
            Ok(Value::Object(out))
        }
        CelValue::List(items) => items
            .iter()
            .map(cel_to_json)
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => other.json().map_err(|e| e.to_string()),
    }
}

fn key_to_string(key: &Key) -> String {
    match key {
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => u.to_string(),
        Key::Bool(b) => b.to_string(),
        Key::String(s) => s.to_string(),
    }
}

/// A string with `{{ expression }}` holes.
#[derive(Clone, Debug)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Expr(Expr),
}

impl Template {
    /// Parses and compiles every hole; an error's position is within the whole string.
    pub fn parse(source: &str) -> Result<Template, ExprError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut offset = 0usize;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(ExprError {
                    message: "unclosed '{{' in template".into(),
                    position: Some(position_of(source, offset + open)),
                });
            };
            let inner = &after[..close];
            let expr = Expr::compile(inner.trim()).map_err(|e| ExprError {
                message: format!("in '{{{{{inner}}}}}': {}", e.message),
                position: Some(position_of(source, offset + open + 2)),
            })?;
            parts.push(Part::Expr(expr));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// True when the template has at least one `{{ }}` hole.
    pub fn has_holes(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Expr(_)))
    }

    /// Renders: strings are inserted as they are, other values as JSON.
    pub fn render(&self, scope: &Scope) -> Result<String, EvalError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => match e.eval(scope)? {
                    Value::String(s) => out.push_str(&s),
                    Value::Null => {}
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }
}

fn position_of(source: &str, byte_offset: usize) -> Position {
    let before = &source[..byte_offset.min(source.len())];
    let line = before.matches('\n').count() as u32 + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u32
        + 1;
    Position { line, column }
}

/// The expression of a string that is exactly one `{{ expr }}`, which renders to the
/// expression's JSON value rather than to text.
fn whole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

/// Renders every string inside `value` that contains `{{`, leaving other values as they are.
/// A string that is one whole `{{ expr }}` becomes the expression's value (a number stays a
/// number, an object an object).
pub fn render_json(value: &Value, scope: &Scope) -> Result<Value, EvalError> {
    Ok(match value {
        Value::String(s) if whole_expression(s).is_some() => {
            let source = whole_expression(s).unwrap_or_default();
            let expr = Expr::compile(source).map_err(|e| EvalError {
                expression: s.clone(),
                message: e.message,
            })?;
            expr.eval(scope)?
        }
        Value::String(s) if s.contains("{{") => {
            let template = Template::parse(s).map_err(|e| EvalError {
                expression: s.clone(),
                message: e.message,
            })?;
            Value::String(template.render(scope)?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_json(v, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = JsonMap::new();
            for (k, v) in map {
                out.insert(k.clone(), render_json(v, scope)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        Scope::new()
            .with("trigger", json!({"body": {"event": "whitepaper_download", "properties": {"visits_7d": 4, "dwell_s": 180, "industry": "battery"}}}))
            .with("vars", json!({"score": 0.71}))
            .with("steps", json!({"a": {"output": {"n": 2}}}))
    }

    fn check(src: &str, expected: Value) {
        let got = Expr::compile(src).unwrap().eval(&scope()).unwrap();
        assert_eq!(got, expected, "{src}");
    }

    #[test]
    fn evaluates_over_the_scope() {
        check("vars.score >= 0.7", json!(true));
        check("trigger.body.properties.visits_7d + 1", json!(5));
        check("steps.a.output.n * 3", json!(6));
        check(
            "trigger.body.properties.industry in ['ev-parts', 'battery']",
            json!(true),
        );
        check(
            "min(double(trigger.body.properties.dwell_s) / 120.0, 1.0)",
            json!(1.0),
        );
        check("max(1, 5, 3)", json!(5));
        check("round(0.123456, 4)", json!(0.1235));
        check("{'tier': 'hot', 'n': 1}", json!({"n": 1, "tier": "hot"}));
        check(
            "trigger.body.event == 'whitepaper_download' ? 1.0 : 0.0",
            json!(1.0),
        );
    }

    #[test]
    fn parse_errors_carry_a_position() {
        let err = Expr::compile("lead.score >= ").unwrap_err();
        assert_eq!(err.position.as_ref().map(|p| p.line), Some(1));
        assert!(err.position.unwrap().column > 1);
        assert!(Expr::compile("   ").is_err());
    }

    #[test]
    fn eval_errors_name_the_expression() {
        let err = Expr::compile("vars.missing + 1")
            .unwrap()
            .eval(&scope())
            .unwrap_err();
        assert!(err.message.contains("missing"), "{err}");
        let err = Expr::compile("1 + 1")
            .unwrap()
            .eval_bool(&scope())
            .unwrap_err();
        assert!(err.message.contains("boolean"), "{err}");
    }

    #[test]
    fn templates_render_and_report_positions() {
        let t = Template::parse("score {{ vars.score }} for {{trigger.body.properties.industry}}!")
            .unwrap();
        assert_eq!(t.render(&scope()).unwrap(), "score 0.71 for battery!");
        let err = Template::parse("a\nb {{ 1 + }}").unwrap_err();
        assert_eq!(err.position, Some(Position { line: 2, column: 5 }));
        assert!(Template::parse("x {{ y").is_err());
        let rendered = render_json(
            &json!({"text": {"content": "hi {{vars.score}}"}, "n": 1}),
            &scope(),
        )
        .unwrap();
        assert_eq!(rendered, json!({"text": {"content": "hi 0.71"}, "n": 1}));
    }
}
