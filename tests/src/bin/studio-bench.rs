//! `studio-bench`: frame times of the studio editor on a 300-node flow, in Debian's
//! headless Chromium — while dragging a node across the canvas and while panning.
//!
//! Usage: `cargo xtask bench-studio` (builds the studio and the server first).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a panic is the report

use std::time::Duration;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use trellis_e2e::browser::Driver;
use trellis_e2e::{Api, Proc, TempDir, studio_dir};

const NODES: usize = 300;

/// A chain of `NODES` set nodes on a 20-wide grid.
fn big_flow() -> Value {
    let mut nodes = vec![
        json!({"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [40, 40]}),
    ];
    let mut edges = Vec::new();
    let mut prev = "start".to_owned();
    for i in 1..NODES {
        let id = format!("n{i}");
        let (col, row) = (i % 20, i / 20);
        nodes.push(
            json!({"id": id, "type": "set", "config": {"vars": {"x": format!("{i}")}},
            "position": [40 + col * 200, 40 + row * 110]}),
        );
        edges.push(json!({"from": prev, "to": id}));
        prev = id;
    }
    json!({"schema": 1, "name": "300 个节点", "nodes": nodes, "edges": edges})
}

const START_RECORDING: &str = "window.__frames = []; window.__stop = false; let last = performance.now();
    const tick = (t) => { window.__frames.push(t - last); last = t; if (!window.__stop) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);";
const STOP_RECORDING: &str = "window.__stop = true; return window.__frames.slice(1);";

async fn frames(c: &Client) -> Vec<f64> {
    let v = c
        .execute(STOP_RECORDING, vec![])
        .await
        .expect("read frames");
    serde_json::from_value(v).expect("frame list")
}

fn report(what: &str, mut f: Vec<f64>) {
    assert!(f.len() > 10, "{what}: only {} frames recorded", f.len());
    f.sort_by(f64::total_cmp);
    let pct = |p: f64| f[((f.len() as f64 * p) as usize).min(f.len() - 1)];
    println!(
        "{what}: {} frames, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        f.len(),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        f[f.len() - 1]
    );
}

#[tokio::main]
async fn main() {
    assert!(
        studio_dir().join("index.html").exists(),
        "build the studio first: cargo xtask studio"
    );
    let dir = TempDir::new();
    let server = Proc::start(&dir.0.join("data"), None).await;
    let api = Api::new(&server.base, &server.token());
    let id = api.post("/api/v1/flows", &big_flow()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let driver = Driver::start().await;
    let c = driver.browser(&dir.0.join("chrome")).await;
    c.goto(&api.base).await.unwrap();
    c.execute(
        &format!("sessionStorage.setItem('trellis.token', {:?});", api.token),
        vec![],
    )
    .await
    .unwrap();
    c.goto(&format!("{}/#/flows/{id}", api.base)).await.unwrap();
    c.refresh().await.unwrap();
    let last = format!("[data-testid='node-n{}']", NODES - 1);
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(&last))
        .await
        .expect("the flow renders");
    let count = c.find_all(Locator::Css(".node")).await.unwrap().len();
    println!(
        "flow with {count} nodes and {} edges open in the editor",
        NODES - 1
    );

    // Drag one node 400 px across the canvas in 40 steps.
    let node = c
        .find(Locator::Css("[data-testid='node-n21']"))
        .await
        .unwrap();
    c.execute(START_RECORDING, vec![]).await.unwrap();
    let mut mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: node,
            duration: None,
            x: 0.0,
            y: -10.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        });
    for _ in 0..40 {
        mouse = mouse.then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(25)),
            x: 10.0,
            y: 2.0,
        });
    }
    mouse = mouse.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    });
    c.perform_actions(mouse).await.unwrap();
    report("drag a node", frames(&c).await);

    // Pan: scroll the canvas 2,000 px right and 1,000 px down over about a second.
    c.execute(START_RECORDING, vec![]).await.unwrap();
    c.execute_async(
        "const done = arguments[0]; const canvas = document.querySelector(\"[data-testid='canvas']\"); let i = 0;
         const step = () => { canvas.scrollLeft += 33; canvas.scrollTop += 16; if (++i < 60) requestAnimationFrame(step); else done(); };
         requestAnimationFrame(step);",
        vec![],
    )
    .await
    .unwrap();
    report("pan the canvas", frames(&c).await);
    c.close().await.unwrap();
}
