//! The coordinator's side of one shard session: a WebSocket opened with a request signed for
//! that provider by the node key ([`aicoin_api::signed`]), then one frame out and one
//! back per step.

use std::time::Duration;

use aicoin_api::signed;
use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::frame::Frame;

/// Why a shard did not answer a step.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{url} is not a shard URL")]
    BadUrl { url: String },
    #[error("cannot sign the request: {0}")]
    Sign(#[from] alloy_signer::Error),
    #[error("the shard refused the session ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the shard's connection failed: {0}")]
    Connection(#[from] tungstenite::Error),
    #[error("no answer within {0:?}")]
    Deadline(Duration),
    #[error("the shard closed the session: {reason}")]
    Closed {
        /// The close frame's code, when it sent one.
        code: Option<u16>,
        reason: String,
    },
    #[error("the shard answered {got}, not the step {expected}")]
    Mismatch { expected: String, got: String },
}

impl LinkError {
    fn closed(code: Option<u16>, reason: &str) -> Self {
        Self::Closed {
            code,
            reason: reason.to_string(),
        }
    }

    /// The shard is up but full (its KV budget) or busy: worth another try soon, not a ban.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                status: 429 | 503,
                ..
            }
        )
    }

    /// The shard closed a session that went idle (its steps waited behind others): the
    /// provider is fine, and the session can be opened again and replayed there.
    pub fn is_idle_close(&self) -> bool {
        matches!(
            self,
            Self::Closed {
                code: Some(1000),
                ..
            }
        )
    }
}

/// An open session with one shard.
pub struct Link {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: u64,
    width: usize,
}

impl Link {
    /// Opens session `session` of `tokens` tokens on the shard of `model` that provider `to`
    /// serves at `api_url`.
    pub async fn open(
        key: &PrivateKeySigner,
        (to, api_url): (Address, &str),
        model: &str,
        (session, tokens): (u64, usize),
        width: usize,
        deadline: Duration,
    ) -> Result<Self, LinkError> {
        let path = format!("/v1/shards/{model}?session={session}&tokens={tokens}");
        let base = api_url.trim_end_matches('/');
        let url = match base.split_once("://") {
            Some(("http", rest)) => format!("ws://{rest}{path}"),
            Some(("https", rest)) => format!("wss://{rest}{path}"),
            _ => {
                return Err(LinkError::BadUrl {
                    url: api_url.into(),
                });
            }
        };
        let mut request = url.as_str().into_client_request()?;
        for (name, value) in signed::sign(key, to, "GET", &path, b"")? {
            let value = HeaderValue::from_str(&value).map_err(|_| LinkError::BadUrl {
                url: api_url.into(),
            })?;
            request.headers_mut().insert(name, value);
        }
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(crate::MAX_FRAME_BYTES))
            .max_frame_size(Some(crate::MAX_FRAME_BYTES));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let socket = match tokio::time::timeout(deadline, connect).await {
            Err(_) => return Err(LinkError::Deadline(deadline)),
            Ok(Ok((socket, _))) => socket,
            Ok(Err(tungstenite::Error::Http(response))) => {
                let message = response
                    .body()
                    .as_deref()
                    .map(|body| String::from_utf8_lossy(body).into_owned())
                    .unwrap_or_default();
                return Err(LinkError::Refused {
                    status: response.status().as_u16(),
                    message,
                });
            }
            Ok(Err(e)) => return Err(e.into()),
        };
        Ok(Self {
            socket,
            session,
            width,
        })
    }

    /// The shard's output for `hidden`, the tokens at `start..start + count`.
    pub async fn step(
        &mut self,
        hidden: &[f32],
        start: usize,
        count: usize,
        deadline: Duration,
    ) -> Result<Vec<f32>, LinkError> {
        let bytes = crate::frame::encode(self.session, start as u32, count as u32, hidden);
        let exchange = async {
            self.socket.send(Message::Binary(bytes.into())).await?;
            loop {
                match self.socket.next().await {
                    None => return Err(LinkError::closed(None, "the connection ended")),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Binary(bytes))) => {
                        return Frame::decode(&bytes, self.width).map_err(|e| {
                            LinkError::closed(None, &format!("it sent a bad frame: {e}"))
                        });
                    }
                    Some(Ok(Message::Close(close))) => {
                        return Err(match close {
                            Some(c) => LinkError::closed(Some(c.code.into()), &c.reason),
                            None => LinkError::closed(None, "no reason given"),
                        });
                    }
                    Some(Ok(_)) => continue,
                }
            }
        };
        let answer = tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| LinkError::Deadline(deadline))??;
        let asked = (self.session, start as u32, count as u32);
        if (answer.session, answer.start, answer.count) != asked {
            return Err(LinkError::Mismatch {
                expected: format!("{asked:?}"),
                got: format!("{:?}", (answer.session, answer.start, answer.count)),
            });
        }
        Ok(answer.hidden)
    }
}
