//! RPC errors and their JSON-RPC codes: -32602 for arguments that cannot be used, -32000 for
//! requests the node refuses (as geth), 3 with the revert data for reverted calls, -32005 when a
//! client exceeds its request rate or a result limit, -32603 when the node itself fails.

use aicoin_execution::{CallError, TraceError, TxValidationError};
use aicoin_storage::StoreError;
use aicoin_txpool::PoolError;
use alloy_primitives::{Address, Bytes, hex};
use jsonrpsee::types::{
    ErrorObjectOwned,
    error::{CALL_EXECUTION_FAILED_CODE, INTERNAL_ERROR_CODE, INVALID_PARAMS_CODE},
};

/// The code geth and every client use for a reverted call, with the revert data in `data`.
pub const EXECUTION_REVERTED_CODE: i32 = 3;

/// EIP-1474's "limit exceeded".
pub const LIMIT_EXCEEDED_CODE: i32 = -32005;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{0}")]
    InvalidParams(String),
    #[error("header not found")]
    HeaderNotFound,
    #[error(transparent)]
    Transaction(#[from] TxValidationError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("{}", revert_message(.0))]
    Reverted(Bytes),
    #[error("{0}")]
    Call(String),
    #[error("unknown account {0}: this node holds no key for it (only `--dev` unlocks accounts)")]
    UnknownAccount(Address),
    #[error("filter not found")]
    FilterNotFound,
    #[error("{0}")]
    LimitExceeded(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(
        "the transaction is pooled here, but not yet held where a crash of this node cannot \
         lose it ({0}); resend it (its nonce makes that safe)"
    )]
    NotReplicated(String),
    #[error("{0}")]
    Refused(String),
}

impl From<StoreError> for RpcError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure while serving RPC");
        Self::Internal(e.to_string())
    }
}

impl From<CallError> for RpcError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Reverted(data) => Self::Reverted(data),
            CallError::Request(msg) => Self::InvalidParams(msg),
            CallError::StateOverride(_) | CallError::SystemSender => {
                Self::InvalidParams(e.to_string())
            }
            CallError::Db(e) => Self::from(e.0),
            other => Self::Call(other.to_string()),
        }
    }
}

impl From<TraceError> for RpcError {
    fn from(e: TraceError) -> Self {
        match e {
            TraceError::Call(e) => (*e).into(),
            TraceError::Tracer(msg) => Self::InvalidParams(msg),
            TraceError::TooManySteps(_) | TraceError::TooLarge(_) => {
                Self::LimitExceeded(e.to_string())
            }
        }
    }
}

/// geth's wording: `execution reverted: <reason>` for `Error(string)` and for a decoded
/// `Panic(uint256)`; plain `execution reverted` for custom errors (their data is in `data`).
fn revert_message(data: &Bytes) -> String {
    use alloy_sol_types::{Panic, Revert, SolError};
    if let Ok(revert) = Revert::abi_decode(data) {
        format!("execution reverted: {}", revert.reason)
    } else if let Ok(panic) = Panic::abi_decode(data) {
        format!("execution reverted: {panic}")
    } else {
        "execution reverted".to_string()
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(e: RpcError) -> Self {
        let message = e.to_string();
        let code = match &e {
            RpcError::InvalidParams(_) | RpcError::Transaction(TxValidationError::Decode(_)) => {
                INVALID_PARAMS_CODE
            }
            RpcError::Reverted(data) => {
                return ErrorObjectOwned::owned(
                    EXECUTION_REVERTED_CODE,
                    message,
                    Some(hex::encode_prefixed(data)),
                );
            }
            RpcError::LimitExceeded(_) => LIMIT_EXCEEDED_CODE,
            RpcError::Internal(_) => INTERNAL_ERROR_CODE,
            RpcError::HeaderNotFound
            | RpcError::Transaction(_)
            | RpcError::Pool(_)
            | RpcError::Call(_)
            | RpcError::UnknownAccount(_)
            | RpcError::FilterNotFound
            | RpcError::NotReplicated(_)
            | RpcError::Refused(_) => CALL_EXECUTION_FAILED_CODE,
        };
        ErrorObjectOwned::owned(code, message, None::<()>)
    }
}

pub type RpcResult<T> = Result<T, RpcError>;
