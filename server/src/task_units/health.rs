//! Collaboration health: how units of the last `days` went, per function and per template —
//! the median and p90 time from invitation to a member's first response, the share of
//! milestones done on time, open units per person against their capacity, the most used
//! knowledge links and the member combinations that recur most. Read from the units'
//! rows; the arithmetic is [`summarise`], pure and unit-tested.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use serde_json::Value;

use super::{UnitError, UnitStatus};
use crate::db::entities::{task_unit, task_unit_member, task_unit_milestone};

/// The most rows of each list the dashboard shows.
const TOP: usize = 10;

/// One unit's facts the dashboard reads.
#[derive(Clone, Debug, Default)]
pub struct UnitFacts {
    pub template: String,
    pub open: bool,
    /// Members: id, function, invited and first response (epoch ms).
    pub members: Vec<(String, String, i64, Option<i64>)>,
    /// Milestones: due, done (epoch ms).
    pub milestones: Vec<(i64, Option<i64>)>,
    pub knowledge: Vec<String>,
}

/// A group's response times and punctuality.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Group {
    pub key: String,
    pub units: usize,
    /// Minutes from invitation to first response, over members who responded.
    pub response_p50_minutes: Option<f64>,
    pub response_p90_minutes: Option<f64>,
    pub responded: usize,
    pub invited: usize,
    /// Milestones done by their deadline, of those done or past their deadline.
    pub on_time: usize,
    pub judged: usize,
    pub on_time_rate: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Load {
    pub member: String,
    pub open: usize,
    pub capacity: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Count {
    pub key: String,
    pub count: usize,
}

/// The dashboard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Health {
    pub days: i64,
    pub units: usize,
    pub by_function: Vec<Group>,
    pub by_template: Vec<Group>,
    /// The busiest people first.
    pub load: Vec<Load>,
    pub knowledge: Vec<Count>,
    /// Member combinations (ids joined by ` + `), most frequent first.
    pub combinations: Vec<Count>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied()
}

#[derive(Default)]
struct Acc {
    units: BTreeSet<usize>,
    waits: Vec<f64>,
    invited: usize,
    on_time: usize,
    judged: usize,
}

impl Acc {
    fn group(mut self, key: String) -> Group {
        self.waits.sort_by(f64::total_cmp);
        Group {
            key,
            units: self.units.len(),
            response_p50_minutes: percentile(&self.waits, 0.5),
            response_p90_minutes: percentile(&self.waits, 0.9),
            responded: self.waits.len(),
            invited: self.invited,
            on_time: self.on_time,
            judged: self.judged,
            on_time_rate: (self.judged > 0).then(|| self.on_time as f64 / self.judged as f64),
        }
    }
}

fn top(counts: HashMap<String, usize>) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .into_iter()
        .map(|(key, count)| Count { key, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    v.truncate(TOP);
    v
}

/// The dashboard over `units` at `now`; `capacity` is each member's.
pub fn summarise(
    units: &[UnitFacts],
    capacity: &HashMap<String, u32>,
    now: i64,
    days: i64,
) -> Health {
    let mut by_function: BTreeMap<String, Acc> = BTreeMap::new();
    let mut by_template: BTreeMap<String, Acc> = BTreeMap::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut knowledge: HashMap<String, usize> = HashMap::new();
    let mut combinations: HashMap<String, usize> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        let t = by_template.entry(u.template.clone()).or_default();
        t.units.insert(i);
        let (mut on_time, mut judged) = (0, 0);
        for &(due, done) in &u.milestones {
            match done {
                Some(at) => {
                    judged += 1;
                    on_time += usize::from(at <= due);
                }
                None if due < now => judged += 1,
                None => {}
            }
        }
        t.on_time += on_time;
        t.judged += judged;
        let mut ids: Vec<&str> = Vec::new();
        for (member, function, invited, responded) in &u.members {
            ids.push(member);
            if u.open {
                *open.entry(member.clone()).or_default() += 1;
            }
            for acc in [
                by_template.entry(u.template.clone()).or_default(),
                by_function.entry(function.clone()).or_default(),
            ] {
                acc.units.insert(i);
                acc.invited += 1;
                if let Some(r) = responded {
                    acc.waits.push((r - invited).max(0) as f64 / 60_000.0);
                }
            }
        }
        // A function's punctuality: its members' units' milestones.
        let functions: BTreeSet<&String> = u.members.iter().map(|m| &m.1).collect();
        for f in functions {
            let acc = by_function.entry(f.clone()).or_default();
            acc.on_time += on_time;
            acc.judged += judged;
        }
        for k in &u.knowledge {
            *knowledge.entry(k.clone()).or_default() += 1;
        }
        if ids.len() >= 2 {
            ids.sort_unstable();
            *combinations.entry(ids.join(" + ")).or_default() += 1;
        }
    }
    let mut load: Vec<Load> = open
        .into_iter()
        .map(|(member, n)| Load {
            capacity: capacity.get(&member).copied().unwrap_or(0),
            member,
            open: n,
        })
        .collect();
    load.sort_by(|a, b| {
        let ratio = |l: &Load| l.open as f64 / f64::from(l.capacity.max(1));
        ratio(b)
            .total_cmp(&ratio(a))
            .then_with(|| a.member.cmp(&b.member))
    });
    load.truncate(TOP * 2);
    Health {
        days,
        units: units.len(),
        by_function: by_function.into_iter().map(|(k, a)| a.group(k)).collect(),
        by_template: by_template.into_iter().map(|(k, a)| a.group(k)).collect(),
        load,
        knowledge: top(knowledge),
        combinations: top(combinations),
    }
}

/// The workspace's dashboard over units created in the last `days`.
pub async fn read<C: ConnectionTrait>(
    conn: &C,
    workspace: &str,
    now: i64,
    days: i64,
) -> Result<Health, UnitError> {
    let since = now - days * 86_400_000;
    let units = task_unit::Entity::find()
        .filter(task_unit::Column::WorkspaceId.eq(workspace))
        .filter(task_unit::Column::CreatedAt.gte(since))
        .all(conn)
        .await?;
    let ids: Vec<String> = units.iter().map(|u| u.id.clone()).collect();
    let mut members: HashMap<String, Vec<task_unit_member::Model>> = HashMap::new();
    let mut milestones: HashMap<String, Vec<task_unit_milestone::Model>> = HashMap::new();
    for chunk in ids.chunks(500) {
        for m in task_unit_member::Entity::find()
            .filter(task_unit_member::Column::UnitId.is_in(chunk.iter().cloned()))
            .all(conn)
            .await?
        {
            members.entry(m.unit_id.clone()).or_default().push(m);
        }
        for m in task_unit_milestone::Entity::find()
            .filter(task_unit_milestone::Column::UnitId.is_in(chunk.iter().cloned()))
            .all(conn)
            .await?
        {
            milestones.entry(m.unit_id.clone()).or_default().push(m);
        }
    }
    let directory = crate::people::list(conn, workspace, None).await?;
    let function: HashMap<&str, &str> = directory
        .iter()
        .map(|m| (m.id.as_str(), m.function.as_str()))
        .collect();
    let capacity: HashMap<String, u32> = directory
        .iter()
        .map(|m| (m.id.clone(), m.capacity))
        .collect();
    let facts: Vec<UnitFacts> = units
        .iter()
        .map(|u| {
            let staffing: Value = serde_json::from_str(&u.staffing).unwrap_or(Value::Null);
            UnitFacts {
                template: u.template_id.clone(),
                open: u.status == UnitStatus::Open.as_str(),
                members: members
                    .get(&u.id)
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        (
                            m.member_id.clone(),
                            function
                                .get(m.member_id.as_str())
                                .map_or_else(|| "unknown".to_owned(), |f| (*f).to_owned()),
                            m.invited_at,
                            m.responded_at,
                        )
                    })
                    .collect(),
                milestones: milestones
                    .get(&u.id)
                    .into_iter()
                    .flatten()
                    .map(|m| (m.due_at, m.done_at))
                    .collect(),
                knowledge: staffing["knowledge"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k["title"].as_str().map(str::to_owned))
                    .collect(),
            }
        })
        .collect();
    Ok(summarise(&facts, &capacity, now, days))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn unit(template: &str, open: bool, members: &[(&str, &str, Option<i64>)]) -> UnitFacts {
        UnitFacts {
            template: template.into(),
            open,
            members: members
                .iter()
                .map(|(id, f, r)| ((*id).into(), (*f).into(), 0, *r))
                .collect(),
            milestones: vec![(100 * MIN, Some(90 * MIN)), (200 * MIN, None)],
            knowledge: vec!["替代料号清单".into()],
        }
    }

    #[test]
    fn response_times_punctuality_load_and_combinations() {
        let units = vec![
            unit(
                "delivery-rescue",
                true,
                &[
                    ("wh", "warehouse", Some(10 * MIN)),
                    ("buy", "purchasing", Some(30 * MIN)),
                ],
            ),
            unit(
                "delivery-rescue",
                false,
                &[
                    ("wh", "warehouse", Some(20 * MIN)),
                    ("buy", "purchasing", None),
                ],
            ),
            unit("launch", true, &[("wh", "warehouse", None)]),
        ];
        let capacity = HashMap::from([("wh".to_owned(), 2), ("buy".to_owned(), 4)]);
        // At 300 min, the second milestones (due at 200) are judged late.
        let h = summarise(&units, &capacity, 300 * MIN, 30);
        assert_eq!(h.units, 3);
        let rescue = &h.by_template[0];
        assert_eq!(rescue.key, "delivery-rescue");
        assert_eq!((rescue.units, rescue.invited, rescue.responded), (2, 4, 3));
        assert_eq!(rescue.response_p50_minutes, Some(20.0));
        assert_eq!(rescue.response_p90_minutes, Some(30.0));
        assert_eq!((rescue.on_time, rescue.judged), (2, 4));
        let wh = h.by_function.iter().find(|g| g.key == "warehouse").unwrap();
        assert_eq!((wh.units, wh.responded), (3, 2));
        assert_eq!(
            h.load,
            vec![
                Load {
                    member: "wh".into(),
                    open: 2,
                    capacity: 2
                },
                Load {
                    member: "buy".into(),
                    open: 1,
                    capacity: 4
                },
            ]
        );
        assert_eq!(
            h.knowledge,
            vec![Count {
                key: "替代料号清单".into(),
                count: 3
            }]
        );
        assert_eq!(
            h.combinations,
            vec![Count {
                key: "buy + wh".into(),
                count: 2
            }]
        );
    }

    #[test]
    fn nothing_yet_is_said_as_nothing() {
        let h = summarise(&[], &HashMap::new(), 0, 30);
        assert!(h.by_function.is_empty() && h.load.is_empty());
        assert_eq!(percentile(&[], 0.5), None);
    }
}
