//! Cluster administration: status, and adding or removing a validator at runtime. Operators reach
//! it over a small HTTP API bound to localhost (`aicoin cluster …`), which refuses web pages (see
//! [`aicoin_http::operator_only`]); a member that is not the leader forwards the request to the
//! leader over the authenticated transport.

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use alloy_primitives::Address;
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{
    Shared,
    types::{ChainPoint, Member},
};

/// What an admin request asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminRequest {
    Status,
    Add { address: Address, member: Member },
    Remove { address: Address },
}

/// One validator as the leader sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    pub address: Address,
    #[serde(flatten)]
    pub member: Member,
    /// A voter (false: a learner still catching up).
    pub voter: bool,
    /// The last log index the leader knows this member holds.
    pub matched_index: Option<u64>,
    /// Log entries (one per block, plus raft's own) it is behind the leader.
    pub lag: Option<u64>,
}

/// `aicoin cluster status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub leader: Option<Address>,
    pub term: u64,
    /// The leader's last committed (and applied) block.
    pub committed_block: ChainPoint,
    pub last_log_index: Option<u64>,
    pub members: Vec<MemberStatus>,
}

pub type AdminReply = Result<ClusterStatus, String>;

/// Runs `request` here when this node leads; otherwise forwards it (once) to the leader.
pub async fn execute(shared: &Arc<Shared>, request: AdminRequest, forwarded: bool) -> AdminReply {
    let metrics = shared.raft.metrics().borrow().clone();
    if metrics.state != ServerState::Leader {
        let Some(leader) = metrics.current_leader else {
            return Err("no leader right now (an election is under way); try again".into());
        };
        if forwarded {
            return Err(format!("{leader} is the leader now; try again"));
        }
        let Some(member) = metrics.membership_config.membership().get_node(&leader) else {
            return Err(format!("the leader {leader} is not in the membership"));
        };
        // A status is quick, a removal two commits; adding a validator waits for it to catch up.
        let timeout = match request {
            AdminRequest::Status => Duration::from_secs(5),
            AdminRequest::Remove { .. } => Duration::from_secs(30),
            AdminRequest::Add { .. } => Duration::from_secs(600),
        };
        let reply: Result<AdminReply, _> = shared
            .caller
            .call(leader, &member.sync_url, "admin", &request, timeout)
            .await;
        return reply.map_err(|e| format!("forwarding to the leader failed: {e}"))?;
    }
    let raft = &shared.raft;
    match request {
        AdminRequest::Status => {}
        AdminRequest::Add { address, member } => {
            if !shared.auth.is_validator(&address) {
                return Err(format!(
                    "{address} is not an authority of the chain spec, so its blocks would be refused"
                ));
            }
            tracing::info!(%address, %member, "adding a validator: catching it up as a learner");
            raft.add_learner(address, member, true)
                .await
                .map_err(|e| e.to_string())?;
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([address])), false)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(%address, "validator added");
        }
        AdminRequest::Remove { address } => {
            let membership = metrics.membership_config.membership();
            let removed = BTreeSet::from([address]);
            let change = if membership.voter_ids().any(|id| id == address) {
                ChangeMembers::RemoveVoters(removed)
            } else if membership.get_node(&address).is_some() {
                ChangeMembers::RemoveNodes(removed)
            } else {
                return Err(format!("{address} is not a member of the cluster"));
            };
            raft.change_membership(change, false)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(%address, "validator removed");
        }
    }
    status(shared).await
}

async fn status(shared: &Arc<Shared>) -> AdminReply {
    let metrics = shared.raft.metrics().borrow().clone();
    let ledger = shared.ledger.clone();
    let head = tokio::task::spawn_blocking(move || ledger.head())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<Address> = membership.voter_ids().collect();
    let replication = metrics.replication.clone().unwrap_or_default();
    let members = membership
        .nodes()
        .map(|(address, member)| {
            let matched_index = match *address == metrics.id {
                true => metrics.last_log_index,
                false => replication.get(address).copied().flatten().map(|l| l.index),
            };
            MemberStatus {
                address: *address,
                member: member.clone(),
                voter: voters.contains(address),
                matched_index,
                lag: metrics
                    .last_log_index
                    .map(|last| last.saturating_sub(matched_index.unwrap_or(0))),
            }
        })
        .collect();
    Ok(ClusterStatus {
        leader: metrics.current_leader,
        term: metrics.current_term,
        committed_block: head,
        last_log_index: metrics.last_log_index,
        members,
    })
}

/// `POST /cluster/add`: the new validator's sync URL (its address and addresses are asked of it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    sync_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    address: Address,
}

fn reply(result: AdminReply) -> Response {
    match result {
        Ok(status) => Json(status).into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": error })),
        )
            .into_response(),
    }
}

/// Serves the admin API on `addr` until `shutdown`.
pub async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route(
            "/cluster/status",
            get(|State(s): State<Arc<Shared>>| async move {
                reply(execute(&s, AdminRequest::Status, false).await)
            }),
        )
        .route(
            "/cluster/add",
            post(
                |State(s): State<Arc<Shared>>, Json(body): Json<AddBody>| async move {
                    let result = match s.fetcher.status(&body.sync_url).await {
                        Ok(node) => {
                            let request = AdminRequest::Add {
                                address: node.address,
                                member: node.member,
                            };
                            execute(&s, request, false).await
                        }
                        Err(e) => Err(format!("cannot reach the new validator: {e}")),
                    };
                    reply(result)
                },
            ),
        )
        .route(
            "/cluster/remove",
            post(
                |State(s): State<Arc<Shared>>, Json(body): Json<RemoveBody>| async move {
                    let request = AdminRequest::Remove {
                        address: body.address,
                    };
                    reply(execute(&s, request, false).await)
                },
            ),
        )
        .with_state(shared);
    aicoin_http::listen(
        "cluster admin",
        addr,
        aicoin_http::operator_only(app),
        shutdown,
    )
    .await
}
