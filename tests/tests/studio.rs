//! Browser tests of the studio: Debian's headless Chromium through chromedriver
//! (WebDriver), against a real `trellis serve` with the built studio.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use trellis_e2e::{Api, Proc, TempDir, free_port, studio_dir};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        for tool in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }

    async fn browser(&self, profile: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                         "--window-size=1280,800", format!("--user-data-dir={}", profile.display())]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots")
}

/// Runs `body` in a fresh browser; on failure saves a screenshot, and always closes the
/// session (orphaned Chromium processes otherwise pile up).
async fn with_browser<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Client, Api) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    assert!(
        studio_dir().join("index.html").exists(),
        "the studio is not built at {}: run `cargo xtask studio` (cargo xtask test does)",
        studio_dir().display()
    );
    let dir = TempDir::new();
    let server = Proc::start(&dir.0.join("data"), None).await;
    let api = Api::new(&server.base, &server.token());
    let driver = Driver::start().await;
    let client = driver.browser(&dir.0.join("chrome")).await;
    let result = body(client.clone(), api).await;
    if let Err(message) = &result {
        std::fs::create_dir_all(screenshot_dir()).ok();
        let path = screenshot_dir().join(format!("{name}.png"));
        if let Ok(png) = client.screenshot().await {
            std::fs::write(&path, png).ok();
        }
        let _ = client.close().await;
        panic!(
            "{name}: {message}\nscreenshot: {}\nserver log:\n{}",
            path.display(),
            server.log_text()
        );
    }
    client.close().await.expect("close the browser");
}

async fn text(c: &Client, testid: &str) -> Result<String, String> {
    let el = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("[data-testid='{testid}']")))
        .await
        .map_err(|e| format!("no [data-testid={testid}]: {e}"))?;
    el.text().await.map_err(|e| e.to_string())
}

async fn click(c: &Client, testid: &str) -> Result<(), String> {
    let el = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("[data-testid='{testid}']")))
        .await
        .map_err(|e| format!("no [data-testid={testid}]: {e}"))?;
    el.click().await.map_err(|e| format!("click {testid}: {e}"))
}

async fn type_into(c: &Client, testid: &str, value: &str) -> Result<(), String> {
    let el = c
        .find(Locator::Css(&format!("[data-testid='{testid}']")))
        .await
        .map_err(|e| e.to_string())?;
    el.clear().await.map_err(|e| e.to_string())?;
    el.send_keys(value).await.map_err(|e| e.to_string())
}

/// Polls until `testid`'s text equals `want`.
async fn expect_text(c: &Client, testid: &str, want: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = text(c, testid).await?;
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "[data-testid={testid}] says {got:?}, expected {want:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_then_flow_list_in_chinese_and_english() {
    with_browser("sign_in_then_flow_list", |c, api| async move {
        let doc = json!({"schema": 1, "name": "线索培育", "nodes": [
            {"id": "t", "type": "trigger", "config": {"kind": "manual"}}], "edges": []});
        let created = api.post("/api/v1/flows", &doc).await;
        let id = created["id"].as_str().unwrap().to_owned();
        api.post(
            &format!("/api/v1/flows/{id}/publish"),
            &json!({"version": 1}),
        )
        .await;
        let run = api
            .post(&format!("/api/v1/flows/{id}/runs"), &json!({}))
            .await;
        for _ in 0..100 {
            if api
                .get(&format!("/api/v1/runs/{}", run["run_id"].as_str().unwrap()))
                .await["status"]
                == "succeeded"
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        c.goto(&api.base).await.map_err(|e| e.to_string())?;
        // Chinese by default.
        expect_text(&c, "app-title", "Trellis 工作室").await?;
        text(&c, "sign-in-page").await?;
        // A wrong token is refused with a message.
        type_into(&c, "token-input", "trl_wrong").await?;
        click(&c, "sign-in").await?;
        expect_text(&c, "sign-in-error", "令牌无效或已被吊销。").await?;
        // The admin token signs in and shows the flow list.
        type_into(&c, "token-input", &api.token).await?;
        click(&c, "sign-in").await?;
        expect_text(&c, "flow-name", "线索培育").await?;
        expect_text(&c, "last-run-status", "成功").await?;
        let heading = text(&c, "flow-list").await?;
        if !heading.starts_with("流程") {
            return Err(format!("flow list heading: {heading:?}"));
        }
        // Switch to English; it sticks across a reload, and so does the session.
        click(&c, "lang-toggle").await?;
        expect_text(&c, "app-title", "Trellis Studio").await?;
        c.refresh().await.map_err(|e| e.to_string())?;
        expect_text(&c, "last-run-status", "succeeded").await?;
        // Sign out returns to sign-in.
        click(&c, "sign-out").await?;
        text(&c, "sign-in-page").await?;
        Ok(())
    })
    .await;
}
