//! The subcommands. Each module owns one subcommand; `run` dispatches.

mod admin;
mod admin_handle;
pub(crate) use admin_handle::UsageError;
mod bench;
mod cpn;
mod greenwave;
mod psi;
mod serve;
mod signal;
pub(crate) use signal::{
    city240 as signal_city240, default_data_dir as signal_data_dir, load_jn1 as signal_load_jn1,
};
mod sim;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// citybrain: one open system for a city's data, traffic and compute.
#[derive(Debug, Parser)]
#[command(name = "citybrain", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Configuration file (TOML). Also `CITYBRAIN_CONFIG`.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in one process: the HTTP API (NGSI-LD port 1026 by default).
    Serve(ServeArgs),
    /// Serve with a demo city loaded and running; prints what runs where and how to log in.
    Demo(ServeArgs),
    /// Manage tenants, users, roles, API keys and the audit log directly in the data directory.
    Admin(admin::AdminArgs),
    /// Run the benchmarks and print their figures.
    Bench(bench::BenchArgs),
    /// Traffic simulation (the city's digital twin).
    Sim(sim::SimArgs),
    /// Adaptive traffic signal control: compare controllers in the simulator.
    Signal(signal::SignalArgs),
    /// Computing-power network: placement simulation over member sites.
    Cpn(cpn::CpnArgs),
    /// Secure computation between two nodes: approve a job with an input, run it, get the result.
    Psi(Box<psi::PsiArgs>),
}

/// Where to listen and where the data lives.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// HTTP address to listen on, IP:PORT (default 127.0.0.1:1026).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Data directory (default ./citybrain-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Loads the configuration with command-line overrides applied last.
fn load_config(
    file: Option<PathBuf>,
    listen: Option<&str>,
    data_dir: Option<&PathBuf>,
) -> anyhow::Result<settings::Config> {
    let mut flags = Vec::new();
    if let Some(listen) = listen {
        flags.push((
            "http.listen".to_owned(),
            toml::Value::String(listen.to_owned()),
        ));
    }
    if let Some(dir) = data_dir {
        flags.push((
            "store.data_dir".to_owned(),
            toml::Value::String(dir.display().to_string()),
        ));
    }
    Ok(settings::load(&settings::Sources::from_process(
        file, flags,
    ))?)
}

/// Logs to stderr, as text or JSON lines.
fn init_logging(config: &settings::Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        settings::LogFormat::Json => builder.json().try_init(),
        settings::LogFormat::Text => builder.try_init(),
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(yield_to_the_store_writer)
        .build()?)
}

/// How much nicer than the rest of the process the runtime's threads run.
const WORKER_NICENESS: i32 = 5;

/// Lowers the calling thread's scheduling priority by [`WORKER_NICENESS`] (called as each
/// runtime thread starts), so the store's writer thread, which stays at the process's
/// priority, gets a core as soon as it has work. Every write waits for that one thread's
/// commit, and where the request workers and the writer want more cores than the machine has,
/// a commit that waits for a core holds up every write queued behind it, while a request
/// parsed a little later delays only itself. Measured on 2 vCPUs (stop 19, docs/bench-ngsi-ld.md,
/// round 8). Raising one's own niceness needs no privilege; if the system refuses anyway the
/// thread keeps its priority.
#[cfg(target_os = "linux")]
pub(crate) fn yield_to_the_store_writer() {
    let tid = Some(rustix::thread::gettid());
    let result = rustix::process::getpriority_process(tid)
        .and_then(|now| rustix::process::setpriority_process(tid, (now + WORKER_NICENESS).min(19)));
    if let Err(error) = result {
        tracing::debug!(%error, "a runtime thread keeps its scheduling priority");
    }
}

/// Elsewhere the runtime's threads keep the process's priority.
#[cfg(not(target_os = "linux"))]
pub(crate) fn yield_to_the_store_writer() {}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = load_config(cli.config, args.listen.as_deref(), args.data_dir.as_ref())?;
            init_logging(&config);
            runtime()?.block_on(serve::serve(config, serve::Mode::Serve))?;
        }
        Command::Demo(args) => {
            let config = load_config(cli.config, args.listen.as_deref(), args.data_dir.as_ref())?;
            init_logging(&config);
            runtime()?.block_on(serve::serve(config, serve::Mode::Demo))?;
        }
        Command::Admin(args) => {
            let config = load_config(cli.config, None, args.data_dir())?;
            runtime()?.block_on(admin::run(config, args))?;
        }
        Command::Bench(args) => return bench::run(args),
        Command::Sim(args) => return sim::run(args),
        Command::Cpn(args) => return cpn::run(args),
        Command::Signal(args) => return signal::run(args),
        Command::Psi(args) => return psi::run(*args),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// A runtime thread ends up 5 nicer than the thread that started it (at most 19), and the
    /// starting thread keeps its own priority.
    #[test]
    fn runtime_threads_yield_to_the_store_writer() {
        let own = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_start(move || {
                super::yield_to_the_store_writer();
                let tid = Some(rustix::thread::gettid());
                let nice = rustix::process::getpriority_process(tid).unwrap();
                record.lock().unwrap().push(nice);
            })
            .build()
            .unwrap();
        drop(runtime);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(
            seen.iter().all(|&n| n == (own + 5).min(19)),
            "{seen:?}, own {own}"
        );
        let after = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(after, own);
    }
}
