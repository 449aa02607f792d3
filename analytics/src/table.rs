//! A CRM export as typed columns.
//!
//! Types are inferred (a column is numeric when at least 95% of its present cells parse as
//! numbers) and can be overridden by a [`Mapping`]. Cells in `Mapping::missing` (by default
//! empty and `Select`, the placeholder of many CRM drop-downs) are missing.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a column is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Number,
    Text,
}

/// How to read an export: which cells are missing, column types, and the lead attribute each
/// column becomes (by default the column's own name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The column that identifies a lead (imports upsert by it).
    #[serde(default)]
    pub id: Option<String>,
    /// Cell values (after trimming) that mean "no value".
    #[serde(default = "default_missing")]
    pub missing: Vec<String>,
    /// Column name → type, overriding inference.
    #[serde(default)]
    pub types: BTreeMap<String, ColumnKind>,
    /// Column name → attribute name.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

fn default_missing() -> Vec<String> {
    vec![String::new(), "Select".into()]
}

impl Default for Mapping {
    fn default() -> Mapping {
        Mapping {
            id: None,
            missing: default_missing(),
            types: BTreeMap::new(),
            attributes: BTreeMap::new(),
        }
    }
}

/// A column's cells: numbers or text, `None` where missing.
#[derive(Clone, Debug, PartialEq)]
pub enum Cells {
    Number(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The header.
    pub name: String,
    /// The lead attribute it maps to.
    pub attribute: String,
    pub cells: Cells,
}

impl Column {
    pub fn kind(&self) -> ColumnKind {
        match self.cells {
            Cells::Number(_) => ColumnKind::Number,
            Cells::Text(_) => ColumnKind::Text,
        }
    }

    /// The cell as a JSON value (number or string), `None` where missing.
    pub fn value(&self, row: usize) -> Option<Value> {
        match &self.cells {
            Cells::Number(v) => v[row]
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            Cells::Text(v) => v[row].clone().map(Value::String),
        }
    }

    /// The cell as text, `None` where missing.
    pub fn text(&self, row: usize) -> Option<String> {
        match &self.cells {
            Cells::Number(v) => v[row].map(|x| x.to_string()),
            Cells::Text(v) => v[row].clone(),
        }
    }

    fn present(&self) -> usize {
        match &self.cells {
            Cells::Number(v) => v.iter().flatten().count(),
            Cells::Text(v) => v.iter().flatten().count(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("CSV row {row}: {source}")]
    Csv {
        row: usize,
        #[source]
        source: csv::Error,
    },
    #[error("the file has no header row")]
    NoHeader,
    #[error("column {0:?} appears twice")]
    DuplicateColumn(String),
    #[error("no column {0:?} (columns: {1})")]
    NoColumn(String, String),
    #[error("column {column:?}, row {row}: {value:?} is not a number")]
    NotANumber {
        column: String,
        row: usize,
        value: String,
    },
    #[error(
        "outcome column {column:?}, row {row}: {value:?} is not an outcome (use 1/0, true/false, yes/no, converted/lost)"
    )]
    NotAnOutcome {
        column: String,
        row: usize,
        value: String,
    },
}

/// An outcome cell: 1/0, true/false, yes/no, converted/lost, won, 是/否, 成交/未成交.
pub fn parse_outcome(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" | "yes" | "y" | "converted" | "won" | "是" | "成交" => Some(true),
        "0" | "0.0" | "false" | "no" | "n" | "lost" | "否" | "未成交" => Some(false),
        _ => None,
    }
}

/// An outcome attribute: a boolean, a number 1/0, or an outcome text.
pub fn outcome_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => parse_outcome(&n.to_string()),
        Value::String(s) => parse_outcome(s),
        _ => None,
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

impl Table {
    /// Reads a CSV export with a header row. Rows are numbered from 1 after the header in
    /// errors. A trailing unnamed, empty column (a trailing comma) is dropped.
    pub fn read(reader: impl Read, mapping: &Mapping) -> Result<Table, TableError> {
        let mut csv = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(reader);
        let headers: Vec<String> = csv
            .headers()
            .map_err(|source| TableError::Csv { row: 0, source })?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        if headers.is_empty() || headers.iter().all(String::is_empty) {
            return Err(TableError::NoHeader);
        }
        let mut raw: Vec<Vec<Option<String>>> = vec![Vec::new(); headers.len()];
        for (i, record) in csv.records().enumerate() {
            let record = record.map_err(|source| TableError::Csv { row: i + 1, source })?;
            for (col, cell) in raw.iter_mut().zip(record.iter()) {
                let cell = cell.trim();
                col.push(if mapping.missing.iter().any(|m| m == cell) {
                    None
                } else {
                    Some(cell.to_string())
                });
            }
        }
        Table::from_cells(headers, raw, mapping)
    }

    /// A table from lead attribute objects (what the server stores): one column per key,
    /// in order of first appearance; numbers, strings and booleans become cells, anything
    /// else and absent keys are missing. Types are inferred as for CSV.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a Value>,
        mapping: &Mapping,
    ) -> Result<Table, TableError> {
        let mut headers: Vec<String> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let mut raw: Vec<Vec<Option<String>>> = Vec::new();
        let mut rows = 0;
        for record in records {
            if let Value::Object(map) = record {
                for (k, v) in map {
                    let cell = match v {
                        Value::String(s) => Some(s.trim().to_string()),
                        Value::Number(n) => Some(n.to_string()),
                        Value::Bool(b) => Some(b.to_string()),
                        _ => None,
                    }
                    .filter(|c| !mapping.missing.iter().any(|m| m == c));
                    let col = *index.entry(k.clone()).or_insert_with(|| {
                        headers.push(k.clone());
                        raw.push(vec![None; rows]);
                        headers.len() - 1
                    });
                    raw[col].push(cell);
                }
            }
            rows += 1;
            for col in &mut raw {
                col.resize(rows, None);
            }
        }
        Table::from_cells(headers, raw, mapping)
    }

    fn from_cells(
        headers: Vec<String>,
        raw: Vec<Vec<Option<String>>>,
        mapping: &Mapping,
    ) -> Result<Table, TableError> {
        let rows = raw.first().map_or(0, Vec::len);
        let mut columns = Vec::with_capacity(headers.len());
        for (name, cells) in headers.into_iter().zip(raw) {
            if name.is_empty() && cells.iter().all(Option::is_none) {
                continue;
            }
            if columns.iter().any(|c: &Column| c.name == name) {
                return Err(TableError::DuplicateColumn(name));
            }
            let present = cells.iter().flatten().count();
            let numeric = cells
                .iter()
                .flatten()
                .filter(|c| parse_number(c).is_some())
                .count();
            let kind = mapping.types.get(&name).copied().unwrap_or(
                if present > 0 && numeric * 100 >= present * 95 {
                    ColumnKind::Number
                } else {
                    ColumnKind::Text
                },
            );
            let cells = match kind {
                ColumnKind::Text => Cells::Text(cells),
                ColumnKind::Number => {
                    let explicit = mapping.types.contains_key(&name);
                    let mut out = Vec::with_capacity(cells.len());
                    for (row, cell) in cells.into_iter().enumerate() {
                        out.push(match cell {
                            None => None,
                            Some(c) => match parse_number(&c) {
                                Some(x) => Some(x),
                                // Inferred numeric: the odd stray text cell is treated as missing.
                                None if !explicit => None,
                                None => {
                                    return Err(TableError::NotANumber {
                                        column: name,
                                        row: row + 1,
                                        value: c,
                                    });
                                }
                            },
                        });
                    }
                    Cells::Number(out)
                }
            };
            let attribute = mapping
                .attributes
                .get(&name)
                .cloned()
                .unwrap_or_else(|| name.clone());
            columns.push(Column {
                name,
                attribute,
                cells,
            });
        }
        Ok(Table { columns, rows })
    }

    pub fn column(&self, name: &str) -> Result<&Column, TableError> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| {
            TableError::NoColumn(
                name.into(),
                self.columns
                    .iter()
                    .map(|c| format!("{:?}", c.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
    }

    /// The outcome column as booleans. Missing outcomes are errors: a lead without one
    /// can't be counted either way.
    pub fn outcome(&self, name: &str) -> Result<Vec<bool>, TableError> {
        let column = self.column(name)?;
        (0..self.rows)
            .map(|row| {
                let text = column.text(row).unwrap_or_default();
                parse_outcome(&text).ok_or_else(|| TableError::NotAnOutcome {
                    column: name.into(),
                    row: row + 1,
                    value: text,
                })
            })
            .collect()
    }

    /// A row as lead attributes (`{attribute: value}`), missing cells left out.
    pub fn attributes(&self, row: usize) -> Value {
        let mut out = Map::new();
        for c in &self.columns {
            if let Some(v) = c.value(row) {
                out.insert(c.attribute.clone(), v);
            }
        }
        Value::Object(out)
    }

    /// Share of present cells per column, for reports.
    pub fn fill_rate(&self, column: &Column) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            column.present() as f64 / self.rows as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\u{feff}Prospect ID,Lead Origin,TotalVisits,Converted,\n\
        a1,API,5,1,\n\
        a2,Landing Page Submission,Select,0,\n\
        a3,Select,2.5,yes,\n\
        a4,API,,no,\n";

    #[test]
    fn infers_types_treats_select_as_missing_and_drops_the_trailing_column() {
        let t = Table::read(CSV.as_bytes(), &Mapping::default()).expect("table");
        assert_eq!(t.rows, 4);
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["Prospect ID", "Lead Origin", "TotalVisits", "Converted"]
        );
        let visits = t.column("TotalVisits").expect("column");
        assert_eq!(
            visits.cells,
            Cells::Number(vec![Some(5.0), None, Some(2.5), None])
        );
        assert_eq!(t.column("Lead Origin").expect("c").text(2), None);
        assert_eq!(
            t.outcome("Converted").expect("outcome"),
            [true, false, true, false]
        );
        assert_eq!(
            t.attributes(1),
            serde_json::json!({"Prospect ID": "a2", "Lead Origin": "Landing Page Submission", "Converted": "0"})
        );
    }

    #[test]
    fn records_become_the_same_table_as_their_csv() {
        let csv = Table::read(CSV.as_bytes(), &Mapping::default()).expect("table");
        let records: Vec<Value> = (0..csv.rows).map(|r| csv.attributes(r)).collect();
        let again = Table::from_records(&records, &Mapping::default()).expect("records");
        assert_eq!(again.rows, csv.rows);
        for c in &csv.columns {
            let d = again.column(&c.name).expect("column");
            assert_eq!(d.kind(), c.kind(), "{}", c.name);
            assert_eq!(
                (0..csv.rows).map(|r| d.value(r)).collect::<Vec<_>>(),
                (0..csv.rows).map(|r| c.value(r)).collect::<Vec<_>>(),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn mapping_renames_and_overrides_types() {
        let mapping: Mapping = serde_json::from_value(serde_json::json!({
            "types": {"Converted": "text"},
            "attributes": {"Lead Origin": "origin"}
        }))
        .expect("mapping");
        let t = Table::read(CSV.as_bytes(), &mapping).expect("table");
        assert_eq!(t.column("Converted").expect("c").kind(), ColumnKind::Text);
        assert_eq!(t.attributes(0)["origin"], "API");
    }

    #[test]
    fn errors_name_the_column_and_row() {
        let mapping: Mapping =
            serde_json::from_value(serde_json::json!({"types": {"Lead Origin": "number"}}))
                .expect("mapping");
        let e = Table::read(CSV.as_bytes(), &mapping).expect_err("not numeric");
        assert_eq!(
            e.to_string(),
            "column \"Lead Origin\", row 1: \"API\" is not a number"
        );
        let t = Table::read("id,won\nx,maybe\n".as_bytes(), &Mapping::default()).expect("t");
        assert_eq!(
            t.outcome("won").expect_err("bad").to_string(),
            "outcome column \"won\", row 1: \"maybe\" is not an outcome (use 1/0, true/false, yes/no, converted/lost)"
        );
        assert!(
            t.outcome("nope")
                .expect_err("missing")
                .to_string()
                .contains("\"won\"")
        );
        let ragged = Table::read("a,b\n1,2,3\n".as_bytes(), &Mapping::default());
        assert!(
            ragged
                .expect_err("ragged")
                .to_string()
                .starts_with("CSV row 1:")
        );
    }
}
