//! A cluster of real `raftkv` processes on loopback, for the end-to-end tests.
#![allow(dead_code)]

pub mod linear;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Clusters in one test binary run one at a time: the machine has few cores.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// A port free now, from below the kernel's ephemeral range (`raftkv::local::free_port`).
pub fn free_port() -> u16 {
    raftkv::local::free_port().expect("a free port")
}

pub struct NodeProc {
    pub id: u64,
    pub client_port: u16,
    pub peer_port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

/// The cluster; dropping it kills every child.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub nodes: Vec<NodeProc>,
    pub peers: String,
    pub clients: String,
    pub extra: Vec<String>,
    pub http: reqwest::Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            // Keep the logs of a failed run readable.
            for n in &self.nodes {
                let log = self.tmp.path().join(format!("node{}.log", n.id));
                if let Ok(text) = std::fs::read_to_string(&log) {
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    eprintln!("---- node {} log (last lines) ----", n.id);
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

impl Cluster {
    /// Starts `n` nodes with extra `serve` flags and waits until all are healthy.
    pub async fn start(n: u64, extra: &[&str]) -> Cluster {
        // RAFTKV_KEEP=1 keeps the data folders and logs of a run.
        let keep = std::env::var_os("RAFTKV_KEEP").is_some();
        let tmp = tempfile::Builder::new()
            .prefix("raftkv-test-")
            .disable_cleanup(keep)
            .tempdir()
            .unwrap();
        if keep {
            eprintln!("cluster folder: {}", tmp.path().display());
        }
        let mut nodes = Vec::new();
        for id in 1..=n {
            nodes.push(NodeProc {
                id,
                client_port: free_port(),
                peer_port: free_port(),
                dir: tmp.path().join(format!("node{id}")),
                child: None,
            });
        }
        let peers = nodes
            .iter()
            .map(|n| format!("{}=127.0.0.1:{}", n.id, n.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let clients = nodes
            .iter()
            .map(|n| format!("{}=127.0.0.1:{}", n.id, n.client_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            tmp,
            nodes,
            peers,
            clients,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        for i in 0..c.nodes.len() {
            c.spawn(i, false);
        }
        for i in 0..c.nodes.len() {
            c.wait_healthy(i, Duration::from_secs(30)).await;
        }
        c
    }

    fn spawn(&mut self, i: usize, join: bool) {
        let n = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join(format!("node{}.log", n.id)))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftkv"));
        cmd.arg("serve")
            .arg(format!("--id={}", n.id))
            .arg(format!("--peers={}", self.peers))
            .arg(format!("--peer-clients={}", self.clients))
            .arg(format!("--data-dir={}", n.dir.display()))
            .arg(format!("--listen-client=127.0.0.1:{}", n.client_port))
            .arg(format!("--listen-peer=127.0.0.1:{}", n.peer_port))
            .arg("--tick-ms=50")
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if join {
            cmd.arg("--join");
        }
        let child = cmd.spawn().unwrap();
        self.nodes[i].child = Some(child);
    }

    /// Adds a node (not started) to the process list; returns its index.
    pub fn add_node_proc(&mut self, id: u64) -> usize {
        self.nodes.push(NodeProc {
            id,
            client_port: free_port(),
            peer_port: free_port(),
            dir: self.tmp.path().join(format!("node{id}")),
            child: None,
        });
        self.nodes.len() - 1
    }

    /// Starts a new node with `--join` (after it was added with POST /members).
    pub fn start_joining(&mut self, i: usize) {
        // A joining node learns the existing members from --peers.
        let me = &self.nodes[i];
        self.peers = format!("{},{}=127.0.0.1:{}", self.peers, me.id, me.peer_port);
        self.clients = format!("{},{}=127.0.0.1:{}", self.clients, me.id, me.client_port);
        self.spawn(i, true);
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].client_port)
    }

    pub fn index_of(&self, id: u64) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none());
        self.spawn(i, false);
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    pub async fn wait_healthy(&self, i: usize, within: Duration) {
        let until = Instant::now() + within;
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/health", self.url(i)))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < until,
                "node {} not healthy within {within:?}",
                self.nodes[i].id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn status(&self, i: usize) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/status", self.url(i)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// The leader id as seen by any running node.
    pub async fn leader(&self) -> Option<u64> {
        for i in 0..self.nodes.len() {
            if !self.is_running(i) {
                continue;
            }
            if let Some(s) = self.status(i).await {
                let l = s["leader"].as_u64().unwrap_or(0);
                if l != 0 {
                    return Some(l);
                }
            }
        }
        None
    }

    pub async fn isolate(&self, i: usize, on: bool) {
        let r = self
            .http
            .post(format!("{}/debug/isolate?on={on}", self.url(i)))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn put(
        &self,
        i: usize,
        key: &str,
        value: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .put(format!("{}/kv/{key}", self.url(i)))
            .body(value.to_string())
            .send()
            .await
    }

    /// A linearizable GET: `Some(value)`, or `None` when absent. Panics on other outcomes.
    pub async fn get(&self, i: usize, key: &str) -> Option<String> {
        let r = self
            .http
            .get(format!("{}/kv/{key}", self.url(i)))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => Some(r.text().await.unwrap()),
            404 => None,
            s => panic!("GET {key} on node {}: status {s}", self.nodes[i].id),
        }
    }

    /// Waits until every running node has applied the same index as the leader's commit.
    pub async fn wait_converged(&self, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let mut applied = Vec::new();
            for i in 0..self.nodes.len() {
                if self.is_running(i) {
                    applied.push(self.status(i).await.map(|s| s["applied"].as_u64().unwrap()));
                }
            }
            if applied.iter().all(|a| a.is_some() && *a == applied[0]) {
                return;
            }
            assert!(Instant::now() < until, "no convergence: {applied:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
