//! The `raftkv` command: `serve`, `local`, `bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use raftkv::node::NodeOptions;

#[derive(Parser)]
#[command(
    name = "raftkv",
    version,
    about = "A replicated key-value server on raftcore"
)]
struct Cli {
    /// Log level (overridden by RUST_LOG): error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(Subcommand)]
enum Sub {
    /// Run one node.
    Serve(ServeArgs),
    /// Start a cluster of N nodes on loopback as child processes.
    Local(LocalArgs),
    /// A closed-loop load generator.
    Bench(raftkv::bench::BenchArgs),
    /// Make a local CA and node certificates for --tls-dir (for trying mutual TLS).
    Certs {
        /// Where to write ca.pem, nodeN.pem and nodeN-key.pem.
        #[arg(long)]
        dir: PathBuf,
        /// Certificates for nodes 1..=N.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// This node's id (1, 2, ...).
    #[arg(long)]
    id: u64,
    /// Peer addresses of the initial members: 1=host:port,2=host:port,...
    #[arg(long)]
    peers: String,
    /// Client addresses of the initial members (shown by GET /members): 1=host:port,...
    #[arg(long, default_value = "")]
    peer_clients: String,
    /// Where the WAL, snapshots and the store live.
    #[arg(long)]
    data_dir: PathBuf,
    /// HTTP address for clients.
    #[arg(long, default_value = "127.0.0.1:2379")]
    listen_client: String,
    /// TCP address for peers.
    #[arg(long, default_value = "127.0.0.1:2380")]
    listen_peer: String,
    /// Join a running cluster (after POST /members on it) instead of bootstrapping.
    #[arg(long)]
    join: bool,
    /// Run the plain Ready loop (persist, send, apply, advance) in one thread.
    #[arg(long)]
    sync_storage: bool,
    /// Tick interval in milliseconds: the heartbeat interval, which also bounds how late a
    /// follower learns that an entry committed when no other append follows it.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Election timeout in ticks (a follower campaigns after 1 to 2 times this).
    #[arg(long, default_value_t = 10)]
    election_ticks: usize,
    /// Entries applied between snapshots (and log compactions).
    #[arg(long, default_value_t = 10_000)]
    snapshot_entries: u64,
    /// WAL segment size in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    segment_size: u64,
    /// Serve POST /debug/isolate (drops all peer traffic): for tests only.
    #[arg(long)]
    fault_injection: bool,
    /// Mutual TLS between peers with ca.pem, nodeID.pem, nodeID-key.pem from this folder
    /// (see `raftkv certs`).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct LocalArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Data folder (default: a temporary folder, removed at exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// First client port; node i uses base+i-1 for clients and base+100+i-1 for peers
    /// (default: free ports chosen by the system).
    #[arg(long)]
    base_port: Option<u16>,
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let res = match cli.cmd {
        Sub::Serve(a) => rt.block_on(serve(a)),
        Sub::Local(a) => rt.block_on(raftkv::local::run(a.nodes, a.dir, a.base_port)),
        Sub::Bench(a) => rt.block_on(raftkv::bench::run(a)),
        Sub::Certs { dir, nodes } => raftkv::tls::make_certs(&dir, nodes).map(|()| {
            println!(
                "raftkv: CA and certificates for nodes 1..={nodes} in {}",
                dir.display()
            );
        }),
    };
    if let Err(e) = res {
        eprintln!("raftkv: error: {e}");
        std::process::exit(1);
    }
    // Do not wait for the node threads: every write is already where it must be.
    std::process::exit(0);
}

async fn serve(a: ServeArgs) -> Result<(), String> {
    let peers = raftkv::server::parse_id_map(&a.peers)?;
    let clients = raftkv::server::parse_id_map(&a.peer_clients)?;
    let tls = match &a.tls_dir {
        Some(d) => Some(raftkv::tls::load(d, a.id)?),
        None => None,
    };
    let opts = NodeOptions {
        id: a.id,
        data_dir: a.data_dir,
        peers,
        clients,
        client_addr: a.listen_client.clone(),
        join: a.join,
        sync_storage: a.sync_storage,
        tick: Duration::from_millis(a.tick_ms.max(1)),
        election_tick: a.election_ticks.max(2),
        snapshot_entries: a.snapshot_entries,
        segment_size: a.segment_size,
        frame_limit: raftkv::transport::DEFAULT_FRAME_LIMIT,
        fault_injection: a.fault_injection,
        tls,
    };
    raftkv::server::serve(opts, a.listen_client, a.listen_peer).await
}
