//! RPC errors and their JSON-RPC codes: -32602 for arguments that cannot be used, -32000 for
//! requests the node refuses (as geth), 3 with the revert data for reverted calls, -32603 when
//! the node itself fails.

use aicoin_execution::{CallError, TxValidationError};
use aicoin_storage::StoreError;
use aicoin_txpool::PoolError;
use alloy_primitives::{Bytes, hex};
use jsonrpsee::types::{
    ErrorObjectOwned,
    error::{CALL_EXECUTION_FAILED_CODE, INTERNAL_ERROR_CODE, INVALID_PARAMS_CODE},
};

/// The code geth and every client use for a reverted call, with the revert data in `data`.
pub const EXECUTION_REVERTED_CODE: i32 = 3;

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
    #[error("internal error: {0}")]
    Internal(String),
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
            CallError::Db(e) => Self::from(e.0),
            other => Self::Call(other.to_string()),
        }
    }
}

fn revert_message(data: &Bytes) -> String {
    match alloy_sol_types::decode_revert_reason(data) {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".to_string(),
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(e: RpcError) -> Self {
        let message = e.to_string();
        match e {
            RpcError::InvalidParams(_) | RpcError::Transaction(TxValidationError::Decode(_)) => {
                ErrorObjectOwned::owned(INVALID_PARAMS_CODE, message, None::<()>)
            }
            RpcError::Reverted(data) => ErrorObjectOwned::owned(
                EXECUTION_REVERTED_CODE,
                message,
                Some(hex::encode_prefixed(&data)),
            ),
            RpcError::Internal(_) => {
                ErrorObjectOwned::owned(INTERNAL_ERROR_CODE, message, None::<()>)
            }
            RpcError::HeaderNotFound
            | RpcError::Transaction(_)
            | RpcError::Pool(_)
            | RpcError::Call(_) => {
                ErrorObjectOwned::owned(CALL_EXECUTION_FAILED_CODE, message, None::<()>)
            }
        }
    }
}

pub type RpcResult<T> = Result<T, RpcError>;
