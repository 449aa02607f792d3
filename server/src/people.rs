//! The people directory task units are staffed from: each workspace's members (a WeCom
//! user id, function, region, skills with levels, permissions, capacity), saved one by one
//! or imported from a CSV file in one transaction, and read back as the
//! `trellis_model::task_units::Directory` matching runs on.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use trellis_model::task_units::{Function, Member, list_items, parse_skills};

use crate::db::entities::person;

/// The most members one import brings.
pub const MAX_IMPORT: usize = 10_000;

/// Why the directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("the stored member {id:?} does not read: {reason}")]
    Corrupt { id: String, reason: String },
}

/// The workspace's members (of one function, when given), by id.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    function: Option<Function>,
) -> Result<Vec<Member>, PeopleError> {
    let mut q = person::Entity::find().filter(person::Column::WorkspaceId.eq(workspace));
    if let Some(f) = function {
        q = q.filter(person::Column::Function.eq(f.as_str()));
    }
    q.order_by_asc(person::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| {
            serde_json::from_str(&row.doc).map_err(|e| PeopleError::Corrupt {
                id: row.id,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// One member, if in the directory.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
) -> Result<Option<Member>, PeopleError> {
    let Some(row) = person::Entity::find_by_id((workspace.to_owned(), id.to_owned()))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    serde_json::from_str(&row.doc)
        .map(Some)
        .map_err(|e| PeopleError::Corrupt {
            id: row.id,
            reason: e.to_string(),
        })
}

/// Saves `members` (checked by the caller), each replacing the member with its id.
pub async fn save<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    members: &[Member],
) -> Result<(), sea_orm::DbErr> {
    let now = Utc::now();
    // A few hundred rows a statement keeps every backend under its parameter limit.
    for chunk in members.chunks(500) {
        let rows = chunk.iter().map(|m| person::ActiveModel {
            workspace_id: Set(workspace.to_owned()),
            id: Set(m.id.clone()),
            name: Set(m.name.clone()),
            function: Set(m.function.as_str().to_owned()),
            doc: Set(serde_json::to_string(m).unwrap_or_else(|_| "null".into())),
            updated_at: Set(now),
        });
        person::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([person::Column::WorkspaceId, person::Column::Id])
                    .update_columns([
                        person::Column::Name,
                        person::Column::Function,
                        person::Column::Doc,
                        person::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Removes a member; false when there was none.
pub async fn remove<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    id: &str,
) -> Result<bool, sea_orm::DbErr> {
    Ok(
        person::Entity::delete_by_id((workspace.to_owned(), id.to_owned()))
            .exec(conn)
            .await?
            .rows_affected
            == 1,
    )
}

/// One problem of an import: the file's line (1 is the header), the column, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CsvProblem {
    pub line: u64,
    pub column: String,
    pub message: String,
}

/// The columns an import reads; `id`, `name`, `function` and `capacity` are required.
pub const COLUMNS: [&str; 10] = [
    "id",
    "name",
    "function",
    "region",
    "skills",
    "permissions",
    "capacity",
    "time_zone",
    "manager",
    "active",
];

/// Reads a directory export: a header naming [`COLUMNS`] (in any order; others are
/// refused), one member per line. Skills are `inventory:4; sourcing:3` (level 1–5),
/// permissions `emergency_air_freight; sign_off`, the function its code or its Chinese
/// word (仓储), `active` yes/no (default yes). Every problem is reported with its line and
/// column; an id twice is a problem.
pub fn parse_csv(text: &str) -> Result<Vec<Member>, Vec<CsvProblem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let mut problems = Vec::new();
    let problem = |line: u64, column: &str, message: String| CsvProblem {
        line,
        column: column.to_owned(),
        message,
    };
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(vec![problem(1, "", e.to_string())]),
    };
    let mut at = std::collections::HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        if !COLUMNS.contains(&h.as_str()) {
            problems.push(problem(
                1,
                &h,
                format!("unknown column; the columns are {}", COLUMNS.join(", ")),
            ));
        } else if at.insert(h.clone(), i).is_some() {
            problems.push(problem(1, &h, "this column is named twice".into()));
        }
    }
    for required in ["id", "name", "function", "capacity"] {
        if !at.contains_key(required) {
            problems.push(problem(1, required, "this column is required".into()));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut members = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(problem(line, "", e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let cell = |c: &str| at.get(c).and_then(|&i| record.get(i)).unwrap_or("");
        let function = match Function::parse(cell("function")) {
            Some(f) => f,
            None => {
                problems.push(problem(
                    line,
                    "function",
                    format!(
                        "{:?} is not a function; one of {}",
                        cell("function"),
                        Function::ALL
                            .map(|f| format!("{} ({})", f.as_str(), f.words().0))
                            .join(", ")
                    ),
                ));
                Function::Sales
            }
        };
        let capacity = cell("capacity").parse::<u32>().unwrap_or_else(|_| {
            problems.push(problem(
                line,
                "capacity",
                format!("{:?} is not a number of open units", cell("capacity")),
            ));
            0
        });
        let skills = parse_skills(cell("skills")).unwrap_or_else(|wrong| {
            problems.extend(wrong.into_iter().map(|m| problem(line, "skills", m)));
            Default::default()
        });
        let active = match cell("active").to_ascii_lowercase().as_str() {
            "" | "yes" | "y" | "true" | "1" | "是" | "在职" => true,
            "no" | "n" | "false" | "0" | "否" | "离职" => false,
            other => {
                problems.push(problem(line, "active", format!("{other:?}: yes or no")));
                true
            }
        };
        let optional = |c: &str| Some(cell(c).to_owned()).filter(|s| !s.is_empty());
        let member = Member {
            id: cell("id").to_owned(),
            name: cell("name").to_owned(),
            function,
            region: optional("region"),
            skills,
            permissions: list_items(cell("permissions")).map(str::to_owned).collect(),
            capacity,
            time_zone: optional("time_zone").unwrap_or_else(|| "Asia/Shanghai".into()),
            manager: optional("manager"),
            active,
        };
        for (pointer, message) in member.problems() {
            // The pointer's first segment is the column.
            let column = pointer
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("");
            if !problems
                .iter()
                .any(|p: &CsvProblem| p.line == line && p.column == column)
            {
                problems.push(problem(line, column, message));
            }
        }
        if let Some(first) = seen.insert(member.id.clone(), line) {
            problems.push(problem(
                line,
                "id",
                format!("{:?} is also on line {first}", member.id),
            ));
        }
        members.push(member);
    }
    if members.len() > MAX_IMPORT {
        problems.push(problem(
            0,
            "",
            format!(
                "at most {MAX_IMPORT} members per import, not {}",
                members.len()
            ),
        ));
    }
    if problems.is_empty() {
        Ok(members)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_export_reads_with_chinese_words_and_lists() {
        let csv = "\u{feff}id,name,function,region,skills,permissions,capacity,manager\n\
                   wh-east,周敏,仓储,华东,inventory:4；erp：3,,5,mgr-li\n\
                   buy-fast,陈静,purchasing,,sourcing:3,emergency_air_freight; sign_off,4,\n";
        let members = parse_csv(csv).expect("reads");
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].function, Function::Warehouse);
        assert_eq!(members[0].skills.get("erp"), Some(&3));
        assert_eq!(members[0].manager.as_deref(), Some("mgr-li"));
        assert_eq!(members[1].permissions.len(), 2);
        assert!(members[1].active);
    }

    #[test]
    fn every_problem_names_its_line_and_column() {
        let csv = "id,name,function,capacity,skills\n\
                   a,甲,仓储,5,inventory:9\n\
                   b,乙,chef,x,\n\
                   a,丙,sales,0,\n";
        let problems = parse_csv(csv).expect_err("refused");
        let got: Vec<(u64, &str)> = problems
            .iter()
            .map(|p| (p.line, p.column.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "skills"),
                (3, "function"),
                (3, "capacity"),
                (4, "capacity"),
                (4, "id"),
            ],
            "{problems:?}"
        );
        let missing = parse_csv("id,name,colour\n").expect_err("refused");
        assert!(missing.iter().any(|p| p.column == "colour"));
        assert!(missing.iter().any(|p| p.column == "function"));
    }
}

/// An employee a WeCom import left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub userid: String,
    pub name: Option<String>,
    pub department: u64,
    pub reason: String,
}

/// How a WeCom department list becomes members.
#[derive(Clone, Debug, Default)]
pub struct WeComImport {
    /// Function by department id; a department without one takes its parent's.
    pub functions: std::collections::HashMap<u64, Function>,
    /// New members' capacity, region and manager.
    pub capacity: u32,
    pub region: Option<String>,
    pub manager: Option<String>,
}

/// The members `listed` (the wecom connector's `list_department_members` output) gives:
/// an employee already in the directory keeps their skills, permissions, capacity and the
/// rest, and takes WeCom's name and their department's function; a new one starts with
/// the import's capacity, region and manager. Employees whose department (or any above
/// it) has no function are skipped, with the reason.
pub fn from_wecom(
    listed: &serde_json::Value,
    import: &WeComImport,
    existing: &[Member],
) -> (Vec<Member>, Vec<Skipped>) {
    let parents: std::collections::HashMap<u64, u64> = listed["departments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some((d["id"].as_u64()?, d["parentid"].as_u64().unwrap_or(0))))
        .collect();
    let function_of = |mut department: u64| {
        for _ in 0..64 {
            if let Some(f) = import.functions.get(&department) {
                return Some(*f);
            }
            department = *parents.get(&department)?;
        }
        None
    };
    let known: std::collections::HashMap<&str, &Member> =
        existing.iter().map(|m| (m.id.as_str(), m)).collect();
    let (mut members, mut skipped) = (Vec::new(), Vec::new());
    for e in listed["members"].as_array().into_iter().flatten() {
        let Some(userid) = e["userid"].as_str() else {
            continue;
        };
        let department = e["department"].as_u64().unwrap_or(0);
        let name = e["name"].as_str().map(str::to_owned);
        let Some(function) = function_of(department) else {
            skipped.push(Skipped {
                userid: userid.to_owned(),
                name,
                department,
                reason: format!("department {department} (and those above it) has no function"),
            });
            continue;
        };
        let member = match known.get(userid) {
            Some(m) => Member {
                name: name.clone().unwrap_or_else(|| m.name.clone()),
                function,
                ..(*m).clone()
            },
            None => Member {
                id: userid.to_owned(),
                name: name.clone().unwrap_or_else(|| userid.to_owned()),
                function,
                region: import.region.clone(),
                skills: Default::default(),
                permissions: Default::default(),
                capacity: import.capacity,
                time_zone: "Asia/Shanghai".into(),
                manager: import.manager.clone(),
                active: true,
            },
        };
        if let Some((_, problem)) = member.problems().into_iter().next() {
            skipped.push(Skipped {
                userid: userid.to_owned(),
                name,
                department,
                reason: problem,
            });
            continue;
        }
        members.push(member);
    }
    (members, skipped)
}

#[cfg(test)]
mod wecom_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn departments_map_to_functions_and_known_people_keep_their_skills() {
        let listed = json!({
            "departments": [{"id": 1, "parentid": 0}, {"id": 2, "parentid": 1}, {"id": 4, "parentid": 2}],
            "members": [
                {"userid": "wh-east", "department": 4, "name": "周敏"},
                {"userid": "wh-north", "department": 2, "name": "孙强"},
                {"userid": "boss", "department": 1, "name": "李总"}
            ]
        });
        let import = WeComImport {
            functions: [(2, Function::Warehouse)].into_iter().collect(),
            capacity: 4,
            region: Some("华东".into()),
            manager: Some("boss".into()),
        };
        let mut known = Member {
            id: "wh-north".into(),
            name: "旧名".into(),
            function: Function::Sales,
            region: Some("华北".into()),
            skills: [("实时库存".to_owned(), 5)].into_iter().collect(),
            permissions: Default::default(),
            capacity: 2,
            time_zone: "Asia/Shanghai".into(),
            manager: None,
            active: true,
        };
        let (members, skipped) = from_wecom(&listed, &import, std::slice::from_ref(&known));
        assert_eq!(members.len(), 2);
        // A sub-department takes its parent's function; a new member the import's defaults.
        assert_eq!(members[0].function, Function::Warehouse);
        assert_eq!(
            (members[0].capacity, members[0].region.as_deref()),
            (4, Some("华东"))
        );
        // A known member keeps what the directory says of them, with WeCom's name.
        known.name = "孙强".into();
        known.function = Function::Warehouse;
        assert_eq!(members[1], known);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].userid, "boss");
    }
}
