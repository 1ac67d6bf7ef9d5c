//! The client API (see `/work/shared/KV-API.md`'s table, reproduced in README): every node
//! serves every request, proposing through its own core.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use prost::Message as _;
use raftcore::raftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};

use crate::node::{Cmd, ConfContext, Shared};
use crate::sm::{ApplyResult, Command, MemberInfo, MAX_KEY, MAX_VALUE, OP_DELETE, OP_PUT};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_LIMIT: usize = 10_000;

/// A JSON error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<(&'static str, Value)>,
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        extra: None,
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn timeout() -> ApiError {
    err(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        "the request's deadline passed; the outcome is unknown",
    )
}

fn no_leader() -> ApiError {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_leader",
        "no leader could take the request before its deadline; it was not applied",
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some((k, v)) = self.extra {
            body[k] = v;
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;
type Params = Query<HashMap<String, String>>;

fn param_u64(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<u64>> {
    match q.get(name) {
        None => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| bad_request(format!("{name} must be a non-negative integer"))),
    }
}

fn deadline(q: &HashMap<String, String>) -> ApiResult<Instant> {
    let d = match param_u64(q, "timeout_ms")? {
        Some(ms) => Duration::from_millis(ms).min(MAX_TIMEOUT),
        None => DEFAULT_TIMEOUT,
    };
    Ok(Instant::now() + d)
}

fn serializable(q: &HashMap<String, String>) -> ApiResult<bool> {
    match q.get("consistency").map(|s| s.as_str()) {
        None | Some("linearizable") => Ok(false),
        Some("serializable") => Ok(true),
        Some(other) => Err(bad_request(format!(
            "consistency must be linearizable or serializable, not {other:?}"
        ))),
    }
}

fn check_key(key: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(key) = key.map_err(|e| bad_request(format!("bad key: {e}")))?;
    if key.is_empty() {
        return Err(bad_request("the key is empty"));
    }
    if key.len() > MAX_KEY {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a key is at most {MAX_KEY} bytes"),
        ));
    }
    Ok(key)
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("store: {e}"),
    )
}

/// Sends a command to the node thread, waiting for room until the deadline.
async fn to_node(shared: &Shared, cmd: Cmd, deadline: Instant) -> ApiResult<()> {
    match timeout_at(deadline, shared.cmds.send(cmd)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(err(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the node is stopping",
        )),
        Err(_) => Err(timeout()),
    }
}

/// Removes a waiter when the request ends, answered or not.
struct WaiterGuard<'a>(&'a Shared, u64);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut w) = self.0.waiters.lock() {
            w.remove(&self.1);
        }
    }
}

/// Proposes until the core takes the proposal (retrying drops), then waits for the apply.
async fn propose_and_wait(
    shared: &Shared,
    request_id: u64,
    make: impl Fn(oneshot::Sender<bool>) -> Cmd,
    deadline: Instant,
) -> ApiResult<ApplyResult> {
    let (tx, rx) = oneshot::channel();
    shared
        .waiters
        .lock()
        .expect("waiters lock")
        .insert(request_id, tx);
    let _guard = WaiterGuard(shared, request_id);
    loop {
        let (rtx, rrx) = oneshot::channel();
        to_node(shared, make(rtx), deadline).await?;
        match timeout_at(deadline, rrx).await {
            Ok(Ok(true)) => break,
            Ok(Ok(false)) | Ok(Err(_)) => {
                // Dropped by the core: not in the log. Retry while time remains.
                if Instant::now() + Duration::from_millis(50) >= deadline {
                    return Err(no_leader());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => return Err(timeout()),
        }
    }
    match timeout_at(deadline, rx).await {
        Ok(Ok(res)) => Ok(res),
        Ok(Err(_)) | Err(_) => Err(timeout()),
    }
}

async fn write(shared: &Shared, mut cmd: Command, deadline: Instant) -> ApiResult<ApplyResult> {
    let id = shared.next_request_id();
    cmd.request_id = id;
    let data = Bytes::from(cmd.encode_to_vec());
    propose_and_wait(
        shared,
        id,
        |reply| Cmd::Propose {
            data: data.clone(),
            reply,
        },
        deadline,
    )
    .await
}

/// Waits until a linearizable read may be served locally: a read index from the leader,
/// then the local apply reaching it. Lost reads are asked again until the deadline.
async fn read_barrier(shared: &Shared, deadline: Instant) -> ApiResult<()> {
    loop {
        let id = shared.next_request_id();
        let (tx, rx) = oneshot::channel();
        to_node(shared, Cmd::ReadIndex { id, reply: tx }, deadline).await?;
        let round = (Instant::now() + Duration::from_millis(1000)).min(deadline);
        match timeout_at(round, rx).await {
            Ok(Ok(index)) => {
                let mut applied = shared.applied.subscribe();
                return match timeout_at(deadline, applied.wait_for(|a| *a >= index)).await {
                    Ok(Ok(_)) => Ok(()),
                    _ => Err(timeout()),
                };
            }
            _ => {
                if Instant::now() >= deadline {
                    return Err(if shared.status().leader == 0 {
                        no_leader()
                    } else {
                        timeout()
                    });
                }
                if shared.status().leader == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn put_key(
    State(shared): State<Arc<Shared>>,
    key: Result<Path<String>, PathRejection>,
    Query(q): Params,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let key = check_key(key)?;
    let value = body.map_err(|e| {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body: {e}"),
        )
    })?;
    if value.len() > MAX_VALUE {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a value is at most {MAX_VALUE} bytes"),
        ));
    }
    let if_version = param_u64(&q, "if_version")?;
    let deadline = deadline(&q)?;
    let cmd = Command {
        request_id: 0,
        op: OP_PUT,
        key: Bytes::from(key),
        value,
        if_version,
    };
    match write(&shared, cmd, deadline).await? {
        ApplyResult::Put { version, revision } => {
            Ok(Json(json!({"version": version, "revision": revision})).into_response())
        }
        ApplyResult::Mismatch { current } => Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "version_mismatch",
            message: format!("the key's version is {current}"),
            extra: Some(("version", json!(current))),
        }),
        other => Err(store_error(format!("unexpected result {other:?}"))),
    }
}

async fn delete_key(
    State(shared): State<Arc<Shared>>,
    key: Result<Path<String>, PathRejection>,
    Query(q): Params,
) -> ApiResult<Response> {
    let key = check_key(key)?;
    let deadline = deadline(&q)?;
    let cmd = Command {
        request_id: 0,
        op: OP_DELETE,
        key: Bytes::from(key),
        ..Default::default()
    };
    match write(&shared, cmd, deadline).await? {
        ApplyResult::Delete { deleted, revision } => {
            Ok(Json(json!({"deleted": deleted, "revision": revision})).into_response())
        }
        other => Err(store_error(format!("unexpected result {other:?}"))),
    }
}

async fn get_key(
    State(shared): State<Arc<Shared>>,
    key: Result<Path<String>, PathRejection>,
    Query(q): Params,
) -> ApiResult<Response> {
    let key = check_key(key)?;
    let deadline = deadline(&q)?;
    if !serializable(&q)? {
        read_barrier(&shared, deadline).await?;
    }
    match shared.sm.get(key.as_bytes()).map_err(store_error)? {
        None => Err(err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no key {key:?}"),
        )),
        Some(s) => {
            let mut h = HeaderMap::new();
            h.insert("x-raftkv-version", HeaderValue::from(s.version));
            h.insert("x-raftkv-revision", HeaderValue::from(s.mod_revision));
            Ok((h, s.value).into_response())
        }
    }
}

async fn list(State(shared): State<Arc<Shared>>, Query(q): Params) -> ApiResult<Response> {
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let limit = param_u64(&q, "limit")?.unwrap_or(100) as usize;
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad_request(format!("limit must be in 1..={MAX_LIMIT}")));
    }
    let deadline = deadline(&q)?;
    if !serializable(&q)? {
        read_barrier(&shared, deadline).await?;
    }
    let (items, more) = shared
        .sm
        .range(prefix.as_bytes(), limit)
        .map_err(store_error)?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|(k, s)| {
            let key = String::from_utf8_lossy(&k).into_owned();
            match std::str::from_utf8(&s.value) {
                Ok(v) => json!({"key": key, "value": v, "version": s.version}),
                Err(_) => json!({
                    "key": key,
                    "value_b64": base64::engine::general_purpose::STANDARD.encode(&s.value),
                    "version": s.version,
                }),
            }
        })
        .collect();
    Ok(Json(json!({"items": items, "more": more})).into_response())
}

fn members_json(shared: &Shared) -> ApiResult<Value> {
    let st = shared.status();
    let infos = shared.sm.members().map_err(store_error)?;
    let one = |id: &u64| {
        let m = infos.iter().find(|m| m.id == *id);
        json!({
            "id": id,
            "peer_addr": m.map(|m| m.peer_addr.as_str()).unwrap_or(""),
            "client_addr": m.map(|m| m.client_addr.as_str()).unwrap_or(""),
        })
    };
    Ok(json!({
        "voters": st.voters.iter().map(one).collect::<Vec<_>>(),
        "learners": st.learners.iter().map(one).collect::<Vec<_>>(),
    }))
}

async fn get_members(State(shared): State<Arc<Shared>>) -> ApiResult<Json<Value>> {
    Ok(Json(members_json(&shared)?))
}

#[derive(Deserialize)]
struct AddMember {
    id: u64,
    peer_addr: String,
    #[serde(default)]
    client_addr: String,
    #[serde(default)]
    learner: bool,
}

/// Proposes a membership change until the configuration shows it. A leader may turn a conf
/// change into an empty entry (one is already pending, or it has just been elected), which no
/// waiter recognises: each attempt has a short window, then the configuration is checked and
/// the change proposed again (applying it twice changes nothing).
async fn change_members(
    shared: &Shared,
    change: ConfChangeSingle,
    member: Option<MemberInfo>,
    done: impl Fn(&crate::node::NodeStatus) -> bool,
    deadline: Instant,
) -> ApiResult<Json<Value>> {
    loop {
        let id = shared.next_request_id();
        let ctx = ConfContext {
            request_id: id,
            member: member.clone(),
        };
        let cc = ConfChangeV2 {
            changes: vec![change],
            context: Bytes::from(serde_json::to_vec(&ctx).unwrap_or_default()),
            ..Default::default()
        };
        let attempt = (Instant::now() + Duration::from_secs(2)).min(deadline);
        let res = propose_and_wait(
            shared,
            id,
            |reply| Cmd::ConfChange {
                cc: cc.clone(),
                reply,
            },
            attempt,
        )
        .await;
        if done(&shared.status()) {
            // The store records the addresses right after the core applies the change.
            let mut applied = shared.applied.subscribe();
            let target = shared.status().commit;
            let _ = timeout_at(deadline, applied.wait_for(|a| *a >= target)).await;
            return Ok(Json(members_json(shared)?));
        }
        if let Ok(ApplyResult::Conf { ok: false }) = res {
            return Err(err(
                StatusCode::CONFLICT,
                "conf_change_refused",
                "the configuration change was refused",
            ));
        }
        if Instant::now() >= deadline {
            return Err(match res {
                Err(e) => e,
                Ok(_) => timeout(),
            });
        }
    }
}

async fn add_member(
    State(shared): State<Arc<Shared>>,
    Query(q): Params,
    body: Result<Json<AddMember>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(req) = body.map_err(|e| bad_request(format!("body: {e}")))?;
    if req.id == 0 || req.id >= raftcore::LOCAL_APPLY_THREAD {
        return Err(bad_request("id must be a positive integer"));
    }
    if req.peer_addr.is_empty() {
        return Err(bad_request("peer_addr is required"));
    }
    let st = shared.status();
    if st.voters.contains(&req.id) || st.learners.contains(&req.id) {
        return Err(err(
            StatusCode::CONFLICT,
            "conflict",
            format!("id {} is already a member", req.id),
        ));
    }
    let ty = if req.learner {
        ConfChangeType::ConfChangeAddLearnerNode
    } else {
        ConfChangeType::ConfChangeAddNode
    };
    let change = ConfChangeSingle {
        r#type: ty as i32,
        node_id: req.id,
    };
    let member = MemberInfo {
        id: req.id,
        peer_addr: req.peer_addr,
        client_addr: req.client_addr,
    };
    let (id, learner) = (req.id, req.learner);
    let done = move |st: &crate::node::NodeStatus| {
        if learner {
            st.learners.contains(&id)
        } else {
            st.voters.contains(&id)
        }
    };
    change_members(&shared, change, Some(member), done, deadline(&q)?).await
}

async fn remove_member(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    let id: u64 = id
        .parse()
        .map_err(|_| bad_request("the member id must be an integer"))?;
    let st = shared.status();
    if !st.voters.contains(&id) && !st.learners.contains(&id) {
        return Err(err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no member {id}"),
        ));
    }
    let change = ConfChangeSingle {
        r#type: ConfChangeType::ConfChangeRemoveNode as i32,
        node_id: id,
    };
    let done =
        move |st: &crate::node::NodeStatus| !st.voters.contains(&id) && !st.learners.contains(&id);
    change_members(&shared, change, None, done, deadline(&q)?).await
}

async fn transfer(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    let id: u64 = id
        .parse()
        .map_err(|_| bad_request("the member id must be an integer"))?;
    if !shared.status().voters.contains(&id) {
        return Err(bad_request(format!("{id} is not a voter")));
    }
    let deadline = deadline(&q)?;
    loop {
        if shared.status().leader == id {
            return Ok(Json(json!({"leader": id})));
        }
        to_node(&shared, Cmd::Transfer(id), deadline).await?;
        let round = Instant::now() + Duration::from_millis(500);
        while Instant::now() < round {
            if shared.status().leader == id {
                return Ok(Json(json!({"leader": id})));
            }
            if Instant::now() >= deadline {
                return Err(timeout());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let st = shared.status();
    Json(json!({
        "id": st.id,
        "role": st.role,
        "term": st.term,
        "leader": st.leader,
        "commit": st.commit,
        "applied": st.applied,
        "members": {"voters": st.voters, "learners": st.learners},
        "log": {"first": st.first, "last": st.last},
    }))
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let st = shared.status();
    let applied = *shared.applied.borrow();
    if st.leader != 0 && applied >= shared.start_commit {
        Json(json!({"ok": true})).into_response()
    } else {
        let msg = if st.leader == 0 {
            "no leader known"
        } else {
            "catching up with the log found at start"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ok": false, "error": "unavailable", "message": msg})),
        )
            .into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let st = shared.status();
    let is_leader = u64::from(st.leader == st.id);
    let text = shared.metrics.render(&[
        ("raftkv_term", "The current term.", st.term),
        ("raftkv_commit_index", "The commit index.", st.commit),
        ("raftkv_applied_index", "The applied index.", st.applied),
        (
            "raftkv_apply_lag",
            "Committed entries not yet applied.",
            st.commit.saturating_sub(st.applied),
        ),
        ("raftkv_is_leader", "1 on the leader.", is_leader),
        (
            "raftkv_log_entries",
            "Entries in the log since the last snapshot.",
            (st.last + 1).saturating_sub(st.first),
        ),
    ]);
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

async fn isolate(State(shared): State<Arc<Shared>>, Query(q): Params) -> ApiResult<Json<Value>> {
    if !shared.fault_injection {
        return Err(err(
            StatusCode::NOT_FOUND,
            "not_found",
            "fault injection is off (start with --fault-injection)",
        ));
    }
    let on = q.get("on").map(|s| s == "true" || s == "1").unwrap_or(true);
    shared.isolated.store(on, Ordering::Relaxed);
    tracing::warn!(isolated = on, "fault injection: peer traffic");
    Ok(Json(json!({"isolated": on})))
}

async fn empty_key() -> ApiError {
    bad_request("the key is empty")
}

async fn fallback() -> ApiError {
    err(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/kv/", get(empty_key).put(empty_key).delete(empty_key))
        .route("/kv", get(list))
        .route("/members", get(get_members).post(add_member))
        .route("/members/{id}", axum::routing::delete(remove_member))
        .route("/leader/transfer/{id}", post(transfer))
        .route("/status", get(status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/debug/isolate", post(isolate))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_VALUE + 1024))
        .with_state(shared)
}
