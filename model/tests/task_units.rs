//! Matching and priority allocation (`trellis_model::task_units`): the cases in
//! `fixtures/task_units.json` (who fills each role, what stays unfilled, what the reasons
//! say), and properties over random directories and demands: hard constraints never
//! broken, nobody over capacity without an override, every pick with its reasons, the
//! same answer whatever the directory's order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use serde::Deserialize;
use trellis_model::task_units::{
    Demand, Directory, Function, Member, Override, Role, RoleDemand, SkillNeed, Workload, allocate,
};

#[derive(Deserialize)]
struct Case {
    name: String,
    directory: Vec<Member>,
    open: HashMap<String, u32>,
    collaborations: HashMap<String, HashMap<String, u32>>,
    demands: Vec<Demand>,
    expect: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    unit: String,
    /// `role:member`, in order.
    picks: Vec<String>,
    /// `role:missing:substitute:notify`.
    unfilled: Vec<String>,
    /// `role:member` (a pick) or `role` (unfilled) → phrases its Chinese sentence holds.
    #[serde(default)]
    says: BTreeMap<String, Vec<String>>,
}

#[test]
fn the_fixture_cases_pick_and_explain_as_written() {
    let cases: Vec<Case> =
        serde_json::from_str(include_str!("fixtures/task_units.json")).expect("fixture reads");
    assert!(cases.len() >= 6);
    for case in cases {
        let dir = Directory::new(case.directory);
        let mut work = Workload {
            open: case.open,
            collaborations: case.collaborations,
        };
        let got = allocate(&dir, &mut work, &case.demands);
        assert_eq!(got.len(), case.expect.len(), "{}", case.name);
        for (d, want) in got.iter().zip(&case.expect) {
            assert_eq!(d.unit, want.unit, "{}", case.name);
            let picks: Vec<String> = d
                .picks
                .iter()
                .map(|p| format!("{}:{}", p.role, p.member))
                .collect();
            assert_eq!(picks, want.picks, "{}: {d:#?}", case.name);
            let unfilled: Vec<String> = d
                .unfilled
                .iter()
                .map(|u| {
                    format!(
                        "{}:{}:{}:{}",
                        u.role,
                        u.missing,
                        u.substitute.as_ref().map_or("", |s| s.member.as_str()),
                        u.notify.as_deref().unwrap_or("")
                    )
                })
                .collect();
            assert_eq!(unfilled, want.unfilled, "{}: {d:#?}", case.name);
            for (key, phrases) in &want.says {
                let sentence = d
                    .picks
                    .iter()
                    .find(|p| format!("{}:{}", p.role, p.member) == *key)
                    .map(|p| p.zh.clone())
                    .or_else(|| {
                        d.unfilled
                            .iter()
                            .find(|u| u.role == *key)
                            .map(|u| u.zh.clone())
                    })
                    .unwrap_or_else(|| panic!("{}: nothing for {key}", case.name));
                for phrase in phrases {
                    assert!(
                        sentence.contains(phrase.as_str()),
                        "{}: {key} says {sentence:?}, not {phrase:?}",
                        case.name
                    );
                }
            }
        }
    }
}

const SKILLS: [&str; 4] = ["plc", "inventory", "sourcing", "fault_diagnosis"];
const PERMISSIONS: [&str; 2] = ["emergency_air_freight", "sign_off"];
const REGIONS: [&str; 3] = ["华东", "华北", "华南"];

fn member() -> impl Strategy<Value = Member> {
    (
        0..4usize,
        proptest::collection::btree_map(0..4usize, 1..=5u8, 0..4),
        proptest::collection::btree_set(0..2usize, 0..2),
        0..3usize,
        1..4u32,
        proptest::bool::weighted(0.9),
    )
        .prop_map(|(f, skills, perms, region, capacity, active)| Member {
            id: String::new(),
            name: String::new(),
            function: Function::ALL[f],
            region: Some(REGIONS[region].into()),
            skills: skills
                .into_iter()
                .map(|(s, l)| (SKILLS[s].into(), l))
                .collect(),
            permissions: perms.into_iter().map(|p| PERMISSIONS[p].into()).collect(),
            capacity,
            time_zone: "Asia/Shanghai".into(),
            manager: None,
            active,
        })
}

fn role() -> impl Strategy<Value = Role> {
    (
        0..4usize,
        proptest::collection::vec((0..4usize, 1..=5u8), 0..3),
        proptest::collection::vec(0..2usize, 0..2),
        proptest::option::of(0..3usize),
        1..3u32,
    )
        .prop_map(|(f, skills, perms, region, count)| Role {
            id: String::new(),
            name: "角色".into(),
            function: Function::ALL[f],
            skills: skills
                .into_iter()
                .map(|(s, level)| SkillNeed {
                    skill: SKILLS[s].into(),
                    level,
                })
                .collect(),
            optional_skills: vec!["plc".into()],
            permissions: perms.into_iter().map(|p| PERMISSIONS[p].into()).collect(),
            region: region.map(|r| REGIONS[r].into()),
            count,
        })
}

prop_compose! {
    fn world()(
        mut members in proptest::collection::vec(member(), 1..40),
        demands in proptest::collection::vec((proptest::collection::vec(role(), 1..4), 0..5i64), 1..6),
        loads in proptest::collection::vec(0..4u32, 40),
        overrides in proptest::collection::vec((0..6usize, 0..40usize), 0..3),
        shuffle in proptest::collection::vec(any::<u32>(), 40),
    ) -> (Vec<Member>, Vec<Demand>, HashMap<String, u32>, Vec<u32>) {
        for (i, m) in members.iter_mut().enumerate() {
            m.id = format!("m{i:02}");
            m.name = format!("成员{i}");
        }
        let open = members.iter().zip(&loads).map(|(m, l)| (m.id.clone(), (*l).min(m.capacity))).collect();
        let n = members.len();
        let mut demands: Vec<Demand> = demands.into_iter().enumerate().map(|(u, (roles, priority))| Demand {
            unit: format!("u{u}"),
            priority,
            account: Some("acct".into()),
            roles: roles.into_iter().enumerate().map(|(r, mut role)| {
                role.id = format!("r{r}");
                RoleDemand { role, rule: None }
            }).collect(),
            overrides: Vec::new(),
            manager: Some("mgr".into()),
        }).collect();
        for (u, m) in overrides {
            if let Some(d) = demands.get_mut(u) {
                d.overrides.push(Override { role: "r0".into(), member: format!("m{:02}", m % n), by: "mgr".into(), reason: "临时".into() });
            }
        }
        (members, demands, open, shuffle)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn allocation_keeps_its_promises((members, demands, open, shuffle) in world()) {
        let dir = Directory::new(members.clone());
        let mut work = Workload { open: open.clone(), collaborations: HashMap::new() };
        let got = allocate(&dir, &mut work, &demands);
        let mut load: HashMap<String, u32> = open.clone();
        let mut overridden: BTreeSet<String> = BTreeSet::new();
        for (d, demand) in got.iter().zip(&demands) {
            let mut seen = BTreeSet::new();
            for p in &d.picks {
                let m = dir.get(&p.member).expect("a directory member");
                let role = &demand.roles.iter().find(|r| r.role.id == p.role).expect("a role").role;
                prop_assert!(seen.insert(p.member.clone()), "nobody twice in a unit");
                prop_assert!(!p.zh.is_empty() && !p.en.is_empty(), "reasons in words");
                prop_assert_eq!(p.reasons.load_after, p.reasons.load_before + 1);
                *load.entry(m.id.clone()).or_default() += 1;
                if p.reasons.overridden.is_some() {
                    overridden.insert(m.id.clone());
                    continue;
                }
                // Hard constraints.
                prop_assert_eq!(m.function, role.function);
                prop_assert!(m.active);
                for need in &role.skills {
                    prop_assert!(m.skills.get(&need.skill).copied().unwrap_or(0) >= need.level);
                }
                for perm in &role.permissions {
                    prop_assert!(m.permissions.contains(perm));
                }
                prop_assert!(p.reasons.load_after <= m.capacity, "within capacity");
            }
            // A role is filled or says what is missing.
            for rd in &demand.roles {
                let picked = d.picks.iter().filter(|p| p.role == rd.role.id).count() as u32;
                let missing = d.unfilled.iter().find(|u| u.role == rd.role.id).map_or(0, |u| u.missing);
                prop_assert!(picked + missing == rd.role.count || (picked > rd.role.count && missing == 0),
                    "role {} of {}: {} picked, {} missing", rd.role.id, d.unit, picked, missing);
            }
        }
        for m in dir.members() {
            if !overridden.contains(&m.id) {
                let start = open.get(&m.id).copied().unwrap_or(0);
                let end = load.get(&m.id).copied().unwrap_or(0);
                prop_assert!(end <= m.capacity.max(start), "{} ends at {end} of {}", m.id, m.capacity);
            }
        }
        // Deterministic, whatever the directory's order.
        let mut shuffled: Vec<(u32, Member)> = shuffle.iter().copied().zip(members).collect();
        shuffled.sort_by_key(|(k, _)| *k);
        let dir2 = Directory::new(shuffled.into_iter().map(|(_, m)| m).collect());
        let mut work2 = Workload { open, collaborations: HashMap::new() };
        let again = allocate(&dir2, &mut work2, &demands);
        prop_assert_eq!(got, again);
        prop_assert_eq!(work.open, work2.open);
    }
}
