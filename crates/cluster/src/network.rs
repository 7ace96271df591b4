//! The client half of the node-to-node transport: raft's RPCs (and forwarded admin requests) as
//! signed HTTP POSTs to a peer's sync port, with signed responses checked before they are
//! believed.

use std::{sync::Arc, time::Duration};

use alloy_primitives::Address;
use openraft::{
    error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable},
    network::{RPCOption, RaftNetwork, RaftNetworkFactory},
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    },
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    auth::Authenticator,
    body::{MAX_REPLY_BYTES, read_capped},
    types::{Member, Raft},
};

/// Why a signed call failed before any answer could be believed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0} is unreachable: {1}")]
    Unreachable(String, String),
    #[error("{0}: {1}")]
    Failed(String, String),
}

/// Makes one signed call: `endpoint` at `sync_url`, answered by `peer`.
#[derive(Debug, Clone)]
pub struct Caller {
    auth: Arc<Authenticator>,
    http: reqwest::Client,
}

impl Caller {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap_or_default();
        Self { auth, http }
    }

    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: Address,
        sync_url: &str,
        endpoint: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let url = format!("{}/raft/{endpoint}", sync_url.trim_end_matches('/'));
        let failed = |what: String| CallError::Failed(url.clone(), what);
        let body = serde_json::to_vec(request).map_err(|e| failed(e.to_string()))?;
        let (nonce, headers) = self
            .auth
            .sign_request(peer, endpoint, &body)
            .map_err(|e| failed(e.to_string()))?;
        let mut builder = self.http.post(&url).timeout(timeout).body(body);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let response = builder.send().await.map_err(|e| match e.is_connect() {
            true => CallError::Unreachable(url.clone(), e.to_string()),
            false => failed(e.to_string()),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_capped(response, MAX_REPLY_BYTES)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        self.auth
            .check_response(&headers, endpoint, &bytes, peer, nonce)
            .map_err(|e| failed(format!("unauthenticated response: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| failed(e.to_string()))
    }
}

/// Raft's network: one [`Peer`] per target.
#[derive(Debug, Clone)]
pub struct Network {
    caller: Caller,
}

impl Network {
    pub fn new(caller: Caller) -> Self {
        Self { caller }
    }
}

impl RaftNetworkFactory<Raft> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: Address, node: &Member) -> Peer {
        Peer {
            target,
            sync_url: node.sync_url.clone(),
            caller: self.caller.clone(),
        }
    }
}

pub struct Peer {
    target: Address,
    sync_url: String,
    caller: Caller,
}

impl Peer {
    async fn rpc<Req: Serialize, Resp: DeserializeOwned, E>(
        &self,
        endpoint: &str,
        request: &Req,
        option: RPCOption,
    ) -> Result<Resp, RPCError<Address, Member, RaftError<Address, E>>>
    where
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<Address, E>> = self
            .caller
            .call(
                self.target,
                &self.sync_url,
                endpoint,
                request,
                option.hard_ttl(),
            )
            .await
            .map_err(|e| match e {
                CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Failed(..) => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<Raft> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Raft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<Address>, RPCError<Address, Member, RaftError<Address>>> {
        self.rpc("append", &rpc, option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Raft>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<Address>,
        RPCError<Address, Member, RaftError<Address, InstallSnapshotError>>,
    > {
        self.rpc("snapshot", &rpc, option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Address>,
        option: RPCOption,
    ) -> Result<VoteResponse<Address>, RPCError<Address, Member, RaftError<Address>>> {
        self.rpc("vote", &rpc, option).await
    }
}
