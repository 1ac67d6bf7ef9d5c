//! End-to-end tests: real `raftkv` processes on loopback, real disks, kill -9.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::linear::{check, Op, OpKind};
use common::{Cluster, SERIAL};
use serde_json::json;

/// Runs a test body with a time bound, one cluster at a time.
fn run<F: Future<Output = ()>>(limit: Duration, body: F) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(limit, body)
            .await
            .expect("test exceeded its time bound");
    });
}

/// PUT until acknowledged (200) or the deadline; returns whether it was acknowledged.
async fn put_until_ok(c: &Cluster, key: &str, value: &str, within: Duration) -> bool {
    let until = Instant::now() + within;
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        let node = i % c.nodes.len();
        if !c.is_running(node) {
            continue;
        }
        if let Ok(r) = c.put(node, key, value).await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn three_processes_survive_kill9_of_leader_and_follower() {
    kill9_scenario(&[]);
}

/// The same with the plain Ready loop (`--sync-storage`) instead of asynchronous writes.
#[test]
fn three_processes_survive_kill9_with_sync_storage() {
    kill9_scenario(&["--sync-storage"]);
}

fn kill9_scenario(flags: &[&str]) {
    run(Duration::from_secs(90), async {
        let mut c = Cluster::start(3, flags).await;
        let mut acked = BTreeMap::new();
        for k in 0..20 {
            let (key, value) = (format!("k{k}"), format!("v{k}"));
            let r = c.put(k % 3, &key, &value).await.unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            acked.insert(key, value);
        }
        // Kill the leader, keep writing through the others, bring it back.
        let leader = c.leader().await.expect("a leader");
        let li = c.index_of(leader);
        c.kill9(li);
        for k in 20..40 {
            let (key, value) = (format!("k{k}"), format!("v{k}"));
            if put_until_ok(&c, &key, &value, Duration::from_secs(10)).await {
                acked.insert(key, value);
            }
        }
        assert!(acked.len() >= 30, "the two survivors kept serving");
        c.restart(li);
        c.wait_healthy(li, Duration::from_secs(30)).await;
        // Kill a follower too.
        let leader = c.leader().await.expect("a leader");
        let fi = (0..3).find(|&i| c.nodes[i].id != leader).unwrap();
        c.kill9(fi);
        for k in 40..50 {
            let (key, value) = (format!("k{k}"), format!("v{k}"));
            if put_until_ok(&c, &key, &value, Duration::from_secs(10)).await {
                acked.insert(key, value);
            }
        }
        c.restart(fi);
        for i in 0..3 {
            c.wait_healthy(i, Duration::from_secs(30)).await;
        }
        // Every acknowledged write is readable on every node.
        for i in 0..3 {
            for (k, v) in &acked {
                assert_eq!(c.get(i, k).await.as_deref(), Some(v.as_str()), "node {i}");
            }
        }
        // Versions and compare-and-set across nodes.
        let r = c
            .http
            .put(format!("{}/kv/k0?if_version=1", c.url(1)))
            .body("cas")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = c
            .http
            .put(format!("{}/kv/k0?if_version=1", c.url(2)))
            .body("cas2")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "version_mismatch");
        assert_eq!(body["version"], 2);
    });
}

/// Concurrent clients on three keys while a nemesis kills -9 and restarts nodes, isolates one
/// and transfers leadership; the recorded history must be linearizable and every node must
/// end with the same state.
#[test]
fn nemesis_history_is_linearizable() {
    nemesis_scenario(&[]);
}

/// The same with the plain Ready loop (`--sync-storage`).
#[test]
fn nemesis_history_is_linearizable_with_sync_storage() {
    nemesis_scenario(&["--sync-storage"]);
}

fn nemesis_scenario(flags: &[&str]) {
    run(Duration::from_secs(150), async {
        let mut args = vec!["--fault-injection"];
        args.extend_from_slice(flags);
        let c = Arc::new(tokio::sync::RwLock::new(Cluster::start(3, &args).await));
        let history: Arc<Mutex<Vec<Op>>> = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let now = move || t0.elapsed().as_micros() as u64;
        let keys = ["a", "b", "c"];
        let mut clients = Vec::new();
        for cid in 0..4u64 {
            let (c, history, stop) = (c.clone(), history.clone(), stop.clone());
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(3))
                    .build()
                    .unwrap();
                let mut seq = 0u64;
                let mut rng = cid.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while !stop.load(Ordering::Relaxed) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let node = (rng % 3) as usize;
                    let key = keys[((rng >> 8) % 3) as usize].to_string();
                    let roll = (rng >> 16) % 10;
                    let url = c.read().await.url(node);
                    seq += 1;
                    let call = now();
                    if roll < 5 {
                        let value = format!("c{cid}-{seq}");
                        let r = http
                            .put(format!("{url}/kv/{key}?timeout_ms=1500"))
                            .body(value.clone())
                            .send()
                            .await;
                        let ret = match r.map(|r| r.status().as_u16()) {
                            Ok(200) => Some(Some(now())),
                            Ok(400..=499) | Ok(503) => None, // not applied, for sure
                            _ => Some(None),                 // unknown
                        };
                        if let Some(ret) = ret {
                            history.lock().unwrap().push(Op {
                                key,
                                kind: OpKind::Write(Some(value)),
                                call,
                                ret,
                            });
                        }
                    } else if roll < 6 {
                        let r = http
                            .delete(format!("{url}/kv/{key}?timeout_ms=1500"))
                            .send()
                            .await;
                        let ret = match r.map(|r| r.status().as_u16()) {
                            Ok(200) => Some(Some(now())),
                            Ok(400..=499) | Ok(503) => None,
                            _ => Some(None),
                        };
                        if let Some(ret) = ret {
                            history.lock().unwrap().push(Op {
                                key,
                                kind: OpKind::Write(None),
                                call,
                                ret,
                            });
                        }
                    } else {
                        let r = http
                            .get(format!("{url}/kv/{key}?timeout_ms=1500"))
                            .send()
                            .await;
                        let seen = match r {
                            Ok(r) if r.status() == 200 => Some(Some(r.text().await.unwrap())),
                            Ok(r) if r.status() == 404 => Some(None),
                            _ => None,
                        };
                        if let Some(v) = seen {
                            history.lock().unwrap().push(Op {
                                key,
                                kind: OpKind::Read(v),
                                call,
                                ret: Some(now()),
                            });
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        // The nemesis: kill -9 and restart, isolate and heal, transfer leadership.
        let mut events = Vec::new();
        let mut transfers_ok = 0;
        for round in 0..3usize {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let victim = round % 3;
            c.write().await.kill9(victim);
            events.push(format!("kill -9 node {}", victim + 1));
            tokio::time::sleep(Duration::from_millis(2000)).await;
            c.write().await.restart(victim);
            c.read()
                .await
                .wait_healthy(victim, Duration::from_secs(30))
                .await;
            let iso = (round + 1) % 3;
            c.read().await.isolate(iso, true).await;
            events.push(format!("isolate node {}", iso + 1));
            tokio::time::sleep(Duration::from_millis(2000)).await;
            c.read().await.isolate(iso, false).await;
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let cl = c.read().await;
            if let Some(leader) = cl.leader().await {
                let to = (leader % 3) + 1;
                let r = cl
                    .http
                    .post(format!(
                        "{}/leader/transfer/{to}?timeout_ms=3000",
                        cl.url(0)
                    ))
                    .send()
                    .await;
                let status = r.map(|r| r.status().as_u16());
                if status.as_ref().is_ok_and(|s| *s == 200) {
                    transfers_ok += 1;
                }
                events.push(format!("transfer {leader} -> {to}: {status:?}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);
        for t in clients {
            t.await.unwrap();
        }
        let cl = c.read().await;
        for i in 0..3 {
            cl.wait_healthy(i, Duration::from_secs(30)).await;
        }
        // Final reads on every node join the history.
        let mut hist = history.lock().unwrap().clone();
        for i in 0..3 {
            for k in keys {
                let call = now();
                let v = cl.get(i, k).await;
                hist.push(Op {
                    key: k.to_string(),
                    kind: OpKind::Read(v),
                    call,
                    ret: Some(now()),
                });
            }
        }
        let writes_ok = hist
            .iter()
            .filter(|o| matches!(o.kind, OpKind::Write(_)) && o.ret.is_some())
            .count();
        let reads = hist
            .iter()
            .filter(|o| matches!(o.kind, OpKind::Read(_)))
            .count();
        eprintln!(
            "nemesis: {events:?}; {} ops, {writes_ok} acknowledged writes, {reads} reads",
            hist.len()
        );
        assert!(writes_ok > 50, "the cluster served writes under faults");
        // Transfers are asked through node 1, a follower in some rounds (forwarded).
        assert!(transfers_ok >= 2, "leadership transfers: {events:?}");
        if let Err(e) = check(&hist) {
            panic!("{e}");
        }
        cl.wait_converged(Duration::from_secs(20)).await;
        for k in keys {
            let mut seen = Vec::new();
            for i in 0..3 {
                let r = cl
                    .http
                    .get(format!("{}/kv/{k}?consistency=serializable", cl.url(i)))
                    .send()
                    .await
                    .unwrap();
                let v = if r.status() == 200 {
                    Some(r.text().await.unwrap())
                } else {
                    None
                };
                seen.push(v);
            }
            assert!(seen.iter().all(|v| *v == seen[0]), "{k}: {seen:?}");
        }
    });
}

/// Grow from 3 to 5 voters and shrink back to 3 (removing the leader on the way) while a
/// client writes; nothing acknowledged is lost.
#[test]
fn membership_grow_to_five_and_shrink_back_to_three() {
    run(Duration::from_secs(120), async {
        let c = Arc::new(tokio::sync::RwLock::new(Cluster::start(3, &[]).await));
        let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (c, acked, stop) = (c.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let (key, value) = (format!("m{k}"), format!("v{k}"));
                    // Write through the first node that is still a member at the end (node 2).
                    let url = c.read().await.url(1);
                    if let Ok(r) = http
                        .put(format!("{url}/kv/{key}"))
                        .body(value.clone())
                        .send()
                        .await
                    {
                        if r.status() == 200 {
                            acked.lock().unwrap().insert(key, value);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        // Grow: add 4 and 5 through node 2, then start them with --join.
        for id in [4u64, 5] {
            let i = c.write().await.add_node_proc(id);
            let (url, body) = {
                let cl = c.read().await;
                let n = &cl.nodes[i];
                (
                    cl.url(1),
                    json!({"id": id, "peer_addr": format!("127.0.0.1:{}", n.peer_port),
                           "client_addr": format!("127.0.0.1:{}", n.client_port)}),
                )
            };
            let http = c.read().await.http.clone();
            let r = http
                .post(format!("{url}/members"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            c.write().await.start_joining(i);
            c.read()
                .await
                .wait_healthy(i, Duration::from_secs(30))
                .await;
            // An id in use is refused.
            let r = http
                .post(format!("{url}/members"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 409);
        }
        {
            let cl = c.read().await;
            let m: serde_json::Value = cl
                .http
                .get(format!("{}/members", cl.url(1)))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(m["voters"].as_array().unwrap().len(), 5, "{m}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Shrink: remove the leader if it is not node 2, then others, until {2, 4, 5} remain.
        let mut removed = Vec::new();
        let mut leader = c.read().await.leader().await.expect("a leader");
        if leader == 2 {
            // Node 2 carries the writes; hand leadership to node 1 so the leader can go.
            let cl = c.read().await;
            let r = cl
                .http
                .post(format!("{}/leader/transfer/1?timeout_ms=10000", cl.url(1)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            leader = 1;
        }
        let other = [1u64, 3, 4, 5]
            .into_iter()
            .find(|&id| id != leader)
            .unwrap();
        let order = [leader, other];
        for id in order {
            let cl = c.read().await;
            let r = cl
                .http
                .delete(format!("{}/members/{id}?timeout_ms=10000", cl.url(1)))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "removing {id}: {}",
                r.text().await.unwrap()
            );
            removed.push(id);
            drop(cl);
            let i = c.read().await.index_of(id);
            c.write().await.kill9(i);
            // An unknown member: 404.
            let cl = c.read().await;
            let r = cl
                .http
                .delete(format!("{}/members/{id}", cl.url(1)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404);
        }
        assert!(removed.contains(&leader));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        let cl = c.read().await;
        let remaining: Vec<usize> = (0..cl.nodes.len()).filter(|&i| cl.is_running(i)).collect();
        assert_eq!(remaining.len(), 3);
        for &i in &remaining {
            cl.wait_healthy(i, Duration::from_secs(30)).await;
        }
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() > 20, "writes went on: {}", acked.len());
        for &i in &remaining {
            for (k, v) in &acked {
                assert_eq!(
                    cl.get(i, k).await.as_deref(),
                    Some(v.as_str()),
                    "node index {i}"
                );
            }
        }
        let st = cl.status(remaining[0]).await.unwrap();
        assert_eq!(st["members"]["voters"].as_array().unwrap().len(), 3, "{st}");
    });
}

/// A node that was down while the log was compacted catches up by snapshot.
#[test]
fn lagging_node_catches_up_by_snapshot_after_compaction() {
    snapshot_scenario(&[]);
}

/// The same with the plain Ready loop (`--sync-storage`).
#[test]
fn lagging_node_catches_up_by_snapshot_with_sync_storage() {
    snapshot_scenario(&["--sync-storage"]);
}

fn snapshot_scenario(flags: &[&str]) {
    run(Duration::from_secs(90), async {
        let mut args = vec!["--snapshot-entries=40", "--segment-size=4096"];
        args.extend_from_slice(flags);
        let mut c = Cluster::start(3, &args).await;
        let leader = c.leader().await.expect("a leader");
        let down = (0..3).find(|&i| c.nodes[i].id != leader).unwrap();
        c.kill9(down);
        let up: Vec<usize> = (0..3).filter(|&i| i != down).collect();
        for k in 0..200 {
            let r = c
                .put(up[k % 2], &format!("s{k}"), &format!("v{k}"))
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let li = c.index_of(c.leader().await.unwrap());
        let st = c.status(li).await.unwrap();
        assert!(
            st["log"]["first"].as_u64().unwrap() > 100,
            "compacted: {st}"
        );
        c.restart(down);
        c.wait_healthy(down, Duration::from_secs(30)).await;
        c.wait_converged(Duration::from_secs(30)).await;
        let metrics = c
            .http
            .get(format!("{}/metrics", c.url(down)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let installed: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("raftkv_snapshots_installed_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(installed >= 1, "caught up by snapshot:\n{metrics}");
        for k in 0..200 {
            let r = c
                .http
                .get(format!("{}/kv/s{k}?consistency=serializable", c.url(down)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "s{k}");
            assert_eq!(r.text().await.unwrap(), format!("v{k}"));
        }
        // And it survives a restart from the installed snapshot.
        c.kill9(down);
        c.restart(down);
        c.wait_healthy(down, Duration::from_secs(30)).await;
        assert_eq!(c.get(down, "s7").await.as_deref(), Some("v7"));
    });
}

/// Peers over mutual TLS with certificates from `raftkv certs`.
#[test]
fn cluster_replicates_over_mutual_tls() {
    run(Duration::from_secs(60), async {
        let certs = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["certs", "--nodes", "3", "--dir"])
            .arg(certs.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let flag = format!("--tls-dir={}", certs.path().display());
        let c = Cluster::start(3, &[flag.as_str()]).await;
        for k in 0..10 {
            let r = c
                .put(k % 3, &format!("t{k}"), &format!("v{k}"))
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        for i in 0..3 {
            for k in 0..10 {
                assert_eq!(c.get(i, &format!("t{k}")).await, Some(format!("v{k}")));
            }
        }
    });
}

/// Bad input gets a JSON error with the documented status, never a crash.
#[test]
fn bad_requests_get_json_errors_with_the_documented_codes() {
    run(Duration::from_secs(60), async {
        let c = Cluster::start(1, &[]).await;
        let url = c.url(0);
        let h = &c.http;
        let check = |r: reqwest::Response, status: u16, code: &'static str| async move {
            assert_eq!(r.status().as_u16(), status);
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], code, "{body}");
            assert!(body["message"].is_string(), "{body}");
        };
        let big = vec![b'x'; (1 << 20) + 1];
        check(
            h.put(format!("{url}/kv/big"))
                .body(big)
                .send()
                .await
                .unwrap(),
            413,
            "too_large",
        )
        .await;
        let long_key = "k".repeat(1025);
        check(
            h.put(format!("{url}/kv/{long_key}"))
                .body("v")
                .send()
                .await
                .unwrap(),
            413,
            "too_large",
        )
        .await;
        check(
            h.put(format!("{url}/kv/")).body("v").send().await.unwrap(),
            400,
            "bad_request",
        )
        .await;
        check(
            h.put(format!("{url}/kv/a?if_version=x"))
                .body("v")
                .send()
                .await
                .unwrap(),
            400,
            "bad_request",
        )
        .await;
        check(
            h.get(format!("{url}/kv/a?consistency=weird"))
                .send()
                .await
                .unwrap(),
            400,
            "bad_request",
        )
        .await;
        check(
            h.get(format!("{url}/kv?limit=0")).send().await.unwrap(),
            400,
            "bad_request",
        )
        .await;
        check(
            h.get(format!("{url}/kv/absent")).send().await.unwrap(),
            404,
            "not_found",
        )
        .await;
        check(
            h.delete(format!("{url}/members/9")).send().await.unwrap(),
            404,
            "not_found",
        )
        .await;
        check(
            h.post(format!("{url}/members"))
                .body("{")
                .send()
                .await
                .unwrap(),
            400,
            "bad_request",
        )
        .await;
        check(
            h.post(format!("{url}/leader/transfer/9"))
                .send()
                .await
                .unwrap(),
            400,
            "bad_request",
        )
        .await;
        check(
            h.post(format!("{url}/debug/isolate")).send().await.unwrap(),
            404,
            "not_found",
        )
        .await;
        // Percent-encoded keys, binary values and the listing's base64 form.
        let r = h
            .put(format!("{url}/kv/a%2Fb"))
            .body(vec![0xffu8, 0x00])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let list: serde_json::Value = h
            .get(format!("{url}/kv?prefix=a/"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"][0]["key"], "a/b", "{list}");
        assert_eq!(list["items"][0]["value_b64"], "/wA=", "{list}");
        let r = h.get(format!("{url}/kv/a%2Fb")).send().await.unwrap();
        assert_eq!(r.headers()["x-raftkv-version"], "1");
        assert_eq!(&r.bytes().await.unwrap()[..], &[0xff, 0x00]);
        // A learner joins the configuration without a quorum change, and leaves it.
        let body = json!({"id": 7, "peer_addr": "127.0.0.1:9", "client_addr": "127.0.0.1:10", "learner": true});
        let r = h
            .post(format!("{url}/members"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let m: serde_json::Value = r.json().await.unwrap();
        assert_eq!(m["learners"][0]["id"], 7, "{m}");
        assert_eq!(m["learners"][0]["client_addr"], "127.0.0.1:10", "{m}");
        assert_eq!(m["voters"].as_array().unwrap().len(), 1, "{m}");
        check(
            h.post(format!("{url}/members"))
                .json(&body)
                .send()
                .await
                .unwrap(),
            409,
            "conflict",
        )
        .await;
        let r = h.delete(format!("{url}/members/7")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let m: serde_json::Value = r.json().await.unwrap();
        assert!(m["learners"].as_array().unwrap().is_empty(), "{m}");
        let health: serde_json::Value = h
            .get(format!("{url}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["ok"], true);
        let metrics = h
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("raftkv_fsync_seconds_bucket"), "{metrics}");
    });
}
