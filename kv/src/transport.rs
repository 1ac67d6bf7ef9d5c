//! Peer transport: TCP with length-delimited prost `Message` frames. One sender task per peer
//! with a bounded queue; a listener with one reader task per connection.
//!
//! A connection starts with a hello frame (`RKV1` + the sender's id); every later frame must
//! carry messages from that id. Plain TCP trusts the network for that id: run it on loopback
//! or a private network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use raftcore::raftpb::{Message, MessageType};
use raftcore::SnapshotStatus;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::metrics::Metrics;
use crate::tls::{cert_names_node, node_name, TlsConfig};

type Writer = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;
type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// Frames larger than this are refused by the receiver and never sent by the sender.
pub const DEFAULT_FRAME_LIMIT: usize = 128 << 20;
/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;
const HELLO: &[u8; 4] = b"RKV1";

/// What sender tasks tell the node thread.
#[derive(Debug)]
pub enum Report {
    /// A peer could not be reached.
    Unreachable(u64),
    /// The outcome of sending a snapshot.
    Snapshot(u64, SnapshotStatus),
}

fn codec(limit: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(limit)
        .new_codec()
}

struct PeerSender {
    tx: mpsc::Sender<Message>,
    task: tokio::task::JoinHandle<()>,
}

/// The sending half, owned by the node thread.
pub struct Transport {
    id: u64,
    rt: tokio::runtime::Handle,
    peers: HashMap<u64, PeerSender>,
    addrs: HashMap<u64, String>,
    reports: mpsc::Sender<Report>,
    metrics: Arc<Metrics>,
    /// Test fault: when set, nothing is sent or received.
    pub isolated: Arc<AtomicBool>,
    frame_limit: usize,
    tls: Option<TlsConfig>,
}

impl Transport {
    /// A transport for node `id`, spawning its tasks on `rt`.
    pub fn new(
        id: u64,
        rt: tokio::runtime::Handle,
        reports: mpsc::Sender<Report>,
        metrics: Arc<Metrics>,
        isolated: Arc<AtomicBool>,
        frame_limit: usize,
        tls: Option<TlsConfig>,
    ) -> Transport {
        Transport {
            id,
            rt,
            peers: HashMap::new(),
            addrs: HashMap::new(),
            reports,
            metrics,
            isolated,
            frame_limit,
            tls,
        }
    }

    /// Adds (or re-addresses) a peer.
    pub fn add_peer(&mut self, id: u64, addr: String) {
        if id == self.id || addr.is_empty() || self.addrs.get(&id) == Some(&addr) {
            return;
        }
        self.remove_peer(id);
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let ctx = SenderCtx {
            from: self.id,
            reports: self.reports.clone(),
            metrics: self.metrics.clone(),
            limit: self.frame_limit,
            tls: self.tls.clone(),
        };
        let task = self.rt.spawn(sender_task(ctx, id, addr.clone(), rx));
        self.peers.insert(id, PeerSender { tx, task });
        self.addrs.insert(id, addr);
    }

    /// Stops sending to a peer.
    pub fn remove_peer(&mut self, id: u64) {
        if let Some(p) = self.peers.remove(&id) {
            p.task.abort();
        }
        self.addrs.remove(&id);
    }

    /// Queues messages; a full queue or an unknown peer drops the message (Raft resends).
    pub fn send(&mut self, msgs: Vec<Message>) {
        let isolated = self.isolated.load(Ordering::Relaxed);
        for m in msgs {
            let ty = m.r#type;
            let is_snap = ty == MessageType::MsgSnap as i32;
            let to = m.to;
            let ok = !isolated
                && match self.peers.get(&to) {
                    Some(p) => p.tx.try_send(m).is_ok(),
                    None => false,
                };
            if !ok {
                self.metrics.dropped(ty);
                if is_snap {
                    let _ = self
                        .reports
                        .try_send(Report::Snapshot(to, SnapshotStatus::Failure));
                }
                let _ = self.reports.try_send(Report::Unreachable(to));
            }
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for p in self.peers.values() {
            p.task.abort();
        }
    }
}

/// What every sender task shares.
#[derive(Clone)]
struct SenderCtx {
    from: u64,
    reports: mpsc::Sender<Report>,
    metrics: Arc<Metrics>,
    limit: usize,
    tls: Option<TlsConfig>,
}

async fn sender_task(ctx: SenderCtx, to: u64, addr: String, mut rx: mpsc::Receiver<Message>) {
    let SenderCtx {
        from,
        reports,
        metrics,
        limit,
        tls,
    } = ctx;
    let mut backoff = Duration::from_millis(50);
    loop {
        let stream = match connect(&addr, to, tls.as_ref()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(peer = to, %addr, error = %e, "connect failed");
                let _ = reports.try_send(Report::Unreachable(to));
                // Messages queued meanwhile are stale: drop them (a lost MsgSnap is reported).
                while let Ok(m) = rx.try_recv() {
                    metrics.dropped(m.r#type);
                    if m.r#type == MessageType::MsgSnap as i32 {
                        let _ = reports.try_send(Report::Snapshot(to, SnapshotStatus::Failure));
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let mut sink = FramedWrite::new(stream, codec(limit));
        let mut hello = BytesMut::with_capacity(12);
        hello.put_slice(HELLO);
        hello.put_u64(from);
        if sink.send(hello.freeze()).await.is_err() {
            continue;
        }
        tracing::debug!(peer = to, %addr, "connected");
        'conn: loop {
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut snaps = 0;
            for m in &batch {
                let buf = m.encode_to_vec();
                if buf.len() > limit {
                    tracing::error!(
                        peer = to,
                        size = buf.len(),
                        limit,
                        msg_type = m.r#type,
                        "message larger than the frame limit not sent"
                    );
                    metrics.dropped(m.r#type);
                    if m.r#type == MessageType::MsgSnap as i32 {
                        let _ = reports.try_send(Report::Snapshot(to, SnapshotStatus::Failure));
                    }
                    continue;
                }
                if m.r#type == MessageType::MsgSnap as i32 {
                    snaps += 1;
                }
                if sink.feed(Bytes::from(buf)).await.is_err() {
                    fail(&batch, to, &reports, &metrics);
                    break 'conn;
                }
            }
            if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                fail(&batch, to, &reports, &metrics);
                break 'conn;
            }
            for m in &batch {
                metrics.sent(m.r#type);
            }
            for _ in 0..snaps {
                let _ = reports.try_send(Report::Snapshot(to, SnapshotStatus::Finish));
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn connect(addr: &str, to: u64, tls: Option<&TlsConfig>) -> std::io::Result<Writer> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => Ok(Box::new(stream)),
        Some(t) => {
            let name = rustls::pki_types::ServerName::try_from(node_name(to))
                .map_err(std::io::Error::other)?;
            let conn = tokio_rustls::TlsConnector::from(t.client.clone())
                .connect(name, stream)
                .await?;
            Ok(Box::new(conn))
        }
    }
}

fn fail(batch: &[Message], to: u64, reports: &mpsc::Sender<Report>, metrics: &Metrics) {
    tracing::debug!(peer = to, "send failed; reconnecting");
    let _ = reports.try_send(Report::Unreachable(to));
    for m in batch {
        metrics.dropped(m.r#type);
        if m.r#type == MessageType::MsgSnap as i32 {
            let _ = reports.try_send(Report::Snapshot(to, SnapshotStatus::Failure));
        }
    }
}

/// Accepts peer connections and forwards their messages to the node.
pub async fn serve_peers(
    listener: TcpListener,
    to_node: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
    isolated: Arc<AtomicBool>,
    limit: usize,
    tls: Option<TlsConfig>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let to_node = to_node.clone();
        let metrics = metrics.clone();
        let isolated = isolated.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let tls_on = tls.is_some();
            let (reader, cert): (Reader, _) = match tls {
                None => (Box::new(stream), None),
                Some(t) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(t.server.clone());
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(conn)) => {
                            let cert = conn
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| c.clone().into_owned());
                            (Box::new(conn), cert)
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(%remote, error = %e, "peer TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!(%remote, "peer TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let mut frames = FramedRead::new(reader, codec(limit));
            let peer = match frames.next().await {
                Some(Ok(f)) if f.len() == 12 && &f[..4] == HELLO => {
                    u64::from_be_bytes(f[4..12].try_into().expect("8 bytes"))
                }
                _ => {
                    tracing::warn!(%remote, "peer connection without a valid hello");
                    return;
                }
            };
            if tls_on {
                // The certificate must name the node the hello claims to be.
                if !cert.as_ref().is_some_and(|c| cert_names_node(c, peer)) {
                    tracing::warn!(%remote, peer, "peer certificate does not name the claimed node id");
                    metrics.received_dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            while let Some(frame) = frames.next().await {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(%remote, peer, error = %e, "bad frame; closing");
                        metrics.received_dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                let m = match Message::decode(frame.freeze()) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(%remote, peer, error = %e, "undecodable message");
                        metrics.received_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                // A follower forwards a leadership transfer request with the transferee in
                // `from` (etcd's convention): it grants nothing, so it may name another node.
                let forwarded_transfer = m.r#type == MessageType::MsgTransferLeader as i32;
                if (m.from != peer && !forwarded_transfer) || isolated.load(Ordering::Relaxed) {
                    metrics.received_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // A full node queue pushes back on this connection (and so on the sender).
                if to_node.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn send_as(addr: &str, tls: Option<&TlsConfig>, claimed: u64, from: u64) -> Writer {
        send_typed(addr, tls, claimed, from, MessageType::MsgHeartbeat).await
    }

    async fn send_typed(
        addr: &str,
        tls: Option<&TlsConfig>,
        claimed: u64,
        from: u64,
        ty: MessageType,
    ) -> Writer {
        let stream = connect(addr, 1, tls).await.expect("connect");
        let mut sink = FramedWrite::new(stream, codec(DEFAULT_FRAME_LIMIT));
        let mut hello = BytesMut::new();
        hello.put_slice(HELLO);
        hello.put_u64(claimed);
        sink.send(hello.freeze()).await.unwrap();
        let m = Message {
            r#type: ty as i32,
            from,
            to: 1,
            term: 1,
            ..Default::default()
        };
        sink.send(Bytes::from(m.encode_to_vec())).await.unwrap();
        sink.into_inner()
    }

    async fn listen(tls: Option<TlsConfig>) -> (String, mpsc::Receiver<Message>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(serve_peers(
            listener,
            tx,
            Arc::new(Metrics::default()),
            Arc::new(AtomicBool::new(false)),
            DEFAULT_FRAME_LIMIT,
            tls,
        ));
        (addr, rx)
    }

    #[tokio::test]
    async fn tls_peer_must_hold_a_certificate_naming_the_id_it_claims() {
        let dir = tempfile::tempdir().unwrap();
        crate::tls::make_certs(dir.path(), 3).unwrap();
        let t1 = crate::tls::load(dir.path(), 1).unwrap();
        let t2 = crate::tls::load(dir.path(), 2).unwrap();
        let (addr, mut rx) = listen(Some(t1)).await;
        // Node 2's certificate, claiming to be node 3: dropped.
        let _c = send_as(&addr, Some(&t2), 3, 3).await;
        let got = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert!(got.is_err(), "an impostor's message was delivered: {got:?}");
        // Node 2 as itself: delivered.
        let _c = send_as(&addr, Some(&t2), 2, 2).await;
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("delivered")
            .unwrap();
        assert_eq!(m.from, 2);
        // Plain TCP to a TLS listener gets nowhere.
        let _c = send_as(&addr, None, 2, 2).await;
        let got = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(got.is_err());
    }

    #[tokio::test]
    async fn plain_tcp_drops_messages_whose_sender_differs_from_the_hello_and_oversized_frames() {
        let (addr, mut rx) = listen(None).await;
        let _c = send_as(&addr, None, 2, 3).await;
        let got = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(got.is_err());
        // A frame over the limit closes that connection without harm to the listener.
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        raw.write_all(&(u32::MAX).to_be_bytes()).await.unwrap();
        raw.write_all(b"garbage").await.unwrap();
        let _c = send_as(&addr, None, 2, 2).await;
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("delivered")
            .unwrap();
        assert_eq!(m.from, 2);
        // A follower forwarding a transfer request names the transferee in `from`.
        let _c = send_typed(&addr, None, 2, 3, MessageType::MsgTransferLeader).await;
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("delivered")
            .unwrap();
        assert_eq!(
            (m.r#type, m.from),
            (MessageType::MsgTransferLeader as i32, 3)
        );
    }
}
