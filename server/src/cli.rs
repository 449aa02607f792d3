//! `trellis connector new | build | publish`: the plugin author's tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use trellis_runtime::connector::is_kebab;

const CARGO_TEMPLATE: &str = include_str!("../templates/connector/Cargo.toml.tmpl");
const LIB_TEMPLATE: &str = include_str!("../templates/connector/lib.rs.tmpl");
/// The same guest stack size as the connectors in the Trellis sources.
const CARGO_CONFIG: &str = include_str!("../../connectors/.cargo/config.toml");

/// The SDK next to this build's sources; `--sdk` overrides it.
fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/sdk")
}

fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Scaffolds a connector crate `<dir>/<name>` and returns its path.
pub fn new(name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    if !is_kebab(name) {
        bail!("{name:?}: a connector name is kebab-case (a-z, 0-9, '-'), starting with a letter");
    }
    let sdk = sdk.map(Path::to_owned).unwrap_or_else(default_sdk);
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the connector SDK is not at {}; pass --sdk <path to connectors/sdk>",
            sdk.display()
        )
    })?;
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("creating {}", root.display()))?;
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{type_name}}", &type_name(name))
            .replace("{{sdk}}", &sdk.display().to_string().replace('\\', "/"))
    };
    std::fs::write(root.join("Cargo.toml"), fill(CARGO_TEMPLATE))?;
    std::fs::write(root.join("src/lib.rs"), fill(LIB_TEMPLATE))?;
    std::fs::write(root.join(".gitignore"), "/target\n")?;
    std::fs::create_dir_all(root.join(".cargo"))?;
    std::fs::write(root.join(".cargo/config.toml"), CARGO_CONFIG)?;
    Ok(root)
}

/// Installs the `wasm32-wasip2` target when rustup is there and it is missing.
fn ensure_target() -> anyhow::Result<()> {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(()); // no rustup: cargo will say if the target is missing
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    eprintln!("installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("rustup target add wasm32-wasip2 failed");
    }
    Ok(())
}

/// Builds the connector crate in `dir` for `wasm32-wasip2` (release) and returns the
/// component's path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    ensure_target()?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{} is not a directory", dir.display()))?;
    let dir = dir.as_path();
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        bail!(
            "no Cargo.toml in {}; run this in a connector crate or pass --dir",
            dir.display()
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        // From inside the crate, so its `.cargo/config.toml` applies.
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !output.status.success() {
        bail!("cargo build failed ({})", output.status);
    }
    let mut wasm = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str()
                && f.ends_with(".wasm")
            {
                wasm = Some(PathBuf::from(f));
            }
        }
    }
    wasm.context("cargo built no .wasm file: is the crate a `cdylib`?")
}

/// Uploads a component to a server; returns the server's answer.
pub async fn publish(file: &Path, server: &str, token: &str) -> anyhow::Result<serde_json::Value> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let url = format!("{}/api/v1/connectors", server.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let problems = body["problems"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|x| x.as_str())
                    .map(|x| format!("\n  - {x}"))
                    .collect::<String>()
            })
            .unwrap_or_default();
        bail!(
            "the server refused the component ({status}): {}{problems}",
            body["detail"].as_str().unwrap_or("no detail")
        );
    }
    Ok(body)
}

/// Leads per `POST /api/v1/leads/import` call.
const IMPORT_BATCH: usize = 1_000;

/// `trellis leads import`: reads a CRM export (types inferred, overridable by the mapping)
/// and uploads it in batches, reporting progress on stderr. A lead's id is the mapping's
/// (or `--id-column`'s) column, else a hash of the row, so importing a file twice updates
/// rather than duplicates.
pub async fn import_leads(
    csv: &Path,
    mapping: Option<&Path>,
    id_column: Option<&str>,
    server: &str,
    token: &str,
) -> anyhow::Result<(u64, u64)> {
    let mapping = crate::offline::read_mapping(mapping)?;
    let table = crate::offline::read_table(csv, &mapping)?;
    let id_column = id_column.map(str::to_owned).or(mapping.id);
    let ids = match &id_column {
        Some(c) => Some(table.column(c)?),
        None => None,
    };
    let url = format!("{}/api/v1/leads/import", server.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let (mut created, mut updated) = (0u64, 0u64);
    let rows: Vec<usize> = (0..table.rows).collect();
    for chunk in rows.chunks(IMPORT_BATCH) {
        let mut leads = Vec::with_capacity(chunk.len());
        for &r in chunk {
            let mut attributes = table.attributes(r);
            let id = match ids {
                Some(c) => c
                    .text(r)
                    .with_context(|| format!("row {}: the id column is empty", r + 1))?,
                None => {
                    use sha2::Digest as _;
                    let digest = sha2::Sha256::digest(attributes.to_string().as_bytes());
                    format!("row-{}", hex::encode(&digest[..12]))
                }
            };
            if let (Some(c), Some(map)) = (&id_column, attributes.as_object_mut()) {
                map.remove(c);
            }
            leads.push(serde_json::json!({ "id": id, "attributes": attributes }));
        }
        let response = client
            .post(&url)
            .bearer_auth(token)
            .json(&serde_json::json!({ "leads": leads }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "the server refused rows {}–{} ({status}): {} {}",
                chunk[0] + 1,
                chunk[chunk.len() - 1] + 1,
                body["detail"].as_str().unwrap_or("no detail"),
                body["pointer"].as_str().unwrap_or("")
            );
        }
        created += body["created"].as_u64().unwrap_or(0);
        updated += body["updated"].as_u64().unwrap_or(0);
        eprintln!(
            "imported {} of {} leads",
            chunk[chunk.len() - 1] + 1,
            table.rows
        );
    }
    Ok((created, updated))
}

/// A workspace's signal labels (the latest per text) as JSON lines, for `trellis signals
/// train --labels`; each line is checked to read as a labelled text.
pub async fn labels(server: &str, token: &str) -> anyhow::Result<(String, usize)> {
    let url = format!(
        "{}/api/v1/signals/labels?format=jsonl",
        server.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !status.is_success() {
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or(text);
        bail!("the server refused ({status}): {detail}");
    }
    let count = trellis_model::signals::corpus::parse_jsonl(&text)
        .map_err(|e| anyhow::anyhow!("the server's labels, {e}"))?
        .len();
    Ok((text, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("crm-sync"), "CrmSync");
        assert_eq!(type_name("erp"), "Erp");
        assert!(!is_kebab("Crm"));
        assert!(!is_kebab("9x"));
    }
}
