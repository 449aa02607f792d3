//! CEL expressions and `{{ }}` string templates over one evaluation scope
//! (`trigger`, `vars`, `steps`, `lead`, `event`, `now`).
//!
//! Expressions are parsed by the maintained `cel` crate; this module adds JSON
//! conversion, the `min`, `max` and `round(x, digits)` helpers, error positions, and the
//! limits that keep hostile expressions from hurting the process that runs them:
//!
//! | limit | value | checked | error |
//! | --- | --- | --- | --- |
//! | source length | [`MAX_SOURCE_BYTES`] | at parse | `expression is … bytes` |
//! | nesting | [`MAX_DEPTH`] levels of the parsed tree | at parse | `expression nests … deep` |
//! | cost | [`COST_LIMIT`] units per evaluation | before each evaluation, against its data | `expression_too_costly` |
//!
//! The depth limit bounds the interpreter's recursion, so evaluation cannot overflow the
//! stack; parsing runs where at least [`PARSE_STACK`] of stack is free (a new segment is
//! mapped when it is not). The cost of an evaluation is priced before it runs
//! (`cost.rs`): the interpreter cannot be interrupted, so what it would do is bounded first.

mod cost;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::objects::Key;
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use serde::Serialize;
use serde_json::{Map as JsonMap, Value};

pub use cost::BYTES_PER_UNIT;

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

thread_local! {
    /// The interpreter's root context: the standard library plus `min`, `max` (from the
    /// crate) and `round(x, digits)` (ours), built once per thread. Each evaluation
    /// binds its variables in a child of it.
    static ROOT: Context<'static, 'static> = {
        let mut ctx = Context::with_env(ENV.clone());
        // These names are not in the standard library, so adding them cannot conflict
        // (and the tests call all three).
        let added = [
            ctx.add_function("min", cel::functions::min),
            ctx.add_function("max", cel::functions::max),
            ctx.add_function("round", round),
        ];
        debug_assert!(added.iter().all(Result::is_ok), "{added:?}");
        ctx
    };
}

/// A child of `root` whose values may borrow for a shorter `'v` than the root's.
fn inner<'b, 'v>(root: &'b Context<'b, 'v>) -> Context<'b, 'v> {
    root.new_inner_scope()
}

/// The variables one evaluation sees, already converted.
struct Named<'s, 'v>(Vec<(&'s str, &'s (dyn Val + 'v))>);

impl VariableResolver for Named<'_, '_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.0
            .iter()
            .find(|(name, _)| *name == variable)
            .map(|(_, value)| CowVal::Borrowed(*value))
    }
}

/// The longest expression accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 4096;
/// The deepest parsed expression accepted: `a + b` is two levels, each call, index,
/// member, list or macro one more.
pub const MAX_DEPTH: usize = 64;
/// What one evaluation may cost (see `cost.rs`): about a step of the interpreter, or
/// [`BYTES_PER_UNIT`] bytes built. A million is tens of milliseconds.
pub const COST_LIMIT: u64 = 1_000_000;
/// Stack that parsing and evaluating any expression within the limits needs (1.5 MiB;
/// measured by the `accepted_expressions_fit_the_parse_stack` test).
pub const PARSE_STACK: usize = 3 << 19;

/// Where an expression went wrong: 1-based line and column in its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

/// An expression that does not parse, or breaks a limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{message}{}", .position.as_ref().map(|p| format!(" (line {}, column {})", p.line, p.column)).unwrap_or_default())]
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
    /// The scope variables it names (`trigger`, `vars`, …): only these are converted.
    roots: Arc<[String]>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl Expr {
    /// Parses `source`; the error carries the line and column of the first problem.
    /// Expressions longer than [`MAX_SOURCE_BYTES`] or deeper than [`MAX_DEPTH`] are
    /// refused.
    pub fn compile(source: &str) -> Result<Expr, ExprError> {
        let plain = |message: String| ExprError {
            message,
            position: None,
        };
        if source.trim().is_empty() {
            return Err(plain("expression is empty".into()));
        }
        if source.len() > MAX_SOURCE_BYTES {
            return Err(plain(format!(
                "expression is {} bytes; an expression may have at most {MAX_SOURCE_BYTES}",
                source.len()
            )));
        }
        // Refused before parsing: the parser recurses once per level, and so would
        // everything after it.
        let nesting = nesting_bound(source);
        if nesting > 2 * MAX_DEPTH {
            return Err(plain(format!(
                "expression nests too deeply (about {nesting} levels; at most {MAX_DEPTH} are \
                 allowed): split it into several variables"
            )));
        }
        // The tree is checked, and dropped when refused, where parsing built it.
        let program = with_stack(|| {
            let program = guarded(|| ENV.compile(source))
                .map_err(|panic| plain(format!("the expression could not be parsed: {panic}")))?
                .map_err(|errors| parse_error(&errors))?;
            let depth = depth(program.expression());
            if depth > MAX_DEPTH {
                return Err(plain(format!(
                    "expression nests {depth} levels deep; at most {MAX_DEPTH} are allowed \
                     (split it into several variables)"
                )));
            }
            Ok(program)
        })?;
        let roots = program
            .references()
            .variables()
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(Expr {
            source: source.to_owned(),
            program: Arc::new(program),
            roots,
        })
    }

    /// What evaluating this expression against `scope` may cost at most (see `cost.rs`).
    pub fn cost(&self, scope: &Scope<'_>) -> u64 {
        cost::estimate(self.program.expression(), scope)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed tree (the condition builder reads its rules back from it).
    pub(crate) fn ast(&self) -> &IdedExpr {
        self.program.expression()
    }

    /// The ids of the steps whose outputs this expression reads (`steps.<id>…`), or `None`
    /// when it uses `steps` in another way and may read any of them.
    pub fn step_refs(&self) -> Option<BTreeSet<String>> {
        let mut ids = BTreeSet::new();
        refs(self.program.expression(), &mut ids).then_some(ids)
    }

    /// Evaluates against `scope` and converts the result to JSON.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, EvalError> {
        let fail = |message: String| EvalError {
            expression: self.source.clone(),
            message,
        };
        let cost = self.cost(scope);
        if cost > COST_LIMIT {
            return Err(fail(format!(
                "expression_too_costly: on this data the expression could take {cost} steps; \
                 an evaluation may take {COST_LIMIT} (iterate over fewer items, or nest fewer \
                 comprehensions)"
            )));
        }
        scope.spend(cost).map_err(fail)?;
        // Only the variables it names are handed over, each converted once per scope (and
        // paid for from its budget then).
        let mut named = Vec::with_capacity(self.roots.len());
        for binding in scope.vars.iter().filter(|b| self.roots.contains(&b.name)) {
            named.push((
                binding.name.as_str(),
                scope.converted(binding).map_err(fail)?,
            ));
        }
        let resolver = Named(named);
        let result = with_stack(|| {
            guarded(|| {
                ROOT.with(|root| {
                    let mut ctx = inner(root);
                    ctx.set_variable_resolver(&resolver);
                    self.program.execute(&ctx)
                })
            })
        })
        .map_err(|panic| fail(format!("the expression could not be evaluated: {panic}")))?
        .map_err(|e| fail(describe(&e)))?;
        cel_to_json(&result).map_err(fail)
    }

    /// Evaluates and requires a boolean.
    pub fn eval_bool(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        match self.eval(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError {
                expression: self.source.clone(),
                message: format!("expected a boolean, got {}", preview(&other)),
            }),
        }
    }
}

/// Runs `f` where at least [`PARSE_STACK`] of stack is free.
fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(not(target_family = "wasm"))]
    {
        stacker::maybe_grow(PARSE_STACK, 4 * PARSE_STACK, f)
    }
    // The studio parses what its user types, on the browser's stack; the limits above
    // still hold there.
    #[cfg(target_family = "wasm")]
    {
        f()
    }
}

/// Runs `f`, turning a panic inside the `cel` crate into an error: a flaw there must fail
/// one expression, not the run or the request it is part of.
fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "internal error".to_owned())
    })
}

/// The first parse error, in words, with its position.
fn parse_error(errors: &cel::ParseErrors) -> ExprError {
    let Some(first) = errors.errors.first() else {
        return ExprError {
            message: "syntax error".into(),
            position: None,
        };
    };
    let message = if first.msg == "UNKNOWN" || first.msg.starts_with("Recursion limit") {
        // The parser's own recursion guard (parentheses, lists, calls nested too deep).
        format!("expression nests too deeply; at most {MAX_DEPTH} levels are allowed")
    } else {
        first
            .msg
            .strip_prefix("Syntax error: ")
            .unwrap_or(&first.msg)
            .to_owned()
    };
    ExprError {
        message,
        position: (first.pos.0 > 0).then(|| Position {
            line: first.pos.0.max(1) as u32,
            column: first.pos.1.max(1) as u32,
        }),
    }
}

/// An upper bound, from the text alone, on how deeply the parser will recurse: brackets,
/// plus chains of operators within a bracket (`a + b + c`, `a.b.c`, `!-!x`, ternaries),
/// which its grammar nests one level per operator. `||` and `&&` chains and commas do not
/// nest. String literals and comments are skipped.
fn nesting_bound(source: &str) -> usize {
    let bytes = source.as_bytes();
    // Operators since the last reset, per open bracket (the outermost first).
    let mut runs: Vec<usize> = vec![0];
    let mut deepest = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        match c {
            b'\'' | b'"' => {
                // Skipped as the lexer reads it: `r` (or `rb`/`br`) before the quote makes
                // it raw; single-quoted text ends at the line; an unterminated literal is
                // an error the lexer skips one character past, reading on as code.
                let before = |k: usize| i.checked_sub(k).map(|j| bytes[j].to_ascii_lowercase());
                let raw =
                    before(1) == Some(b'r') || (before(1) == Some(b'b') && before(2) == Some(b'r'));
                let triple = bytes.get(i..i + 3).is_some_and(|t| t == [c, c, c]);
                let mut j = i + if triple { 3 } else { 1 };
                let mut end = None;
                while j < bytes.len() {
                    let b = bytes[j];
                    if !triple && (b == b'\n' || b == b'\r') {
                        break;
                    }
                    if !raw && b == b'\\' {
                        // An escape the lexer does not know ends the literal as an error.
                        match escape_len(&bytes[j..]) {
                            Some(n) => {
                                j += n;
                                continue;
                            }
                            None => break,
                        }
                    }
                    if b == c && (!triple || bytes.get(j..j + 3).is_some_and(|t| t == [c, c, c])) {
                        end = Some(j + if triple { 3 } else { 1 });
                        break;
                    }
                    j += 1;
                }
                if let Some(end) = end {
                    i = end;
                    continue;
                }
            }
            b'/' if next == Some(b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            // A call, an index or a literal nests in what it is part of.
            b'(' | b'[' | b'{' => {
                if let Some(r) = runs.last_mut() {
                    *r += 1;
                }
                runs.push(0);
            }
            b')' | b']' | b'}' if runs.len() > 1 => {
                runs.pop();
            }
            b',' => {
                if let Some(r) = runs.last_mut() {
                    *r = 0;
                }
            }
            b'&' | b'|' if next == Some(c) => {
                if let Some(r) = runs.last_mut() {
                    *r = 0;
                }
                i += 2;
                continue;
            }
            b'=' | b'!' | b'<' | b'>' if next == Some(b'=') => {
                if let Some(r) = runs.last_mut() {
                    *r += 1;
                }
                i += 2;
                continue;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'!' | b'?' | b'.' => {
                if let Some(r) = runs.last_mut() {
                    *r += 1;
                }
            }
            b'i' if next == Some(b'n')
                && !bytes
                    .get(i + 2)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                if let Some(r) = runs.last_mut() {
                    *r += 1;
                }
            }
            _ => {}
        }
        deepest = deepest.max(runs.len() + runs.iter().sum::<usize>());
        i += 1;
    }
    deepest
}

/// The length of the escape sequence at the start of `s` (which starts with `\`), if CEL
/// knows it: `\n` and the like, `\xHH`, `\uHHHH`, `\UHHHHHHHH`, `\OOO`.
fn escape_len(s: &[u8]) -> Option<usize> {
    let hex = |n: usize| {
        s.get(2..2 + n)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .map(|_| 2 + n)
    };
    match s.get(1)? {
        b'\\' | b'\'' | b'"' | b'`' | b'?' | b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' => {
            Some(2)
        }
        b'x' | b'X' => hex(2),
        b'u' => hex(4),
        b'U' => hex(8),
        b'0'..=b'3' => s
            .get(2..4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|_| 4),
        _ => None,
    }
}

/// Adds to `ids` each `steps.<id>` the expression reads; false if it uses `steps` otherwise.
fn refs(root: &IdedExpr, ids: &mut BTreeSet<String>) -> bool {
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        match &e.expr {
            Ast::Select(s) if matches!(&s.operand.expr, Ast::Ident(name) if name == "steps") => {
                ids.insert(s.field.clone());
                continue;
            }
            Ast::Ident(name) if name == "steps" => return false,
            // A comprehension variable named `steps` would shadow the scope's.
            Ast::Comprehension(c)
                if c.iter_var == "steps"
                    || c.accu_var == "steps"
                    || c.iter_var2.as_deref() == Some("steps") =>
            {
                return false;
            }
            _ => {}
        }
        stack.extend(children(e));
    }
    true
}

/// The direct parts of an expression.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    fn entries(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&IdedExpr> {
        let mut out = Vec::new();
        for entry in entries {
            match &entry.expr {
                EntryExpr::MapEntry(me) => out.extend([&me.key, &me.value]),
                EntryExpr::StructField(f) => out.push(&f.value),
            }
        }
        out
    }
    match &e.expr {
        Ast::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Ast::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Ast::List(l) => l.elements.iter().collect(),
        Ast::Map(m) => entries(&m.entries),
        Ast::Struct(st) => entries(&st.entries),
        Ast::Select(s) => vec![&s.operand],
        Ast::Ident(_) | Ast::Literal(_) | Ast::Unspecified => Vec::new(),
    }
}

/// Levels of the parsed tree, walked without recursion.
fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

fn describe(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::UndeclaredReference(name) => format!("undeclared reference: {name}"),
        other => other.to_string(),
    }
}

/// A value shown in an error message: its JSON, cut at 200 characters.
fn preview(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text,
    }
}

fn round(x: f64, digits: i64) -> f64 {
    let factor = 10f64.powi(digits.clamp(0, 15) as i32);
    (x * factor).round() / factor
}

/// The variables an expression or template sees. Values are borrowed where the caller
/// keeps them (a run's trigger), so building a scope does not copy them.
///
/// A scope may carry a budget shared by every evaluation through it (one run step's, say):
/// each evaluation pays its price (see `cost.rs`) and the values it converts, and fails
/// with `expression_too_costly` once the budget is spent.
#[derive(Clone, Debug)]
pub struct Scope<'a> {
    vars: Vec<Binding<'a>>,
    budget: std::cell::Cell<u64>,
}

/// One variable of a scope, with the interpreter's copy of it made on first use.
#[derive(Debug)]
struct Binding<'a> {
    name: String,
    value: Cow<'a, Value>,
    /// The value as the interpreter sees it: converted once per scope, however many
    /// expressions read it, and again only after the binding changes. A borrowed value's
    /// strings are borrowed too.
    cel: OnceCell<Box<dyn Val + 'a>>,
}

impl Clone for Binding<'_> {
    fn clone(&self) -> Self {
        Binding {
            name: self.name.clone(),
            value: self.value.clone(),
            cel: OnceCell::new(),
        }
    }
}

impl Default for Scope<'_> {
    fn default() -> Self {
        Scope::new()
    }
}

impl<'a> Scope<'a> {
    /// A scope with no budget beyond each evaluation's own [`COST_LIMIT`].
    pub fn new() -> Self {
        Scope {
            vars: Vec::new(),
            budget: std::cell::Cell::new(u64::MAX),
        }
    }

    /// Shares `units` among every evaluation through this scope.
    pub fn with_budget(self, units: u64) -> Self {
        self.budget.set(units);
        self
    }

    /// What is left of the budget.
    pub fn budget_left(&self) -> u64 {
        self.budget.get()
    }

    fn spend(&self, units: u64) -> Result<(), String> {
        let left = self.budget.get();
        if units > left {
            return Err(format!(
                "expression_too_costly: the step's expressions together could take more than \
                 its budget ({units} more steps, {left} left); evaluate fewer or smaller values \
                 in one node"
            ));
        }
        self.budget.set(left - units);
        Ok(())
    }

    /// `binding` as the interpreter sees it, converting it on its first use in this scope;
    /// the conversion is paid for from the budget, by the nodes it copies.
    fn converted<'s>(&'s self, binding: &'s Binding<'a>) -> Result<&'s (dyn Val + 'a), String> {
        if let Some(done) = binding.cel.get() {
            return Ok(done.as_ref());
        }
        self.spend(crate::measure::measure(&binding.value).nodes)?;
        let converted = match &binding.value {
            Cow::Borrowed(value) => json_to_val(value, &|s| Cow::Borrowed(s)),
            Cow::Owned(value) => json_to_val(value, &|s| Cow::Owned(s.to_owned())),
        };
        Ok(binding.cel.get_or_init(|| converted).as_ref())
    }

    /// Binds `name`, replacing an earlier binding of the same name.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.set(name, value);
        self
    }

    /// Binds `name` to a value the caller keeps.
    pub fn with_ref(mut self, name: &str, value: &'a Value) -> Self {
        self.bind(name, Cow::Borrowed(value));
        self
    }

    pub fn set(&mut self, name: &str, value: Value) {
        self.bind(name, Cow::Owned(value));
    }

    /// Sets `key` in the object bound to `name` (binding an empty object first if need be),
    /// copying the binding only if it is borrowed.
    pub fn set_field(&mut self, name: &str, key: &str, value: Value) {
        if self.get(name).is_none_or(|v| !v.is_object()) {
            self.set(name, Value::Object(JsonMap::new()));
        }
        if let Some(slot) = self.vars.iter_mut().find(|b| b.name == name)
            && let Value::Object(map) = slot.value.to_mut()
        {
            map.insert(key.to_owned(), value);
            slot.cel = OnceCell::new();
        }
    }

    fn bind(&mut self, name: &str, value: Cow<'a, Value>) {
        match self.vars.iter_mut().find(|b| b.name == name) {
            Some(slot) => {
                slot.value = value;
                slot.cel = OnceCell::new();
            }
            None => self.vars.push(Binding {
                name: name.to_owned(),
                value,
                cel: OnceCell::new(),
            }),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.value.as_ref())
    }
}

/// JSON → the interpreter's values, in one pass. Integers that fit `i64` become `int`
/// (not `uint`), so `x + 1` works on JSON numbers as users expect. `text` decides whether
/// strings and keys are borrowed from `value` or copied.
fn json_to_val<'s, 'v>(
    value: &'s Value,
    text: &dyn Fn(&'s str) -> Cow<'v, str>,
) -> Box<dyn Val + 'v> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => Box::new(CelString::from(text(s))),
        Value::Array(items) => Box::new(CelList::from(
            items
                .iter()
                .map(|v| json_to_val(v, text))
                .collect::<Vec<_>>(),
        )),
        Value::Object(map) => {
            let mut out: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> =
                HashMap::with_capacity(map.len());
            for (k, v) in map {
                out.insert(
                    CelMapKey::String(CelString::from(text(k))),
                    json_to_val(v, text),
                );
            }
            Box::new(CelMap::from(out))
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

    /// The steps the template's holes read; `None` if one may read any (see
    /// [`Expr::step_refs`]).
    pub fn step_refs(&self) -> Option<BTreeSet<String>> {
        let mut ids = BTreeSet::new();
        for part in &self.parts {
            if let Part::Expr(e) = part {
                ids.extend(e.step_refs()?);
            }
        }
        Some(ids)
    }

    /// True when the template has at least one `{{ }}` hole.
    pub fn has_holes(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Expr(_)))
    }

    /// Renders: strings are inserted as they are, other values as JSON.
    pub fn render(&self, scope: &Scope<'_>) -> Result<String, EvalError> {
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
pub fn render_json(value: &Value, scope: &Scope<'_>) -> Result<Value, EvalError> {
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

    fn scope() -> Scope<'static> {
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
    fn a_scope_converts_each_variable_once() {
        let trigger = json!({"body": {"items": [1, 2, 3, 4, 5, 6, 7, 8], "name": "宁德"}});
        let mut scope = Scope::new()
            .with_ref("trigger", &trigger)
            .with("vars", json!({"n": 1}))
            .with_budget(COST_LIMIT);
        let size = Expr::compile("size(trigger.body.items)").unwrap();
        let spent = |scope: &Scope<'_>| {
            let before = scope.budget_left();
            assert_eq!(size.eval(scope).unwrap(), json!(8));
            before - scope.budget_left()
        };
        let (first, second) = (spent(&scope), spent(&scope));
        // The first evaluation paid for converting `trigger`; the second reused it.
        assert_eq!(first - second, crate::measure::measure(&trigger).nodes);
        // Borrowed strings read as strings.
        let name = Expr::compile("trigger.body.name + '电池'").unwrap();
        assert_eq!(name.eval(&scope).unwrap(), json!("宁德电池"));
        // A changed binding is converted again, and the change is seen.
        let n = Expr::compile("vars.n + 1").unwrap();
        assert_eq!(n.eval(&scope).unwrap(), json!(2));
        scope.set_field("vars", "n", json!(41));
        assert_eq!(n.eval(&scope).unwrap(), json!(42));
        scope.set("vars", json!({"n": -1}));
        assert_eq!(n.eval(&scope).unwrap(), json!(0));
        // A copy of the scope starts without the conversions and gives the same answers.
        let copy = scope.clone();
        assert_eq!(n.eval(&copy).unwrap(), json!(0));
        assert_eq!(size.eval(&copy).unwrap(), json!(8));
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

#[cfg(test)]
mod limits_tests {
    use super::*;
    use serde_json::json;

    /// Hostile shapes: `(name, one unit repeated)`, as built by [`shape`].
    const SHAPES: &[&str] = &[
        "plus", "parens", "lists", "neg", "member", "ternary", "calls", "index", "and", "map",
        "quote", "escape", "raw", "mixed",
    ];

    fn shape(name: &str, k: usize) -> String {
        match name {
            "plus" => format!("1{}", "+1".repeat(k)),
            "parens" => format!("{}1{}", "(".repeat(k), ")".repeat(k)),
            "lists" => format!("{}1{}", "[".repeat(k), "]".repeat(k)),
            "neg" => format!("{}1", "-!".repeat(k)),
            "member" => format!("trigger{}", ".b".repeat(k)),
            "ternary" => format!("{}1", "true?1:".repeat(k)),
            "calls" => format!("{}1{}", "size(".repeat(k), ")".repeat(k)),
            "index" => format!("trigger{}", "[0]".repeat(k)),
            "and" => format!("true{}", "&&true".repeat(k)),
            // Quotes the lexer does not read as strings must not hide code from the checks.
            "quote" => format!("\"\n1{}", "+1".repeat(k)),
            "escape" => format!("'\\q1{}'", "+1".repeat(k)),
            "raw" => format!("rb'\\' + trigger{}", ".b".repeat(k)),
            "mixed" => format!("{}1{}", "(trigger.b+".repeat(k), ")".repeat(k)),
            _ => format!("{}1{}", "[1].map(x,".repeat(k), ")".repeat(k)),
        }
    }

    /// The largest `k` whose shape passes the checks made before parsing.
    fn largest_accepted(name: &str) -> String {
        let mut k = 1;
        while nesting_bound(&shape(name, k + 1)) <= 2 * MAX_DEPTH
            && shape(name, k + 1).len() <= MAX_SOURCE_BYTES
        {
            k += 1;
        }
        shape(name, k)
    }

    /// What the limits promise: anything that passes the checks before parsing parses and
    /// evaluates within [`PARSE_STACK`]. Run without `with_stack`, on a thread with exactly
    /// that stack; an overflow would abort the test binary.
    #[test]
    fn accepted_expressions_fit_the_parse_stack() {
        for name in SHAPES {
            let src = largest_accepted(name);
            let depth = std::thread::Builder::new()
                .stack_size(PARSE_STACK)
                .spawn(move || {
                    let program = ENV.compile(&src).ok()?;
                    let d = depth(program.expression());
                    let _ = program.execute(&Context::with_env(ENV.clone()));
                    Some(d)
                })
                .expect("thread")
                .join()
                .expect("no panic");
            if let Some(d) = depth {
                assert!(d <= 3 * MAX_DEPTH, "{name}: depth {d}");
            }
        }
    }

    /// The longest hostile expressions are refused with an error, on a small stack (a
    /// stack segment is mapped where it is short), whatever their shape.
    #[test]
    fn hostile_expressions_are_refused_not_fatal() {
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let mut refused = Vec::new();
                for name in SHAPES {
                    let mut k = 1;
                    while shape(name, k * 2).len() <= MAX_SOURCE_BYTES {
                        k *= 2;
                    }
                    for src in [shape(name, k), shape(name, 7000)] {
                        if let Err(e) = Expr::compile(&src) {
                            refused.push(format!("{name}: {e}"));
                        }
                    }
                }
                refused
            })
            .expect("thread")
            .join()
            .expect("no panic");
        // `a && a && …` balances to a shallow tree: only its 7,000-term form is too long.
        assert_eq!(result.len(), 2 * SHAPES.len() - 1, "{result:#?}");
        assert!(result.iter().any(|e| e.contains("nests")), "{result:#?}");
        assert!(
            result.iter().any(|e| e.contains("at most 4096")),
            "{result:#?}"
        );
        assert!(result.iter().all(|e| !e.contains("Error(")), "{result:#?}");
    }

    #[test]
    fn evaluation_is_priced_against_its_data() {
        let items = |n: usize| json!({"l": (0..n).collect::<Vec<_>>()});
        let nested = Expr::compile("trigger.l.map(a, trigger.l.map(b, a + b)).size()").unwrap();
        let small = Scope::new().with("trigger", items(100));
        assert_eq!(nested.eval(&small).unwrap(), json!(100));
        let big = Scope::new().with("trigger", items(3000));
        let err = nested.eval(&big).unwrap_err();
        assert!(err.message.starts_with("expression_too_costly"), "{err}");
        // Literals nest comprehensions with no data at all.
        let literal = format!(
            "{}1{}",
            "[0,1,2,3,4,5,6,7,8,9].map(x,".repeat(7),
            ")".repeat(7)
        );
        let err = Expr::compile(&literal)
            .unwrap()
            .eval(&Scope::new())
            .unwrap_err();
        assert!(err.message.starts_with("expression_too_costly"), "{err}");
        // One pass over a long list is fine; so is a filter then a map.
        let one = Expr::compile("trigger.l.filter(x, x % 2 == 0).map(x, x * 2).size()").unwrap();
        assert_eq!(
            one.eval(&Scope::new().with("trigger", items(20_000)))
                .unwrap(),
            json!(10_000)
        );
        // Strings built by doubling are priced by what they allocate.
        let s = "x".repeat(4 << 20);
        let doubled = Expr::compile("size(vars.s + vars.s + vars.s + vars.s)").unwrap();
        let err = doubled
            .eval(&Scope::new().with("vars", json!({ "s": s })))
            .unwrap_err();
        assert!(err.message.starts_with("expression_too_costly"), "{err}");
    }

    /// What the interpreter does in time proportional to its data is priced by it.
    #[test]
    fn reading_matching_and_copying_are_priced() {
        let too_costly = |src: &str, scope: &Scope<'_>| {
            let err = Expr::compile(src).unwrap().eval(scope).unwrap_err();
            assert!(
                err.message.starts_with("expression_too_costly"),
                "{src}: {err}"
            );
        };
        let data = Scope::new().with(
            "trigger",
            json!({"l": (0..100_000).collect::<Vec<_>>(), "s": "ab".repeat(400_000)}),
        );
        // `size` of a string counts its characters, each time.
        too_costly("trigger.l.all(x, size(trigger.s) > 0)", &data);
        // A counted repetition compiles to a large program, run over all the text.
        too_costly("trigger.s.matches('[ab]*a[ab]{2000}')", &data);
        // Each element of a copied list is its own value.
        let list = Scope::new().with("trigger", json!({"l": vec![0; 1000]}));
        too_costly("trigger.l.map(a, trigger.l).size()", &list);
        // Small things stay cheap.
        let small = Expr::compile("size(trigger.s) > 3 && trigger.s.matches('^[a-z]+$')").unwrap();
        let scope = Scope::new().with("trigger", json!({"s": "hello"}));
        assert_eq!(small.eval(&scope).unwrap(), json!(true));
    }

    /// A scope's budget is shared by every evaluation through it.
    #[test]
    fn a_scope_budget_is_shared() {
        let e = Expr::compile("trigger.l.map(x, x + 1).size()").unwrap();
        let scope = Scope::new()
            .with("trigger", json!({"l": (0..1000).collect::<Vec<_>>()}))
            .with_budget(
                2 * e.cost(
                    &Scope::new().with("trigger", json!({"l": (0..1000).collect::<Vec<_>>()})),
                ) + 3000,
            );
        assert!(e.eval(&scope).is_ok());
        let err = (0..5).find_map(|_| e.eval(&scope).err()).unwrap();
        assert!(
            err.message.contains("the step's expressions together"),
            "{err}"
        );
    }

    /// A wide document summarised for a comprehension costs what it weighs, not its square.
    #[test]
    fn pricing_a_wide_document_is_linear() {
        let items: Vec<Value> = (0..80_000).map(|i| json!({ format!("k{i}"): i })).collect();
        let scope = Scope::new().with("trigger", json!({ "l": items }));
        let e = Expr::compile("trigger.l.map(x, x).size()").unwrap();
        let started = std::time::Instant::now();
        let _ = e.cost(&scope);
        // Not a timing target: the quadratic walk took minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn step_refs_name_the_steps_read() {
        let refs = |src: &str| Expr::compile(src).unwrap().step_refs();
        assert_eq!(
            refs("steps.a.output.n + size(steps.b.output) + vars.x"),
            Some(["a".to_owned(), "b".to_owned()].into())
        );
        assert_eq!(refs("vars.x"), Some(BTreeSet::new()));
        assert_eq!(refs("steps['a'].output"), None);
        assert_eq!(refs("size(steps)"), None);
        assert_eq!(refs("[1].map(steps, steps)"), None);
        let t = Template::parse("{{steps.a.output}} and {{ steps.c.output.x }}").unwrap();
        assert_eq!(t.step_refs(), Some(["a".to_owned(), "c".to_owned()].into()));
    }

    #[test]
    fn parse_errors_read_as_words_with_a_position() {
        let e = Expr::compile("lead.score >= ").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("(line 1, column"), "{text}");
        assert!(!text.contains("Syntax error: "), "{text}");
    }
}
