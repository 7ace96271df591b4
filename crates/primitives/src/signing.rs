//! Signing a transaction with a local key into its [`TxEnvelope`], as the wallet, the benchmarks
//! and the tests do.

use alloy_consensus::{SignableTransaction, Signed, TxEnvelope};
use alloy_primitives::Signature;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

/// `tx` signed by `signer`, as the envelope of its type.
pub fn sign_transaction<T>(
    signer: &PrivateKeySigner,
    tx: T,
) -> Result<TxEnvelope, alloy_signer::Error>
where
    T: SignableTransaction<Signature>,
    Signed<T>: Into<TxEnvelope>,
{
    let signature = signer.sign_hash_sync(&tx.signature_hash())?;
    Ok(tx.into_signed(signature).into())
}
