//! The condition builder's model: "field → operator → value" rules in AND/OR groups, written
//! as CEL and read back from it. What the builder writes it can always read again; CEL
//! written by hand that says more than a builder can show reads back as `None`, and the
//! studio then shows it as CEL (still editable, one click away).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use cel::common::ast::{Expr as Ast, IdedExpr, LiteralValue, operators};

use crate::expr::Expr;

/// How a group's rules (or the groups) combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// All must hold (AND).
    #[default]
    All,
    /// Any one is enough (OR).
    Any,
}

impl Join {
    fn cel(self) -> &'static str {
        match self {
            Join::All => " && ",
            Join::Any => " || ",
        }
    }

    fn of(function: &str) -> Option<Join> {
        match function {
            operators::LOGICAL_AND => Some(Join::All),
            operators::LOGICAL_OR => Some(Join::Any),
            _ => None,
        }
    }
}

/// What a rule compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    NotContains,
    StartsWith,
    /// Is one of a list of values.
    In,
    /// The field is there (has a value).
    Exists,
    /// The field is not there.
    Missing,
    /// A date (RFC 3339) within the last N days (the value), as of `now`.
    WithinDays,
    /// A date more than N days before `now`.
    OlderThanDays,
}

impl Op {
    pub const ALL: [Op; 14] = [
        Op::Eq,
        Op::Ne,
        Op::Gt,
        Op::Ge,
        Op::Lt,
        Op::Le,
        Op::Contains,
        Op::NotContains,
        Op::StartsWith,
        Op::In,
        Op::Exists,
        Op::Missing,
        Op::WithinDays,
        Op::OlderThanDays,
    ];

    /// Whether the operator takes a value.
    pub fn takes_value(self) -> bool {
        !matches!(self, Op::Exists | Op::Missing)
    }

    /// The operator in words (`lang`: `zh` or `en`).
    pub fn words(self, lang: &str) -> &'static str {
        let (zh, en) = match self {
            Op::Eq => ("等于", "is"),
            Op::Ne => ("不等于", "is not"),
            Op::Gt => ("大于", "is greater than"),
            Op::Ge => ("不小于", "is at least"),
            Op::Lt => ("小于", "is less than"),
            Op::Le => ("不大于", "is at most"),
            Op::Contains => ("包含", "contains"),
            Op::NotContains => ("不包含", "does not contain"),
            Op::StartsWith => ("开头是", "starts with"),
            Op::In => ("是其中之一", "is one of"),
            Op::Exists => ("有值", "is set"),
            Op::Missing => ("没有值", "is not set"),
            Op::WithinDays => ("在最近几天内（天数）", "is within the last (days)"),
            Op::OlderThanDays => ("早于几天前（天数）", "is more than (days) ago"),
        };
        if lang == "en" { en } else { zh }
    }

    fn comparison(self) -> Option<&'static str> {
        Some(match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            _ => return None,
        })
    }

    fn of_comparison(function: &str) -> Option<Op> {
        Some(match function {
            operators::EQUALS => Op::Eq,
            operators::NOT_EQUALS => Op::Ne,
            operators::GREATER => Op::Gt,
            operators::GREATER_EQUALS => Op::Ge,
            operators::LESS => Op::Lt,
            operators::LESS_EQUALS => Op::Le,
            _ => return None,
        })
    }
}

/// One "field → operator → value" rule. `path` is the field's CEL path
/// (`trigger.event.properties.category`); `value` is a string, number or boolean, or a
/// list of them for [`Op::In`], and `null` when the operator takes none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub path: String,
    pub op: Op,
    #[serde(default)]
    pub value: Value,
}

/// Rules that combine one way.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub join: Join,
    pub rules: Vec<Rule>,
}

/// Groups that combine one way: `(a && b) || c`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub join: Join,
    pub groups: Vec<Group>,
}

/// A value as a CEL literal (`'text'`, `12`, `true`, `['a', 'b']`).
pub fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Null | Value::Object(_) => "null".to_owned(),
    }
}

impl Rule {
    /// The rule as CEL.
    pub fn to_cel(&self) -> String {
        let (path, value) = (&self.path, literal(&self.value));
        if let Some(cmp) = self.op.comparison() {
            return format!("{path} {cmp} {value}");
        }
        match self.op {
            Op::Contains => format!("{path}.contains({value})"),
            Op::NotContains => format!("!{path}.contains({value})"),
            Op::StartsWith => format!("{path}.startsWith({value})"),
            Op::In => format!("{path} in {value}"),
            Op::Exists => format!("has({path})"),
            Op::Missing => format!("!has({path})"),
            Op::WithinDays | Op::OlderThanDays => {
                let days = self.value.as_f64().unwrap_or(0.0).max(0.0);
                let hours = (days * 24.0).round() as i64;
                let cmp = if self.op == Op::WithinDays { ">=" } else { "<" };
                format!("timestamp({path}) {cmp} timestamp(now) - duration('{hours}h')")
            }
            _ => unreachable!("comparisons are written above"),
        }
    }

    /// `timestamp(path) >= timestamp(now) - duration('Nh')` (or `<`) as a relative-date
    /// rule.
    fn read_relative(op: Op, left: &IdedExpr, right: &IdedExpr) -> Option<Rule> {
        let op = match op {
            Op::Ge => Op::WithinDays,
            Op::Lt => Op::OlderThanDays,
            _ => return None,
        };
        let path = match &left.expr {
            Ast::Call(c) if c.func_name == "timestamp" && c.target.is_none() => {
                match c.args.as_slice() {
                    [p] => path_of(p)?,
                    _ => return None,
                }
            }
            _ => return None,
        };
        let Ast::Call(minus) = &right.expr else {
            return None;
        };
        let [now, span] = minus.args.as_slice() else {
            return None;
        };
        if minus.func_name != operators::SUBSTRACT {
            return None;
        }
        match &now.expr {
            Ast::Call(c)
                if c.func_name == "timestamp"
                    && matches!(c.args.as_slice(), [a] if matches!(&a.expr, Ast::Ident(n) if n == "now")) =>
                {}
            _ => return None,
        }
        let hours: i64 = match &span.expr {
            Ast::Call(c) if c.func_name == "duration" => match c.args.as_slice() {
                [a] => match &a.expr {
                    Ast::Literal(LiteralValue::String(h)) => {
                        h.inner().strip_suffix('h')?.parse().ok()?
                    }
                    _ => return None,
                },
                _ => return None,
            },
            _ => return None,
        };
        let value = if hours % 24 == 0 {
            Value::from(hours / 24)
        } else {
            serde_json::Number::from_f64(hours as f64 / 24.0).map(Value::Number)?
        };
        Some(Rule { path, op, value })
    }

    fn read(e: &IdedExpr) -> Option<Rule> {
        let Ast::Call(call) = &e.expr else {
            // `has(a.b)` is a test-only select.
            if let Ast::Select(s) = &e.expr
                && s.test
            {
                return Some(Rule {
                    path: format!("{}.{}", path_of(&s.operand)?, s.field),
                    op: Op::Exists,
                    value: Value::Null,
                });
            }
            return None;
        };
        let name = call.func_name.as_str();
        if let Some(op) = Op::of_comparison(name)
            && let [left, right] = call.args.as_slice()
        {
            if let Some(rule) = Rule::read_relative(op, left, right) {
                return Some(rule);
            }
            return Some(Rule {
                path: path_of(left)?,
                op,
                value: value_of(right)?,
            });
        }
        if name == operators::IN
            && let [left, right] = call.args.as_slice()
            && let Ast::List(list) = &right.expr
        {
            let values = list
                .elements
                .iter()
                .map(value_of)
                .collect::<Option<Vec<_>>>()?;
            return Some(Rule {
                path: path_of(left)?,
                op: Op::In,
                value: Value::Array(values),
            });
        }
        if name == operators::LOGICAL_NOT
            && let [inner] = call.args.as_slice()
        {
            let rule = Rule::read(inner)?;
            let op = match rule.op {
                Op::Contains => Op::NotContains,
                Op::Exists => Op::Missing,
                _ => return None,
            };
            return Some(Rule { op, ..rule });
        }
        let op = match name {
            "contains" => Op::Contains,
            "startsWith" => Op::StartsWith,
            _ => return None,
        };
        let (Some(target), [arg]) = (&call.target, call.args.as_slice()) else {
            return None;
        };
        let value = value_of(arg)?;
        value.is_string().then_some(Rule {
            path: path_of(target)?,
            op,
            value,
        })
    }
}

/// A field path: an identifier followed by fields (`a.b.c`, `a['x-y']`).
fn path_of(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Ast::Ident(name) => Some(name.clone()),
        Ast::Select(s) if !s.test => Some(format!("{}.{}", path_of(&s.operand)?, s.field)),
        Ast::Call(call) if call.func_name == operators::INDEX => match call.args.as_slice() {
            [base, key] => match &key.expr {
                Ast::Literal(LiteralValue::String(k)) => Some(format!(
                    "{}[{}]",
                    path_of(base)?,
                    literal(&Value::String(k.inner().to_string()))
                )),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn value_of(e: &IdedExpr) -> Option<Value> {
    match &e.expr {
        Ast::Literal(LiteralValue::String(s)) => Some(Value::String(s.inner().to_string())),
        Ast::Literal(LiteralValue::Int(i)) => Some(Value::from(*i.inner())),
        Ast::Literal(LiteralValue::UInt(u)) => Some(Value::from(*u.inner())),
        Ast::Literal(LiteralValue::Double(d)) => {
            serde_json::Number::from_f64(*d.inner()).map(Value::Number)
        }
        Ast::Literal(LiteralValue::Boolean(b)) => Some(Value::Bool(*b.inner())),
        Ast::Call(call) if call.func_name == operators::NEGATE => match call.args.as_slice() {
            [inner] => match value_of(inner)? {
                Value::Number(n) => n.as_i64().map(|i| Value::from(-i)).or_else(|| {
                    n.as_f64()
                        .and_then(|f| serde_json::Number::from_f64(-f))
                        .map(Value::Number)
                }),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The operands of a chain of one logical operator (`a && b && c` → `[a, b, c]`).
fn chain<'e>(e: &'e IdedExpr, join: Join, out: &mut Vec<&'e IdedExpr>) {
    if let Ast::Call(call) = &e.expr
        && Join::of(&call.func_name) == Some(join)
    {
        for arg in &call.args {
            chain(arg, join, out);
        }
    } else {
        out.push(e);
    }
}

fn join_of(e: &IdedExpr) -> Option<Join> {
    match &e.expr {
        Ast::Call(call) => Join::of(&call.func_name),
        _ => None,
    }
}

impl Group {
    fn to_cel(&self, wrap: bool) -> String {
        let body = self
            .rules
            .iter()
            .map(Rule::to_cel)
            .collect::<Vec<_>>()
            .join(self.join.cel());
        if wrap && self.rules.len() > 1 {
            format!("({body})")
        } else {
            body
        }
    }
}

impl Condition {
    /// One rule.
    pub fn rule(path: &str, op: Op, value: Value) -> Condition {
        Condition {
            join: Join::All,
            groups: vec![Group {
                join: Join::All,
                rules: vec![Rule {
                    path: path.to_owned(),
                    op,
                    value,
                }],
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(|g| g.rules.is_empty())
    }

    /// The condition as CEL (`true` when it has no rules).
    pub fn to_cel(&self) -> String {
        let groups: Vec<&Group> = self.groups.iter().filter(|g| !g.rules.is_empty()).collect();
        if groups.is_empty() {
            return "true".to_owned();
        }
        let wrap = groups.len() > 1;
        groups
            .iter()
            .map(|g| g.to_cel(wrap))
            .collect::<Vec<_>>()
            .join(self.join.cel())
    }

    /// Reads CEL back into rules and groups; `None` when it says more than a builder can
    /// show (then it stays CEL).
    pub fn from_cel(source: &str) -> Option<Condition> {
        if source.trim() == "true" {
            return Some(Condition::default());
        }
        let expr = Expr::compile(source).ok()?;
        let root = expr.ast();
        let Some(top) = join_of(root) else {
            return Some(Condition {
                join: Join::All,
                groups: vec![Group {
                    join: Join::All,
                    rules: vec![Rule::read(root)?],
                }],
            });
        };
        let mut operands = Vec::new();
        chain(root, top, &mut operands);
        // All plain rules: one group.
        if operands.iter().all(|e| join_of(e).is_none()) {
            let rules = operands
                .into_iter()
                .map(Rule::read)
                .collect::<Option<Vec<_>>>()?;
            return Some(Condition {
                join: Join::All,
                groups: vec![Group { join: top, rules }],
            });
        }
        let mut groups = Vec::new();
        for e in operands {
            match join_of(e) {
                // A nested chain of the other operator is a group.
                Some(inner) => {
                    let mut rules = Vec::new();
                    chain(e, inner, &mut rules);
                    let rules = rules
                        .into_iter()
                        .map(Rule::read)
                        .collect::<Option<Vec<_>>>()?;
                    groups.push(Group { join: inner, rules });
                }
                None => groups.push(Group {
                    join: Join::All,
                    rules: vec![Rule::read(e)?],
                }),
            }
        }
        Some(Condition { join: top, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(path: &str, op: Op, value: Value) -> Rule {
        Rule {
            path: path.into(),
            op,
            value,
        }
    }

    #[test]
    fn every_operator_writes_cel_that_reads_back() {
        for op in Op::ALL {
            let value = match op {
                Op::In => json!(["华东", "华南"]),
                Op::Gt | Op::Ge | Op::Lt | Op::Le => json!(-3.5),
                Op::WithinDays | Op::OlderThanDays => json!(7),
                Op::Exists | Op::Missing => Value::Null,
                _ => json!("it's \"quoted\""),
            };
            let c = Condition::rule("trigger.event.properties.category", op, value);
            let cel = c.to_cel();
            assert!(Expr::compile(&cel).is_ok(), "{cel}");
            assert_eq!(Condition::from_cel(&cel), Some(c), "{cel}");
        }
    }

    #[test]
    fn relative_dates_compare_with_now() {
        let within = Condition::rule("lead.last_visit_at", Op::WithinDays, json!(7));
        let cel = within.to_cel();
        assert_eq!(
            cel,
            "timestamp(lead.last_visit_at) >= timestamp(now) - duration('168h')"
        );
        let expr = Expr::compile(&cel).expect("compiles");
        let scope = |at: &str| {
            crate::expr::Scope::new()
                .with("now", json!("2026-12-06T12:00:00Z"))
                .with("lead", json!({ "last_visit_at": at }))
        };
        assert_eq!(
            expr.eval_bool(&scope("2026-12-01T08:00:00Z")).ok(),
            Some(true)
        );
        assert_eq!(
            expr.eval_bool(&scope("2026-11-20T08:00:00+08:00")).ok(),
            Some(false)
        );
        let older = Condition::rule("lead.last_visit_at", Op::OlderThanDays, json!(0.5));
        let cel = older.to_cel();
        assert!(cel.ends_with("duration('12h')"), "{cel}");
        assert_eq!(Condition::from_cel(&cel), Some(older));
        let expr = Expr::compile(&cel).expect("compiles");
        assert_eq!(
            expr.eval_bool(&scope("2026-12-05T08:00:00Z")).ok(),
            Some(true)
        );
        // Another span or another clock is CEL the builder leaves alone.
        assert_eq!(
            Condition::from_cel("timestamp(a.b) >= timestamp(c) - duration('1h')"),
            None
        );
    }

    #[test]
    fn groups_combine_and_read_back() {
        let c = Condition {
            join: Join::Any,
            groups: vec![
                Group {
                    join: Join::All,
                    rules: vec![
                        rule("lead.attributes.region", Op::Eq, json!("华东")),
                        rule("lead.score", Op::Ge, json!(70)),
                    ],
                },
                Group {
                    join: Join::All,
                    rules: vec![rule("lead.attributes.tags", Op::Contains, json!("高意向"))],
                },
            ],
        };
        let cel = c.to_cel();
        assert_eq!(
            cel,
            "(lead.attributes.region == '华东' && lead.score >= 70) || lead.attributes.tags.contains('高意向')"
        );
        assert_eq!(Condition::from_cel(&cel), Some(c));
        let one = Condition::from_cel("a.b == 1 || a.c == 'x' || has(a.d)").unwrap();
        assert_eq!((one.groups.len(), one.groups[0].join), (1, Join::Any));
        assert_eq!(one.groups[0].rules[2].op, Op::Exists);
        assert_eq!(
            Condition::from_cel("trigger.body['utm-source'] == 'wecom'")
                .unwrap()
                .groups[0]
                .rules[0]
                .path,
            "trigger.body['utm-source']"
        );
    }

    #[test]
    fn what_a_builder_cannot_show_stays_cel() {
        for cel in [
            "size(trigger.body.items) > 2",
            "a.b == c.d",
            "a.b.exists(x, x > 1)",
            "(a == 1 || (b == 2 && (c == 3 || d == 4)))",
            "a ==",
        ] {
            assert_eq!(Condition::from_cel(cel), None, "{cel}");
        }
        assert_eq!(Condition::from_cel("true"), Some(Condition::default()));
        assert_eq!(Condition::default().to_cel(), "true");
    }
}
