//! `cargo xtask <command>`: the project's two front doors and its chores.
//!
//! - `run [ARGS…]`: install what is missing, build the studio and the server, start it
//!   (SQLite by default).
//! - `test`: build the studio, start PostgreSQL if it is down, then build and run every
//!   test (browser tests included).
//! - `bench`: the webhook load benchmark against a release server.
//! - `bench-intent`: event → score latency and rescoring every lead after a weight change,
//!   against a release server.
//! - `bench-studio`: studio frame times on a 300-node flow in headless Chromium.
//! - `studio`: build the studio into `studio/dist`.
//! - `connectors`: build the connector components in `connectors/` (and the sandbox tests'
//!   adversarial one) for `wasm32-wasip2`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("studio") => build_studio().map(|_| ()),
        Some("connectors") => build_connectors().map(|_| ()),
        Some("bench-studio") => bench_studio(),
        Some("bench-intent") => run_release_bin("intent-bench", &args[1..], &[]),
        Some("bench-units") => build_connectors().and_then(|dir| {
            run_release_bin("unit-bench", &args[1..], &[("TRELLIS_CONNECTORS_DIR", dir)])
        }),
        Some("bench-tracking") => build_connectors().and_then(|dir| {
            run_release_bin(
                "tracking-bench",
                &args[1..],
                &[("TRELLIS_CONNECTORS_DIR", dir)],
            )
        }),
        _ => {
            eprintln!(
                "usage: cargo xtask <run [serve args…] | test [cargo test args…] | bench | bench-intent | bench-tracking | bench-units | bench-studio | studio | connectors>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root. `cargo run` sets `CARGO_MANIFEST_DIR` for the process, so a binary
/// shared through a common target directory still works on the checkout that ran it.
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(Path::to_owned).unwrap_or(manifest)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let s = cmd.status().with_context(|| format!("starting {what}"))?;
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}

/// Installs the WebAssembly targets the studio and connectors build for, when missing.
fn ensure_targets() -> anyhow::Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let installed = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(_) => {
            eprintln!("xtask: rustup not found; skipping WebAssembly target check");
            return Ok(());
        }
    };
    let missing: Vec<&str> = ["wasm32-unknown-unknown", "wasm32-wasip2"]
        .into_iter()
        .filter(|t| !installed.contains(t))
        .collect();
    if !missing.is_empty() {
        let mut c = Command::new("rustup");
        c.args(["target", "add"]).args(&missing);
        status(c, "rustup target add")?;
    }
    Ok(())
}

/// Builds the studio into `studio/dist`, which `trellis serve` serves: the wasm32 crate in
/// the `wasm-release` profile, wasm-bindgen (`--target web`), then binaryen's `wasm-opt -Oz`
/// (from npm, see [`wasm_opt`]). Every asset but `index.html` gets its content hash in its
/// name (the server lets browsers keep those for a year) and a Brotli and a gzip copy beside
/// it (the server sends the one the browser accepts).
fn build_studio() -> anyhow::Result<PathBuf> {
    ensure_targets()?;
    let mut build = cargo();
    build.args([
        "build",
        "-p",
        "trellis-studio",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm-release",
    ]);
    status(build, "building the studio")?;
    let wasm = target_dir()
        .join("wasm32-unknown-unknown")
        .join("wasm-release")
        .join("trellis_studio.wasm");
    let bindgen = target_dir().join("studio-bindgen");
    std::fs::create_dir_all(&bindgen)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        .generate(&bindgen)
        .with_context(|| format!("wasm-bindgen on {}", wasm.display()))?;
    let optimized = wasm_opt(&bindgen.join("trellis_studio_bg.wasm"))?;

    let out = root().join("studio").join("dist");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let studio = root().join("studio");
    let wasm_name = emit_asset(
        &out,
        "trellis_studio_bg",
        "wasm",
        &std::fs::read(&optimized)?,
    )?;
    let js_name = emit_asset(
        &out,
        "trellis_studio",
        "js",
        &std::fs::read(bindgen.join("trellis_studio.js"))?,
    )?;
    let css_name = emit_asset(
        &out,
        "studio",
        "css",
        &std::fs::read(studio.join("studio.css"))?,
    )?;
    let index = std::fs::read_to_string(studio.join("index.html"))?
        .replace("/trellis_studio_bg.wasm", &format!("/{}", wasm_name.0))
        .replace("/trellis_studio.js", &format!("/{}", js_name.0))
        .replace("/studio.css", &format!("/{}", css_name.0));
    std::fs::write(out.join("index.html"), index)?;
    let (raw, br, gz) = [&wasm_name, &js_name, &css_name]
        .iter()
        .fold((0, 0, 0), |t, a| {
            (t.0 + a.1.raw, t.1 + a.1.br, t.2 + a.1.gz)
        });
    println!(
        "studio: {} ({} KB wasm; all assets {} KB, {} KB Brotli, {} KB gzip)",
        out.display(),
        wasm_name.1.raw / 1024,
        raw / 1024,
        br / 1024,
        gz / 1024
    );
    Ok(out)
}

/// Sizes of one emitted asset: as is, Brotli, gzip.
struct AssetSizes {
    raw: usize,
    br: usize,
    gz: usize,
}

/// Writes `bytes` to `dir` as `<stem>-<hash>.<ext>` with `.br` and `.gz` copies; gives the
/// file name and its sizes.
fn emit_asset(
    dir: &Path,
    stem: &str,
    ext: &str,
    bytes: &[u8],
) -> anyhow::Result<(String, AssetSizes)> {
    use sha2::Digest as _;
    use std::io::Write as _;
    let hash = hex::encode(&sha2::Sha256::digest(bytes)[..8]);
    let name = format!("{stem}-{hash}.{ext}");
    std::fs::write(dir.join(&name), bytes)?;
    let mut br = Vec::new();
    {
        let params = brotli::enc::BrotliEncoderParams {
            quality: 11,
            lgwin: 24,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut &bytes[..], &mut br, &params)?;
    }
    std::fs::write(dir.join(format!("{name}.br")), &br)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes)?;
    let gz = gz.finish()?;
    std::fs::write(dir.join(format!("{name}.gz")), &gz)?;
    Ok((
        name,
        AssetSizes {
            raw: bytes.len(),
            br: br.len(),
            gz: gz.len(),
        },
    ))
}

/// The binaryen release whose `wasm-opt` optimises the studio (npm package `binaryen`).
const BINARYEN: &str = "132.0.0";

/// `wasm-opt -Oz` on `input`, kept under the target directory by the input's hash (it takes
/// a minute on two cores, and the studio is rebuilt far more often than it changes).
/// binaryen comes from npm (Debian's is too old for the features Rust's wasm uses) and is
/// installed under the target directory on first use.
fn wasm_opt(input: &Path) -> anyhow::Result<PathBuf> {
    use sha2::Digest as _;
    let bytes = std::fs::read(input)?;
    let key = hex::encode(&sha2::Sha256::digest(&bytes)[..12]);
    let cache = target_dir().join("studio-opt");
    let out = cache.join(format!("{key}.wasm"));
    if out.exists() {
        return Ok(out);
    }
    let tools = target_dir().join("tools");
    let bin = tools.join("node_modules").join(".bin").join("wasm-opt");
    let version_file = tools.join("binaryen.version");
    let installed = std::fs::read_to_string(&version_file).unwrap_or_default();
    if !bin.exists() || installed.trim() != BINARYEN {
        std::fs::create_dir_all(&tools)?;
        let mut npm = Command::new("npm");
        npm.args([
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--no-save",
            &format!("binaryen@{BINARYEN}"),
        ])
        .current_dir(&tools);
        status(
            npm,
            "installing binaryen from npm for wasm-opt (needs Node.js and npm: apt-get install nodejs npm)",
        )?;
        std::fs::write(&version_file, BINARYEN)?;
    }
    std::fs::create_dir_all(&cache)?;
    let partial = cache.join(format!("{key}.partial.wasm"));
    let mut opt = Command::new(&bin);
    opt.arg("-Oz").arg(input).arg("-o").arg(&partial);
    eprintln!("xtask: wasm-opt -Oz on the studio (about a minute)");
    status(opt, "wasm-opt on the studio")?;
    std::fs::rename(&partial, &out)?;
    // Older optimised builds are of no further use.
    for entry in std::fs::read_dir(&cache)?.flatten() {
        if entry.path() != out {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(out)
}

/// Builds every component in the `connectors/` workspace (release, `wasm32-wasip2`) and
/// returns the directory holding the `.wasm` files.
fn build_connectors() -> anyhow::Result<PathBuf> {
    ensure_targets()?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--locked",
        "--manifest-path",
    ]);
    // From inside `connectors/`, so its `.cargo/config.toml` (the guest stack size) applies.
    build
        .arg(root().join("connectors").join("Cargo.toml"))
        .current_dir(root().join("connectors"))
        .env("CARGO_TARGET_DIR", target_dir());
    status(build, "building the connectors")?;
    Ok(target_dir().join("wasm32-wasip2").join("release"))
}

/// The product's connectors (`connectors/<name>/`, not the SDK or the test components),
/// copied into their own directory for `trellis serve --connectors-dir`.
fn product_connectors(built: &Path) -> anyhow::Result<PathBuf> {
    let out = target_dir().join("trellis-connectors");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for entry in std::fs::read_dir(root().join("connectors"))? {
        let dir = entry?.path();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The SDK, the sandbox tests' components and shared libraries are not connectors.
        if !dir.join("Cargo.toml").exists()
            || matches!(name.as_str(), "sdk" | "testing" | "erp-core")
        {
            continue;
        }
        let file = format!("{}.wasm", name.replace('-', "_"));
        std::fs::copy(built.join(&file), out.join(&file))
            .with_context(|| format!("copying {file}"))?;
    }
    Ok(out)
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let studio = build_studio()?;
    let connectors = product_connectors(&build_connectors()?)?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "trellis-server",
        "--bin",
        "trellis",
    ]);
    status(build, "building trellis")?;
    let bin = target_dir().join("release").join("trellis");
    let data_dir = root().join("trellis-data");
    println!(
        "Starting Trellis on http://127.0.0.1:8080 (data in {}).",
        data_dir.display()
    );
    println!(
        "The admin token is printed on first start and kept in {}.",
        data_dir.join("admin-token").display()
    );
    let mut serve = Command::new(bin);
    serve
        .current_dir(root())
        .arg("serve")
        .env("TRELLIS_STUDIO_DIR", &studio)
        .env("TRELLIS_CONNECTORS_DIR", &connectors);
    if args.is_empty() {
        serve
            .args(["--addr", "127.0.0.1:8080", "--data-dir"])
            .arg(&data_dir);
    } else {
        serve.args(args);
    }
    status(serve, "trellis serve")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn postgres_url() -> String {
    std::env::var("TRELLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Starts the local PostgreSQL cluster when it is not accepting connections.
fn ensure_postgres() -> anyhow::Result<()> {
    let ready = || {
        Command::new("pg_isready")
            .args(["-h", "127.0.0.1", "-p", "5432"])
            .output()
            .map(|o| o.status.success())
    };
    match ready() {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(_) => bail!(
            "pg_isready not found: the tests need PostgreSQL (Debian: apt-get install postgresql) at {}",
            postgres_url()
        ),
    }
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .context("PostgreSQL is down and /etc/postgresql is missing: install PostgreSQL (apt-get install postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    for v in versions {
        eprintln!("xtask: starting PostgreSQL {v}");
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &v, "main", "start"])
            .status();
    }
    for _ in 0..50 {
        if ready().unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    bail!("PostgreSQL did not come up at {}", postgres_url())
}

/// Drops databases left by tests that died before cleaning up.
fn sweep_test_databases() {
    let sql = "SELECT 'DROP DATABASE IF EXISTS ' || datname || ' WITH (FORCE);' FROM pg_database WHERE datname LIKE 'trellis_t_%'";
    let out = Command::new("psql")
        .args([postgres_url().as_str(), "-Atc", sql])
        .output();
    if let Ok(o) = out {
        for stmt in String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.is_empty())
        {
            let _ = Command::new("psql")
                .args([postgres_url().as_str(), "-qc", stmt])
                .output();
        }
    }
}

/// Segment's Python library, pinned, in a virtual environment under the target directory
/// (the site-tracking tests drive it): made when missing; its interpreter is given to the
/// tests as `TRELLIS_SEGMENT_PYTHON`. Without Python or PyPI the tests say what to install.
const SEGMENT_PYTHON_PACKAGE: &str = "segment-analytics-python==2.4.0";

fn ensure_segment_client() -> PathBuf {
    let venv = target_dir().join("segment-py");
    let python = venv.join("bin").join("python");
    let stamp = venv.join(".installed");
    let wanted = SEGMENT_PYTHON_PACKAGE.as_bytes();
    if std::fs::read(&stamp).is_ok_and(|s| s == wanted) && python.exists() {
        return python;
    }
    eprintln!("xtask: installing {SEGMENT_PYTHON_PACKAGE} for the site-tracking tests");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(&python)
            .args(["-m", "pip", "install", "-q", SEGMENT_PYTHON_PACKAGE])
            .status()
            .is_ok_and(|s| s.success());
    if made {
        let _ = std::fs::write(&stamp, wanted);
    } else {
        eprintln!(
            "xtask: could not install {SEGMENT_PYTHON_PACKAGE}: the site-tracking tests need python3 with venv and pip, and PyPI"
        );
    }
    python
}

/// Installs Debian's Chromium and chromedriver for the browser tests, and a CJK font for
/// their screenshots, when they are missing and this is a Debian machine we may
/// administer; otherwise the tests say what to install.
fn ensure_browser() {
    let present = |p: &str| Path::new(p).exists();
    if present("/usr/bin/chromium")
        && present("/usr/bin/chromedriver")
        && present("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
    {
        return;
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !root_user || !present("/usr/bin/apt-get") {
        eprintln!(
            "xtask: the browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver fonts-wqy-microhei)"
        );
        return;
    }
    eprintln!("xtask: installing chromium, chromium-driver and a CJK font for the browser tests");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "chromium",
            "chromium-driver",
            "fonts-wqy-microhei",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    let studio = build_studio()?;
    let connectors = build_connectors()?;
    ensure_postgres()?;
    ensure_browser();
    let segment_python = ensure_segment_client();
    sweep_test_databases();
    let mut build = cargo();
    build.args(["build", "-p", "trellis-server", "--bin", "trellis"]);
    status(build, "building trellis")?;
    let mut t = cargo();
    t.args(["test", "--workspace"])
        .args(extra)
        .env("TRELLIS_STUDIO_DIR", &studio)
        .env("TRELLIS_CONNECTORS_DIR", &connectors)
        .env("TRELLIS_SEGMENT_PYTHON", &segment_python);
    // The connector SDK's own tests (its allocator, its doc examples) and the product
    // connectors' unit tests run natively.
    let mut sdk = cargo();
    sdk.args([
        "test",
        "--locked",
        "-p",
        "trellis-connector-sdk",
        "-p",
        "site-tracking",
        "-p",
        "wecom",
        "-p",
        "erp-core",
        "-p",
        "erp-kingdee",
        "-p",
        "erp-sap",
        "-p",
        "erp-yonyou",
        "--manifest-path",
    ])
    .arg(root().join("connectors").join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", target_dir());
    run_tests([sdk, t])
}

/// Runs each `cargo test`, passing its output through, and closes with one summary line
/// (`tests: N passed, N failed`) over every test binary; stops at the first that fails.
fn run_tests(cmds: impl IntoIterator<Item = Command>) -> anyhow::Result<()> {
    let mut counts = (0u64, 0u64, 0u64);
    let mut result = Ok(());
    for cmd in cmds {
        result = run_test_command(cmd, &mut counts);
        if result.is_err() {
            break;
        }
    }
    let (passed, failed, ignored) = counts;
    println!();
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    result?;
    if passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

/// Runs one `cargo test`, adding its `test result:` lines to `counts` (passed, failed,
/// ignored).
fn run_test_command(mut cmd: Command, counts: &mut (u64, u64, u64)) -> anyhow::Result<()> {
    use std::io::{BufRead as _, BufReader};
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().context("starting cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let (passed, failed, ignored) = counts;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .trim_start_matches("ok. ")
                            .trim_start_matches("FAILED. ")
                            .strip_suffix(word)
                    })
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0)
            };
            *passed += count(" passed");
            *failed += count(" failed");
            *ignored += count(" ignored");
        }
    }
    let s = child.wait()?;
    if !s.success() {
        bail!("cargo test failed ({s})");
    }
    Ok(())
}

/// Studio frame times on a 300-node flow in headless Chromium.
fn bench_studio() -> anyhow::Result<()> {
    let studio = build_studio()?;
    ensure_browser();
    run_release_bin("studio-bench", &[], &[("TRELLIS_STUDIO_DIR", studio)])
}

fn bench(extra: &[String]) -> anyhow::Result<()> {
    // `cargo xtask bench -- --postgres` passes the `--` along: it only separates.
    let extra: Vec<String> = extra.iter().filter(|a| *a != "--").cloned().collect();
    run_release_bin("trellis-bench", &extra, &[])
}

/// Builds the release server and the tool `bin` (from `trellis-e2e`), then runs the tool
/// with `TRELLIS_BIN` pointing at that server.
fn run_release_bin(bin: &str, args: &[String], env: &[(&str, PathBuf)]) -> anyhow::Result<()> {
    let mut b = cargo();
    b.args([
        "build",
        "--release",
        "-p",
        "trellis-server",
        "-p",
        "trellis-e2e",
        "--bin",
        "trellis",
        "--bin",
        bin,
    ]);
    status(b, &format!("building {bin}"))?;
    let release = target_dir().join("release");
    let mut run = Command::new(release.join(bin));
    run.args(args).env("TRELLIS_BIN", release.join("trellis"));
    for (k, v) in env {
        run.env(k, v);
    }
    status(run, bin)
}
