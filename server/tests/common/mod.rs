//! Test harness: a real server on a random port over a fresh SQLite file or a fresh
//! PostgreSQL database, and a small JSON client.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trellis_e2e::{PgDb, TempDir};
use trellis_server::db::DbLocation;
use trellis_server::{Config, Running};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub backend: Backend,
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    running: Option<Running>,
    _dir: TempDir,
    pg: Option<PgDb>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, Default::default()).await
    }

    /// A server with the given HTTP limits.
    pub async fn start_with(
        backend: Backend,
        http: trellis_server::serve::HttpLimits,
    ) -> TestServer {
        let dir = TempDir::new();
        let (db, pg) = match backend {
            Backend::Sqlite => (
                DbLocation::Sqlite(dir.0.join("data").join("trellis.sqlite")),
                None,
            ),
            Backend::Postgres => {
                let pg = PgDb::create().await;
                (DbLocation::Url(pg.url.clone()), Some(pg))
            }
        };
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let running = trellis_server::start(Config {
            addr,
            // Not there yet: the server creates it, as on a first start.
            data_dir: dir.0.join("data"),
            db,
            workers: 4,
            studio_dir: None,
            connectors_dir: None,
            http,
        })
        .await
        .expect("server starts");
        let token = std::fs::read_to_string(dir.0.join("data").join("admin-token"))
            .expect("admin token file")
            .trim()
            .to_owned();
        TestServer {
            backend,
            base: format!("http://{}", running.addr),
            token,
            client: reqwest::Client::new(),
            running: Some(running),
            _dir: dir,
            pg,
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.0.join("data")
    }

    /// What the server's handlers share (its run store, event intake, database...).
    pub fn state(&self) -> trellis_server::AppState {
        self.running.as_ref().expect("running").state.clone()
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn finish(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("server stops cleanly");
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.expect("body");
        if !status.is_success() {
            assert_eq!(
                ct, "application/problem+json",
                "error {status} without a problem body: {text}"
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(Some(&self.token.clone()), method, path, body)
            .await
    }

    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// A `GET` whose body is read as text (JSON lines, a model file).
    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        (resp.status(), resp.text().await.expect("body"))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Publishes a connector component (`POST /api/v1/connectors`).
    pub async fn publish_connector(&self, bytes: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}/api/v1/connectors", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Creates a token with `role` and returns it.
    pub async fn token_with(&self, role: &str) -> String {
        let (s, v) = self
            .post(
                "/api/v1/tokens",
                json!({"name": format!("{role}-token"), "role": role}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["token"].as_str().expect("token").to_owned()
    }

    /// Creates (and optionally publishes) a flow; returns its id.
    pub async fn create_flow(&self, doc: Value, publish: bool) -> String {
        let (s, v) = self.post("/api/v1/flows", doc).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_str().expect("id").to_owned();
        if publish {
            let (s, v) = self
                .post(
                    &format!("/api/v1/flows/{id}/publish"),
                    json!({"version": 1}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        id
    }

    /// Polls a run until it is finished (or panics after `secs`).
    pub async fn wait_run(&self, run_id: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let run = self.get(&format!("/api/v1/runs/{run_id}")).await;
            if matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return run;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {run_id} did not finish in {secs}s: {run}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Runs an async test body once per backend: `both!(name);` makes `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::common::Backend::Postgres).await
            }
        }
    };
}

/// trigger(manual) → set → respond.
pub fn simple_flow(name: &str) -> Value {
    json!({
        "schema": 1, "name": name,
        "nodes": [
            {"id": "start", "type": "trigger", "config": {"kind": "manual"}, "position": [0, 0]},
            {"id": "calc", "type": "set", "config": {"vars": {"double": "trigger.input.n * 2"}}, "position": [160, 0]},
            {"id": "reply", "type": "respond", "config": {"body": "{'double': vars.double}"}, "position": [320, 0]}
        ],
        "edges": [{"from": "start", "to": "calc"}, {"from": "calc", "to": "reply"}]
    })
}
