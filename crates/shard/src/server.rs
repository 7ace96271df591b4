//! The provider's side of the shard protocol: `GET /v1/shards/{model}?session=S&tokens=N`
//! upgrades to a WebSocket that is one session of the layers this node serves of `model`.
//!
//! - The upgrade request must pass the node's access policy (a provider admits only requests
//!   signed for it by the network's validators and gateways).
//! - Opening reserves the session's KV cache, `N` tokens of it, against the node's budget; a
//!   full budget is refused before the upgrade with 503 and the figures, so a coordinator can
//!   go elsewhere at once.
//! - Each binary frame is one step of at most [`MAX_STEP_TOKENS`] tokens; the answer is the
//!   frame of the layers' output. A step from position `p` truncates the cache to `p` first,
//!   so a retried step gives what it gave. Steps of all sessions compute at most one per core
//!   at a time; the others wait their turn.
//! - Bad frames close the session with 1008 (policy) and the reason, compute failures with
//!   1011; a session idle for the configured time is closed with 1000.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use aicoin_api::{Access, ApiError};
use aicoin_inference::llama::{Cache, Llama};
use axum::{
    Router,
    extract::{
        FromRequestParts, Path, Query, Request, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use candle_core::{Device, Tensor};
use serde::Deserialize;

use crate::frame::Frame;

/// The most tokens one step carries (a coordinator's prefill chunks are 128): a bound on what
/// one frame makes the node compute and hold beyond its KV budget.
pub const MAX_STEP_TOKENS: usize = 512;

/// How a node serves its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardConfig {
    /// Bytes of KV cache all open sessions may reserve together.
    pub kv_budget: u64,
    /// A session with no step for this long is closed.
    pub idle: Duration,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self {
            kv_budget: 1 << 30,
            idle: Duration::from_secs(60),
        }
    }
}

/// The KV budget, shared by every session of every shard the node serves.
#[derive(Debug)]
struct Budget {
    limit: u64,
    used: AtomicU64,
}

/// A session's share of the budget, given back when the session ends.
struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Budget {
    fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, u64> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .map(|_| Reservation {
                budget: self.clone(),
                bytes,
            })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The layer ranges this node serves, by model id, and how.
pub struct ShardServer {
    shards: HashMap<String, Arc<Llama>>,
    budget: Arc<Budget>,
    idle: Duration,
    access: Option<Arc<dyn Access>>,
    /// Steps computing now, one per core at most.
    computing: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug, Deserialize)]
struct Open {
    session: u64,
    tokens: usize,
}

impl ShardServer {
    /// Serves `shards` (model id, its loaded layer range); with `access`, only requests it lets
    /// in open sessions.
    pub fn new(
        shards: impl IntoIterator<Item = (String, Arc<Llama>)>,
        config: ShardConfig,
        access: Option<Arc<dyn Access>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            shards: shards.into_iter().collect(),
            budget: Arc::new(Budget {
                limit: config.kv_budget,
                used: AtomicU64::new(0),
            }),
            idle: config.idle,
            access,
            computing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
        })
    }

    /// `/v1/shards/{model}`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/shards/{model}", get(open))
            .with_state(self.clone())
    }

    /// Bytes of KV cache reserved by open sessions.
    pub fn reserved(&self) -> u64 {
        self.budget.used.load(Ordering::Acquire)
    }
}

/// Bytes of KV cache one token takes in `shard`'s layers (K and V, f32).
fn bytes_per_token(shard: &Llama) -> u64 {
    let c = &shard.config;
    (shard.range.len() * 2 * c.kv_heads * c.head_dim * 4) as u64
}

async fn open(
    State(server): State<Arc<ShardServer>>,
    Path(model): Path<String>,
    Query(wanted): Query<Open>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    if let Some(access) = &server.access
        && let Err(refused) = access.check(&parts, b"")
    {
        return refused.into_response();
    }
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let Some(shard) = server.shards.get(&model).cloned() else {
        return ApiError::model_not_found(&model, "sharded").into_response();
    };
    let context = shard.config.context_length;
    if wanted.tokens == 0 || wanted.tokens > context {
        return ApiError::invalid(
            format!(
                "a session holds 1 to {context} tokens, not {}",
                wanted.tokens
            ),
            Some("tokens"),
        )
        .into_response();
    }
    let bytes = bytes_per_token(&shard) * wanted.tokens as u64;
    let reservation = match server.budget.reserve(bytes) {
        Ok(reservation) => reservation,
        Err(used) => {
            return ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: Some("kv_budget_full"),
                retry_after: Some(Duration::from_secs(1)),
                ..ApiError::server(format!(
                    "this shard's KV budget is full: a session of {} tokens needs {bytes} \
                     bytes, and {used} of {} are reserved",
                    wanted.tokens, server.budget.limit
                ))
            }
            .into_response();
        }
    };
    let session = Session {
        id: wanted.session,
        tokens: wanted.tokens,
        cache: Some(shard.new_cache()),
        shard,
        computing: server.computing.clone(),
        _reservation: reservation,
    };
    let idle = server.idle;
    ws.max_message_size(crate::MAX_FRAME_BYTES)
        .max_frame_size(crate::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| session.serve(socket, idle))
}

/// One open session: its layers' KV cache and its share of the budget.
struct Session {
    id: u64,
    tokens: usize,
    shard: Arc<Llama>,
    /// Away while a step runs on a blocking thread.
    cache: Option<Cache>,
    computing: Arc<tokio::sync::Semaphore>,
    _reservation: Reservation,
}

/// Why a session ends early: the close code and the reason sent with it.
struct Ending(u16, String);

impl Session {
    async fn serve(mut self, mut socket: WebSocket, idle: Duration) {
        let ending = loop {
            let message = match tokio::time::timeout(idle, socket.recv()).await {
                Err(_) => break Ending(close_code::NORMAL, format!("idle for {idle:?}")),
                Ok(None | Some(Err(_))) => return,
                Ok(Some(Ok(message))) => message,
            };
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Text(_) => {
                    break Ending(close_code::POLICY, "steps are binary frames".into());
                }
            };
            match self.step(&bytes).await {
                Ok(answer) => {
                    if socket.send(Message::Binary(answer.into())).await.is_err() {
                        return;
                    }
                }
                Err(ending) => break ending,
            }
        };
        let Ending(code, reason) = ending;
        tracing::debug!(session = self.id, code, %reason, "shard session closed");
        let close = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = socket.send(Message::Close(Some(close))).await;
    }

    /// Runs one frame through the layers; the answer's bytes.
    async fn step(&mut self, bytes: &[u8]) -> Result<Vec<u8>, Ending> {
        let width = self.shard.config.hidden;
        let refuse = |reason: String| Ending(close_code::POLICY, reason);
        let frame = Frame::decode(bytes, width).map_err(|e| refuse(e.to_string()))?;
        if frame.session != self.id {
            return Err(refuse(format!(
                "this is session {}, not {}",
                self.id, frame.session
            )));
        }
        let (start, count) = (frame.start as usize, frame.count as usize);
        if count > MAX_STEP_TOKENS {
            return Err(refuse(format!(
                "a step carries at most {MAX_STEP_TOKENS} tokens, not {count}"
            )));
        }
        if start + count > self.tokens {
            return Err(refuse(format!(
                "tokens {start}..{} are past the {} this session reserved",
                start + count,
                self.tokens
            )));
        }
        let _turn = self
            .computing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Ending(close_code::ERROR, e.to_string()))?;
        let (shard, mut cache) = (self.shard.clone(), self.cache.take());
        let ran = tokio::task::spawn_blocking(move || {
            let out = cache.as_mut().map(|cache| {
                let hidden = Tensor::from_vec(frame.hidden, (1, count, width), &Device::Cpu)?;
                let out = shard.run_layers(&hidden, start, cache)?;
                Ok::<_, aicoin_inference::InferenceError>(out.flatten_all()?.to_vec1::<f32>()?)
            });
            (cache, out)
        })
        .await;
        let (cache, out) = ran.map_err(|e| Ending(close_code::ERROR, e.to_string()))?;
        self.cache = cache;
        let hidden = match out {
            Some(Ok(hidden)) => hidden,
            Some(Err(e)) if e.is_client_error() => return Err(refuse(e.to_string())),
            Some(Err(e)) => return Err(Ending(close_code::ERROR, e.to_string())),
            None => {
                return Err(Ending(
                    close_code::ERROR,
                    "the session's cache is gone".into(),
                ));
            }
        };
        Ok(Frame {
            session: self.id,
            start: frame.start,
            count: frame.count,
            hidden,
        }
        .encode())
    }
}

/// A layer range of a model that a node serves: `model:start-end` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    pub model: String,
    pub layers: std::ops::Range<usize>,
}

impl std::str::FromStr for ShardSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{text:?} is not MODEL:START-END (layers START..END, e.g. smollm2-135m-instruct:0-15)"
            )
        };
        let (model, layers) = text.rsplit_once(':').ok_or_else(bad)?;
        let (start, end) = layers.split_once('-').ok_or_else(bad)?;
        let (start, end): (usize, usize) = (
            start.trim().parse().map_err(|_| bad())?,
            end.trim().parse().map_err(|_| bad())?,
        );
        if model.is_empty() || start >= end {
            return Err(bad());
        }
        Ok(Self {
            model: model.to_string(),
            layers: start..end,
        })
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}-{}",
            self.model, self.layers.start, self.layers.end
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_name_a_model_and_a_layer_range() {
        let spec: ShardSpec = "smollm2-135m-instruct:0-15".parse().unwrap();
        assert_eq!(
            (spec.model.as_str(), spec.layers.clone()),
            ("smollm2-135m-instruct", 0..15)
        );
        assert_eq!(spec.to_string(), "smollm2-135m-instruct:0-15");
        for bad in [
            "smollm2",
            "smollm2:15",
            "smollm2:15-15",
            "smollm2:9-3",
            ":0-3",
            "m:a-b",
        ] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
    }
}
