//! The connector registry: components stored by hash and versioned per workspace, the
//! capability grants and encrypted secrets an admin sets, and the calls runs make through
//! the sandboxed host.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};
use serde_json::Value;
use trellis_model::{Catalog, ConnectorEntry, ConnectorOperation};
use trellis_runtime::connector::{
    CallContext, ConnectorError, ConnectorHost, Grants, HostConfig, HostServices, HttpFailure,
    HttpRequest, HttpResponse, Inbound, InboundRequest, Invocation, KvNamespace, KvUnavailable,
    Limits, LoadError, Loaded, Manifest, PollCall, Polled, Secret, host_matches,
};
use trellis_runtime::{CallRequest, CallResult};

use crate::db::entities::{
    connector, connector_blob, connector_grant, connector_kv, connector_secret, connector_version,
};

/// Capability kinds as stored in grants.
pub mod kind {
    pub const HOST: &str = "host";
    pub const SECRET: &str = "secret";
    pub const KV: &str = "kv";
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Invalid(#[from] LoadError),
    #[error("{name} {version} is already published with different content; bump the version")]
    VersionTaken { name: String, version: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What a publish stored.
#[derive(Clone, Debug)]
pub struct Published {
    pub manifest: Arc<Manifest>,
    pub sha256: String,
    /// False when this exact component was already published under this version.
    pub created: bool,
}

pub struct Registry {
    db: DatabaseConnection,
    host: Arc<ConnectorHost>,
    cipher: XChaCha20Poly1305,
    loaded: RwLock<HashMap<String, Arc<Loaded>>>,
    services: Arc<ServerServices>,
    /// Each connector's setup by (workspace, name), with when it was read.
    setups: RwLock<HashMap<(String, String), (Instant, Setup)>>,
    /// Moves on at every change made through this process: a setup read before one is not
    /// kept.
    changes: AtomicU64,
}

/// How long a connector's setup (versions, grants, limits) read by calls is kept: a
/// change made through this process is seen at once, one made by another within this.
pub const SETUP_TTL: Duration = Duration::from_secs(1);

/// One connector in one workspace as its calls and webhooks run it.
#[derive(Clone)]
struct Setup {
    /// Every stored version (enabled or not), highest first, with its manifest read.
    versions: Arc<Vec<(connector_version::Model, Option<Arc<Manifest>>)>>,
    grants: Grants,
    limits: Limits,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The secret-encryption key: `TRELLIS_SECRET_KEY` (64 hex digits), else
/// `<data_dir>/secret-key`, created on first start (mode 0600). Every process sharing a
/// database must use the same key.
fn secret_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let parse = |text: &str, source: &str| -> anyhow::Result<[u8; 32]> {
        let bytes = hex::decode(text.trim())
            .with_context(|| format!("{source}: the secret key must be 64 hex digits"))?;
        bytes.try_into().map_err(|_| {
            anyhow::anyhow!("{source}: the secret key must be 32 bytes (64 hex digits)")
        })
    };
    if let Ok(text) = std::env::var("TRELLIS_SECRET_KEY") {
        return parse(&text, "TRELLIS_SECRET_KEY");
    }
    let path = data_dir.join("secret-key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return parse(&text, &path.display().to_string());
    }
    let key: [u8; 32] = rand::random();
    crate::files::write_secret_file(&path, &hex::encode(key))?;
    Ok(key)
}

impl Registry {
    pub fn new(db: DatabaseConnection, data_dir: &Path) -> anyhow::Result<Arc<Registry>> {
        let host = ConnectorHost::new(HostConfig {
            cache_dir: Some(data_dir.join("compiled")),
            ..HostConfig::default()
        })
        .map_err(|e| anyhow::anyhow!("starting the connector host: {e:#}"))?;
        let key = secret_key(data_dir)?;
        let services = Arc::new(ServerServices {
            db: db.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("HTTP client")?,
        });
        Ok(Arc::new(Registry {
            db,
            host,
            cipher: XChaCha20Poly1305::new(&key.into()),
            loaded: RwLock::new(HashMap::new()),
            services,
            setups: RwLock::new(HashMap::new()),
            changes: AtomicU64::new(0),
        }))
    }

    pub fn host(&self) -> &Arc<ConnectorHost> {
        &self.host
    }

    async fn load_bytes(&self, bytes: Vec<u8>) -> Result<Arc<Loaded>, PublishError> {
        let host = self.host.clone();
        let loaded = tokio::task::spawn_blocking(move || host.load(&bytes))
            .await
            .map_err(|e| anyhow::anyhow!("loading a component: {e}"))??;
        let loaded = Arc::new(loaded);
        self.loaded
            .write()
            .map_err(|_| anyhow::anyhow!("connector cache poisoned"))?
            .insert(loaded.sha256.clone(), loaded.clone());
        Ok(loaded)
    }

    /// A loaded component by hash: from memory, else from the database (compiled code
    /// from the disk cache).
    async fn loaded(&self, sha256: &str) -> anyhow::Result<Arc<Loaded>> {
        if let Some(l) = self
            .loaded
            .read()
            .map_err(|_| anyhow::anyhow!("connector cache poisoned"))?
            .get(sha256)
        {
            return Ok(l.clone());
        }
        let blob = connector_blob::Entity::find_by_id(sha256.to_owned())
            .one(&self.db)
            .await?
            .with_context(|| format!("component {sha256} is missing from the registry"))?;
        self.load_bytes(blob.bytes)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Validates and stores a component; a new version is enabled.
    pub async fn publish(
        &self,
        workspace: &str,
        actor: &str,
        bytes: Vec<u8>,
    ) -> Result<Published, PublishError> {
        let loaded = self.load_bytes(bytes.clone()).await?;
        let m = loaded.manifest.clone();
        let existing = connector_version::Entity::find_by_id((
            workspace.to_owned(),
            m.name.clone(),
            m.version.clone(),
        ))
        .one(&self.db)
        .await
        .map_err(anyhow::Error::from)?;
        if let Some(v) = existing {
            if v.sha256 == loaded.sha256 {
                return Ok(Published {
                    manifest: m,
                    sha256: loaded.sha256.clone(),
                    created: false,
                });
            }
            return Err(PublishError::VersionTaken {
                name: m.name.clone(),
                version: m.version.clone(),
            });
        }
        let now = Utc::now();
        connector_blob::Entity::insert(connector_blob::ActiveModel {
            sha256: Set(loaded.sha256.clone()),
            bytes: Set(bytes),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(connector_blob::Column::Sha256)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(anyhow::Error::from)?;
        connector::Entity::insert(connector::ActiveModel {
            workspace_id: Set(workspace.to_owned()),
            name: Set(m.name.clone()),
            limits: Set(None),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([connector::Column::WorkspaceId, connector::Column::Name])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(anyhow::Error::from)?;
        connector_version::Entity::insert(connector_version::ActiveModel {
            workspace_id: Set(workspace.to_owned()),
            name: Set(m.name.clone()),
            version: Set(m.version.clone()),
            major: Set(m.major() as i64),
            sha256: Set(loaded.sha256.clone()),
            manifest: Set(serde_json::to_string(&*m).map_err(anyhow::Error::from)?),
            enabled: Set(true),
            created_by: Set(actor.to_owned()),
            created_at: Set(now),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(anyhow::Error::from)?;
        self.forget(workspace, &m.name);
        Ok(Published {
            manifest: m,
            sha256: loaded.sha256.clone(),
            created: true,
        })
    }

    /// Every version in the workspace, newest first per connector.
    pub async fn versions(&self, workspace: &str) -> anyhow::Result<Vec<connector_version::Model>> {
        let mut rows = connector_version::Entity::find()
            .filter(connector_version::Column::WorkspaceId.eq(workspace))
            .order_by_asc(connector_version::Column::Name)
            .all(&self.db)
            .await?;
        rows.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| semver_of(&b.version).cmp(&semver_of(&a.version)))
        });
        Ok(rows)
    }

    /// What flows in `workspace` can call: per `name@major`, the highest enabled version.
    pub async fn catalog(&self, workspace: &str) -> anyhow::Result<Catalog> {
        let mut best: BTreeMap<(String, i64), connector_version::Model> = BTreeMap::new();
        for v in self.versions(workspace).await? {
            if !v.enabled {
                continue;
            }
            best.entry((v.name.clone(), v.major)).or_insert(v);
        }
        let mut entries = Vec::new();
        for v in best.into_values() {
            let m: Manifest = serde_json::from_str(&v.manifest)?;
            entries.push(entry_of(&m));
        }
        Ok(Catalog::new(entries))
    }

    /// The version a `name@major` reference runs, with its manifest: `pinned` when the run
    /// already used one, else the highest enabled version of that major.
    async fn resolve(
        &self,
        workspace: &str,
        reference: &str,
        pinned: Option<&str>,
    ) -> Result<(Setup, connector_version::Model, Option<Arc<Manifest>>), ConnectorError> {
        let (name, major) = reference
            .rsplit_once('@')
            .and_then(|(n, m)| m.parse::<i64>().ok().map(|m| (n, m)))
            .ok_or_else(|| ConnectorError::InvalidInput {
                message: format!("{reference:?} is not name@major"),
            })?;
        let setup = self
            .setup(workspace, name)
            .await
            .map_err(|e| ConnectorError::Unavailable {
                message: format!("registry: {e:#}"),
            })?;
        let found = match pinned {
            Some(version) => setup
                .versions
                .iter()
                .find(|(v, _)| v.version == version)
                .ok_or_else(|| ConnectorError::NotFound {
                    message: format!("{name} {version}, which this run started with, is gone"),
                }),
            None => setup
                .versions
                .iter()
                .find(|(v, _)| v.enabled && v.major == major)
                .ok_or_else(|| ConnectorError::NotFound {
                    message: format!("no enabled version of {reference}"),
                }),
        };
        let (version, manifest) = found?.clone();
        Ok((setup, version, manifest))
    }

    /// The operation a call names, as the connector version serving it declares it.
    async fn operation_spec(
        &self,
        workspace: &str,
        request: &CallRequest,
        pinned: Option<&str>,
    ) -> Option<trellis_runtime::connector::OperationSpec> {
        let (_, _, manifest) = self
            .resolve(workspace, &request.connector, pinned)
            .await
            .ok()?;
        manifest?.operation(&request.operation).cloned()
    }

    /// `name`'s setup in `workspace` (see [`SETUP_TTL`]).
    async fn setup(&self, workspace: &str, name: &str) -> anyhow::Result<Setup> {
        let key = (workspace.to_owned(), name.to_owned());
        if let Some((at, setup)) = self
            .setups
            .read()
            .map_err(|_| anyhow::anyhow!("connector cache poisoned"))?
            .get(&key)
            && at.elapsed() < SETUP_TTL
        {
            return Ok(setup.clone());
        }
        let generation = self.changes.load(Ordering::Acquire);
        let read_at = Instant::now();
        let mut versions: Vec<(connector_version::Model, Option<Arc<Manifest>>)> =
            connector_version::Entity::find()
                .filter(connector_version::Column::WorkspaceId.eq(workspace))
                .filter(connector_version::Column::Name.eq(name))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|v| {
                    let manifest = serde_json::from_str::<Manifest>(&v.manifest)
                        .ok()
                        .map(Arc::new);
                    (v, manifest)
                })
                .collect();
        versions.sort_by_key(|(v, _)| std::cmp::Reverse(semver_of(&v.version)));
        let (grants, limits) =
            tokio::try_join!(self.grants(workspace, name), self.limits(workspace, name))?;
        let setup = Setup {
            versions: Arc::new(versions),
            grants,
            limits,
        };
        let mut setups = self
            .setups
            .write()
            .map_err(|_| anyhow::anyhow!("connector cache poisoned"))?;
        if self.changes.load(Ordering::Acquire) == generation {
            setups.insert(key, (read_at, setup.clone()));
        }
        Ok(setup)
    }

    /// Drops what calls of `name` in `workspace` have read about it: call after changing
    /// its versions, grants, secrets or limits.
    pub fn forget(&self, workspace: &str, name: &str) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut setups) = self.setups.write() {
            setups.remove(&(workspace.to_owned(), name.to_owned()));
        }
    }

    pub async fn grant_rows(
        &self,
        workspace: &str,
        name: &str,
    ) -> anyhow::Result<Vec<connector_grant::Model>> {
        Ok(connector_grant::Entity::find()
            .filter(connector_grant::Column::WorkspaceId.eq(workspace))
            .filter(connector_grant::Column::Name.eq(name))
            .all(&self.db)
            .await?)
    }

    /// Names of the secrets that have a value.
    pub async fn secrets_set(&self, workspace: &str, name: &str) -> anyhow::Result<Vec<String>> {
        Ok(connector_secret::Entity::find()
            .filter(connector_secret::Column::WorkspaceId.eq(workspace))
            .filter(connector_secret::Column::Name.eq(name))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| s.secret)
            .collect())
    }

    pub async fn limits(&self, workspace: &str, name: &str) -> anyhow::Result<Limits> {
        let row = connector::Entity::find_by_id((workspace.to_owned(), name.to_owned()))
            .one(&self.db)
            .await?;
        Ok(row
            .and_then(|r| r.limits)
            .and_then(|l| serde_json::from_value(l).ok())
            .unwrap_or_default())
    }

    fn aad(workspace: &str, name: &str, secret: &str) -> Vec<u8> {
        format!("{workspace}\u{0}{name}\u{0}{secret}").into_bytes()
    }

    /// Encrypts and stores a secret value.
    pub async fn set_secret(
        &self,
        workspace: &str,
        name: &str,
        secret: &str,
        value: &str,
    ) -> anyhow::Result<()> {
        let nonce_bytes: [u8; 24] = rand::random();
        let aad = Self::aad(workspace, name, secret);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("encrypting a secret failed"))?;
        connector_secret::Entity::insert(connector_secret::ActiveModel {
            workspace_id: Set(workspace.to_owned()),
            name: Set(name.to_owned()),
            secret: Set(secret.to_owned()),
            nonce: Set(nonce_bytes.to_vec()),
            ciphertext: Set(ciphertext),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::columns([
                connector_secret::Column::WorkspaceId,
                connector_secret::Column::Name,
                connector_secret::Column::Secret,
            ])
            .update_columns([
                connector_secret::Column::Nonce,
                connector_secret::Column::Ciphertext,
                connector_secret::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        self.forget(workspace, name);
        Ok(())
    }

    /// What the admin granted `name` in `workspace`, with the granted secrets decrypted.
    async fn grants(&self, workspace: &str, name: &str) -> anyhow::Result<Grants> {
        let mut grants = Grants::default();
        for g in self.grant_rows(workspace, name).await? {
            match g.kind.as_str() {
                kind::HOST => grants.hosts.push(g.value),
                kind::SECRET => {
                    grants.secrets.insert(g.value, None);
                }
                kind::KV => grants.kv = true,
                _ => {}
            }
        }
        if grants.secrets.is_empty() {
            return Ok(grants);
        }
        let rows = connector_secret::Entity::find()
            .filter(connector_secret::Column::WorkspaceId.eq(workspace))
            .filter(connector_secret::Column::Name.eq(name))
            .all(&self.db)
            .await?;
        for row in rows {
            if let Some(slot) = grants.secrets.get_mut(&row.secret) {
                let aad = Self::aad(workspace, name, &row.secret);
                let nonce: [u8; 24] = row
                    .nonce
                    .as_slice()
                    .try_into()
                    .context("stored secret nonce has the wrong length")?;
                let nonce = XNonce::from(nonce);
                let plain = self
                    .cipher
                    .decrypt(
                        &nonce,
                        Payload {
                            msg: &row.ciphertext,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "secret {:?} of {name} does not decrypt: was TRELLIS_SECRET_KEY changed?",
                            row.secret
                        )
                    })?;
                *slot = Some(Secret(String::from_utf8_lossy(&plain).into_owned()));
            }
        }
        Ok(grants)
    }

    /// The loaded component, grants and limits a call of `version` runs with.
    async fn prepare(
        &self,
        setup: Setup,
        version: &connector_version::Model,
    ) -> anyhow::Result<(Arc<Loaded>, Grants, Limits)> {
        let loaded = self.loaded(&version.sha256).await?;
        Ok((loaded, setup.grants, setup.limits))
    }

    /// Hands a webhook request to the highest enabled version of `name` that receives
    /// webhooks.
    pub async fn inbound(
        &self,
        workspace: &str,
        name: &str,
        request: InboundRequest,
    ) -> Result<Inbound, ConnectorError> {
        let unavailable = |e: anyhow::Error| ConnectorError::Unavailable {
            message: format!("{e:#}"),
        };
        let (setup, version) = self
            .version_with(workspace, name, |m| m.inbound, "receives webhooks")
            .await?;
        let (loaded, grants, limits) = self.prepare(setup, &version).await.map_err(unavailable)?;
        let host = self.host.clone();
        let services: Arc<dyn HostServices> = self.services.clone();
        tokio::task::spawn_blocking(move || {
            host.handle_inbound(&loaded, request, grants, limits, services)
        })
        .await
        .map_err(|e| ConnectorError::Trap {
            message: format!("the call's thread failed: {e}"),
        })?
    }

    /// The highest enabled version of `name` whose manifest says `flag` (inbound, poll).
    async fn version_with(
        &self,
        workspace: &str,
        name: &str,
        flag: fn(&Manifest) -> bool,
        what: &str,
    ) -> Result<(Setup, connector_version::Model), ConnectorError> {
        let setup = self
            .setup(workspace, name)
            .await
            .map_err(|e| ConnectorError::Unavailable {
                message: format!("{e:#}"),
            })?;
        let version = setup
            .versions
            .iter()
            .find(|(v, m)| v.enabled && m.as_deref().is_some_and(flag))
            .map(|(v, _)| v.clone())
            .ok_or_else(|| ConnectorError::NotFound {
                message: format!("no enabled connector {name:?} {what}"),
            })?;
        Ok((setup, version))
    }

    /// Calls `poll` on the highest enabled version of `name` that polls.
    pub async fn poll(
        &self,
        workspace: &str,
        name: &str,
        config: Value,
        cursor: Option<String>,
    ) -> Result<Polled, ConnectorError> {
        let (setup, version) = self
            .version_with(workspace, name, |m| m.poll, "polls")
            .await?;
        let (loaded, grants, limits) =
            self.prepare(setup, &version)
                .await
                .map_err(|e| ConnectorError::Unavailable {
                    message: format!("{e:#}"),
                })?;
        let host = self.host.clone();
        let services: Arc<dyn HostServices> = self.services.clone();
        let context = CallContext {
            run_id: String::new(),
            step_id: "poll".into(),
            idempotency_key: format!("poll/{name}/{}", cursor.as_deref().unwrap_or("")),
            workspace: workspace.to_owned(),
        };
        let call = PollCall {
            config,
            cursor,
            context,
            grants,
            limits,
        };
        tokio::task::spawn_blocking(move || host.poll(&loaded, call, services))
            .await
            .map_err(|e| ConnectorError::Trap {
                message: format!("the call's thread failed: {e}"),
            })?
    }

    /// Runs one connector call for a run. Returns the result and the exact version used.
    pub async fn call(
        &self,
        workspace: &str,
        run_id: &str,
        request: &CallRequest,
        pinned: Option<&str>,
    ) -> (CallResult, Option<String>) {
        let (setup, version) = match self.resolve(workspace, &request.connector, pinned).await {
            Ok((setup, version, _)) => (setup, version),
            Err(error) => {
                return (
                    CallResult::Err {
                        error,
                        version: None,
                    },
                    None,
                );
            }
        };
        let label = format!("{}@{}", version.name, version.version);
        let fail = |error: ConnectorError| CallResult::Err {
            error,
            version: Some(label.clone()),
        };
        let unavailable = |e: anyhow::Error| ConnectorError::Unavailable {
            message: format!("{e:#}"),
        };
        let (loaded, grants, mut limits) = match self.prepare(setup, &version).await {
            Ok(x) => x,
            Err(e) => return (fail(unavailable(e)), Some(version.version)),
        };
        if let Some(t) = request.timeout_ms {
            limits.timeout_ms = limits.timeout_ms.min(t.max(1));
        }
        let (operation, config, input) = (
            request.operation.clone(),
            request.config.clone(),
            request.input.clone(),
        );
        let context = CallContext {
            run_id: run_id.to_owned(),
            step_id: request.node.clone(),
            idempotency_key: request.idempotency_key.clone(),
            workspace: workspace.to_owned(),
        };
        let host = self.host.clone();
        let services: Arc<dyn HostServices> = self.services.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let invocation = Invocation {
                operation: &operation,
                config: &config,
                input: &input,
                context,
                grants,
                limits,
            };
            host.invoke(&loaded, invocation, services)
        })
        .await;
        metrics::histogram!("trellis_connector_call_seconds", "connector" => version.name.clone())
            .record(started.elapsed().as_secs_f64());
        let result = match result {
            Ok(Ok(output)) => CallResult::Ok {
                output,
                version: label.clone(),
            },
            Ok(Err(error)) => {
                metrics::counter!("trellis_connector_errors_total", "connector" => version.name.clone(), "kind" => error.kind())
                    .increment(1);
                fail(error)
            }
            Err(e) => fail(ConnectorError::Trap {
                message: format!("the call's thread failed: {e}"),
            }),
        };
        (result, Some(version.version))
    }
}

fn semver_of(v: &str) -> semver::Version {
    semver::Version::parse(v).unwrap_or(semver::Version::new(0, 0, 0))
}

/// Published connector plugins serve every call that is not to a reserved host.
#[async_trait::async_trait]
impl crate::runs::CallHost for Registry {
    /// The operation's side-effect flag, and its time limit: the connector's configured
    /// limit, or the node's own `timeout_ms` when shorter.
    async fn plan(
        &self,
        workspace: &str,
        request: &CallRequest,
        pinned: Option<&str>,
    ) -> crate::runs::CallPlan {
        let resolved = self
            .resolve(workspace, &request.connector, pinned)
            .await
            .ok();
        let spec = resolved
            .as_ref()
            .and_then(|(_, _, m)| m.as_ref()?.operation(&request.operation).cloned());
        let limit = resolved.map_or(Limits::default().timeout_ms, |(setup, _, _)| {
            setup.limits.timeout_ms
        });
        let timeout = request.timeout_ms.map_or(limit, |t| t.min(limit));
        // A run pinned to a version from before the operation declared that it reaches
        // customers is held to the declaration of the version enabled now (only an
        // operation with side effects can reach one, so read-only calls skip the lookup).
        let side_effects = spec.as_ref().is_some_and(|o| o.side_effects);
        let mut contact = spec.as_ref().and_then(|o| o.contact());
        if contact.is_none() && side_effects && pinned.is_some() {
            contact = self
                .operation_spec(workspace, request, None)
                .await
                .and_then(|o| o.contact());
        }
        crate::runs::CallPlan {
            side_effects,
            timeout: Some(std::time::Duration::from_millis(timeout)),
            contact,
        }
    }

    async fn call(
        &self,
        site: crate::runs::CallSite<'_>,
        request: &CallRequest,
        pinned: Option<&str>,
    ) -> (CallResult, Option<String>) {
        Registry::call(self, site.workspace, site.run_id, request, pinned).await
    }
}

/// The catalog entry (what validation and the palette need) of a manifest.
pub fn entry_of(m: &Manifest) -> ConnectorEntry {
    let title = |d: &trellis_runtime::connector::DisplayName| {
        BTreeMap::from([
            ("zh".to_owned(), d.zh.clone()),
            ("en".to_owned(), d.en.clone()),
        ])
    };
    ConnectorEntry {
        name: m.name.clone(),
        major: m.major(),
        version: m.version.clone(),
        title: title(&m.display),
        operations: m
            .operations
            .iter()
            .map(|o| ConnectorOperation {
                name: o.name.clone(),
                title: title(&o.display),
                config_schema: o.config_schema.clone(),
                input_schema: o.input_schema.clone(),
                output_schema: o.output_schema.clone(),
                side_effects: o.side_effects,
                contact: o.contact(),
            })
            .collect(),
        secrets: m.capabilities.secrets.clone(),
    }
}

/// Whether granting `grant` (a host pattern) stays within what the connector declared.
/// A wildcard grant needs the same wildcard (or `*`) declared; a concrete host must match a
/// declared pattern, and a grant without a port only a declared pattern without one.
pub fn host_declared(declared: &[String], grant: &str) -> bool {
    declared.iter().any(|d| {
        if d == "*" || d == grant {
            return true;
        }
        if grant == "*" || grant.starts_with("*.") {
            return false;
        }
        let host = grant.to_ascii_lowercase();
        match host.rsplit_once(':') {
            Some((h, p)) => p.parse::<u16>().is_ok_and(|p| host_matches(d, h, p)),
            None => !d.contains(':') && host_matches(d, &host, 0),
        }
    })
}

/// How the server does HTTP and key-value storage for guests. Called on blocking threads.
struct ServerServices {
    db: DatabaseConnection,
    http: reqwest::Client,
}

impl ServerServices {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        tokio::runtime::Handle::current().block_on(f)
    }
}

impl HostServices for ServerServices {
    fn http(
        &self,
        request: HttpRequest,
        timeout: Duration,
        max_body: u64,
    ) -> Result<HttpResponse, HttpFailure> {
        self.block_on(async {
            let method = reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|_| HttpFailure::Transport(format!("bad method {:?}", request.method)))?;
            let mut builder = self.http.request(method, &request.url).timeout(timeout);
            for (k, v) in &request.headers {
                builder = builder.header(k, v);
            }
            if !request.body.is_empty() {
                builder = builder.body(request.body);
            }
            let mut response = builder.send().await.map_err(|e| {
                if e.is_timeout() {
                    HttpFailure::Timeout
                } else {
                    HttpFailure::Transport(format!("{e}"))
                }
            })?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        if (body.len() + chunk.len()) as u64 > max_body {
                            return Err(HttpFailure::TooLarge);
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(e) if e.is_timeout() => return Err(HttpFailure::Timeout),
                    Err(e) => return Err(HttpFailure::Transport(format!("{e}"))),
                }
            }
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        })
    }

    fn kv_get(&self, ns: &KvNamespace, key: &str) -> Result<Option<Vec<u8>>, KvUnavailable> {
        self.block_on(async {
            let row = connector_kv::Entity::find_by_id((
                ns.workspace.clone(),
                ns.connector.clone(),
                key.to_owned(),
            ))
            .one(&self.db)
            .await
            .map_err(|e| KvUnavailable(Box::new(e)))?;
            let now = Utc::now().timestamp_millis();
            Ok(row
                .filter(|r| r.expires_at.is_none_or(|t| t > now))
                .map(|r| r.value))
        })
    }

    fn kv_set(
        &self,
        ns: &KvNamespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), KvUnavailable> {
        let expires = ttl.map(|t| Utc::now().timestamp_millis() + t.as_millis() as i64);
        self.block_on(async {
            connector_kv::Entity::insert(connector_kv::ActiveModel {
                workspace_id: Set(ns.workspace.clone()),
                connector: Set(ns.connector.clone()),
                key: Set(key.to_owned()),
                value: Set(value.to_vec()),
                expires_at: Set(expires),
            })
            .on_conflict(
                OnConflict::columns([
                    connector_kv::Column::WorkspaceId,
                    connector_kv::Column::Connector,
                    connector_kv::Column::Key,
                ])
                .update_columns([connector_kv::Column::Value, connector_kv::Column::ExpiresAt])
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(|e| KvUnavailable(Box::new(e)))
        })
    }

    /// One statement: insert, or replace an expired value; a live one is left alone and
    /// nothing is written (0 rows).
    fn kv_add(
        &self,
        ns: &KvNamespace,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvUnavailable> {
        let now = Utc::now().timestamp_millis();
        let expires = ttl.map(|t| now + t.as_millis() as i64);
        self.block_on(async {
            let on_conflict = OnConflict::columns([
                connector_kv::Column::WorkspaceId,
                connector_kv::Column::Connector,
                connector_kv::Column::Key,
            ])
            .update_columns([connector_kv::Column::Value, connector_kv::Column::ExpiresAt])
            .action_and_where(sea_orm::sea_query::ExprTrait::lte(
                sea_orm::sea_query::Expr::col((
                    connector_kv::Entity,
                    connector_kv::Column::ExpiresAt,
                )),
                now,
            ))
            .to_owned();
            connector_kv::Entity::insert(connector_kv::ActiveModel {
                workspace_id: Set(ns.workspace.clone()),
                connector: Set(ns.connector.clone()),
                key: Set(key.to_owned()),
                value: Set(value.to_vec()),
                expires_at: Set(expires),
            })
            .on_conflict(on_conflict)
            .exec_without_returning(&self.db)
            .await
            .map(|rows| rows > 0)
            .map_err(|e| KvUnavailable(Box::new(e)))
        })
    }

    fn kv_delete(&self, ns: &KvNamespace, key: &str) -> Result<(), KvUnavailable> {
        self.block_on(async {
            connector_kv::Entity::delete_by_id((
                ns.workspace.clone(),
                ns.connector.clone(),
                key.to_owned(),
            ))
            .exec(&self.db)
            .await
            .map(|_| ())
            .map_err(|e| KvUnavailable(Box::new(e)))
        })
    }
}

/// A value of a manifest's JSON, for API answers.
pub fn manifest_json(m: &Manifest) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}
