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
        _ => {
            eprintln!(
                "usage: cargo xtask <run [serve args…] | test [cargo test args…] | bench | bench-intent | bench-studio | studio | connectors>"
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

/// Builds the studio: the wasm32 crate in the `wasm-release` profile, then wasm-bindgen
/// (`--target web`) and the static files into `studio/dist`, which `trellis serve` serves.
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
    let out = root().join("studio").join("dist");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        .generate(&out)
        .with_context(|| format!("wasm-bindgen on {}", wasm.display()))?;
    for file in ["index.html", "studio.css"] {
        std::fs::copy(root().join("studio").join(file), out.join(file))
            .with_context(|| format!("copying {file}"))?;
    }
    let bytes = std::fs::read(out.join("trellis_studio_bg.wasm"))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &bytes)?;
    let gzipped = gz.finish()?.len();
    println!(
        "studio: {} ({} KB wasm, {} KB gzipped)",
        out.display(),
        bytes.len() / 1024,
        gzipped / 1024
    );
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
        if !dir.join("Cargo.toml").exists() || matches!(name.as_str(), "sdk" | "testing") {
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
    sweep_test_databases();
    let mut build = cargo();
    build.args(["build", "-p", "trellis-server", "--bin", "trellis"]);
    status(build, "building trellis")?;
    let mut t = cargo();
    t.args(["test", "--workspace"])
        .args(extra)
        .env("TRELLIS_STUDIO_DIR", &studio)
        .env("TRELLIS_CONNECTORS_DIR", &connectors);
    // The connector SDK's own tests (its allocator, its doc examples) run natively.
    let mut sdk = cargo();
    sdk.args([
        "test",
        "--locked",
        "-p",
        "trellis-connector-sdk",
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
