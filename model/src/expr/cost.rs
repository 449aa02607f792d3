//! What evaluating an expression may cost, bounded before it runs.
//!
//! The `cel` interpreter has no fuel and cannot be interrupted, so every evaluation is
//! priced first, in the manner of cel-go's cost estimator, but against the data it is about
//! to see: the scope's values are known, so a comprehension over `trigger.body.items` costs
//! exactly that list's length times its body, a nested one the product. Values the
//! expression builds itself (literals, `+`, `map`, `filter`) get upper bounds of their
//! length, size and number of values.
//!
//! One unit is about one step of the interpreter. Besides, copying a value costs a unit per
//! value in it (each is a separate allocation) and one per [`BYTES_PER_UNIT`] bytes; reading
//! a string (its `size`, a conversion, a search) one per [`BYTES_PER_UNIT`] bytes; a regular
//! expression its text's length times the pattern's size. So the budget also bounds what an
//! evaluation allocates.
//!
//! The walk is linear in the expression's nodes plus, once per distinct scope value it
//! looks inside, that value's size.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use cel::common::ast::{EntryExpr, Expr as Ast, IdedExpr, LiteralValue, operators};
use serde_json::Value;

use super::Scope;

/// Bytes of values built, copied or read that cost one unit.
pub const BYTES_PER_UNIT: u64 = 16;

/// Keys of a map whose values are bounded one by one; beyond, they share one bound.
const MAX_FIELDS: usize = 64;

/// The priced upper bound of one evaluation.
pub(crate) fn estimate(expr: &IdedExpr, scope: &Scope<'_>) -> u64 {
    let mut walk = Walk {
        scope,
        locals: Vec::new(),
        summaries: RefCell::new(HashMap::new()),
    };
    let (cost, result) = walk.cost(expr);
    // The result is converted to JSON.
    cost.saturating_add(walk.nodes(&result))
}

/// An upper bound on a value, as far as the cost of using it is concerned.
#[derive(Clone, Debug)]
enum Bound<'s> {
    /// A value from the scope, known exactly.
    Json(&'s Value),
    /// A value the expression builds: at most this big.
    Approx(Rc<Approx>),
}

#[derive(Clone, Debug, Default)]
struct Approx {
    /// Elements of a list, entries of a map, or bytes of a string.
    len: u64,
    /// Its size as JSON text.
    bytes: u64,
    /// Values in it, itself included.
    nodes: u64,
    /// Bytes of the longest key, for a map.
    key_bytes: u64,
    /// Any element of a list or value of a map.
    item: Option<Rc<Approx>>,
    /// The values under keys known one by one (at most [`MAX_FIELDS`]); any other key's
    /// value is bounded by `item`.
    fields: BTreeMap<String, Rc<Approx>>,
}

/// A number, a boolean, null: small and not a collection.
fn scalar<'s>() -> Bound<'s> {
    Bound::Approx(Rc::new(Approx {
        bytes: 24,
        nodes: 1,
        ..Approx::default()
    }))
}

fn string<'s>(bytes: u64) -> Bound<'s> {
    Bound::Approx(Rc::new(Approx {
        len: bytes,
        bytes: bytes.saturating_add(2),
        nodes: 1,
        ..Approx::default()
    }))
}

fn merge_items(a: &Option<Rc<Approx>>, b: &Option<Rc<Approx>>) -> Option<Rc<Approx>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(Approx::merge(x, y)),
        (x, y) => x.clone().or_else(|| y.clone()),
    }
}

impl Approx {
    /// The union of two bounds: at least as big as either in every respect.
    fn merge(a: &Rc<Approx>, b: &Rc<Approx>) -> Rc<Approx> {
        if Rc::ptr_eq(a, b) {
            return a.clone();
        }
        let mut out = Approx {
            len: a.len.max(b.len),
            bytes: a.bytes.max(b.bytes),
            nodes: a.nodes.max(b.nodes),
            key_bytes: a.key_bytes.max(b.key_bytes),
            item: merge_items(&a.item, &b.item),
            fields: a.fields.clone(),
        };
        for (k, v) in &b.fields {
            let merged = match out.fields.get(k) {
                Some(existing) => Approx::merge(existing, v),
                None => v.clone(),
            };
            out.fields.insert(k.clone(), merged);
        }
        out.fold_fields();
        Rc::new(out)
    }

    /// Past [`MAX_FIELDS`] keys, their values share the one bound of `item`.
    fn fold_fields(&mut self) {
        if self.fields.len() <= MAX_FIELDS {
            return;
        }
        for (_, v) in std::mem::take(&mut self.fields) {
            self.item = merge_items(&self.item, &Some(v));
        }
    }

    /// A bound of `value` and everything in it.
    fn of(value: &Value) -> Rc<Approx> {
        match value {
            Value::Array(items) => {
                let mut out = Approx {
                    len: items.len() as u64,
                    bytes: 2,
                    nodes: 1,
                    ..Approx::default()
                };
                for v in items {
                    let a = Approx::of(v);
                    out.bytes = out.bytes.saturating_add(a.bytes).saturating_add(1);
                    out.nodes = out.nodes.saturating_add(a.nodes);
                    out.item = merge_items(&out.item, &Some(a));
                }
                Rc::new(out)
            }
            Value::Object(map) => {
                let mut out = Approx {
                    len: map.len() as u64,
                    bytes: 2,
                    nodes: 1,
                    ..Approx::default()
                };
                for (k, v) in map {
                    let a = Approx::of(v);
                    out.bytes = out
                        .bytes
                        .saturating_add(a.bytes)
                        .saturating_add(k.len() as u64 + 4);
                    out.nodes = out.nodes.saturating_add(a.nodes);
                    out.key_bytes = out.key_bytes.max(k.len() as u64);
                    out.item = merge_items(&out.item, &Some(a.clone()));
                    if out.fields.len() < MAX_FIELDS {
                        out.fields.insert(k.clone(), a);
                    }
                }
                Rc::new(out)
            }
            Value::String(s) => Rc::new(Approx {
                len: s.len() as u64,
                bytes: s.len() as u64 + 2,
                nodes: 1,
                ..Approx::default()
            }),
            _ => Rc::new(Approx {
                bytes: 24,
                nodes: 1,
                ..Approx::default()
            }),
        }
    }
}

/// Building or copying `bytes` of values.
fn alloc(bytes: u64) -> u64 {
    bytes / BYTES_PER_UNIT
}

struct Local<'a> {
    name: String,
    bound: Bound<'a>,
    /// The accumulator of a `map` or `filter`: `@result + [x]` appends in place.
    appends: bool,
}

struct Walk<'a, 's, 'v> {
    scope: &'s Scope<'v>,
    locals: Vec<Local<'a>>,
    /// Bounds of the scope values looked inside, by address: each is summarised once.
    summaries: RefCell<HashMap<usize, Rc<Approx>>>,
}

impl<'a, 's: 'a, 'v: 's> Walk<'a, 's, 'v> {
    fn lookup(&self, name: &str) -> Option<&Local<'a>> {
        self.locals.iter().rev().find(|l| l.name == name)
    }

    fn approx(&self, b: &Bound<'_>) -> Rc<Approx> {
        match b {
            Bound::Approx(a) => a.clone(),
            Bound::Json(v) => {
                let key = std::ptr::from_ref::<Value>(v) as usize;
                if let Some(a) = self.summaries.borrow().get(&key) {
                    return a.clone();
                }
                let a = Approx::of(v);
                self.summaries.borrow_mut().insert(key, a.clone());
                a
            }
        }
    }

    fn merge(&self, a: &Bound<'a>, b: &Bound<'a>) -> Bound<'a> {
        Bound::Approx(Approx::merge(&self.approx(a), &self.approx(b)))
    }

    fn len(&self, b: &Bound<'_>) -> u64 {
        match b {
            Bound::Json(Value::Array(a)) => a.len() as u64,
            Bound::Json(Value::Object(m)) => m.len() as u64,
            Bound::Json(Value::String(s)) => s.len() as u64,
            Bound::Json(_) => 0,
            Bound::Approx(a) => a.len,
        }
    }

    fn bytes(&self, b: &Bound<'_>) -> u64 {
        match b {
            Bound::Json(Value::String(s)) => s.len() as u64 + 2,
            Bound::Json(Value::Null | Value::Bool(_) | Value::Number(_)) => 24,
            _ => self.approx(b).bytes,
        }
    }

    fn nodes(&self, b: &Bound<'_>) -> u64 {
        match b {
            Bound::Json(Value::Array(_) | Value::Object(_)) => self.approx(b).nodes,
            Bound::Json(_) => 1,
            Bound::Approx(a) => a.nodes,
        }
    }

    /// What copying a value costs: one unit per value in it and per bytes.
    fn copy(&self, b: &Bound<'_>) -> u64 {
        self.nodes(b).saturating_add(alloc(self.bytes(b)))
    }

    /// The value under `key`.
    fn field(&self, b: &Bound<'a>, key: &str) -> Bound<'a> {
        match b {
            Bound::Json(Value::Object(m)) => match m.get(key) {
                Some(v) => Bound::Json(v),
                // Evaluation fails at once with "no such key".
                None => scalar(),
            },
            Bound::Json(_) => scalar(),
            Bound::Approx(a) => match a.fields.get(key).or(a.item.as_ref()) {
                Some(f) => Bound::Approx(f.clone()),
                None => scalar(),
            },
        }
    }

    /// Any element of a list or value of a map.
    fn item(&self, b: &Bound<'a>) -> Bound<'a> {
        match b {
            Bound::Json(Value::Array(_) | Value::Object(_)) | Bound::Approx(_) => self
                .approx(b)
                .item
                .clone()
                .map_or_else(scalar, Bound::Approx),
            Bound::Json(_) => scalar(),
        }
    }

    /// What a comprehension's variable is bound to: an element of a list, a key of a map.
    fn iterated(&self, b: &Bound<'a>) -> Bound<'a> {
        match b {
            Bound::Json(Value::Object(m)) => {
                string(m.keys().map(|k| k.len() as u64).max().unwrap_or(0))
            }
            Bound::Json(_) => self.item(b),
            Bound::Approx(a) => {
                let key = string(a.key_bytes);
                self.merge(&self.item(b), &key)
            }
        }
    }

    /// The cost of evaluating `e` and a bound on its value.
    fn cost(&mut self, e: &IdedExpr) -> (u64, Bound<'a>) {
        match &e.expr {
            Ast::Literal(LiteralValue::String(s)) => (1, string(s.inner().len() as u64)),
            Ast::Literal(LiteralValue::Bytes(b)) => (1, string(b.inner().len() as u64)),
            Ast::Literal(_) | Ast::Unspecified => (1, scalar()),
            Ast::Ident(name) => {
                if let Some(local) = self.lookup(name) {
                    return (1, local.bound.clone());
                }
                match self.scope.get(name) {
                    Some(v) => (1, Bound::Json(v)),
                    None => (1, scalar()),
                }
            }
            Ast::Select(s) => {
                let (c, b) = self.cost(&s.operand);
                let b = if s.test {
                    scalar()
                } else {
                    self.field(&b, &s.field)
                };
                (c.saturating_add(1), b)
            }
            Ast::List(list) => {
                let mut cost = 1u64;
                let mut built = Approx {
                    len: list.elements.len() as u64,
                    bytes: 2,
                    nodes: 1,
                    ..Approx::default()
                };
                for el in &list.elements {
                    let (c, b) = self.cost(el);
                    // Each element is copied into the new list.
                    cost = cost.saturating_add(c).saturating_add(self.copy(&b));
                    let b = self.approx(&b);
                    built.bytes = built.bytes.saturating_add(b.bytes).saturating_add(1);
                    built.nodes = built.nodes.saturating_add(b.nodes);
                    built.item = merge_items(&built.item, &Some(b));
                }
                (cost, Bound::Approx(Rc::new(built)))
            }
            Ast::Map(map) => {
                let mut cost = 1u64;
                let mut built = Approx {
                    len: map.entries.len() as u64,
                    bytes: 2,
                    nodes: 1,
                    ..Approx::default()
                };
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        continue;
                    };
                    let (ck, k) = self.cost(&entry.key);
                    let (cv, v) = self.cost(&entry.value);
                    cost = cost
                        .saturating_add(ck)
                        .saturating_add(cv)
                        .saturating_add(self.copy(&k))
                        .saturating_add(self.copy(&v));
                    let v = self.approx(&v);
                    built.bytes = built
                        .bytes
                        .saturating_add(self.bytes(&k))
                        .saturating_add(v.bytes)
                        .saturating_add(2);
                    built.nodes = built.nodes.saturating_add(v.nodes).saturating_add(1);
                    built.key_bytes = built.key_bytes.max(self.len(&k));
                    built.item = merge_items(&built.item, &Some(v.clone()));
                    if let Ast::Literal(LiteralValue::String(key)) = &entry.key.expr {
                        built.fields.insert(key.inner().to_owned(), v);
                    }
                }
                built.fold_fields();
                (cost, Bound::Approx(Rc::new(built)))
            }
            Ast::Struct(s) => {
                let mut cost = 1u64;
                for entry in &s.entries {
                    let value = match &entry.expr {
                        EntryExpr::StructField(f) => &f.value,
                        EntryExpr::MapEntry(m) => &m.value,
                    };
                    cost = cost.saturating_add(self.cost(value).0);
                }
                (cost, scalar())
            }
            Ast::Comprehension(c) => self.comprehension(c),
            Ast::Call(call) => self.call(call),
        }
    }

    fn comprehension(&mut self, c: &cel::common::ast::ComprehensionExpr) -> (u64, Bound<'a>) {
        let (c_range, range) = self.cost(&c.iter_range);
        let (c_init, init) = self.cost(&c.accu_init);
        let n = self.len(&range);
        let appends = append_count(&c.loop_step, &c.accu_var);
        let init_approx = self.approx(&init);
        let accu = match appends {
            // `map` and `filter`: the accumulator grows by at most k a step.
            Some(k) => Bound::Approx(Rc::new(Approx {
                len: self.len(&init).saturating_add(n.saturating_mul(k)),
                ..(*init_approx).clone()
            })),
            None => init.clone(),
        };
        let empty_list = matches!(&c.accu_init.expr, Ast::List(l) if l.elements.is_empty());
        let mark = self.locals.len();
        match &c.iter_var2 {
            // Two variables: index (or key) and value.
            Some(second) => {
                let first = match &range {
                    Bound::Json(Value::Object(_)) => self.iterated(&range),
                    _ => scalar(),
                };
                let value = self.item(&range);
                self.locals.push(Local {
                    name: c.iter_var.clone(),
                    bound: first,
                    appends: false,
                });
                self.locals.push(Local {
                    name: second.clone(),
                    bound: value,
                    appends: false,
                });
            }
            None => {
                let bound = self.iterated(&range);
                self.locals.push(Local {
                    name: c.iter_var.clone(),
                    bound,
                    appends: false,
                });
            }
        }
        self.locals.push(Local {
            name: c.accu_var.clone(),
            bound: accu,
            appends: appends.is_some() && empty_list,
        });
        let (c_cond, _) = self.cost(&c.loop_cond);
        let (c_step, step) = self.cost(&c.loop_step);
        // The accumulator after the last step: what the step builds, grown.
        let grown = match appends {
            Some(_) => {
                let step = self.approx(&step);
                let item = step.item.as_ref();
                let each_bytes = item.map_or(0, |i| i.bytes).saturating_add(1);
                let each_nodes = item.map_or(0, |i| i.nodes);
                Bound::Approx(Rc::new(Approx {
                    bytes: init_approx
                        .bytes
                        .saturating_add(step.len.saturating_mul(each_bytes)),
                    nodes: init_approx
                        .nodes
                        .saturating_add(step.len.saturating_mul(each_nodes)),
                    ..(*step).clone()
                }))
            }
            None => self.merge(&init, &step),
        };
        if let Some(local) = self.locals.last_mut() {
            local.bound = grown;
        }
        let (c_result, result) = self.cost(&c.result);
        self.locals.truncate(mark);
        let per_step = c_cond.saturating_add(c_step).saturating_add(1);
        let cost = c_range
            .saturating_add(c_init)
            .saturating_add(n.saturating_mul(per_step))
            // Each step binds a copy of its element.
            .saturating_add(self.copy(&range))
            .saturating_add(c_result);
        (cost, result)
    }

    fn call(&mut self, call: &cel::common::ast::CallExpr) -> (u64, Bound<'a>) {
        let name = call.func_name.as_str();
        // Branches: only one side runs.
        if name == operators::CONDITIONAL && call.args.len() == 3 {
            let (c0, _) = self.cost(&call.args[0]);
            let (c1, b1) = self.cost(&call.args[1]);
            let (c2, b2) = self.cost(&call.args[2]);
            return (
                c0.saturating_add(c1.max(c2)).saturating_add(1),
                self.merge(&b1, &b2),
            );
        }
        // `@result + [x]` in a `map` or `filter` appends in place.
        if name == operators::ADD
            && let [left, right] = call.args.as_slice()
            && let Ast::Ident(accu) = &left.expr
            && self.lookup(accu).is_some_and(|l| l.appends)
        {
            let (cl, l) = self.cost(left);
            let (cr, r) = self.cost(right);
            let (l, r) = (self.approx(&l), self.approx(&r));
            let built = Approx {
                len: l.len,
                bytes: l.bytes.saturating_add(r.bytes),
                nodes: l.nodes.saturating_add(r.nodes),
                item: merge_items(&l.item, &r.item),
                ..Approx::default()
            };
            return (
                cl.saturating_add(cr).saturating_add(1),
                Bound::Approx(Rc::new(built)),
            );
        }
        let mut cost = 1u64;
        let mut inputs: Vec<Bound<'a>> = Vec::with_capacity(call.args.len() + 1);
        if let Some(target) = &call.target {
            let (c, b) = self.cost(target);
            cost = cost.saturating_add(c);
            inputs.push(b);
        }
        for arg in &call.args {
            let (c, b) = self.cost(arg);
            cost = cost.saturating_add(c);
            inputs.push(b);
        }
        let input = |i: usize| inputs.get(i).cloned().unwrap_or_else(scalar);
        let len = |i: usize| inputs.get(i).map_or(0, |b| self.len(b));
        let bytes = |i: usize| inputs.get(i).map_or(0, |b| self.bytes(b));
        let nodes = |i: usize| inputs.get(i).map_or(0, |b| self.nodes(b));
        // Reading every input once (sizes of strings, conversions, searches).
        let read_all = alloc((0..inputs.len()).map(bytes).fold(0, u64::saturating_add));
        let (extra, result) = match name {
            operators::ADD => {
                // Both sides are copied into a new value.
                let (a, b) = (self.approx(&input(0)), self.approx(&input(1)));
                let built = Approx {
                    len: a.len.saturating_add(b.len),
                    bytes: a.bytes.saturating_add(b.bytes),
                    nodes: a.nodes.saturating_add(b.nodes),
                    key_bytes: a.key_bytes.max(b.key_bytes),
                    item: merge_items(&a.item, &b.item),
                    fields: BTreeMap::new(),
                };
                let extra = built.nodes.saturating_add(alloc(built.bytes));
                (extra, Bound::Approx(Rc::new(built)))
            }
            // Deep comparisons.
            operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS => (
                nodes(0)
                    .min(nodes(1))
                    .saturating_add(alloc(bytes(0).min(bytes(1)))),
                scalar(),
            ),
            // Each element is compared with the value.
            operators::IN => (
                len(1)
                    .saturating_mul(nodes(0))
                    .saturating_add(nodes(1))
                    .saturating_add(alloc(bytes(1))),
                scalar(),
            ),
            operators::INDEX | operators::OPT_INDEX | operators::OPT_SELECT => {
                let container = input(0);
                let b = match call.args.get(1).map(|a| &a.expr) {
                    Some(Ast::Literal(LiteralValue::String(key))) => {
                        self.field(&container, key.inner())
                    }
                    _ => self.item(&container),
                };
                (0, b)
            }
            operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::NEGATE
            | operators::NOT_STRICTLY_FALSE
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | "round" => (0, scalar()),
            // Counting characters, parsing numbers and times: a pass over the text.
            "size" | "int" | "uint" | "double" | "bool" | "type" | "timestamp" | "duration"
            | "contains" | "startsWith" | "endsWith" => (read_all, scalar()),
            // A regular expression is compiled on every call, then matched in time of the
            // text's length times the compiled pattern's size.
            "matches" => {
                let (text, pattern) = match &call.target {
                    Some(_) => (len(0), pattern_weight(call.args.first())),
                    None => (len(0), pattern_weight(call.args.get(1))),
                };
                (
                    2_000u64
                        .saturating_add(pattern.saturating_mul(100))
                        .saturating_add(text.saturating_add(1).saturating_mul(pattern) / 4),
                    scalar(),
                )
            }
            "string" | "bytes" => {
                let b = bytes(0).max(32);
                (alloc(b).saturating_add(read_all), string(b))
            }
            // `min`/`max` over a list read every element.
            "min" | "max" => (
                (0..inputs.len()).map(len).fold(0u64, u64::saturating_add),
                scalar(),
            ),
            // Anything else (optional values, `dyn`): a value no bigger than its inputs,
            // copied.
            _ => {
                let result = inputs
                    .iter()
                    .skip(1)
                    .fold(input(0), |acc, b| self.merge(&acc, b));
                (self.copy(&result), result)
            }
        };
        (cost.saturating_add(extra), result)
    }
}

/// How big a regular expression compiles: its length plus every counted repetition
/// (`a{2000}` repeats `a` two thousand times). Unknown (not a literal): the worst a
/// pattern within an expression's length could be.
fn pattern_weight(pattern: Option<&IdedExpr>) -> u64 {
    let Some(Ast::Literal(LiteralValue::String(p))) = pattern.map(|p| &p.expr) else {
        return 100_000;
    };
    let p = p.inner();
    let mut weight = p.len() as u64;
    let mut rest = p;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        for n in after[..close].split(',') {
            weight = weight.saturating_add(n.trim().parse::<u64>().unwrap_or(0));
        }
        rest = &after[close..];
    }
    weight.max(1)
}

/// How many elements the loop step of a `map` or `filter` appends to the accumulator:
/// `@result + [x]`, or `cond ? @result + [x] : @result`.
fn append_count(step: &IdedExpr, accu: &str) -> Option<u64> {
    let Ast::Call(call) = &step.expr else {
        return None;
    };
    match (call.func_name.as_str(), call.args.as_slice()) {
        (operators::ADD, [left, right]) => match (&left.expr, &right.expr) {
            (Ast::Ident(a), Ast::List(l)) if a == accu => Some(l.elements.len() as u64),
            _ => None,
        },
        (operators::CONDITIONAL, [_, yes, no]) => {
            let a = append_count(yes, accu);
            let b = append_count(no, accu);
            let is_accu = |e: &IdedExpr| matches!(&e.expr, Ast::Ident(a) if a == accu);
            match (a, b) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (Some(x), None) if is_accu(no) => Some(x),
                (None, Some(y)) if is_accu(yes) => Some(y),
                _ => None,
            }
        }
        _ => None,
    }
}
