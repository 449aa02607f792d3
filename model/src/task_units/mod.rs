//! Task units (作战单元): the people directory, the roles a unit template asks for, and
//! matching — who fills each role, with the reasons a manager reads. Pure: the server
//! dispatches with it and the studio previews the same dispatch in the browser.
//!
//! For each role, a member qualifies when the function matches, every required skill is at
//! its minimum level, every required permission is held, and the member is active; those
//! are hard constraints, never traded away. Among the qualified, members with room under
//! their capacity are ranked by skill levels, region, current load against capacity and
//! recent collaboration with the same account; equal scores go to the lower load, then the
//! member id, so a dispatch is deterministic. Nobody is put over capacity except by a
//! manager's explicit [`Override`], which the pick's reasons record. When no qualified
//! member has room, the role is left unfilled with a proposed substitute and the manager
//! to notify. [`allocate`] serves several units wanting the same people in priority
//! order: a lower-priority unit gets the next-best member, and its pick says who it did
//! not get and why.

mod template;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

pub use template::{
    Deadline, DispatchRule, Facts, Knowledge, MAX_COUNT, MAX_URGENCY, Milestone, RuleOutcome,
    Staffing, Template, priority,
};

/// What a member does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    Sales,
    Fae,
    Finance,
    Legal,
    Marketing,
    Warehouse,
    Purchasing,
    Service,
    Customs,
    Logistics,
    Management,
}

impl Function {
    pub const ALL: [Function; 11] = [
        Function::Sales,
        Function::Fae,
        Function::Finance,
        Function::Legal,
        Function::Marketing,
        Function::Warehouse,
        Function::Purchasing,
        Function::Service,
        Function::Customs,
        Function::Logistics,
        Function::Management,
    ];

    /// The code stored and sent (`warehouse`).
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Sales => "sales",
            Function::Fae => "fae",
            Function::Finance => "finance",
            Function::Legal => "legal",
            Function::Marketing => "marketing",
            Function::Warehouse => "warehouse",
            Function::Purchasing => "purchasing",
            Function::Service => "service",
            Function::Customs => "customs",
            Function::Logistics => "logistics",
            Function::Management => "management",
        }
    }

    /// A function by its code (`warehouse`) or its Chinese word (`仓储`; `FAE` and `售前`
    /// too).
    pub fn parse(text: &str) -> Option<Function> {
        let t = text.trim();
        Function::ALL.into_iter().find(|f| {
            f.as_str().eq_ignore_ascii_case(t)
                || f.words().0 == t
                || (*f == Function::Fae && (t.eq_ignore_ascii_case("FAE") || t == "售前"))
        })
    }

    /// The function in words, zh and en.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            Function::Sales => ("销售", "sales"),
            Function::Fae => ("售前技术（FAE）", "field application engineering"),
            Function::Finance => ("财务", "finance"),
            Function::Legal => ("法务", "legal"),
            Function::Marketing => ("市场", "marketing"),
            Function::Warehouse => ("仓储", "warehouse"),
            Function::Purchasing => ("采购", "purchasing"),
            Function::Service => ("售后服务", "service"),
            Function::Customs => ("报关", "customs"),
            Function::Logistics => ("物流", "logistics"),
            Function::Management => ("管理", "management"),
        }
    }
}

/// Skill levels run from 1 (can help) to 5 (the expert).
pub const MAX_LEVEL: u8 = 5;

/// One person of the directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The WeCom user id (also how notifications reach the member).
    pub id: String,
    pub name: String,
    pub function: Function,
    /// e.g. `华东`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Skill → level (1–5).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// e.g. `emergency_air_freight`.
    #[serde(default)]
    pub permissions: BTreeSet<String>,
    /// The most open units the member takes at once.
    pub capacity: u32,
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Who is told when the member's role cannot be filled (their manager's user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn default_time_zone() -> String {
    "Asia/Shanghai".into()
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

impl Member {
    /// What is wrong with the member, each with its JSON pointer.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.id.trim().is_empty() || self.id.len() > 64 {
            out.push(("/id".into(), "a user id of 1 to 64 characters".into()));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            out.push(("/name".into(), "a name of 1 to 100 characters".into()));
        }
        if !(1..=100).contains(&self.capacity) {
            out.push(("/capacity".into(), "capacity is 1 to 100 open units".into()));
        }
        for (skill, level) in &self.skills {
            if !(1..=MAX_LEVEL).contains(level) {
                out.push((
                    format!("/skills/{}", crate::node_types::escape_pointer(skill)),
                    format!("a skill level is 1 to {MAX_LEVEL}"),
                ));
            }
        }
        out
    }
}

/// The items of a list as people type it: `a; b`, `a、b`, `a，b`.
pub fn list_items(text: &str) -> impl Iterator<Item = &str> {
    text.split([';', '；', ',', '，', '、', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Skills as people type them, `inventory:4; erp：3`; each item that does not read is
/// said in words (a name and a level of 1 to 5).
pub fn parse_skills(text: &str) -> Result<BTreeMap<String, u8>, Vec<String>> {
    let mut skills = BTreeMap::new();
    let mut problems = Vec::new();
    for item in list_items(text) {
        let parsed = item
            .split_once([':', '：'])
            .and_then(|(s, l)| Some((s.trim(), l.trim().parse::<u8>().ok()?)));
        match parsed {
            Some((skill, level)) if !skill.is_empty() && (1..=MAX_LEVEL).contains(&level) => {
                skills.insert(skill.to_owned(), level);
            }
            _ => problems.push(format!(
                "{item:?}: write a skill as name:level, the level 1 to {MAX_LEVEL}"
            )),
        }
    }
    if problems.is_empty() {
        Ok(skills)
    } else {
        Err(problems)
    }
}

/// Skills as people type them back: `erp:3; inventory:4`.
pub fn skills_text(skills: &BTreeMap<String, u8>) -> String {
    skills
        .iter()
        .map(|(s, l)| format!("{s}:{l}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A skill a role needs, at a minimum level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillNeed {
    pub skill: String,
    pub level: u8,
}

/// A role a unit needs filled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Unique in its template, e.g. `warehouse`.
    pub id: String,
    /// In words, e.g. `华东仓管`.
    pub name: String,
    pub function: Function,
    /// Required, at their minimum level.
    #[serde(default)]
    pub skills: Vec<SkillNeed>,
    /// Count in the ranking when held.
    #[serde(default)]
    pub optional_skills: Vec<String>,
    /// Required.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Preferred, not required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// How many people.
    #[serde(default = "one")]
    pub count: u32,
}

/// A manager's decision to put `member` in `role` whatever their load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub role: String,
    pub member: String,
    /// The manager who decided.
    pub by: String,
    pub reason: String,
}

/// One unit asking for people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    pub unit: String,
    /// Higher goes first (urgency, the account's value, the trigger's severity).
    pub priority: i64,
    #[serde(default)]
    pub account: Option<String>,
    pub roles: Vec<RoleDemand>,
    #[serde(default)]
    pub overrides: Vec<Override>,
    /// Who is told when a role cannot be filled (else the substitute's manager).
    #[serde(default)]
    pub manager: Option<String>,
}

/// A role and, when a dispatch rule added it, that rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleDemand {
    pub role: Role,
    #[serde(default)]
    pub rule: Option<String>,
}

/// Who is busy now: open units per member, and recent collaborations per member and
/// account.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    pub open: HashMap<String, u32>,
    pub collaborations: HashMap<String, HashMap<String, u32>>,
}

impl Workload {
    fn load(&self, member: &str) -> u32 {
        self.open.get(member).copied().unwrap_or(0)
    }

    fn with(&self, member: &str, account: Option<&str>) -> u32 {
        account
            .and_then(|a| self.collaborations.get(member)?.get(a).copied())
            .unwrap_or(0)
    }
}

/// The directory, indexed by function.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    members: Vec<Member>,
    by_function: HashMap<Function, Vec<usize>>,
    by_id: HashMap<String, usize>,
}

impl Directory {
    pub fn new(members: Vec<Member>) -> Directory {
        let mut by_function: HashMap<Function, Vec<usize>> = HashMap::new();
        let mut by_id = HashMap::new();
        for (i, m) in members.iter().enumerate() {
            by_function.entry(m.function).or_default().push(i);
            by_id.insert(m.id.clone(), i);
        }
        Directory {
            members,
            by_function,
            by_id,
        }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn get(&self, id: &str) -> Option<&Member> {
        self.by_id.get(id).map(|&i| &self.members[i])
    }
}

/// A required or optional skill a pick holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkillMatch {
    pub skill: String,
    pub level: u8,
    /// The minimum the role asked for; none for an optional skill.
    pub required: Option<u8>,
}

/// The first choice a lower-priority unit did not get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Displaced {
    pub member: String,
    /// The unit that got them, and its priority.
    pub unit: String,
    pub priority: i64,
}

/// Why a member was picked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reasons {
    pub skills: Vec<SkillMatch>,
    pub permissions: Vec<String>,
    /// The role's region, when the member is in it.
    pub region: Option<String>,
    pub load_before: u32,
    pub load_after: u32,
    pub capacity: u32,
    /// Recent units with the same account.
    pub collaborations: u32,
    /// The dispatch rule that added the role.
    pub rule: Option<String>,
    /// How a tie with the next candidate was broken.
    pub tie_break: Option<TieBreak>,
    /// The better match this unit did not get.
    pub displaced: Option<Displaced>,
    /// A manager put the member here.
    pub overridden: Option<Override>,
}

/// How equal scores were ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// The same score; this member has fewer open units.
    LowerLoad,
    /// The same score and load; by user id.
    UserId,
}

/// A member in a role.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pick {
    pub role: String,
    pub member: String,
    pub name: String,
    pub score: f64,
    pub reasons: Reasons,
    /// The reasons as a sentence, zh and en.
    pub zh: String,
    pub en: String,
}

/// A role (or part of it) nobody could fill.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Unfilled {
    pub role: String,
    /// How many people are still missing.
    pub missing: u32,
    /// The best person to ask instead: a qualified member already at capacity (a manager
    /// may override), or the closest member of the function (what they lack is said).
    pub substitute: Option<Substitute>,
    /// Who to tell.
    pub notify: Option<String>,
    pub zh: String,
    pub en: String,
}

/// A proposed substitute, not assigned.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Substitute {
    pub member: String,
    pub name: String,
    /// At capacity (`load` of `capacity`), or lacking these skills and permissions.
    pub load: u32,
    pub capacity: u32,
    pub lacks: Vec<String>,
}

/// A unit's people.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dispatch {
    pub unit: String,
    pub picks: Vec<Pick>,
    pub unfilled: Vec<Unfilled>,
}

/// A candidate for a role, before the pick.
struct Candidate {
    index: usize,
    score: f64,
    load: u32,
}

fn score(role: &Role, m: &Member, load: u32, collaborations: u32) -> f64 {
    let mut s = 0.0;
    for need in &role.skills {
        let level = m.skills.get(&need.skill).copied().unwrap_or(0);
        s += 2.0 * f64::from(level.saturating_sub(need.level) + 1);
    }
    for skill in &role.optional_skills {
        s += f64::from(m.skills.get(skill).copied().unwrap_or(0));
    }
    if role.region.is_some() && role.region == m.region {
        s += 3.0;
    }
    s += 2.0 * f64::from(collaborations.min(3));
    s -= 4.0 * f64::from(load) / f64::from(m.capacity.max(1));
    s
}

/// Whether `m` meets every hard constraint of the role ([`lacks`] says what is missing).
fn qualifies(role: &Role, m: &Member) -> bool {
    m.active
        && m.function == role.function
        && role
            .skills
            .iter()
            .all(|n| m.skills.get(&n.skill).is_some_and(|&l| l >= n.level))
        && role.permissions.iter().all(|p| m.permissions.contains(p))
}

/// What `m` lacks of the role's hard constraints (empty: qualified).
fn lacks(role: &Role, m: &Member) -> Vec<String> {
    let mut out = Vec::new();
    if m.function != role.function {
        out.push(format!("function {:?}", role.function));
    }
    for need in &role.skills {
        let level = m.skills.get(&need.skill).copied().unwrap_or(0);
        if level < need.level {
            out.push(format!("{} {}", need.skill, need.level));
        }
    }
    for p in &role.permissions {
        if !m.permissions.contains(p) {
            out.push(p.clone());
        }
    }
    if !m.active {
        out.push("active".into());
    }
    out
}

/// Fills every role of `demand` from `dir`, taking load into `work` as it picks (so the
/// next unit sees it). `taken` names, for members filled up by an earlier unit of the same
/// allocation, that unit and its priority.
fn dispatch_with(
    dir: &Directory,
    work: &mut Workload,
    demand: &Demand,
    taken: &mut HashMap<String, (String, i64)>,
) -> Dispatch {
    let account = demand.account.as_deref();
    let mut picks = Vec::new();
    let mut unfilled = Vec::new();
    let mut in_unit: BTreeSet<String> = BTreeSet::new();
    for rd in &demand.roles {
        let role = &rd.role;
        let mut wanted = role.count;
        // A manager's overrides come first, whatever the load.
        for o in demand.overrides.iter().filter(|o| o.role == role.id) {
            let Some(m) = dir.get(&o.member) else {
                continue;
            };
            if wanted == 0 || !in_unit.insert(m.id.clone()) {
                continue;
            }
            let load = work.load(&m.id);
            let pick = make_pick(
                role,
                m,
                load,
                work.with(&m.id, account),
                rd.rule.clone(),
                None,
                None,
                Some(o.clone()),
            );
            *work.open.entry(m.id.clone()).or_default() += 1;
            picks.push(pick);
            wanted -= 1;
        }
        if wanted == 0 {
            continue;
        }
        let pool = dir
            .by_function
            .get(&role.function)
            .map_or(&[][..], Vec::as_slice);
        let mut open = Vec::new();
        // The best qualified member with no room left, and the best one this unit lost to
        // an earlier unit of the allocation.
        let mut full: Option<Candidate> = None;
        for &i in pool {
            let m = &dir.members[i];
            if in_unit.contains(&m.id) || !qualifies(role, m) {
                continue;
            }
            let load = work.load(&m.id);
            let c = Candidate {
                index: i,
                score: score(role, m, load, work.with(&m.id, account)),
                load,
            };
            if load < m.capacity {
                open.push(c);
            } else if full.as_ref().is_none_or(|f| better(dir, &c, f)) {
                full = Some(c);
            }
        }
        open.sort_by(|a, b| order(dir, a, b));
        let lost = full.as_ref().and_then(|f| {
            let m = &dir.members[f.index];
            let (unit, priority) = taken.get(&m.id)?;
            // Scored as it would have been before the other unit took it.
            let before = score(role, m, f.load.saturating_sub(1), work.with(&m.id, account));
            let best_open = open.first().map_or(f64::NEG_INFINITY, |c| c.score);
            (before > best_open).then(|| Displaced {
                member: m.id.clone(),
                unit: unit.clone(),
                priority: *priority,
            })
        });
        let count = open.len();
        for k in 0..count {
            if wanted == 0 {
                break;
            }
            let c = &open[k];
            let m = &dir.members[c.index];
            let tie = open.get(k + 1).and_then(|next| {
                (next.score.total_cmp(&c.score).is_eq()).then_some(if next.load != c.load {
                    TieBreak::LowerLoad
                } else {
                    TieBreak::UserId
                })
            });
            in_unit.insert(m.id.clone());
            let pick = make_pick(
                role,
                m,
                c.load,
                work.with(&m.id, account),
                rd.rule.clone(),
                tie,
                if k == 0 { lost.clone() } else { None },
                None,
            );
            let now = work.open.entry(m.id.clone()).or_default();
            *now += 1;
            if *now >= m.capacity {
                taken.insert(m.id.clone(), (demand.unit.clone(), demand.priority));
            }
            picks.push(pick);
            wanted -= 1;
        }
        if wanted > 0 {
            unfilled.push(unfilled_role(dir, role, wanted, full, &in_unit, demand));
        }
    }
    Dispatch {
        unit: demand.unit.clone(),
        picks,
        unfilled,
    }
}

/// Higher score, then lower load, then user id.
fn order(dir: &Directory, a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.load.cmp(&b.load))
        .then_with(|| dir.members[a.index].id.cmp(&dir.members[b.index].id))
}

fn better(dir: &Directory, a: &Candidate, b: &Candidate) -> bool {
    order(dir, a, b).is_lt()
}

/// The role left unfilled: a substitute (qualified but full, else the closest member of
/// the function) and who to tell.
fn unfilled_role(
    dir: &Directory,
    role: &Role,
    missing: u32,
    full: Option<Candidate>,
    in_unit: &BTreeSet<String>,
    demand: &Demand,
) -> Unfilled {
    let substitute = match full {
        Some(c) => {
            let m = &dir.members[c.index];
            Some(Substitute {
                member: m.id.clone(),
                name: m.name.clone(),
                load: c.load,
                capacity: m.capacity,
                lacks: Vec::new(),
            })
        }
        None => dir
            .by_function
            .get(&role.function)
            .into_iter()
            .flatten()
            .map(|&i| &dir.members[i])
            .filter(|m| m.active && !in_unit.contains(&m.id))
            .map(|m| (lacks(role, m), m))
            .min_by(|(la, a), (lb, b)| la.len().cmp(&lb.len()).then_with(|| a.id.cmp(&b.id)))
            .map(|(lacks, m)| Substitute {
                member: m.id.clone(),
                name: m.name.clone(),
                load: 0,
                capacity: m.capacity,
                lacks,
            }),
    };
    let notify = demand.manager.clone().or_else(|| {
        substitute
            .as_ref()
            .and_then(|s| dir.get(&s.member)?.manager.clone())
    });
    let (zh, en) = match &substitute {
        Some(s) if s.lacks.is_empty() => (
            format!(
                "「{}」还缺 {missing} 人：符合条件的人都已满负荷。建议 {}（已有 {}/{} 个单元），需经理确认超额安排。",
                role.name, s.name, s.load, s.capacity
            ),
            format!(
                "\"{}\" still needs {missing}: everyone qualified is at capacity. Suggested: {} ({}/{} units), if a manager agrees to go over capacity.",
                role.name, s.name, s.load, s.capacity
            ),
        ),
        Some(s) => (
            format!(
                "「{}」还缺 {missing} 人：没有人满足全部条件。最接近的是 {}，缺少：{}。",
                role.name,
                s.name,
                s.lacks.join("、")
            ),
            format!(
                "\"{}\" still needs {missing}: nobody meets every requirement. Closest: {}, lacking {}.",
                role.name,
                s.name,
                s.lacks.join(", ")
            ),
        ),
        None => (
            format!(
                "「{}」还缺 {missing} 人：目录里没有这个职能的人。",
                role.name
            ),
            format!(
                "\"{}\" still needs {missing}: nobody in the directory has this function.",
                role.name
            ),
        ),
    };
    Unfilled {
        role: role.id.clone(),
        missing,
        substitute,
        notify,
        zh,
        en,
    }
}

#[allow(clippy::too_many_arguments)] // reason: each is one fact the pick's reasons state
fn make_pick(
    role: &Role,
    m: &Member,
    load: u32,
    collaborations: u32,
    rule: Option<String>,
    tie_break: Option<TieBreak>,
    displaced: Option<Displaced>,
    overridden: Option<Override>,
) -> Pick {
    let mut skills: Vec<SkillMatch> = role
        .skills
        .iter()
        .map(|n| SkillMatch {
            skill: n.skill.clone(),
            level: m.skills.get(&n.skill).copied().unwrap_or(0),
            required: Some(n.level),
        })
        .collect();
    skills.extend(role.optional_skills.iter().filter_map(|s| {
        m.skills.get(s).map(|&level| SkillMatch {
            skill: s.clone(),
            level,
            required: None,
        })
    }));
    let region = role.region.clone().filter(|r| m.region.as_ref() == Some(r));
    let reasons = Reasons {
        skills,
        permissions: role.permissions.clone(),
        region,
        load_before: load,
        load_after: load + 1,
        capacity: m.capacity,
        collaborations,
        rule,
        tie_break,
        displaced,
        overridden,
    };
    let (zh, en) = sentence(&reasons);
    Pick {
        role: role.id.clone(),
        member: m.id.clone(),
        name: m.name.clone(),
        score: score(role, m, load, collaborations),
        reasons,
        zh,
        en,
    }
}

/// The reasons as a sentence a manager reads.
fn sentence(r: &Reasons) -> (String, String) {
    let mut zh = Vec::new();
    let mut en = Vec::new();
    if let Some(o) = &r.overridden {
        zh.push(format!("由 {} 指定（{}）", o.by, o.reason));
        en.push(format!("assigned by {} ({})", o.by, o.reason));
    }
    if !r.skills.is_empty() {
        let list = |zh: bool| {
            r.skills
                .iter()
                .map(|s| match (s.required, zh) {
                    (Some(req), true) => format!("{} {} 级（要求 {req}）", s.skill, s.level),
                    (None, true) => format!("{} {} 级", s.skill, s.level),
                    (Some(req), false) => format!("{} level {} (needs {req})", s.skill, s.level),
                    (None, false) => format!("{} level {}", s.skill, s.level),
                })
                .collect::<Vec<_>>()
        };
        zh.push(format!("技能：{}", list(true).join("、")));
        en.push(format!("skills: {}", list(false).join(", ")));
    }
    if !r.permissions.is_empty() {
        zh.push(format!("有权限：{}", r.permissions.join("、")));
        en.push(format!("holds {}", r.permissions.join(", ")));
    }
    if let Some(region) = &r.region {
        zh.push(format!("区域 {region} 相符"));
        en.push(format!("in {region}"));
    }
    zh.push(format!(
        "负载 {}/{} → {}/{}",
        r.load_before, r.capacity, r.load_after, r.capacity
    ));
    en.push(format!(
        "load {}/{} → {}/{}",
        r.load_before, r.capacity, r.load_after, r.capacity
    ));
    if r.collaborations > 0 {
        zh.push(format!("近期与该客户协作 {} 次", r.collaborations));
        en.push(format!(
            "{} recent unit(s) with this account",
            r.collaborations
        ));
    }
    if let Some(rule) = &r.rule {
        zh.push(format!("由规则「{rule}」加入"));
        en.push(format!("added by rule \"{rule}\""));
    }
    match r.tie_break {
        Some(TieBreak::LowerLoad) => {
            zh.push("与下一位同分，负载更低".into());
            en.push("tied with the next, fewer open units".into());
        }
        Some(TieBreak::UserId) => {
            zh.push("与下一位同分同负载，按用户 ID 先后".into());
            en.push("tied with the next on score and load; by user id".into());
        }
        None => {}
    }
    if let Some(d) = &r.displaced {
        zh.push(format!(
            "首选 {} 已分给优先级更高的单元 {}（优先级 {}）",
            d.member, d.unit, d.priority
        ));
        en.push(format!(
            "the first choice {} went to the higher-priority unit {} (priority {})",
            d.member, d.unit, d.priority
        ));
    }
    (zh.join("；"), en.join("; "))
}

/// Fills one unit's roles, adding its picks to `work`.
pub fn dispatch(dir: &Directory, work: &mut Workload, demand: &Demand) -> Dispatch {
    dispatch_with(dir, work, demand, &mut HashMap::new())
}

/// Fills several units that compete for the same people: higher priority first (then unit
/// id), each seeing the load the earlier ones added. A unit that loses its first choice to
/// a higher-priority one says so in that pick's reasons. Results come in the demands'
/// order.
pub fn allocate(dir: &Directory, work: &mut Workload, demands: &[Demand]) -> Vec<Dispatch> {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by(|&a, &b| {
        demands[b]
            .priority
            .cmp(&demands[a].priority)
            .then_with(|| demands[a].unit.cmp(&demands[b].unit))
    });
    let mut taken = HashMap::new();
    let mut out: Vec<Option<Dispatch>> = vec![None; demands.len()];
    for i in order {
        out[i] = Some(dispatch_with(dir, work, &demands[i], &mut taken));
    }
    out.into_iter().flatten().collect()
}
