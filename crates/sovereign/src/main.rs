//! The `sovereign` binary: command-line parsing and wiring only.
//!
//! `sovereign up` builds the engine and serves HTTP; every other subcommand is a client of a
//! running engine (see `client`, and `replay` for feeding recorded ticks). No business logic
//! lives here.

/// Print to stdout; when stdout is gone (`sovereign openapi | head -1`), end quietly instead
/// of panicking.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}
/// `print!` with the same care as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::write_out(format_args!($($arg)*)) };
}

mod anchor;
mod audit;
mod client;
mod deploy;
mod keys;
mod notify;
mod replay;
mod services;
mod simulate;
mod truth;

/// mimalloc instead of the system allocator: the engine allocates many small short-lived
/// objects from several threads, where glibc's arenas contend (measured in docs/benchmarks.md).
/// Built without transparent huge pages: they doubled idle RSS and risk compaction stalls.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sovereign_engine::config::Settings;
use sovereign_engine::Engine;
use sovereign_store::{SqliteOptions, Store};

#[derive(Parser)]
#[command(
    name = "sovereign",
    version,
    about = "Self-hosted trading operations in one binary: tasks, webhooks, risk-checked orders, alerts, supervised services, an audit trail.",
    long_about = "Self-hosted trading operations in one binary: scheduled tasks and webhooks, risk-checked \
                  orders on a paper broker, signals, alerts that arrive, the services of your stack \
                  supervised and configured from one Truth, a tamper-evident audit trail and file anchors.\n\n\
                  Start the engine with `sovereign up`; the other commands talk to a running engine \
                  (--url, default http://127.0.0.1:8080)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine: HTTP API, scheduler, webhook intake, alerts, and the config's services.
    #[command(alias = "serve")]
    Up(UpArgs),
    /// List, register, run or remove tasks on a running engine.
    Tasks {
        #[command(subcommand)]
        command: client::TasksCommand,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Show recent task results (newest first).
    Results(client::ResultsArgs),
    /// API keys (sov_…): create (shown once), list, revoke. Works without a key for whoever can
    /// write the data dir: offline when no engine runs, else through the engine's socket in it.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
        /// The data dir of the engine the keys are for.
        #[arg(
            long,
            default_value = "./sovereign-data",
            env = "SOVEREIGN_DATA_DIR",
            global = true
        )]
        data_dir: PathBuf,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Venues: `gateway simulate ninjatrader DIR` stands in for NinjaTrader's file interface.
    Gateway {
        #[command(subcommand)]
        command: simulate::GatewayCommand,
    },
    /// Anchor files (size, SHA-256, purpose, optional signature) and verify them later.
    Anchor {
        #[command(subcommand)]
        command: anchor::AnchorCommand,
    },
    /// Export or verify the audit trail (hash-chained record of every action).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Staged rollouts of a deploy plan: run, status, history, promote, pause, resume, abort,
    /// rollback --to VERSION.
    Deploy {
        #[command(subcommand)]
        command: deploy::DeployCommand,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Raise alerts, test the alert channels, list the outbox.
    Notify {
        #[command(subcommand)]
        command: notify::NotifyCommand,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// List the supervised services: state, pid, uptime, restarts, health.
    Services {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Start a service (once its dependencies are met).
    Start {
        name: String,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Stop a service: its stop signal to the whole process group, SIGKILL after its stop timeout.
    Stop {
        name: String,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Restart a service.
    Restart {
        name: String,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Show a service's log (timestamped stdout/stderr); -f follows it.
    Logs {
        name: String,
        /// Lines to show first (at most 1000).
        #[arg(long, short = 'n', default_value_t = 200)]
        tail: usize,
        /// Keep printing new lines.
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Build, show (secrets masked unless --reveal) or diff the Truth configuration files.
    Truth {
        #[command(subcommand)]
        command: truth::TruthCommand,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Show the engine's status.
    Status {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// List orders, newest first.
    Orders(client::OrdersArgs),
    /// Place an order: market, or limit/stop/stop-limit from --limit and --stop.
    #[command(after_help = client::ORDER_EXIT_CODES)]
    Order(client::OrderArgs),
    /// Cancel a working order.
    Cancel {
        /// Order id.
        id: String,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Show positions with their P&L.
    Positions {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Show recent fills, newest first.
    Fills(client::FillsArgs),
    /// Show accounts: cash, equity, P&L, trading state.
    Accounts {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// The kill switch: halt trading and cancel every working order.
    ///
    /// Without `--account` (or with `--account all`) every account at once. New orders are
    /// denied until `resume`; only closing orders from `flatten` pass.
    Hardstop(client::HardstopArgs),
    /// Show each venue gateway: connection, reconciliation, orders of unknown state.
    Gateways {
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Compare an account's positions with its venue's now.
    ///
    /// With `--adopt-venue`, the venue's positions become the engine's (one journaled
    /// adjustment per symbol, on the audit trail); the account stays `reducing` until `resume`.
    Reconcile {
        /// The engine account traded at the gateway.
        account: String,
        /// Take the venue's positions as the engine's.
        #[arg(long)]
        adopt_venue: bool,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Resume trading on a halted account (without `--account`: every account).
    Resume(client::StateArgs),
    /// Cancel every working order (of one account, or of all).
    CancelAll {
        /// Only this account (default: every account).
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Close every position with market orders.
    ///
    /// Prints the closing orders. Exits 3 if pre-trade risk denies one of them, 1 if the venue
    /// rejects one (`denied: …` / `rejected: …` on stderr).
    Flatten {
        /// Only this account (default: every account).
        #[arg(long)]
        account: Option<String>,
        /// Why (kept on the audit trail).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Send recorded ticks from a CSV file to a running engine, paced or as fast as possible.
    #[command(
        long_about = "Send recorded ticks from a CSV file to a running engine (POST /api/market/ticks).\n\n\
                      The file has a header naming its columns: ts,symbol,price[,bid,ask,size] in any \
                      order (ts RFC 3339; no quoting). Every row is checked before anything is sent: \
                      the first bad row is reported as FILE:LINE: problem (the header is line 1) and \
                      nothing is sent. Ticks go out in time order, rows with the same ts in one request; \
                      if the engine refuses a request, the replay stops there and names its first row.\n\n\
                      Progress is shown on stderr when it is a terminal; the summary line goes to stdout."
    )]
    Replay(replay::ReplayArgs),
    /// Check a config file and report every problem in it, in one run.
    ///
    /// Exits 1 when the file has problems (`up` refuses it too). A service whose program is
    /// not found now is a warning, as it is for `up` (that service fails when started, the rest
    /// run); `--strict` makes warnings fail the check.
    Check {
        /// The TOML file to check.
        config: PathBuf,
        /// Exit 1 on warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
}

#[derive(Args)]
struct UpArgs {
    /// Address to bind (default 127.0.0.1, or the config's server.bind).
    #[arg(long)]
    bind: Option<String>,
    /// Port to listen on; 0 picks a free one (default 8080, or the config's server.port).
    #[arg(long)]
    port: Option<u16>,
    /// Where the store and other state live.
    #[arg(long, default_value = "./sovereign-data", env = "SOVEREIGN_DATA_DIR")]
    data_dir: PathBuf,
    /// TOML config file; without one, built-in defaults.
    #[arg(long, env = "SOVEREIGN_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Write to stdout; a closed pipe ends the process with status 0 (the reader has what it
/// wanted), any other write error with status 1.
pub(crate) fn write_out(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Up(args) => up(args),
        Command::Tasks { command, client } => client::run(client::Request::Tasks(command), &client),
        Command::Results(args) => {
            let client = args.client.clone();
            client::run(client::Request::Results(args), &client)
        }
        Command::Status { client } => client::run(client::Request::Status, &client),
        Command::Audit { command, client } => audit::run(command, &client),
        Command::Notify { command, client } => notify::run(command, &client),
        Command::Deploy { command, client } => deploy::run(command, &client),
        Command::Services { client } => services::list(&client),
        Command::Truth { command, client } => truth::run(command, &client),
        Command::Start { name, client } => services::control("start", &name, &client),
        Command::Stop { name, client } => services::control("stop", &name, &client),
        Command::Restart { name, client } => services::control("restart", &name, &client),
        Command::Logs {
            name,
            tail,
            follow,
            client,
        } => services::logs(&name, tail, follow, &client),
        Command::Anchor { command } => anchor::run(command),
        Command::Keys {
            command,
            data_dir,
            client,
        } => keys::run(command, data_dir, &client),
        Command::Gateway { command } => simulate::run(command),
        Command::Orders(args) => trading(client::Trading::Orders(args.clone()), &args.client),
        Command::Order(args) => trading(client::Trading::Order(args.clone()), &args.client),
        Command::Cancel { id, client } => trading(client::Trading::Cancel(id), &client),
        Command::Positions { account, client } => {
            trading(client::Trading::Positions(account), &client)
        }
        Command::Fills(args) => trading(client::Trading::Fills(args.clone()), &args.client),
        Command::Accounts { client } => trading(client::Trading::Accounts, &client),
        Command::Hardstop(args) => {
            trading(client::Trading::Hardstop(args.clone()), &args.state.client)
        }
        Command::Gateways { client } => trading(client::Trading::Gateways, &client),
        Command::Reconcile {
            account,
            adopt_venue,
            client,
        } => trading(client::Trading::Reconcile(account, adopt_venue), &client),
        Command::Resume(args) => trading(client::Trading::Resume(args.clone()), &args.client),
        Command::Flatten {
            account,
            reason,
            client,
        } => trading(client::Trading::Flatten(account, reason), &client),
        Command::CancelAll { account, client } => {
            trading(client::Trading::CancelAll(account), &client)
        }
        Command::Replay(args) => replay::run(&args),
        Command::Check { config, strict } => check(&config, strict),
        Command::Openapi => {
            outln!("{}", sovereign_http::openapi_json());
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // Already phrased (`denied: …`, `FILE:LINE: …`), with its own exit code.
        Err(e) if e.is::<client::Reported>() => {
            let exit = e
                .downcast_ref::<client::Reported>()
                .map_or(client::EXIT_FAILURE, |r| r.exit);
            eprintln!("{e}");
            ExitCode::from(exit)
        }
        Err(e) => {
            let text = format!("{e:#}");
            for line in text.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Every problem of a config file, including programs of services that cannot be found now.
fn check(config: &std::path::Path, strict: bool) -> anyhow::Result<()> {
    let settings = Settings::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let warnings = settings.warnings();
    for w in &warnings {
        eprintln!("warning: {}: {w}", config.display());
    }
    if strict && !warnings.is_empty() {
        anyhow::bail!("{} warning(s) and --strict", warnings.len());
    }
    match warnings.len() {
        0 => outln!("{}: ok", config.display()),
        n => outln!("{}: ok, with {n} warning(s)", config.display()),
    }
    Ok(())
}

fn trading(command: client::Trading, args: &client::ClientArgs) -> anyhow::Result<()> {
    client::run(client::Request::Trading(command), args)
}

/// Logging from `RUST_LOG` (a tracing filter) or else `LOG_LEVEL` (DEBUG|INFO|WARN|ERROR|TRACE,
/// as deploy scripts set it); a value that is neither is refused, never ignored.
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v)
            .map_err(|e| anyhow::anyhow!("RUST_LOG={v:?} is not a log filter: {e}"))?,
        _ => {
            let level = match std::env::var("LOG_LEVEL") {
                Err(_) => "info",
                Ok(l) => match l.trim().to_ascii_uppercase().as_str() {
                    "DEBUG" => "debug",
                    "INFO" | "" => "info",
                    "WARN" | "WARNING" => "warn",
                    "ERROR" | "CRITICAL" => "error",
                    "TRACE" => "trace",
                    _ => anyhow::bail!(
                        "LOG_LEVEL={l:?} is not a level: use DEBUG, INFO, WARN, ERROR or TRACE"
                    ),
                },
            };
            EnvFilter::new(level)
        }
    };
    // Colours only for a person at a terminal; a log file or a supervisor gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    init_logging(args.log_format)?;
    let mut settings = match &args.config {
        Some(path) => Settings::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Settings::default(),
    };
    if let Some(bind) = args.bind {
        settings.server.bind = bind;
    }
    if let Some(port) = args.port {
        settings.server.port = port;
    }
    let server = &settings.server;
    let addr: SocketAddr = format!("{}:{}", server.bind, server.port)
        .parse()
        .or_else(|_| format!("[{}]:{}", server.bind, server.port).parse())
        .with_context(|| format!("bind address {:?} is not an IP address", server.bind))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // A start that fails leaves no new, empty data dir behind (once the engine has started,
    // the data dir holds what it did and is never removed).
    let fresh = !args.data_dir.exists();
    let mut running = false;
    let outcome = runtime.block_on(serve(
        args.data_dir.clone(),
        addr,
        settings,
        started,
        &mut running,
    ));
    if outcome.is_err() && !running && fresh && dir_holds_only_new_store(&args.data_dir) {
        let _ = std::fs::remove_dir_all(&args.data_dir);
    }
    outcome
}

/// Whether a data dir created by this start holds nothing but what the store put there.
fn dir_holds_only_new_store(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == "LOCK" || name.starts_with("sovereign.db")
        })
    })
}

/// The Unix socket `up` listens on in its data dir (mode 0600): requests on it are the data
/// dir's owner's, admin without a key.
#[cfg(unix)]
pub(crate) const SOCKET: &str = "sovereign.sock";

async fn serve(
    data_dir: PathBuf,
    addr: SocketAddr,
    mut settings: Settings,
    started: Instant,
    running: &mut bool,
) -> anyhow::Result<()> {
    // Bind first: a port in use fails before the data dir is touched; services started by
    // the engine learn its URL (SOVEREIGN_URL); connections made before the engine is
    // ready wait in the backlog.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("listener has no address")?;
    let certificates = match &settings.server.tls {
        Some(tls) => Some(
            sovereign_http::tls::Certificates::load(&tls.cert, &tls.key)
                .map_err(|e| anyhow::anyhow!("server.tls: {e}"))?,
        ),
        None => None,
    };
    let scheme = if certificates.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoints = vec![sovereign_http::server::Endpoint {
        listener: sovereign_http::server::Listener::Tcp(listener),
        tls: certificates,
        webhooks_only: false,
    }];
    let mut plain_at = None;
    if let Some(plain) = &settings.server.plain {
        let at = format!("{}:{}", plain.bind, plain.port);
        let at: SocketAddr = at
            .parse()
            .or_else(|_| format!("[{}]:{}", plain.bind, plain.port).parse())
            .with_context(|| format!("server.plain.bind {:?} is not an IP address", plain.bind))?;
        let listener = tokio::net::TcpListener::bind(at)
            .await
            .with_context(|| format!("cannot listen on {at} (server.plain)"))?;
        plain_at = Some(listener.local_addr().context("listener has no address")?);
        endpoints.push(sovereign_http::server::Endpoint {
            listener: sovereign_http::server::Listener::Tcp(listener),
            tls: None,
            webhooks_only: true,
        });
    }
    let store = Store::open_sqlite(&data_dir, SqliteOptions::default())
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    // The data dir's socket, for whoever can write the data dir (`sovereign keys` without a
    // key). Bound only now: the store holds the data dir's lock, so a socket file still there
    // was left by an engine that was killed. Removed when `socket` drops.
    #[cfg(unix)]
    let socket_path = data_dir.join(SOCKET);
    #[cfg(unix)]
    let socket = match sovereign_http::server::bind_unix(&socket_path) {
        Ok((listener, file)) => {
            endpoints.push(sovereign_http::server::Endpoint {
                listener: sovereign_http::server::Listener::Unix(listener),
                tls: None,
                webhooks_only: false,
            });
            Some(file)
        }
        Err(e) => {
            tracing::warn!(
                "cannot listen on {}: {e}; while the engine runs, `sovereign keys` needs an admin key",
                socket_path.display()
            );
            None
        }
    };
    for warning in settings.warnings() {
        tracing::warn!("{warning}: the service fails when started until this is fixed");
    }
    settings.data_dir = data_dir.clone();
    let grace = settings.server.shutdown_timeout;
    settings.url = format!("{scheme}://{local}");
    let engine = std::sync::Arc::new(
        Engine::start(settings, store)
            .await
            .context("cannot start the engine")?,
    );
    *running = true;
    outln!(
        "sovereign {} listening on {scheme}://{local} (data: {}, ready in {} ms)",
        env!("CARGO_PKG_VERSION"),
        data_dir.display(),
        started.elapsed().as_millis()
    );
    if let Some(at) = plain_at {
        outln!("webhook and signal routes also on http://{at}");
    }
    if !engine.settings().server.is_loopback()
        && engine.access().mode() == sovereign_engine::access::Mode::Local
    {
        tracing::warn!(%local, "listening beyond loopback in access.mode = \"local\": requests from this machine need no key");
    }
    // On a signal, stop the HTTP intake and drain the engine at the same time, so that
    // requests waiting on a run (POST /execute) end when the grace period does.
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let draining = engine.clone();
    let drain = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_http.send(());
        tracing::info!("stopping: finishing in-flight runs");
        draining.shutdown(grace, TASKS_WAIT).await
    });
    let served = sovereign_http::serve(endpoints, &engine, async move {
        let _ = http_stopped.await;
    })
    .await;
    // Nothing is served any more: the socket file goes.
    // The socket file goes once nothing is served (no Unix socket on Windows: `sovereign keys`
    // there needs an admin key while the engine runs).
    #[cfg(unix)]
    drop(socket);
    served.context("HTTP server failed")?;
    let left = drain.await.context("shutdown task failed")?;
    if left > 0 {
        anyhow::bail!(
            "{left} engine tasks were still running {} s after shutdown began",
            TASKS_WAIT.as_secs()
        );
    }
    tracing::info!("stopped: every task the engine started has finished");
    Ok(())
}

/// How long shutdown waits for the engine's tasks once every capability was told to stop.
const TASKS_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

async fn shutdown_signal() {
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    // Windows has no SIGTERM: Ctrl-C (or closing the console) stops the engine.
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}
