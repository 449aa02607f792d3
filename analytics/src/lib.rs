//! Analytics over lead history: read a CRM export into a [`Table`], fit suggested scoring
//! weights to its outcomes ([`suggest()`]), and backtest a model against it
//! ([`backtest_table`]).
//!
//! Everything here is pure computation over readers and values, so the CLI works offline on
//! files and the server runs the same code on imported leads.

pub mod suggest;
pub mod table;

pub use suggest::{
    Progress, Step, SuggestError, SuggestOptions, Suggestion, backtest_table, score_rows, suggest,
    suggest_with_progress,
};
pub use table::{ColumnKind, Mapping, Table, TableError, outcome_value, parse_outcome};
