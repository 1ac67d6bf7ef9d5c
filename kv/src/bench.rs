//! `raftkv bench`: a closed-loop load generator against raftkv or etcd's v3 JSON gateway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

/// Arguments of `raftkv bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Base URLs, comma-separated; clients are spread over them.
    #[arg(long)]
    pub target: String,
    /// `raftkv` or `etcd` (v3 JSON gateway: /v3/kv/put, /v3/kv/range).
    #[arg(long, default_value = "raftkv")]
    pub target_kind: String,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Total operations.
    #[arg(long, default_value_t = 10_000)]
    pub ops: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 128)]
    pub value_size: usize,
    /// Fraction of reads, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    pub read_ratio: f64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Successful latencies, sorted, in microseconds.
    pub latencies_us: Vec<u64>,
}

impl BenchResult {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 * p).ceil() as usize)
            .clamp(1, self.latencies_us.len())
            - 1;
        self.latencies_us[i] as f64 / 1000.0
    }

    /// The summary line.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "ops={} ops_per_sec={:.1} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} errors={}",
            self.ops,
            self.ops as f64 / secs,
            self.pct(0.50),
            self.pct(0.99),
            self.pct(0.999),
            self.errors
        )
    }
}

/// Runs a benchmark and returns its figures.
pub async fn execute(a: &BenchArgs) -> Result<BenchResult, String> {
    let targets: Vec<String> = a
        .target
        .split(',')
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if targets.is_empty() {
        return Err("--target is empty".into());
    }
    let etcd = match a.target_kind.as_str() {
        "raftkv" => false,
        "etcd" => true,
        k => return Err(format!("unknown --target-kind {k}")),
    };
    if !(0.0..=1.0).contains(&a.read_ratio) {
        return Err("--read-ratio must be in [0, 1]".into());
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.clients.max(1))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let value = "x".repeat(a.value_size);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let progress = {
        let done = done.clone();
        let total = a.ops;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let d = done.load(Ordering::Relaxed);
                let width = 40;
                let filled = (d * width / total.max(1)) as usize;
                eprint!(
                    "\r[{}{}] {d}/{total}",
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled.min(width as usize))
                );
            }
        })
    };
    let mut tasks = Vec::new();
    for c in 0..a.clients.max(1) {
        let http = http.clone();
        let base = targets[c % targets.len()].clone();
        let (next, errors, done) = (next.clone(), errors.clone(), done.clone());
        let value = value.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= a.ops {
                    break;
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let key = format!("bench-{}", seed % a.keys.max(1));
                let read = (seed >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < a.read_ratio;
                let t = Instant::now();
                let ok = if etcd {
                    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
                    let (path, body) = if read {
                        ("range", json!({"key": b64(&key)}))
                    } else {
                        ("put", json!({"key": b64(&key), "value": b64(&value)}))
                    };
                    http.post(format!("{base}/v3/kv/{path}"))
                        .json(&body)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false)
                } else if read {
                    http.get(format!("{base}/kv/{key}"))
                        .send()
                        .await
                        .map(|r| r.status().is_success() || r.status().as_u16() == 404)
                        .unwrap_or(false)
                } else {
                    http.put(format!("{base}/kv/{key}"))
                        .body(value.clone())
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false)
                };
                if ok {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            lat
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.map_err(|e| e.to_string())?);
    }
    let elapsed = start.elapsed();
    progress.abort();
    eprintln!();
    latencies_us.sort_unstable();
    Ok(BenchResult {
        ops: latencies_us.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies_us,
    })
}

/// `raftkv bench`: prints the figures, ending with the one summary line on stdout.
pub async fn run(a: BenchArgs) -> Result<(), String> {
    let r = execute(&a).await?;
    eprintln!(
        "bench: target={} kind={} clients={} value_size={} read_ratio={} elapsed={:.2}s",
        a.target,
        a.target_kind,
        a.clients,
        a.value_size,
        a.read_ratio,
        r.elapsed.as_secs_f64()
    );
    println!("{}", r.line());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_has_the_exact_shape() {
        let r = BenchResult {
            ops: 4,
            errors: 1,
            elapsed: Duration::from_secs(2),
            latencies_us: vec![1000, 2000, 3000, 4000],
        };
        assert_eq!(
            r.line(),
            "ops=4 ops_per_sec=2.0 p50_ms=2.000 p99_ms=4.000 p999_ms=4.000 errors=1"
        );
    }
}
