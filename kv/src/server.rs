//! `raftkv serve`: binds the listeners, starts the node and serves HTTP until SIGTERM/Ctrl-C.

use std::collections::BTreeMap;

use crate::node::{self, NodeOptions};

/// Parses `1=host:port,2=host:port`.
pub fn parse_id_map(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("{id:?} is not a node id"))?;
        if id == 0 {
            return Err("node ids start at 1".into());
        }
        out.insert(id, addr.trim().to_string());
    }
    Ok(out)
}

fn is_loopback(addr: &str) -> bool {
    addr.starts_with("127.") || addr.starts_with("localhost") || addr.starts_with("[::1]")
}

/// Runs a node until a signal. Prints `raftkv: serving id=N client=ADDR peer=ADDR` on stderr
/// once it listens.
pub async fn serve(
    opts: NodeOptions,
    listen_client: String,
    listen_peer: String,
) -> Result<(), String> {
    if !opts.join && !opts.peers.contains_key(&opts.id) {
        return Err(format!("--peers must name this node ({})", opts.id));
    }
    if opts.tls.is_none() && !is_loopback(&listen_peer) {
        tracing::warn!(
            listen_peer,
            "peer traffic is plain TCP and trusts the network for peer identity"
        );
    }
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| format!("data dir {}: {e}", opts.data_dir.display()))?;
    let peer_listener = tokio::net::TcpListener::bind(&listen_peer)
        .await
        .map_err(|e| format!("listen on {listen_peer}: {e}"))?;
    let client_listener = tokio::net::TcpListener::bind(&listen_client)
        .await
        .map_err(|e| format!("listen on {listen_client}: {e}"))?;
    let peer_addr = peer_listener.local_addr().map_err(|e| e.to_string())?;
    let (shared, peer_tx) = node::start(&opts, tokio::runtime::Handle::current())?;
    tokio::spawn(crate::transport::serve_peers(
        peer_listener,
        peer_tx,
        shared.metrics.clone(),
        shared.isolated.clone(),
        opts.frame_limit,
        opts.tls.clone(),
    ));
    let app = crate::http::router(shared);
    eprintln!(
        "raftkv: serving id={} client={} peer={}",
        opts.id,
        client_listener.local_addr().map_err(|e| e.to_string())?,
        peer_addr
    );
    axum::serve(client_listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopping");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists_parse_and_bad_ones_are_refused() {
        let m = parse_id_map("1=127.0.0.1:1, 2=127.0.0.1:2").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[&2], "127.0.0.1:2");
        assert!(parse_id_map("x=1").is_err());
        assert!(parse_id_map("0=a:1").is_err());
        assert!(parse_id_map("1").is_err());
    }
}
