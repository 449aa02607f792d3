//! Trellis domain model: flow documents and everything that can be said about them
//! without I/O — validation, semantic diff, graph edits with inverses, CEL expressions
//! and `{{ }}` templates.
//!
//! This crate builds for native targets and for `wasm32-unknown-unknown`, so the studio
//! validates, diffs and undoes with exactly the code the server runs.

pub mod backtest;
pub mod behaviour;
pub mod canonical;
pub mod condition;
pub mod connectors;
pub mod contact_policy;
pub mod coverage;
pub mod diff;
pub mod duration;
pub mod edit;
pub mod expr;
pub mod flow;
pub mod forms;
pub mod identity;
pub mod layout;
pub mod measure;
pub mod nba;
pub mod node_types;
pub mod schedule;
pub mod scoring;
pub mod signals;
pub mod summary;
pub mod task_units;
pub mod url_categories;
pub mod validate;

pub use connectors::{Catalog, ConnectorEntry, ConnectorOperation};
pub use diff::{FlowDiff, diff};
pub use edit::{Edit, EditError};
pub use expr::{EvalError, Expr, ExprError, Scope, Template};
pub use flow::{Edge, FlowDoc, Node, NodeId, RetryPolicy};
pub use node_types::{NodeTypeSpec, builtin_node_types, node_type};
pub use validate::{
    Diagnostic, Severity, validate, validate_value, validate_value_with, validate_with,
};
