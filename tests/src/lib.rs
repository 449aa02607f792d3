//! Harness for end-to-end tests that run the real `trellis` binary as separate processes:
//! start, kill -9, restart, several processes on one database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a panic is the failure report

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

/// The `trellis` binary: `$TRELLIS_BIN`, else next to this test executable's `deps/`.
pub fn trellis_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TRELLIS_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("trellis");
    assert!(
        bin.exists(),
        "the trellis binary is not built at {}: run `cargo build -p trellis-server` first (`cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// A connector component built by `cargo xtask connectors` (which `cargo xtask test` runs):
/// `$TRELLIS_CONNECTORS_DIR/<crate>.wasm`, else under this build's target directory.
pub fn connector_wasm(crate_name: &str) -> PathBuf {
    let file = format!("{}.wasm", crate_name.replace('-', "_"));
    let dir = match std::env::var_os("TRELLIS_CONNECTORS_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            // target/debug/deps/<test> -> target/wasm32-wasip2/release
            let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
            target.join("wasm32-wasip2/release")
        }
    };
    let path = dir.join(&file);
    assert!(
        path.exists(),
        "connector component {} is not built: run `cargo xtask connectors` (`cargo xtask test` does)",
        path.display()
    );
    path
}

/// The built studio: `$TRELLIS_STUDIO_DIR`, else `studio/dist` in the workspace.
pub fn studio_dir() -> PathBuf {
    match std::env::var_os("TRELLIS_STUDIO_DIR") {
        Some(p) => p.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../studio/dist"),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn postgres_admin_url() -> String {
    std::env::var("TRELLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh PostgreSQL database, dropped with [`PgDb::drop_db`].
#[derive(Debug)]
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    pub async fn create() -> PgDb {
        let admin = postgres_admin_url();
        let conn = Database::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is required and not reachable at {admin}: {e}. Start it (`pg_ctlcluster 15 main start`) or set TRELLIS_TEST_POSTGRES_URL")
        });
        let name = format!("trellis_t_{}", uuid::Uuid::new_v4().simple());
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .expect("admin url has a database");
        PgDb {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn drop_db(self) {
        if let Ok(conn) = Database::connect(&postgres_admin_url()).await {
            let _ = conn
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}

/// `SELECT COUNT(*) AS n …` on the database at `url`.
pub async fn count_rows(url: &str, sql: &str) -> i64 {
    let db = Database::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a count row");
    row.try_get("", "n").expect("column n")
}

/// A `trellis serve` child process.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl Proc {
    /// Starts `trellis serve` and waits until `/healthz` answers.
    pub async fn start(data_dir: &Path, database_url: Option<&str>) -> Proc {
        Proc::start_on(data_dir, database_url, None).await
    }

    /// [`Proc::start`], on the CPUs `cpus` only (a `taskset -c` list such as `0`) when given:
    /// the server then sizes its runtime for them, as it would on a machine that small.
    pub async fn start_on(data_dir: &Path, database_url: Option<&str>, cpus: Option<&str>) -> Proc {
        std::fs::create_dir_all(data_dir).unwrap();
        let port = free_port();
        let log = data_dir.join(format!("server-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = match cpus {
            Some(list) => {
                // taskset execs the server in place, so the child's pid is the server's.
                let mut c = Command::new("taskset");
                c.args(["-c", list]).arg(trellis_bin());
                c
            }
            None => Command::new(trellis_bin()),
        };
        cmd.env("TRELLIS_STUDIO_DIR", studio_dir());
        cmd.args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(["--workers", "8"])
        .env_remove("TRELLIS_DATABASE_URL")
        // Tests publish the connectors they need; none is registered at start.
        .env_remove("TRELLIS_CONNECTORS_DIR")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out));
        if let Some(url) = database_url {
            cmd.env("TRELLIS_DATABASE_URL", url);
        }
        let child = cmd.spawn().expect("spawn trellis");
        let proc = Proc {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_owned(),
            log,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", proc.base)).send().await
                && r.status().is_success()
            {
                return proc;
            }
            assert!(
                Instant::now() < deadline,
                "trellis did not become healthy; log:\n{}",
                proc.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin-token"))
            .expect("admin-token")
            .trim()
            .to_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("trellis-e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tiny authenticated JSON client.
#[derive(Clone, Debug)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Api {
        Api {
            base: base.to_owned(),
            token: token.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let (s, v) = self.send(reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&s), "POST {path}: {s} {v}");
        v
    }

    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }
}

/// Creates a flow and publishes its version 1; returns its id.
pub async fn create_published(api: &Api, doc: &Value) -> String {
    let created = api.post("/api/v1/flows", doc).await;
    let id = created["id"].as_str().unwrap().to_owned();
    api.post(
        &format!("/api/v1/flows/{id}/publish"),
        &json!({"version": 1}),
    )
    .await;
    id
}

/// Starts `n` runs (input `{n: i}`), 16 requests at a time, spread over `apis`.
pub async fn start_runs(apis: &[Api], flow: &str, n: usize) -> Vec<String> {
    use futures::StreamExt as _;
    futures::stream::iter(0..n)
        .map(|i| {
            let api = apis[i % apis.len()].clone();
            let flow = flow.to_owned();
            async move {
                api.post(
                    &format!("/api/v1/flows/{flow}/runs"),
                    &json!({"input": {"n": i}}),
                )
                .await["run_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

pub async fn count(api: &Api, flow: &str, status: &str) -> usize {
    let v = api
        .get(&format!(
            "/api/v1/runs?flow={flow}&status={status}&limit=500"
        ))
        .await;
    v["runs"].as_array().unwrap().len()
}

pub async fn wait_all(api: &Api, flow: &str, status: &str, n: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = count(api, flow, status).await;
        if c >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {c} of {n} runs reached {status} in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Headless Chromium through chromedriver (WebDriver), for browser tests and benchmarks.
pub mod browser {
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use fantoccini::{Client, ClientBuilder};
    use serde_json::json;

    use crate::free_port;

    const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
    const CHROMIUM: &str = "/usr/bin/chromium";

    /// chromedriver on a free port, killed on drop.
    #[derive(Debug)]
    pub struct Driver {
        child: Child,
        url: String,
    }

    impl Driver {
        pub async fn start() -> Driver {
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

        pub async fn browser(&self, profile: &Path) -> Client {
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
}

/// A local stand-in for a remote JSON API: answers every request with
/// `{"ok": true, "path", "body"}` and counts each `Idempotency-Key`, applying an effect once
/// per key (as a real API that deduplicates would).
pub mod mock_api {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Request, State};
    use axum::http::HeaderMap;
    use serde_json::{Value, json};

    #[derive(Debug, Default)]
    pub struct Seen {
        /// Requests per idempotency key (every attempt).
        pub requests: HashMap<String, u32>,
        /// Effects applied per key (at most one per key).
        pub effects: HashMap<String, u32>,
        /// Every request's headers, lowercased names.
        pub headers: Vec<Vec<(String, String)>>,
    }

    #[derive(Clone, Debug, Default)]
    pub struct MockApi {
        pub addr: Option<SocketAddr>,
        pub seen: Arc<Mutex<Seen>>,
    }

    impl MockApi {
        /// Starts the mock on a free loopback port, in the current tokio runtime.
        pub async fn start() -> MockApi {
            let seen = Arc::new(Mutex::new(Seen::default()));
            let app = axum::Router::new()
                .fallback(handle)
                .with_state(seen.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            MockApi {
                addr: Some(addr),
                seen,
            }
        }

        pub fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr.unwrap())
        }
    }

    async fn handle(
        State(seen): State<Arc<Mutex<Seen>>>,
        headers: HeaderMap,
        req: Request,
    ) -> axum::Json<Value> {
        let path = req.uri().path().to_owned();
        if path.starts_with("/slow") {
            // Long enough that a crash catches calls in flight.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let body = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut s = seen.lock().unwrap();
        s.headers.push(
            headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
        );
        if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
            *s.requests.entry(key.to_owned()).or_default() += 1;
            s.effects.entry(key.to_owned()).or_insert(1);
        }
        axum::Json(json!({ "ok": true, "path": path, "body": body }))
    }
}
