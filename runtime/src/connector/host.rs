//! The wasmtime host: one engine, a disk cache of compiled components, and a fresh, limited
//! `Store` per call.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, HasData, HasSelf, Instance, Lift, Linker,
    Lower, ResourceTable, TypedFunc,
};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap,
};
use wasmtime_wasi::cli::WasiCli;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::manifest::{DisplayName, Manifest, OperationSpec, host_matches};
use super::{
    CallContext, Capabilities, ConnectorError, Grants, HostServices, HttpFailure, HttpRequest,
    HttpResponse, KvNamespace, Limits,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../connectors/wit",
        world: "connector",
    });
}

use bindings::trellis::connector::{clock, http, kv, log, secrets, types as wit};

/// How the host is set up; the defaults suit one server.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// How often the epoch advances; deadlines are accurate to about one tick.
    pub epoch_tick: Duration,
    /// Calls that can run at once (instances the pooling allocator reserves).
    pub max_concurrent_calls: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            epoch_tick: Duration::from_millis(5),
            max_concurrent_calls: 128,
        }
    }
}

/// Why a component was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not match the trellis:connector@0.1.0 world: {0}")]
    WrongWorld(String),
    #[error("describe failed: {0}")]
    Describe(String),
    #[error("the manifest is not valid: {}", .0.join("; "))]
    InvalidManifest(Vec<String>),
}

/// Stdout and stderr a guest may write per call (panic messages land here).
const STDIO_CAPACITY: usize = 16 << 10;
/// Log lines a call may emit through the `log` import.
const MAX_LOG_LINES: u32 = 100;
const MAX_LOG_LINE: usize = 4 << 10;
/// How much of what the guest last wrote to stderr (or logged as errors) a trap's message
/// quotes, in characters.
const STDERR_TAIL: usize = 1000;
const MAX_KV_KEY: usize = 256;
const MAX_KV_VALUE: usize = 64 << 10;

/// Runs connector components in a sandbox. Cheap to share (`Arc`); one per process.
pub struct ConnectorHost {
    engine: Engine,
    linker: Linker<CallState>,
    cache_dir: Option<PathBuf>,
    compat: String,
    tick: Duration,
}

impl fmt::Debug for ConnectorHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorHost")
            .field("cache_dir", &self.cache_dir)
            .field("compat", &self.compat)
            .finish_non_exhaustive()
    }
}

/// A validated, compiled, pre-linked component and its manifest.
pub struct Loaded {
    pub sha256: String,
    pub manifest: Arc<Manifest>,
    /// Whether the compiled code came from the disk cache.
    pub from_cache: bool,
    /// The interfaces the component imports (`trellis:connector/http@0.1.0`, …).
    pub imports: Vec<String>,
    pre: bindings::ConnectorPre<CallState>,
    exports: Exports,
    validators: HashMap<String, (jsonschema::Validator, jsonschema::Validator)>,
}

/// Where a component's call exports are and that their types are the ones the host calls
/// them with: both found once at load. A call then looks up only the export it calls, and
/// checks no types: the generated bindings would check all four, `describe`'s large
/// manifest type included, on every instantiation.
struct Exports {
    invoke: CheckedExport<InvokeExport>,
    handle_inbound: CheckedExport<InboundExport>,
    poll: CheckedExport<PollExport>,
}

/// The signature the host calls an export with: its parameters, borrowed for the call,
/// and its one result.
trait ExportSignature {
    type Params<'a>: ComponentNamedList + Lower;
    type Result: Lift + 'static;
}

/// `invoke(operation, config, input, context) -> result<string, connector-error>`
struct InvokeExport;
impl ExportSignature for InvokeExport {
    type Params<'a> = (&'a str, &'a str, &'a str, &'a wit::CallContext);
    type Result = Result<String, wit::ConnectorError>;
}

/// `handle-inbound(request) -> result<inbound-result, connector-error>`
struct InboundExport;
impl ExportSignature for InboundExport {
    type Params<'a> = (&'a wit::InboundRequest,);
    type Result = Result<wit::InboundResult, wit::ConnectorError>;
}

/// `poll(config, cursor, context) -> result<poll-result, connector-error>`
struct PollExport;
impl ExportSignature for PollExport {
    type Params<'a> = (&'a str, Option<&'a str>, &'a wit::CallContext);
    type Result = Result<wit::PollResult, wit::ConnectorError>;
}

/// An export of a loaded component whose type was checked against `S`. Made only by
/// [`CheckedExport::check`].
struct CheckedExport<S> {
    index: ComponentExportIndex,
    signature: std::marker::PhantomData<S>,
}

impl Exports {
    /// Finds and type-checks the call exports of `component`, in its `instance`.
    fn check(
        store: &mut Store<CallState>,
        component: &Component,
        instance: &Instance,
    ) -> wasmtime::Result<Exports> {
        Ok(Exports {
            invoke: CheckedExport::check(store, component, instance, "invoke")?,
            handle_inbound: CheckedExport::check(store, component, instance, "handle-inbound")?,
            poll: CheckedExport::check(store, component, instance, "poll")?,
        })
    }
}

impl<S: ExportSignature> CheckedExport<S> {
    /// Finds the export `name` of `component` and checks, in its `instance`, that it has
    /// the type `S` says.
    fn check(
        store: &mut Store<CallState>,
        component: &Component,
        instance: &Instance,
        name: &str,
    ) -> wasmtime::Result<Self> {
        let index = component
            .get_export_index(None, name)
            .ok_or_else(|| wasmtime::format_err!("no export {name:?}"))?;
        instance.get_typed_func::<S::Params<'_>, (S::Result,)>(&mut *store, &index)?;
        Ok(CheckedExport {
            index,
            signature: std::marker::PhantomData,
        })
    }

    /// Calls the export in `instance`, an instance of the component it was checked in.
    fn call(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
        params: S::Params<'_>,
    ) -> wasmtime::Result<S::Result> {
        let func = instance.get_func(&mut *store, self.index).ok_or_else(|| {
            wasmtime::format_err!("the instance is not of the component this export was checked in")
        })?;
        // SAFETY: `check` type-checked this export against `S` in an instance of the
        // compiled component `self.index` belongs to, and `get_func` found it, so
        // `instance` is an instance of that same component (an export index of another
        // component finds nothing): every instance of a component has the same export
        // types. The generated bindings do the same: check once, `new_unchecked` per call.
        #[allow(unsafe_code)] // the type check is done once, at load: 0.5–0.8 µs per call
        let typed = unsafe { TypedFunc::<S::Params<'_>, (S::Result,)>::new_unchecked(func) };
        let (result,) = typed.call(&mut *store, params)?;
        Ok(result)
    }
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("sha256", &self.sha256)
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .finish_non_exhaustive()
    }
}

/// One call. The operation, config and input are borrowed: the host only reads them (as
/// JSON text for the guest), and the caller keeps them, for its journal say.
#[derive(Debug)]
pub struct Invocation<'a> {
    pub operation: &'a str,
    pub config: &'a Value,
    pub input: &'a Value,
    pub context: CallContext,
    pub grants: Grants,
    pub limits: Limits,
}

impl ConnectorHost {
    pub fn new(config: HostConfig) -> wasmtime::Result<Arc<ConnectorHost>> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_concurrent_calls.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_memory_size(Limits::MAX.memory_bytes as usize)
            // A freed slot's first 256 KiB stay resident (stack, data and the first heap
            // pages of a connector built with a 64 KiB stack), and where Linux has the
            // `PAGEMAP_SCAN` ioctl (6.7+) only the pages written since the slot was last
            // decommitted are reset (copied back or zeroed), not the whole prefix:
            // 15.2 → 13.9 µs per call.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(16 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto)
            // What a freed slot has beyond the resident prefix is given back to the
            // kernel 16 slots at a time, not with one `madvise` per call: 0.8 µs per call.
            .decommit_batch_size(16);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(true)
            .parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());

        let mut linker = Linker::<CallState>::new(&engine);
        bindings::Connector::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
        link_wasi(&mut linker)?;

        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)?;
            // Only this server reads or writes the code it maps.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        let weak = engine.weak();
        let tick = config.epoch_tick;
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(tick);
                }
            })?;
        Ok(Arc::new(ConnectorHost {
            engine,
            linker,
            cache_dir: config.cache_dir,
            compat,
            tick,
        }))
    }

    /// The engine's compatibility hash: part of every cache key.
    pub fn compatibility(&self) -> &str {
        &self.compat
    }

    /// Compiles (or loads from the cache), links, describes and validates a component.
    pub fn load(&self, bytes: &[u8]) -> Result<Loaded, LoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let (component, from_cache) = self.compile(bytes, &sha256)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let pre = bindings::ConnectorPre::new(instance_pre)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let types = component.component_type();
        let imports = types
            .imports(&self.engine)
            .map(|(name, _)| name)
            .filter(|name| name.contains(':'))
            .map(str::to_owned)
            .collect();
        let limits = Limits::default();
        let mut store = self
            .limited_store(
                CallState::new(
                    Arc::new(placeholder_manifest()),
                    Grants::default(),
                    None,
                    KvNamespace {
                        workspace: String::new(),
                        connector: String::new(),
                    },
                    limits,
                    None,
                ),
                &limits,
            )
            .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
        let instance = pre
            .instance_pre()
            .instantiate(&mut store)
            .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
        let exports = Exports::check(&mut store, &component, &instance)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let manifest = bindings::Connector::new(&mut store, &instance)
            .and_then(|c| c.call_describe(&mut store))
            .map_err(|e| LoadError::Describe(format!("{e:#}")))?;
        let manifest = from_wit(manifest);
        let problems = manifest.problems();
        if !problems.is_empty() {
            return Err(LoadError::InvalidManifest(problems));
        }
        let mut validators = HashMap::new();
        for op in &manifest.operations {
            let compile = |schema: &Value, field: &str| {
                jsonschema::validator_for(schema).map_err(|e| {
                    LoadError::InvalidManifest(vec![format!("{}/{field}: {e}", op.name)])
                })
            };
            validators.insert(
                op.name.clone(),
                (
                    compile(&op.config_schema, "config_schema")?,
                    compile(&op.input_schema, "input_schema")?,
                ),
            );
        }
        Ok(Loaded {
            sha256,
            manifest: Arc::new(manifest),
            from_cache,
            imports,
            pre,
            exports,
            validators,
        })
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.compat)))
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, bool), LoadError> {
        let path = self.cache_path(sha256);
        if let Some(path) = &path
            && path.exists()
        {
            match deserialize_cached(&self.engine, path) {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding an unreadable compiled component");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        if !wasmparser::Parser::is_component(bytes) {
            return Err(LoadError::NotAComponent(
                "the file is a core module or not WebAssembly; build with `cargo build --target wasm32-wasip2` (or `trellis connector build`)".into(),
            ));
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
        if let Some(path) = &path {
            let write = || -> std::io::Result<()> {
                let data = component.serialize().map_err(std::io::Error::other)?;
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    options.mode(0o600);
                }
                std::io::Write::write_all(&mut options.open(&tmp)?, &data)?;
                std::fs::rename(&tmp, path)
            };
            if let Err(e) = write() {
                tracing::warn!(path = %path.display(), error = %e, "could not cache a compiled component");
            }
        }
        Ok((component, false))
    }

    /// A fresh store with the memory limiter, fuel and epoch deadline of `limits`.
    fn limited_store(
        &self,
        state: CallState,
        limits: &Limits,
    ) -> wasmtime::Result<Store<CallState>> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(limits.fuel)?;
        let ticks = limits
            .timeout_ms
            .div_ceil(self.tick.as_millis().max(1) as u64)
            + 1;
        store.set_epoch_deadline(ticks);
        Ok(store)
    }

    /// Runs `f` against a fresh instance in a fresh, limited store, and turns whatever
    /// stopped it into a typed error.
    fn call_guest<R>(
        &self,
        loaded: &Loaded,
        context: CallContext,
        grants: Grants,
        limits: Limits,
        services: Arc<dyn HostServices>,
        f: impl FnOnce(
            &mut Store<CallState>,
            &Instance,
            &wit::CallContext,
        ) -> wasmtime::Result<Result<R, wit::ConnectorError>>,
    ) -> Result<R, ConnectorError> {
        let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            + limits.timeout_ms;
        let ns = KvNamespace {
            workspace: context.workspace.clone(),
            connector: loaded.manifest.name.clone(),
        };
        let state = CallState::new(
            loaded.manifest.clone(),
            grants,
            Some(services),
            ns,
            limits,
            Some(deadline),
        );
        let mut store =
            self.limited_store(state, &limits)
                .map_err(|e| ConnectorError::Unavailable {
                    message: format!("store: {e}"),
                })?;
        let wit_context = wit::CallContext {
            run_id: context.run_id,
            step_id: context.step_id,
            idempotency_key: context.idempotency_key,
            workspace: context.workspace,
            deadline_ms,
        };
        let result = loaded
            .pre
            .instance_pre()
            .instantiate(&mut store)
            .and_then(|instance| f(&mut store, &instance, &wit_context));
        let state = store.data();
        state.flush_stdio(&wit_context.run_id, &wit_context.step_id);
        match result {
            Err(e) => Err(state.classify_trap(&e)),
            Ok(Err(guest)) => Err(state
                .denied
                .clone()
                .unwrap_or_else(|| state.redact_error(from_wit_error(guest)))),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Calls one operation in a fresh store. Blocks the thread until the call ends (run it
    /// on a blocking thread); the deadline, fuel and memory limits always end it.
    pub fn invoke(
        &self,
        loaded: &Loaded,
        call: Invocation<'_>,
        services: Arc<dyn HostServices>,
    ) -> Result<Value, ConnectorError> {
        let Some((config_schema, input_schema)) = loaded.validators.get(call.operation) else {
            return Err(ConnectorError::InvalidInput {
                message: format!(
                    "{} has no operation {:?}",
                    loaded.manifest.name, call.operation
                ),
            });
        };
        check_schema("config", config_schema, call.config)?;
        check_schema("input", input_schema, call.input)?;
        let Invocation {
            operation,
            config,
            input,
            context,
            grants,
            limits,
        } = call;
        let output: String = with_json_texts(config, input, |config, input| {
            self.call_guest(
                loaded,
                context,
                grants,
                limits,
                services,
                |store, instance, context| {
                    loaded
                        .exports
                        .invoke
                        .call(store, instance, (operation, config, input, context))
                },
            )
        })?;
        check_output_size(output.len(), limits.max_output_bytes)?;
        serde_json::from_str(&output).map_err(|e| ConnectorError::InvalidOutput {
            message: format!("not JSON: {e}"),
        })
    }

    /// Hands a webhook request to the connector's `handle-inbound`; returns the events it
    /// produced and the answer for the caller.
    pub fn handle_inbound(
        &self,
        loaded: &Loaded,
        request: InboundRequest,
        grants: Grants,
        limits: Limits,
        services: Arc<dyn HostServices>,
    ) -> Result<Inbound, ConnectorError> {
        if !loaded.manifest.inbound {
            return Err(ConnectorError::NotFound {
                message: format!("{} receives no webhooks", loaded.manifest.name),
            });
        }
        let ctx = CallContext {
            run_id: String::new(),
            step_id: "inbound".into(),
            idempotency_key: String::new(),
            workspace: request.workspace.clone(),
        };
        let result: wit::InboundResult = self.call_guest(
            loaded,
            ctx,
            grants,
            limits,
            services,
            |store, instance, _| {
                let req = wit::InboundRequest {
                    method: request.method,
                    path: request.path,
                    query: request.query,
                    headers: request.headers,
                    body: request.body,
                    workspace: request.workspace,
                };
                loaded.exports.handle_inbound.call(store, instance, (&req,))
            },
        )?;
        Ok(Inbound {
            events: events_of(
                result.events,
                result.response.body.len(),
                limits.max_output_bytes,
            )?,
            response: HttpResponse {
                status: result.response.status,
                headers: result.response.headers,
                body: result.response.body,
            },
        })
    }
}

impl ConnectorHost {
    /// Asks the connector for events after `cursor` (its `poll` export).
    pub fn poll(
        &self,
        loaded: &Loaded,
        call: PollCall,
        services: Arc<dyn HostServices>,
    ) -> Result<Polled, ConnectorError> {
        let PollCall {
            config,
            cursor,
            context,
            grants,
            limits,
        } = call;
        if !loaded.manifest.poll {
            return Err(ConnectorError::NotFound {
                message: format!("{} does not poll", loaded.manifest.name),
            });
        }
        let config = json_text(&config);
        let result: wit::PollResult = self.call_guest(
            loaded,
            context,
            grants,
            limits,
            services,
            |store, instance, ctx| {
                loaded
                    .exports
                    .poll
                    .call(store, instance, (config.as_str(), cursor.as_deref(), ctx))
            },
        )?;
        Ok(Polled {
            events: events_of(result.events, 0, limits.max_output_bytes)?,
            cursor: result.cursor,
        })
    }
}

thread_local! {
    /// The JSON text of a call's config and input, kept for the thread's next call.
    static JSON_TEXTS: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A buffer that outgrew this many bytes is freed after the call instead of kept.
const KEPT_JSON_BUFFER: usize = 64 << 10;

/// Runs `f` with `config` and `input` as JSON text, written into a buffer this thread
/// reuses from call to call: no allocation and no regrowth on the way in (1 µs of a
/// 1 KiB call). `serde_json::to_writer` writes bytes; `Value`'s `Display` goes through
/// the formatting machinery, 3× slower.
fn with_json_texts<R>(config: &Value, input: &Value, f: impl FnOnce(&str, &str) -> R) -> R {
    let mut buffer = JSON_TEXTS.take();
    buffer.clear();
    // A `Value` always serializes (its map keys are strings), into valid UTF-8.
    let written = serde_json::to_writer(&mut buffer, config)
        .and_then(|()| {
            let split = buffer.len();
            serde_json::to_writer(&mut buffer, input).map(|()| split)
        })
        .ok()
        .and_then(|split| {
            let text = std::str::from_utf8(&buffer).ok()?;
            Some(text.split_at(split))
        });
    let result = match written {
        Some((config, input)) => f(config, input),
        None => f(&json_text(config), &json_text(input)),
    };
    if buffer.capacity() <= KEPT_JSON_BUFFER {
        JSON_TEXTS.set(buffer);
    }
    result
}

/// `value` as JSON text.
fn json_text(value: &Value) -> String {
    // A `Value` always serializes: its map keys are strings.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Fails with `output_too_large` when `actual` bytes exceed `limit`.
fn check_output_size(actual: usize, limit: u64) -> Result<(), ConnectorError> {
    if actual as u64 > limit {
        return Err(ConnectorError::OutputTooLarge {
            limit_bytes: limit,
            actual_bytes: actual as u64,
        });
    }
    Ok(())
}

/// Guest events with their payloads parsed, after checking that they (plus `extra` bytes
/// of the same answer) stay within the output limit.
fn events_of(
    events: Vec<wit::Event>,
    extra: usize,
    limit: u64,
) -> Result<Vec<InboundEvent>, ConnectorError> {
    let size: usize = events.iter().map(|e| e.payload.len() + e.name.len()).sum();
    check_output_size(extra + size, limit)?;
    events
        .into_iter()
        .map(|e| {
            let payload =
                serde_json::from_str(&e.payload).map_err(|err| ConnectorError::InvalidOutput {
                    message: format!("event {:?}: payload is not JSON: {err}", e.name),
                })?;
            Ok(InboundEvent {
                name: e.name,
                id: e.id,
                payload,
            })
        })
        .collect()
}

/// One poll: the schedule's config, the last cursor, and what the call may use.
#[derive(Debug)]
pub struct PollCall {
    pub config: Value,
    pub cursor: Option<String>,
    pub context: CallContext,
    pub grants: Grants,
    pub limits: Limits,
}

/// What `poll` returned.
#[derive(Clone, Debug)]
pub struct Polled {
    pub events: Vec<InboundEvent>,
    /// The cursor for the next poll; `None` keeps the previous one.
    pub cursor: Option<String>,
}

/// A webhook request for a connector.
#[derive(Clone, Debug)]
pub struct InboundRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub workspace: String,
}

/// An event a connector produced from a webhook.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundEvent {
    pub name: String,
    pub id: Option<String>,
    pub payload: Value,
}

/// What `handle-inbound` returned.
#[derive(Clone, Debug)]
pub struct Inbound {
    pub events: Vec<InboundEvent>,
    pub response: HttpResponse,
}

/// Loads a compiled component this host wrote to its cache.
#[allow(unsafe_code)] // wasmtime requires `unsafe` to map precompiled code: the file is ours
// (written by `Component::serialize` under the data dir and named by the source's sha256
// and this engine's compatibility hash), and wasmtime still checks the header matches.
fn deserialize_cached(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: see above; the cache directory is not writable by guests or API callers.
    unsafe { Component::deserialize_file(engine, path) }
}

fn check_schema(
    what: &str,
    validator: &jsonschema::Validator,
    value: &Value,
) -> Result<(), ConnectorError> {
    // The common case, without collecting anything.
    if validator.is_valid(value) {
        return Ok(());
    }
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(5)
        .map(|e| format!("{what}{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConnectorError::InvalidInput {
            message: errors.join("; "),
        })
    }
}

/// What a component that imports WASI's stdio gets: no environment, no files, no
/// network; its stdout and stderr are captured.
struct Wasi {
    ctx: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Wasi {
    fn new() -> Box<Wasi> {
        let stdout = MemoryOutputPipe::new(STDIO_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
        // No preopened directories, no environment, no arguments, no network: the only
        // ways out are this world's imports.
        let ctx = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Box::new(Wasi {
            ctx,
            stdout,
            stderr,
        })
    }
}

/// A store's data: the grants, the limits, and what the guest said.
struct CallState {
    /// Built on the first WASI call: a component built with the SDK makes none (its
    /// stdout and stderr go to the `log` import), and building it is a third of what a
    /// store costs to set up.
    wasi: Option<Box<Wasi>>,
    table: ResourceTable,
    /// The last error-level lines the guest logged (a panic's message among them).
    error_tail: String,
    limiter: MemoryLimiter,
    manifest: Arc<Manifest>,
    grants: Grants,
    services: Option<Arc<dyn HostServices>>,
    ns: KvNamespace,
    limits: Limits,
    deadline: Option<Instant>,
    /// The first capability the guest was refused: reported instead of however the guest
    /// chose to surface it.
    denied: Option<ConnectorError>,
    log_lines: u32,
}

impl CallState {
    fn new(
        manifest: Arc<Manifest>,
        grants: Grants,
        services: Option<Arc<dyn HostServices>>,
        ns: KvNamespace,
        limits: Limits,
        deadline: Option<Instant>,
    ) -> Self {
        CallState {
            wasi: None,
            table: ResourceTable::new(),
            error_tail: String::new(),
            limiter: MemoryLimiter {
                limit: limits.memory_bytes as usize,
                exceeded: false,
            },
            manifest,
            grants,
            services,
            ns,
            limits,
            deadline,
            denied: None,
            log_lines: 0,
        }
    }

    fn remaining(&self) -> Duration {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(30))
    }

    fn deny(&mut self, capability: &str, name: &str, reason: &str) -> String {
        let error = ConnectorError::CapabilityDenied {
            capability: capability.into(),
            name: name.into(),
            reason: reason.into(),
        };
        let message = error.to_string();
        self.denied.get_or_insert(error);
        message
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.grants.secrets.values().flatten() {
            if secret.0.len() >= 4 {
                out = out.replace(&secret.0, "***");
            }
        }
        out
    }

    fn redact_error(&self, e: ConnectorError) -> ConnectorError {
        match serde_json::to_string(&e) {
            Ok(text) => serde_json::from_str(&self.redact(&text)).unwrap_or(e),
            Err(_) => e,
        }
    }

    /// The last 1000 characters the guest wrote to stderr or logged as errors.
    fn stderr_tail(&self) -> String {
        let bytes = self
            .wasi
            .as_ref()
            .map(|w| w.stderr.contents())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let text = format!("{}\n{}", text.trim(), self.error_tail.trim());
        let tail = last_chars(text.trim(), STDERR_TAIL);
        self.redact(tail)
    }

    fn flush_stdio(&self, run_id: &str, step_id: &str) {
        let Some(wasi) = &self.wasi else { return };
        for (stream, pipe) in [("stdout", &wasi.stdout), ("stderr", &wasi.stderr)] {
            let bytes = pipe.contents();
            if bytes.is_empty() {
                continue;
            }
            let text = self.redact(&String::from_utf8_lossy(&bytes));
            tracing::info!(
                target: "trellis::connector",
                connector = %self.ns.connector,
                run = %run_id,
                step = %step_id,
                stream,
                "{}",
                text.trim_end()
            );
        }
    }

    fn classify_trap(&self, e: &wasmtime::Error) -> ConnectorError {
        if self.limiter.exceeded {
            return ConnectorError::MemoryLimit {
                limit_bytes: self.limits.memory_bytes,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => ConnectorError::Deadline {
                limit_ms: self.limits.timeout_ms,
            },
            Some(Trap::OutOfFuel) => ConnectorError::FuelExhausted {
                limit: self.limits.fuel,
            },
            _ => {
                if let Some(denied) = &self.denied {
                    return denied.clone();
                }
                let stderr = self.stderr_tail();
                let base = self.redact(&format!("{e:#}"));
                let message = if stderr.is_empty() {
                    base
                } else {
                    format!("{base}; stderr: {stderr}")
                };
                ConnectorError::Trap { message }
            }
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.get_or_insert_with(Wasi::new).ctx,
            table: &mut self.table,
        }
    }
}

/// `wasi:random/insecure-seed`, which Rust's standard library calls to key its hash maps,
/// answered without building the WASI context: a hash of a counter under keys drawn from
/// the host's randomness (what `std`'s own `RandomState` is).
impl wasmtime_wasi::p2::bindings::random::insecure_seed::Host for CallState {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        use std::hash::BuildHasher as _;
        let keys = std::hash::RandomState::new();
        Ok((keys.hash_one(0u8), keys.hash_one(1u8)))
    }
}

/// The last `n` characters of `text`.
fn last_chars(text: &str, n: usize) -> &str {
    let start = text
        .char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i);
    &text[start..]
}

struct MemoryLimiter {
    limit: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes reached",
                self.limit
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Links the few WASI interfaces Rust's standard library imports on `wasm32-wasip2`
/// (stdio, environment, exit, clocks, random, streams) with nothing behind them: no
/// preopened directories, no environment, no sockets. Filesystem and socket interfaces are
/// not linked at all, so a component that imports them is refused when uploaded.
fn link_wasi(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::WasiCliView as _;
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};

    struct HasTable;
    impl HasData for HasTable {
        type Data<'a> = &'a mut ResourceTable;
    }

    let l = linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<CallState, HasTable>(l, |t| {
        &mut t.table
    })?;
    sync::io::poll::add_to_linker::<CallState, HasTable>(l, |t| &mut t.table)?;
    sync::io::streams::add_to_linker::<CallState, HasTable>(l, |t| &mut t.table)?;
    clocks::wall_clock::add_to_linker::<CallState, WasiClocks>(l, CallState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<CallState, WasiClocks>(l, CallState::clocks)?;
    random::random::add_to_linker::<CallState, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<CallState, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<CallState, HasSelf<CallState>>(l, |t| t)?;
    cli::exit::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::environment::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::stdin::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::stdout::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::stderr::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::terminal_input::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::terminal_output::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::terminal_stdin::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::terminal_stdout::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    cli::terminal_stderr::add_to_linker::<CallState, WasiCli>(l, CallState::cli)?;
    Ok(())
}

impl wit::Host for CallState {}

impl http::Host for CallState {
    fn send(&mut self, request: wit::HttpRequest) -> Result<wit::HttpResponse, http::HttpError> {
        let url = match url::Url::parse(&request.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            Ok(u) => {
                return Err(http::HttpError::Denied(format!(
                    "scheme {:?} is not allowed; use http or https",
                    u.scheme()
                )));
            }
            Err(e) => return Err(http::HttpError::Denied(format!("bad url: {e}"))),
        };
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(80);
        let name = format!("{host}:{port}");
        if !self
            .manifest
            .capabilities
            .hosts
            .iter()
            .any(|p| host_matches(p, &host, port))
        {
            return Err(http::HttpError::Denied(
                self.deny("host", &name, "declared"),
            ));
        }
        if !self
            .grants
            .hosts
            .iter()
            .any(|p| host_matches(p, &host, port))
        {
            return Err(http::HttpError::Denied(self.deny("host", &name, "granted")));
        }
        let remaining = self.remaining();
        if remaining.is_zero() {
            return Err(http::HttpError::Timeout);
        }
        let Some(services) = self.services.clone() else {
            return Err(http::HttpError::Transport(
                "no network while describing".into(),
            ));
        };
        let request = HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        match services.http(request, remaining, self.limits.max_http_body_bytes) {
            Ok(r) => Ok(wit::HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(HttpFailure::Timeout) => Err(http::HttpError::Timeout),
            Err(HttpFailure::TooLarge) => Err(http::HttpError::TooLarge),
            Err(HttpFailure::Transport(m)) => Err(http::HttpError::Transport(m)),
        }
    }
}

impl secrets::Host for CallState {
    fn get(&mut self, name: String) -> Result<String, secrets::SecretError> {
        if !self.manifest.capabilities.secrets.contains(&name) {
            return Err(secrets::SecretError::Denied(
                self.deny("secret", &name, "declared"),
            ));
        }
        match self.grants.secrets.get(&name) {
            None => Err(secrets::SecretError::Denied(
                self.deny("secret", &name, "granted"),
            )),
            Some(None) => Err(secrets::SecretError::NotSet(format!(
                "secret {name:?} has no value; an admin sets it under the connector's secrets"
            ))),
            Some(Some(value)) => Ok(value.0.clone()),
        }
    }
}

impl CallState {
    fn kv_allowed(&mut self) -> Result<Arc<dyn HostServices>, kv::KvError> {
        if !self.manifest.capabilities.kv {
            self.deny("kv", "store", "declared");
            return Err(kv::KvError::Denied);
        }
        if !self.grants.kv {
            self.deny("kv", "store", "granted");
            return Err(kv::KvError::Denied);
        }
        self.services
            .clone()
            .ok_or_else(|| kv::KvError::Unavailable("no store while describing".into()))
    }
}

impl kv::Host for CallState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        let services = self.kv_allowed()?;
        if key.len() > MAX_KV_KEY {
            return Err(kv::KvError::TooLarge);
        }
        services
            .kv_get(&self.ns, &key)
            .map_err(|e| kv::KvError::Unavailable(e.0.to_string()))
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), kv::KvError> {
        let services = self.kv_allowed()?;
        if key.len() > MAX_KV_KEY || value.len() > MAX_KV_VALUE {
            return Err(kv::KvError::TooLarge);
        }
        services
            .kv_set(&self.ns, &key, &value, ttl_ms.map(Duration::from_millis))
            .map_err(|e| kv::KvError::Unavailable(e.0.to_string()))
    }

    fn delete(&mut self, key: String) -> Result<(), kv::KvError> {
        let services = self.kv_allowed()?;
        services
            .kv_delete(&self.ns, &key)
            .map_err(|e| kv::KvError::Unavailable(e.0.to_string()))
    }

    fn add(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<bool, kv::KvError> {
        let services = self.kv_allowed()?;
        if key.len() > MAX_KV_KEY || value.len() > MAX_KV_VALUE {
            return Err(kv::KvError::TooLarge);
        }
        services
            .kv_add(&self.ns, &key, &value, ttl_ms.map(Duration::from_millis))
            .map_err(|e| kv::KvError::Unavailable(e.0.to_string()))
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        if matches!(level, log::Level::Error) {
            // Kept whatever the line budget, so a panic's message reaches the trap.
            if self.error_tail.len() > 4 * STDERR_TAIL {
                let keep = last_chars(&self.error_tail, STDERR_TAIL).len();
                self.error_tail.drain(..self.error_tail.len() - keep);
            }
            self.error_tail.push('\n');
            self.error_tail.push_str(last_chars(&message, STDERR_TAIL));
        }
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let mut message = self.redact(&message);
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let connector = &self.ns.connector;
        match level {
            log::Level::Trace | log::Level::Debug => {
                tracing::debug!(target: "trellis::connector", %connector, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "trellis::connector", %connector, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "trellis::connector", %connector, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "trellis::connector", %connector, "{message}")
            }
        }
    }
}

impl clock::Host for CallState {
    fn now_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// Blocks this call's thread (calls run on blocking threads), never past the deadline:
    /// the epoch interruption cannot stop a host function.
    fn sleep_ms(&mut self, ms: u32) {
        let wait = Duration::from_millis(u64::from(ms)).min(self.remaining());
        std::thread::sleep(wait);
    }
}

fn placeholder_manifest() -> Manifest {
    Manifest {
        name: String::new(),
        version: "0.0.0".into(),
        display: DisplayName::default(),
        description: String::new(),
        operations: Vec::new(),
        capabilities: Capabilities::default(),
        inbound: false,
        poll: false,
    }
}

fn from_wit(m: wit::Manifest) -> Manifest {
    let json = |text: String| serde_json::from_str(&text).unwrap_or(Value::String(text));
    Manifest {
        name: m.name,
        version: m.version,
        display: DisplayName {
            zh: m.display.zh,
            en: m.display.en,
        },
        description: m.description,
        operations: m
            .operations
            .into_iter()
            .map(|o| OperationSpec {
                name: o.name,
                display: DisplayName {
                    zh: o.display.zh,
                    en: o.display.en,
                },
                config_schema: json(o.config_schema),
                input_schema: json(o.input_schema),
                output_schema: json(o.output_schema),
                side_effects: o.side_effects,
            })
            .collect(),
        capabilities: Capabilities {
            hosts: m.capabilities.hosts,
            secrets: m.capabilities.secrets,
            kv: m.capabilities.kv,
        },
        inbound: m.inbound,
        poll: m.poll,
    }
}

fn from_wit_error(e: wit::ConnectorError) -> ConnectorError {
    match e {
        wit::ConnectorError::InvalidInput(message) => ConnectorError::InvalidInput { message },
        wit::ConnectorError::AuthFailed(message) => ConnectorError::AuthFailed { message },
        wit::ConnectorError::RateLimited(r) => ConnectorError::RateLimited {
            message: r.message,
            retry_after_ms: r.retry_after_ms,
        },
        wit::ConnectorError::Remote(r) => ConnectorError::Remote {
            code: r.code,
            message: r.message,
            retryable: r.retryable,
        },
        wit::ConnectorError::NotFound(message) => ConnectorError::NotFound { message },
        wit::ConnectorError::Internal(message) => ConnectorError::Internal { message },
    }
}
