//! Dispatching one task unit (three roles, as 交付攻坚 asks) against a directory of 10,000
//! people carrying 2,000 open units between them (issue 23's target: p99 ≤ 5 ms; the
//! README reports the figures).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use criterion::{Criterion, criterion_group, criterion_main};
use trellis_model::task_units::{
    Demand, Directory, Function, Member, Role, RoleDemand, SkillNeed, Workload, dispatch,
};

const PEOPLE: usize = 10_000;
const OPEN_UNITS: usize = 2_000;
const SKILLS: [&str; 6] = [
    "inventory",
    "sourcing",
    "fault_diagnosis",
    "plc",
    "on_site",
    "customs",
];
const REGIONS: [&str; 4] = ["华东", "华北", "华南", "西南"];

/// A reproducible directory: a small linear congruential generator, no randomness crate.
fn directory() -> (Directory, Workload) {
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut members = Vec::with_capacity(PEOPLE);
    for i in 0..PEOPLE {
        let mut skills = BTreeMap::new();
        for _ in 0..3 {
            skills.insert(SKILLS[next(6) as usize].to_owned(), 1 + next(5) as u8);
        }
        let mut permissions = BTreeSet::new();
        if next(10) == 0 {
            permissions.insert("emergency_air_freight".to_owned());
        }
        members.push(Member {
            id: format!("user{i:05}"),
            name: format!("成员{i}"),
            function: Function::ALL[next(11) as usize],
            region: Some(REGIONS[next(4) as usize].to_owned()),
            skills,
            permissions,
            capacity: 1 + next(5) as u32,
            time_zone: "Asia/Shanghai".into(),
            manager: None,
            active: true,
        });
    }
    // 2,000 open units of three members each.
    let mut open: HashMap<String, u32> = HashMap::new();
    let mut collaborations: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for u in 0..OPEN_UNITS {
        for _ in 0..3 {
            let m = &members[next(PEOPLE as u64) as usize];
            *open.entry(m.id.clone()).or_default() += 1;
            *collaborations
                .entry(m.id.clone())
                .or_default()
                .entry(format!("acct{}", u % 300))
                .or_default() += 1;
        }
    }
    (
        Directory::new(members),
        Workload {
            open,
            collaborations,
        },
    )
}

fn demand() -> Demand {
    let role = |id: &str, function: Function, skill: &str, level: u8, permission: Option<&str>| {
        RoleDemand {
            role: Role {
                id: id.into(),
                name: id.into(),
                function,
                skills: vec![SkillNeed {
                    skill: skill.into(),
                    level,
                }],
                optional_skills: vec!["on_site".into()],
                permissions: permission.into_iter().map(str::to_owned).collect(),
                region: Some("华东".into()),
                count: 1,
            },
            rule: None,
        }
    };
    Demand {
        unit: "bench".into(),
        priority: 50,
        account: Some("acct7".into()),
        roles: vec![
            role("warehouse", Function::Warehouse, "inventory", 3, None),
            role(
                "purchasing",
                Function::Purchasing,
                "sourcing",
                2,
                Some("emergency_air_freight"),
            ),
            role("service", Function::Service, "fault_diagnosis", 4, None),
        ],
        overrides: Vec::new(),
        manager: Some("mgr".into()),
    }
}

fn bench(c: &mut Criterion) {
    let (dir, work) = directory();
    let demand = demand();
    // The target is a percentile: time 2,000 dispatches one by one and report it.
    let mut times: Vec<std::time::Duration> = (0..2_000)
        .map(|_| {
            let mut w = work.clone();
            let start = std::time::Instant::now();
            let d = dispatch(&dir, &mut w, &demand);
            let took = start.elapsed();
            assert_eq!(d.picks.len() + d.unfilled.len(), 3, "{d:?}");
            took
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    eprintln!(
        "dispatch, 10,000 people, 2,000 open units: p50 {:?}, p99 {:?}, max {:?} over {} runs",
        at(0.5),
        at(0.99),
        times[times.len() - 1],
        times.len()
    );
    c.bench_function("dispatch one unit, 10,000 people, 2,000 open units", |b| {
        b.iter_batched_ref(
            || work.clone(),
            |w| dispatch(&dir, w, &demand),
            criterion::BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
