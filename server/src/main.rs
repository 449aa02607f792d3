//! `trellis`: the Trellis server and its command-line tools.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use trellis_server::{Config, db};

/// mimalloc: the server allocates many small JSON and CEL values per request from several
/// threads; glibc malloc spent a third of the webhook benchmark in its arena locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "trellis",
    version,
    about = "Trellis: low-code lead-nurturing flows for B2B sales teams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: API, webhooks, workers (and the studio, once built).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080", env = "TRELLIS_ADDR")]
        addr: SocketAddr,
        /// Holds the SQLite database and the admin token file.
        #[arg(long, default_value = "./trellis-data", env = "TRELLIS_DATA_DIR")]
        data_dir: PathBuf,
        /// Worker tasks advancing runs concurrently.
        #[arg(long, default_value_t = 8, env = "TRELLIS_WORKERS")]
        workers: usize,
        /// The built studio (`cargo xtask studio` writes studio/dist).
        #[arg(long, default_value = "studio/dist", env = "TRELLIS_STUDIO_DIR")]
        studio_dir: PathBuf,
        /// Connector components (`*.wasm`) to publish into the `default` workspace at start.
        #[arg(long, env = "TRELLIS_CONNECTORS_DIR")]
        connectors_dir: Option<PathBuf>,
        /// Seconds a client has to send a request's headers (and to start its next request
        /// on a kept-alive connection).
        #[arg(long, default_value_t = 15, env = "TRELLIS_HEADER_TIMEOUT")]
        header_timeout: u64,
        /// Seconds a request's body has to arrive in full (408 after).
        #[arg(long, default_value_t = 60, env = "TRELLIS_BODY_TIMEOUT")]
        body_timeout: u64,
        /// Seconds a write to a client may make no progress before the connection closes.
        #[arg(long, default_value_t = 30, env = "TRELLIS_SEND_TIMEOUT")]
        send_timeout: u64,
        /// Connections open at once (kept below the open-file limit); more get a 503.
        #[arg(long, default_value_t = 1024, env = "TRELLIS_MAX_CONNECTIONS")]
        max_connections: usize,
    },
    /// Write, build and publish connector plugins.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// Purchase-signal detection on files.
    Signals {
        #[command(subcommand)]
        command: SignalsCommand,
    },
    /// Import leads from a CRM export into a running server.
    Leads {
        #[command(subcommand)]
        command: LeadsCommand,
    },
    /// Suggest scoring weights from history and backtest models, on files.
    Scoring {
        #[command(subcommand)]
        command: ScoringCommand,
    },
    /// Run pending database migrations and exit.
    Migrate {
        #[arg(long, default_value = "./trellis-data", env = "TRELLIS_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConnectorCommand {
    /// Scaffold a connector crate `<dir>/<name>` from the template.
    New {
        /// kebab-case, e.g. `crm-sync`.
        name: String,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The connector SDK (`connectors/sdk` in the Trellis sources).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the connector crate for wasm32-wasip2 (installing the target if missing);
    /// prints the component's path.
    Build {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Upload a component to a server (admin token).
    Publish {
        file: PathBuf,
        #[arg(long, env = "TRELLIS_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TRELLIS_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Debug, Subcommand)]
enum SignalsCommand {
    /// Precision, recall and F1 per category, polarity accuracy and the confusion tables on
    /// labelled texts (JSON lines: `{"text", "categories", "polarity"}`; a folder reads
    /// every `*.jsonl` in it, as the corpus in `model/signals/corpus`).
    Eval {
        file: PathBuf,
        /// The corpus part to score: train, dev, test (the untouched part the README's
        /// figures come from) or all.
        #[arg(long, default_value = "all")]
        part: String,
        /// A lexicon JSON file instead of the built-in one.
        #[arg(long)]
        lexicon: Option<PathBuf>,
        /// A model JSON file instead of the built-in one.
        #[arg(long)]
        model: Option<PathBuf>,
        /// The lexicon's rules alone, without the model.
        #[arg(long)]
        rules_only: bool,
        /// Print the evaluation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the signals in a text as JSON.
    Detect {
        text: String,
        #[arg(long)]
        lexicon: Option<PathBuf>,
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        rules_only: bool,
    },
    /// Train the signal model from the corpus's train and dev parts (the test part is
    /// never read) and write it where the build picks it up.
    Train {
        #[arg(long, default_value = "model/signals/corpus")]
        corpus: PathBuf,
        /// A workspace's labels (`GET /api/v1/signals/labels?format=jsonl`), added to the
        /// training texts; may be given more than once.
        #[arg(long)]
        labels: Vec<PathBuf>,
        #[arg(long, default_value = "model/signals/model.json")]
        out: PathBuf,
        /// Search the training options on the dev part and print the best, writing nothing.
        #[arg(long, conflicts_with = "by_writer")]
        tune: bool,
        /// Estimate how the model does on writers it has not read: split the corpus's
        /// files into this many groups and read each with a model fitted on the others
        /// (train and dev parts only); prints the figures, writing nothing.
        #[arg(long, value_name = "GROUPS")]
        by_writer: Option<usize>,
    },
    /// Download a workspace's labels (corrections from the lead card, the latest per text)
    /// as JSON lines, for `train --labels` or, reviewed, as a corpus file.
    Labels {
        #[arg(long, env = "TRELLIS_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TRELLIS_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum LeadsCommand {
    /// Upload a CSV export (types inferred; `Select` and empty cells are missing), outcome
    /// column included, in batches of 1,000.
    Import {
        #[arg(long)]
        csv: PathBuf,
        /// Column mapping JSON: `{"id": col, "missing": […], "types": {col: "number"|"text"},
        /// "attributes": {col: name}}`.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The column that identifies a lead (default: the mapping's `id`, else a hash of
        /// the row).
        #[arg(long)]
        id_column: Option<String>,
        #[arg(long, env = "TRELLIS_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "TRELLIS_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Debug, Subcommand)]
enum ScoringCommand {
    /// Fit a scoring model to a CRM export with outcomes; prints the model JSON on stdout
    /// and the report (features, held-out backtest) on stderr.
    Suggest {
        #[arg(long)]
        csv: PathBuf,
        /// The outcome column (1/0, yes/no, true/false).
        #[arg(long)]
        outcome: String,
        /// A column to leave out (repeatable); `Prefix*` leaves out every column starting
        /// with `Prefix`. Leave out what is filled in after the sale.
        #[arg(long)]
        exclude: Vec<String>,
        /// Column mapping JSON: `{"missing": […], "types": {col: "number"|"text"},
        /// "attributes": {col: name}}`.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The lead id column; the held-out split hashes it.
        #[arg(long)]
        id_column: Option<String>,
        /// Share of rows held out for the reported backtest.
        #[arg(long, default_value_t = 20)]
        holdout_percent: u32,
        /// L2 regularisation strength (default: 1, 3 or 10, chosen by cross-validation
        /// on the training rows).
        #[arg(long)]
        alpha: Option<f64>,
        /// Quantile bins per numeric column.
        #[arg(long, default_value_t = 20)]
        bins: usize,
        /// Fewest training rows a bin or value needs for its own level.
        #[arg(long, default_value_t = 20)]
        min_count: usize,
        /// Score two text columns as a pair: `"A:B"` (repeatable).
        #[arg(long)]
        cross: Vec<String>,
        /// Up to this many pairs of text columns, chosen by cross-validation on the
        /// training rows.
        #[arg(long, default_value_t = 3)]
        auto_crosses: usize,
        /// The model's name.
        #[arg(long, default_value = "建议评分模型")]
        name: String,
    },
    /// Backtest a model against a CRM export with outcomes: AUC, lift at 10%, calibration.
    Backtest {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        csv: PathBuf,
        #[arg(long)]
        outcome: String,
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Print the backtest (with ROC and lift curves) as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Writes a line to stdout; a reader that went away (`trellis signals eval … | head`) ends
/// the output quietly instead of panicking like `println!`.
macro_rules! say {
    ($($arg:tt)*) => {
        write_out(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// As [`say!`], without the line end.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        write_out(format_args!($($arg)*))?
    };
}

fn write_out(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_fmt(text) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn scoring(command: ScoringCommand) -> anyhow::Result<()> {
    use trellis_server::offline;
    match command {
        ScoringCommand::Suggest {
            csv,
            outcome,
            exclude,
            mapping,
            id_column,
            holdout_percent,
            alpha,
            bins,
            min_count,
            cross,
            auto_crosses,
            name,
        } => {
            let table = offline::read_table(&csv, &offline::read_mapping(mapping.as_deref())?)?;
            let crosses = cross
                .iter()
                .map(|c| {
                    c.split_once(':')
                        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                        .with_context(|| format!("--cross {c:?}: expected \"A:B\""))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let options = trellis_analytics::SuggestOptions {
                outcome,
                exclude,
                id_column,
                holdout_percent,
                bins,
                min_count,
                alpha,
                name,
                crosses,
                auto_crosses,
            };
            let suggestion = trellis_analytics::suggest(&table, &options)?;
            eprint!("{}", offline::render_suggestion(&suggestion));
            say!("{}", serde_json::to_string_pretty(&suggestion.model)?);
        }
        ScoringCommand::Backtest {
            model,
            csv,
            outcome,
            mapping,
            json,
        } => {
            let model = offline::read_model(&model)?;
            let table = offline::read_table(&csv, &offline::read_mapping(mapping.as_deref())?)?;
            let backtest = trellis_analytics::backtest_table(&table, &model, &outcome)?;
            if json {
                say!("{}", serde_json::to_string_pretty(&backtest)?);
            } else {
                say_raw!("{}", offline::render_backtest(&backtest));
            }
        }
    }
    Ok(())
}

async fn signals(command: SignalsCommand) -> anyhow::Result<()> {
    use trellis_server::offline;
    match command {
        SignalsCommand::Eval {
            file,
            part,
            lexicon,
            model,
            rules_only,
            json,
        } => {
            let examples = offline::select_part(offline::read_labelled(&file)?, &part)?;
            let choice = offline::DetectorChoice {
                lexicon: lexicon.as_deref(),
                model: model.as_deref(),
                rules_only,
            };
            let evaluation = offline::detector(&choice)?.evaluate(&examples);
            if json {
                say!("{}", serde_json::to_string_pretty(&evaluation)?);
            } else {
                say_raw!("{}", offline::render_evaluation(&evaluation));
            }
        }
        SignalsCommand::Detect {
            text,
            lexicon,
            model,
            rules_only,
        } => {
            let choice = offline::DetectorChoice {
                lexicon: lexicon.as_deref(),
                model: model.as_deref(),
                rules_only,
            };
            let signals = offline::detector(&choice)?.detect(&text);
            say!("{}", serde_json::to_string_pretty(&signals)?);
        }
        SignalsCommand::Train {
            corpus,
            labels,
            out,
            tune,
            by_writer,
        } => {
            if let Some(groups) = by_writer {
                let options = trellis_model::signals::learned::Options::default();
                let result = offline::by_writer(offline::read_by_file(&corpus)?, groups, &options)?;
                say_raw!("{}", offline::render_by_writer(&result));
                return Ok(());
            }
            let records = offline::read_labelled(&corpus)?;
            if tune {
                for (options, f1, polarity) in offline::tune(records).into_iter().take(15) {
                    say!("micro-F1 {f1:.3}  polarity {polarity:.3}  {options:?}");
                }
                return Ok(());
            }
            let mut extra = Vec::new();
            for file in &labels {
                extra.extend(offline::read_labelled(file)?);
            }
            let options = trellis_model::signals::learned::Options::default();
            let t = offline::train(records, extra, &options);
            say!(
                "fitted on {} train texts; on the {} dev texts:",
                t.train_texts,
                t.dev_texts
            );
            say_raw!("{}", offline::render_evaluation(&t.dev));
            say!(
                "lexicon alone on dev: micro-F1 {:.3}, polarity accuracy {:.3}",
                t.dev_rules.micro.f1,
                t.dev_rules.polarity_accuracy
            );
            let json = t.model.to_json();
            std::fs::write(&out, &json)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
            say!(
                "wrote {} ({} features, {} KB), fitted on {} texts (train, dev and {} labelled by workspaces)",
                out.display(),
                t.model.features(),
                json.len() / 1024,
                t.train_texts + t.dev_texts + t.extra_texts,
                t.extra_texts
            );
        }
        SignalsCommand::Labels { server, token, out } => {
            let (text, count) = trellis_server::cli::labels(&server, &token).await?;
            std::fs::write(&out, text)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
            say!("wrote {count} labels to {}", out.display());
        }
    }
    Ok(())
}

async fn connector(command: ConnectorCommand) -> anyhow::Result<()> {
    use trellis_server::cli;
    match command {
        ConnectorCommand::New { name, dir, sdk } => {
            let root = cli::new(&name, &dir, sdk.as_deref())?;
            say!("created {}", root.display());
            say!("next: cd {} && trellis connector build", root.display());
        }
        ConnectorCommand::Build { dir } => {
            let wasm = cli::build(&dir)?;
            say!("{}", wasm.display());
        }
        ConnectorCommand::Publish {
            file,
            server,
            token,
        } => {
            let answer = cli::publish(&file, &server, &token).await?;
            say!(
                "published {} {} as {} (sha256 {})",
                answer["name"].as_str().unwrap_or("?"),
                answer["version"].as_str().unwrap_or("?"),
                answer["reference"].as_str().unwrap_or("?"),
                answer["sha256"].as_str().unwrap_or("?"),
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve {
            addr,
            data_dir,
            workers,
            studio_dir,
            connectors_dir,
            header_timeout,
            body_timeout,
            send_timeout,
            max_connections,
        } => {
            let config = Config {
                addr,
                db: db::DbLocation::from_env(&data_dir),
                data_dir,
                workers,
                studio_dir: Some(studio_dir),
                connectors_dir,
                http: trellis_server::serve::HttpLimits {
                    header_timeout: std::time::Duration::from_secs(header_timeout.max(1)),
                    body_timeout: std::time::Duration::from_secs(body_timeout.max(1)),
                    send_timeout: std::time::Duration::from_secs(send_timeout.max(1)),
                    max_connections: max_connections.max(1),
                },
            };
            let running = trellis_server::start(config).await?;
            say!("Trellis is listening on http://{}", running.addr);
            tracing::info!(addr = %running.addr, "listening");
            // Ctrl-C, or the SIGTERM a service manager or container runtime sends.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("listening for SIGTERM")?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
                _ = term.recv() => {}
            }
            tracing::info!("shutting down");
            running.stop().await
        }
        Command::Connector { command } => connector(command).await,
        Command::Signals { command } => signals(command).await,
        Command::Scoring { command } => scoring(command),
        Command::Leads {
            command:
                LeadsCommand::Import {
                    csv,
                    mapping,
                    id_column,
                    server,
                    token,
                },
        } => {
            let (created, updated) = trellis_server::cli::import_leads(
                &csv,
                mapping.as_deref(),
                id_column.as_deref(),
                &server,
                &token,
            )
            .await?;
            say!("imported: {created} created, {updated} updated");
            Ok(())
        }
        Command::Migrate { data_dir } => {
            std::fs::create_dir_all(&data_dir)?;
            let location = db::DbLocation::from_env(&data_dir);
            db::connect(&location).await?;
            say!("migrations are up to date");
            Ok(())
        }
    }
}
