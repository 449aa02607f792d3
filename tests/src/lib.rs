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
/// The Python interpreter with Segment's library (`segment-analytics-python`) that
/// `cargo xtask test` installs under the target directory; panics saying how to get it.
pub fn segment_python() -> PathBuf {
    let python = match std::env::var_os("TRELLIS_SEGMENT_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
            target.join("segment-py/bin/python")
        }
    };
    let ok = std::process::Command::new(&python)
        .args(["-c", "import segment.analytics"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "Segment's Python library is not installed at {}: run `cargo xtask test` (it installs it), or \
         `python3 -m venv <target>/segment-py && <target>/segment-py/bin/pip install segment-analytics-python==2.4.0`",
        python.display()
    );
    python
}

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

    pub async fn put(&self, path: &str, body: &Value) -> Value {
        let (s, v) = self.send(reqwest::Method::PUT, path, Some(body)).await;
        assert!((200..300).contains(&s), "PUT {path}: {s} {v}");
        v
    }

    /// Publishes the connector component `cargo xtask connectors` built from `crate_name`.
    pub async fn publish_connector(&self, crate_name: &str) {
        let r = self
            .client
            .post(format!("{}/api/v1/connectors", self.base))
            .bearer_auth(&self.token)
            .body(std::fs::read(connector_wasm(crate_name)).unwrap())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "publish {crate_name}: {}",
            r.text().await.unwrap()
        );
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

/// WeCom's side of a callback: WXBizMsgCrypt written apart from the connector's (so the
/// tests check the connector against a second implementation), for the mock WeCom server
/// and the callback tests.
pub mod wecom {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
    use base64::Engine as _;
    use sha1::Digest as _;

    /// A corp's callback settings as WeCom's admin console shows them.
    #[derive(Clone, Debug)]
    pub struct Corp {
        pub token: String,
        pub encoding_aes_key: String,
        pub corp_id: String,
    }

    /// A callback as WeCom sends it: the query's signature and the encrypted text.
    #[derive(Clone, Debug)]
    pub struct Sealed {
        pub msg_signature: String,
        pub timestamp: String,
        pub nonce: String,
        pub encrypt: String,
    }

    impl Sealed {
        /// The callback's query string (with `echostr` for a URL check).
        pub fn query(&self, echo: bool) -> String {
            let enc = |s: &str| {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            };
            let mut q = format!(
                "msg_signature={}&timestamp={}&nonce={}",
                self.msg_signature, self.timestamp, self.nonce
            );
            if echo {
                q.push_str(&format!("&echostr={}", enc(&self.encrypt)));
            }
            q
        }

        /// The same callback with the ciphertext's last `bytes` bytes cut off, signed again
        /// (a truncated delivery that still passes the signature).
        pub fn truncated(&self, corp: &Corp, bytes: usize) -> Sealed {
            let b64 = base64::engine::general_purpose::STANDARD;
            let raw = b64.decode(&self.encrypt).expect("Base64");
            let encrypt = b64.encode(&raw[..raw.len().saturating_sub(bytes)]);
            Sealed {
                msg_signature: corp.sign(&self.timestamp, &self.nonce, &encrypt),
                encrypt,
                ..self.clone()
            }
        }

        /// The same callback with a signature off by one character.
        pub fn forged(&self) -> Sealed {
            let mut sig = self.msg_signature.clone();
            let first = if sig.starts_with('0') { "1" } else { "0" };
            sig.replace_range(0..1, first);
            Sealed {
                msg_signature: sig,
                ..self.clone()
            }
        }

        /// The POST body WeCom sends.
        pub fn body(&self, to: &str) -> String {
            format!(
                "<xml><ToUserName><![CDATA[{to}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>",
                self.encrypt
            )
        }
    }

    impl Corp {
        fn key(&self) -> [u8; 32] {
            // 43 characters and "=": the last one's spare bits are ignored.
            let mut padded = self.encoding_aes_key.clone();
            padded.push('=');
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
            );
            let bytes = engine
                .decode(padded)
                .expect("a 43-character EncodingAESKey");
            bytes.try_into().expect("32 bytes")
        }

        /// `msg` encrypted for `receive_id` and signed, as of `timestamp`.
        pub fn seal_for(&self, msg: &str, receive_id: &str, timestamp: i64, nonce: &str) -> Sealed {
            let key = self.key();
            let mut plain = b"0123456789abcdef".to_vec();
            plain.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            plain.extend_from_slice(msg.as_bytes());
            plain.extend_from_slice(receive_id.as_bytes());
            let pad = 32 - plain.len() % 32;
            plain.extend(std::iter::repeat_n(pad as u8, pad));
            let len = plain.len();
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&key[..16]);
            let cipher = cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into())
                .encrypt_padded_mut::<NoPadding>(&mut plain, len)
                .expect("whole blocks")
                .to_vec();
            let encrypt = base64::engine::general_purpose::STANDARD.encode(cipher);
            let timestamp = timestamp.to_string();
            Sealed {
                msg_signature: self.sign(&timestamp, nonce, &encrypt),
                timestamp,
                nonce: nonce.to_owned(),
                encrypt,
            }
        }

        /// `msg_signature` over a callback's parts.
        pub fn sign(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
            let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
            parts.sort_unstable();
            let digest = sha1::Sha1::digest(parts.concat().as_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        }

        /// `msg` encrypted for this corp, signed now.
        pub fn seal(&self, msg: &str, nonce: &str) -> Sealed {
            self.seal_for(msg, &self.corp_id, chrono::Utc::now().timestamp(), nonce)
        }
    }
}

/// A mock of WeCom's server API on a loopback port, in WeCom's request and answer shapes:
/// `gettoken` (tokens that expire when told to), `message/send` (errcodes for a bad or
/// expired token, a rate limit when told to), each request counted.
pub mod mock_erp;

pub mod mock_wecom {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Query, State};
    use serde_json::{Value, json};

    pub const CORP_ID: &str = "ww8a3b5c7d9e1f2a4b";
    pub const SECRET: &str = "app-secret-QmV5Lx";

    #[derive(Debug, Default)]
    pub struct WeComState {
        /// `gettoken` requests answered.
        pub gettoken_calls: u32,
        /// The token now valid (`None` before the first `gettoken`).
        pub token: Option<String>,
        /// App messages accepted, as sent.
        pub messages: Vec<Value>,
        /// `message/send` requests, answered or not.
        pub send_calls: u32,
        /// The next `message/send` answers `45009` this many times.
        pub rate_limited: u32,
        /// Group sends created (`add_msg_template` bodies).
        pub group_sends: Vec<Value>,
        /// Tag changes (`mark_tag` bodies).
        pub tag_marks: Vec<Value>,
        /// Group chats created, by chat id (`appchat/create` bodies).
        pub chats: std::collections::BTreeMap<String, Value>,
        /// Messages posted to group chats (`appchat/send` bodies).
        pub chat_messages: Vec<Value>,
        /// The tag ids zhangwei gave [`CUSTOMER`] (what reconciliation reads).
        pub customer_tags: Vec<String>,
        /// `batch/get_by_user` requests.
        pub batch_calls: u32,
        /// `add_msg_template` records the group send, then never answers (a server that
        /// stops mid-call is what the test is after).
        pub stall_group_sends: bool,
        /// Files uploaded (`media/upload`): type, file name, bytes.
        pub uploads: Vec<(String, String, Vec<u8>)>,
    }

    /// The one customer the mock knows, followed by two employees (one per page).
    pub const CUSTOMER: &str = "wmJ8sQ2rCustomer01";

    #[derive(Clone, Debug)]
    pub struct MockWeCom {
        pub addr: SocketAddr,
        pub state: Arc<Mutex<WeComState>>,
    }

    impl MockWeCom {
        pub async fn start() -> MockWeCom {
            let state = Arc::new(Mutex::new(WeComState::default()));
            let app = axum::Router::new()
                .route("/cgi-bin/gettoken", axum::routing::get(gettoken))
                .route("/cgi-bin/message/send", axum::routing::post(send))
                .route(
                    "/cgi-bin/externalcontact/add_msg_template",
                    axum::routing::post(add_msg_template),
                )
                .route(
                    "/cgi-bin/externalcontact/get_groupmsg_send_result",
                    axum::routing::post(send_result),
                )
                .route("/cgi-bin/externalcontact/get", axum::routing::get(contact))
                .route(
                    "/cgi-bin/externalcontact/mark_tag",
                    axum::routing::post(mark_tag),
                )
                .route("/cgi-bin/appchat/create", axum::routing::post(chat_create))
                .route("/cgi-bin/appchat/send", axum::routing::post(chat_send))
                .route("/cgi-bin/media/upload", axum::routing::post(upload))
                .route(
                    "/cgi-bin/department/simplelist",
                    axum::routing::get(department_simplelist),
                )
                .route("/cgi-bin/user/list_id", axum::routing::post(user_list_id))
                .route("/cgi-bin/user/get", axum::routing::get(user_get))
                .route(
                    "/cgi-bin/externalcontact/batch/get_by_user",
                    axum::routing::post(batch_get_by_user),
                )
                .with_state(state.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            MockWeCom { addr, state }
        }

        /// The `api_base` to configure.
        pub fn base(&self) -> String {
            format!("http://{}", self.addr)
        }

        /// Publishes the `wecom` connector on the server behind `api` and gives it what
        /// it needs to call this mock: loopback, the key-value store, the corp id and secret.
        pub async fn connect(api: &crate::Api) {
            api.publish_connector("wecom").await;
            api.put(
                "/api/v1/connectors/wecom/grants",
                &json!({"hosts": ["127.0.0.1"], "secrets": ["corp_id", "secret"], "kv": true}),
            )
            .await;
            for (name, value) in [("corp_id", CORP_ID), ("secret", SECRET)] {
                api.put(
                    &format!("/api/v1/connectors/wecom/secrets/{name}"),
                    &json!({ "value": value }),
                )
                .await;
            }
        }

        /// WeCom invalidates the current token (as it may, before `expires_in`).
        pub fn expire_token(&self) {
            if let Some(t) = self.state.lock().unwrap().token.as_mut() {
                t.push_str("-expired");
            }
        }
    }

    type Params = Query<std::collections::HashMap<String, String>>;

    /// The mock corp's departments (id, parent, name) and employees (user id, department,
    /// name, position).
    pub const DEPARTMENTS: [(u64, u64, &str); 5] = [
        (1, 0, "苏州精工科技"),
        (2, 1, "仓储部"),
        (3, 1, "采购部"),
        (4, 2, "华东仓"),
        (5, 1, "售后服务部"),
    ];
    pub const EMPLOYEES: [(&str, u64, &str, &str); 5] = [
        ("boss", 1, "李总", "总经理"),
        ("wh-north", 2, "孙强", "仓管"),
        ("buy-fast", 3, "陈静", "采购主管"),
        ("wh-east", 4, "周敏", "华东仓管"),
        ("svc-senior", 5, "赵磊", "高级工程师"),
    ];

    fn token_ok(s: &Arc<Mutex<WeComState>>, q: &std::collections::HashMap<String, String>) -> bool {
        let s = s.lock().unwrap();
        s.token.is_some() && q.get("access_token") == s.token.as_ref()
    }

    fn under(id: u64, root: u64) -> bool {
        let mut at = id;
        loop {
            if at == root {
                return true;
            }
            match DEPARTMENTS.iter().find(|d| d.0 == at) {
                Some(&(_, parent, _)) if parent != 0 => at = parent,
                _ => return false,
            }
        }
    }

    async fn department_simplelist(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
    ) -> axum::Json<Value> {
        if !token_ok(&s, &q) {
            return axum::Json(json!({"errcode": 42001, "errmsg": "access_token expired"}));
        }
        let root: u64 = q.get("id").and_then(|i| i.parse().ok()).unwrap_or(1);
        let list: Vec<Value> = DEPARTMENTS
            .iter()
            .filter(|d| under(d.0, root))
            .map(|d| json!({"id": d.0, "parentid": d.1, "order": 100_000_000 - d.0}))
            .collect();
        axum::Json(json!({"errcode": 0, "errmsg": "ok", "department_id": list}))
    }

    /// Two employees a page, so a read follows `next_cursor`.
    async fn user_list_id(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        body: axum::Json<Value>,
    ) -> axum::Json<Value> {
        if !token_ok(&s, &q) {
            return axum::Json(json!({"errcode": 42001, "errmsg": "access_token expired"}));
        }
        let from: usize = body["cursor"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let page: Vec<Value> = EMPLOYEES
            .iter()
            .skip(from)
            .take(2)
            .map(|e| json!({"userid": e.0, "department": e.1}))
            .collect();
        let next = if from + 2 < EMPLOYEES.len() {
            (from + 2).to_string()
        } else {
            String::new()
        };
        axum::Json(json!({"errcode": 0, "errmsg": "ok", "next_cursor": next, "dept_user": page}))
    }

    async fn user_get(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
    ) -> axum::Json<Value> {
        if !token_ok(&s, &q) {
            return axum::Json(json!({"errcode": 42001, "errmsg": "access_token expired"}));
        }
        match EMPLOYEES
            .iter()
            .find(|e| Some(e.0) == q.get("userid").map(String::as_str))
        {
            Some(e) => axum::Json(
                json!({"errcode": 0, "errmsg": "ok", "userid": e.0, "name": e.2,
                                         "department": [e.1], "position": e.3}),
            ),
            None => axum::Json(json!({"errcode": 60111, "errmsg": "userid not found"})),
        }
    }

    async fn gettoken(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
    ) -> axum::Json<Value> {
        // As slow as a real round trip to WeCom, so concurrent callers overlap.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut s = s.lock().unwrap();
        if q.get("corpid").map(String::as_str) != Some(CORP_ID) {
            return axum::Json(json!({"errcode": 40013, "errmsg": "invalid corpid"}));
        }
        if q.get("corpsecret").map(String::as_str) != Some(SECRET) {
            return axum::Json(json!({"errcode": 40001, "errmsg": "invalid credential"}));
        }
        s.gettoken_calls += 1;
        let token = format!("tok-{}", s.gettoken_calls);
        s.token = Some(token.clone());
        axum::Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}))
    }

    /// The token check every API call makes: `None` when the token is good.
    fn refuse(s: &WeComState, q: &std::collections::HashMap<String, String>) -> Option<Value> {
        let given = q.get("access_token").cloned().unwrap_or_default();
        match &s.token {
            Some(t) if t.ends_with("-expired") && t.starts_with(&given) && !given.is_empty() => {
                Some(json!({"errcode": 42001, "errmsg": "access_token expired"}))
            }
            Some(t) if *t == given => None,
            _ => Some(json!({"errcode": 40014, "errmsg": "invalid access_token"})),
        }
    }

    async fn add_msg_template(
        State(state): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let stall = {
            let mut s = state.lock().unwrap();
            if s.stall_group_sends && refuse(&s, &q).is_none() {
                s.group_sends.push(body.clone());
                true
            } else {
                false
            }
        };
        if stall {
            std::future::pending::<()>().await;
        }
        let mut s = state.lock().unwrap();
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        if body["chat_type"] != "single" || body["sender"].as_str().is_none_or(str::is_empty) {
            return axum::Json(json!({"errcode": 40058, "errmsg": "invalid chat_type or sender"}));
        }
        // Customers the mock does not know fail, as those who are not the sender's do.
        let fail: Vec<Value> = body["external_userid"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| *c != CUSTOMER)
            .cloned()
            .collect();
        s.group_sends.push(body);
        axum::Json(
            json!({"errcode": 0, "errmsg": "ok", "fail_list": fail, "msgid": format!("gs-{}", s.group_sends.len())}),
        )
    }

    async fn send_result(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let s = s.lock().unwrap();
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        let Some(n) = body["msgid"]
            .as_str()
            .and_then(|m| m.strip_prefix("gs-"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return axum::Json(json!({"errcode": 41063, "errmsg": "invalid msgid"}));
        };
        let Some(send) = s.group_sends.get(n - 1) else {
            return axum::Json(json!({"errcode": 41063, "errmsg": "invalid msgid"}));
        };
        // The sender confirmed: known customers got it, the others were not contacts.
        let list: Vec<Value> = send["external_userid"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                if *c == CUSTOMER {
                    json!({"external_userid": c, "userid": send["sender"], "status": 1, "send_time": 1796000000})
                } else {
                    json!({"external_userid": c, "userid": send["sender"], "status": 2})
                }
            })
            .collect();
        axum::Json(json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": list}))
    }

    async fn contact(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
    ) -> axum::Json<Value> {
        let s = s.lock().unwrap();
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        if q.get("external_userid").map(String::as_str) != Some(CUSTOMER) {
            return axum::Json(json!({"errcode": 84061, "errmsg": "not external contact"}));
        }
        let profile = json!({"external_userid": CUSTOMER, "name": "王磊", "type": 2,
            "corp_name": "苏州精工", "position": "采购经理", "gender": 1});
        // Followers in two pages, as WeCom pages them.
        let (follower, next) = match q.get("cursor").map(String::as_str) {
            Some("page-2") => (
                json!({"userid": "lina", "remark": "", "createtime": 1796000100, "state": "",
                "tags": [{"group_name": "行业", "tag_name": "制造业", "tag_id": "et-mfg", "type": 1}]}),
                "",
            ),
            _ => (
                json!({"userid": "zhangwei", "remark": "王总", "createtime": 1796000000, "state": "expo-2026-suzhou",
                "tags": [{"group_name": "意向", "tag_name": "高意向", "tag_id": "et-hot", "type": 1}]}),
                "page-2",
            ),
        };
        axum::Json(
            json!({"errcode": 0, "errmsg": "ok", "external_contact": profile,
            "follow_user": [follower], "next_cursor": next}),
        )
    }

    async fn mark_tag(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let mut s = s.lock().unwrap();
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        s.tag_marks.push(body);
        axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
    }

    async fn chat_create(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let mut s = s.lock().unwrap();
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        let members = body["userlist"].as_array().map_or(0, Vec::len);
        if !(2..=2000).contains(&members) {
            return axum::Json(json!({"errcode": 86216, "errmsg": "invalid member count"}));
        }
        let id = body["chatid"]
            .as_str()
            .map_or_else(|| format!("chat{}", s.chats.len() + 1), str::to_owned);
        if s.chats.contains_key(&id) {
            return axum::Json(json!({"errcode": 86215, "errmsg": "chat exists"}));
        }
        s.chats.insert(id.clone(), body);
        axum::Json(json!({"errcode": 0, "errmsg": "ok", "chatid": id}))
    }

    /// Two customers in two pages: [`CUSTOMER`] followed by zhangwei, then another
    /// followed by lina.
    async fn batch_get_by_user(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let mut s = s.lock().unwrap();
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        s.batch_calls += 1;
        let users = body["userid_list"].as_array().cloned().unwrap_or_default();
        if users.is_empty() || body["limit"].as_u64().is_some_and(|l| l > 100) {
            return axum::Json(json!({"errcode": 40058, "errmsg": "invalid userid_list or limit"}));
        }
        let (item, next) = match body["cursor"].as_str().unwrap_or_default() {
            "" => (
                json!({"external_contact": {"external_userid": CUSTOMER, "name": "王磊", "type": 2,
                    "corp_name": "苏州精工", "position": "采购经理"},
                "follow_info": {"userid": "zhangwei", "remark": "王总", "createtime": 1796000000,
                    "tag_id": s.customer_tags, "state": "expo-2026-suzhou"}}),
                "page-2",
            ),
            "page-2" => (
                json!({"external_contact": {"external_userid": "wmSecondCustomer02", "name": "陈静", "type": 1},
                "follow_info": {"userid": "lina", "remark": "", "createtime": 1796000100, "tag_id": [], "state": ""}}),
                "",
            ),
            _ => return axum::Json(json!({"errcode": 40096, "errmsg": "invalid cursor"})),
        };
        axum::Json(
            json!({"errcode": 0, "errmsg": "ok", "external_contact_list": [item], "next_cursor": next}),
        )
    }

    /// `media/upload`: WeCom's multipart form, one part named `media` with `filename` and
    /// `filelength`; the type's size limit; a media id that lasts three days.
    async fn upload(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::Json<Value> {
        let mut s = s.lock().unwrap();
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        let kind = q.get("type").cloned().unwrap_or_default();
        let max: usize = match kind.as_str() {
            "image" | "video" => 10 << 20,
            "voice" => 2 << 20,
            "file" => 20 << 20,
            _ => return axum::Json(json!({"errcode": 40004, "errmsg": "invalid media type"})),
        };
        let bad =
            |m: &str| axum::Json(json!({"errcode": 41011, "errmsg": format!("invalid form: {m}")}));
        let Some(boundary) = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("multipart/form-data; boundary="))
            .map(str::to_owned)
        else {
            return bad("not multipart/form-data with a boundary");
        };
        let open = format!("--{boundary}\r\n");
        let close = format!("\r\n--{boundary}--\r\n");
        let (Some(rest), true) = (
            body.strip_prefix(open.as_bytes()),
            body.ends_with(close.as_bytes()),
        ) else {
            return bad("one part between the boundaries");
        };
        let rest = &rest[..rest.len() - close.len()];
        let Some(split) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            return bad("part headers");
        };
        let head = String::from_utf8_lossy(&rest[..split]).into_owned();
        let content = rest[split + 4..].to_vec();
        let disposition = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Disposition: form-data;"))
            .unwrap_or_default()
            .to_owned();
        let field = |name: &str| {
            disposition
                .split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .map(|v| v.trim_matches('"').to_owned())
        };
        if field("name").as_deref() != Some("media") {
            return bad("the part is not named media");
        }
        let Some(filename) = field("filename").filter(|f| !f.is_empty()) else {
            return bad("no filename");
        };
        if field("filelength").and_then(|l| l.trim().parse::<usize>().ok()) != Some(content.len()) {
            return bad("filelength is not the content's length");
        }
        if content.len() <= 5 || content.len() > max {
            return axum::Json(json!({"errcode": 40006, "errmsg": "invalid file size"}));
        }
        let media_id = format!("3a{:08x}media{}", content.len(), s.uploads.len() + 1);
        s.uploads.push((kind.clone(), filename, content));
        axum::Json(
            json!({"errcode": 0, "errmsg": "", "type": kind, "media_id": media_id,
                          "created_at": "1796601600"}),
        )
    }

    async fn chat_send(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let mut s = s.lock().unwrap();
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        if !body["chatid"]
            .as_str()
            .is_some_and(|c| s.chats.contains_key(c))
        {
            return axum::Json(json!({"errcode": 86003, "errmsg": "chat not found"}));
        }
        s.chat_messages.push(body);
        axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
    }

    async fn send(
        State(s): State<Arc<Mutex<WeComState>>>,
        Query(q): Params,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::Json<Value> {
        let mut s = s.lock().unwrap();
        s.send_calls += 1;
        if let Some(e) = refuse(&s, &q) {
            return axum::Json(e);
        }
        if s.rate_limited > 0 {
            s.rate_limited -= 1;
            return axum::Json(json!({"errcode": 45009, "errmsg": "api freq out of limit"}));
        }
        if body["agentid"].as_i64().is_none() || body["msgtype"].as_str().is_none() {
            return axum::Json(json!({"errcode": 40008, "errmsg": "invalid message type"}));
        }
        s.messages.push(body);
        axum::Json(
            json!({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": format!("msg-{}", s.messages.len())}),
        )
    }
}
