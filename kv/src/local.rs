//! `raftkv local`: a cluster of N nodes on loopback, as child processes of this binary.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port free on loopback now, from below the kernel's ephemeral range (Linux hands out
/// 32768 and up for outgoing connections). A port found by binding to port 0 is itself
/// ephemeral: an outgoing connection (the nodes dial each other) could take it before the node
/// starts listening on it. Each port is handed out once per process, from a starting point
/// that differs between processes.
pub fn free_port() -> Result<u16, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 400) * 30;
    for _ in 0..SPAN {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + k) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!("no free port in {LOW}..{}", LOW + SPAN))
}

/// Stops children with SIGTERM (then SIGKILL after a grace period) when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &self.0 {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let until = Instant::now() + Duration::from_secs(5);
        for c in &mut self.0 {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
    }
}

/// Waits until `GET url/health` answers 200.
pub async fn wait_healthy(client: &reqwest::Client, url: &str, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Ok(r) = client.get(format!("{url}/health")).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Runs the local cluster until Ctrl-C or SIGTERM.
pub async fn run(nodes: u64, dir: Option<PathBuf>, base_port: Option<u16>) -> Result<(), String> {
    if nodes == 0 || nodes > 9 {
        return Err("--nodes must be in 1..=9".into());
    }
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::Builder::new()
                .prefix("raftkv-local-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut client_ports = Vec::new();
    let mut peer_ports = Vec::new();
    for i in 0..nodes as u16 {
        match base_port {
            Some(b) => {
                client_ports.push(b + i);
                peer_ports.push(b + 100 + i);
            }
            None => {
                client_ports.push(free_port()?);
                peer_ports.push(free_port()?);
            }
        }
    }
    let join = |ports: &[u16]| {
        ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",")
    };
    let peers = join(&peer_ports);
    let clients = join(&client_ports);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Children(Vec::new());
    for i in 0..nodes as usize {
        let id = i + 1;
        let log =
            std::fs::File::create(dir.join(format!("node{id}.log"))).map_err(|e| e.to_string())?;
        let child = Command::new(&exe)
            .arg("serve")
            .arg(format!("--id={id}"))
            .arg(format!("--peers={peers}"))
            .arg(format!("--peer-clients={clients}"))
            .arg(format!(
                "--data-dir={}",
                dir.join(format!("node{id}")).display()
            ))
            .arg(format!("--listen-client=127.0.0.1:{}", client_ports[i]))
            .arg(format!("--listen-peer=127.0.0.1:{}", peer_ports[i]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning node {id}: {e}"))?;
        children.0.push(child);
    }
    let http = reqwest::Client::new();
    let urls: Vec<String> = client_ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    for (i, u) in urls.iter().enumerate() {
        if !wait_healthy(&http, u, Duration::from_secs(30)).await {
            return Err(format!(
                "node {} at {u} did not become healthy; see {}",
                i + 1,
                dir.join(format!("node{}.log", i + 1)).display()
            ));
        }
    }
    println!(
        "raftkv: {nodes} nodes up (data and logs in {})",
        dir.display()
    );
    for (i, u) in urls.iter().enumerate() {
        println!("  node {}: {u}", i + 1);
    }
    let a = &urls[0];
    let b = urls.get(1).unwrap_or(a);
    println!();
    println!("Try (any node serves any request):");
    println!("  curl -X PUT --data-binary 'hello' {a}/kv/greeting");
    println!("  curl {b}/kv/greeting");
    println!("  curl '{b}/kv/greeting?consistency=serializable'");
    println!("  curl '{a}/kv?prefix=gr'");
    println!("  curl -X DELETE {a}/kv/greeting");
    println!("  curl {a}/members");
    println!("  curl {a}/status");
    println!();
    println!("Ctrl-C stops the cluster.");
    let exited = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if children
                .0
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(Some(_))))
            {
                return;
            }
        }
    };
    tokio::select! {
        _ = crate::server::shutdown_signal() => println!("raftkv: stopping the cluster"),
        _ = exited => eprintln!("raftkv: a node exited; stopping the cluster"),
    }
    drop(children);
    Ok(())
}
