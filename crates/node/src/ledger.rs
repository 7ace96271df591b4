//! The chain as a replicated validator cluster and a full node see it ([`Ledger`]): blocks travel
//! as RLP [`SealedBlock`]s, committed blocks are imported (seal checked, re-executed) and prune the pool, and the
//! leader builds blocks without storing them until the cluster commits them.

use std::sync::Arc;

use aicoin_cluster::{ChainPoint, Hold, Ledger, LedgerError};
use aicoin_primitives::{DEFAULT_GAS_LIMIT, SealedBlock};
use aicoin_txpool::{PoolError, SenderState, TxPool};
use alloy_primitives::Bytes;
use alloy_rlp::{Decodable, Encodable};

use crate::{
    chain::{Chain, Committed, Sealer},
    producer::unix_now,
};

pub struct ChainLedger {
    pub chain: Arc<Chain>,
    pub pool: Arc<TxPool>,
    /// How this node seals what it builds (validators only).
    pub sealer: Option<Sealer>,
}

impl ChainLedger {
    /// Checks and pools one transaction another validator admitted, against this node's head.
    fn hold_one(&self, raw: &[u8]) -> Result<(), String> {
        let gas_limit = self
            .sealer
            .as_ref()
            .map_or(DEFAULT_GAS_LIMIT, |s| s.gas_limit);
        let chain_id = self.chain.spec().chain_id;
        let tx = aicoin_execution::decode_and_validate(raw, chain_id, gas_limit)
            .map_err(|e| e.to_string())?;
        let sender = {
            let reader = self.chain.store().reader().map_err(|e| e.to_string())?;
            let head = reader.head_number().map_err(|e| e.to_string())?;
            let state = reader.state_at(head).map_err(|e| e.to_string())?;
            state
                .account(&tx.signer())
                .map_err(|e| e.to_string())?
                .map_or_else(SenderState::default, |a| SenderState {
                    nonce: a.nonce,
                    balance: a.balance,
                })
        };
        match self.pool.add(tx, sender) {
            Ok(_) | Err(PoolError::AlreadyKnown) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Ledger for ChainLedger {
    fn hold(&self, transactions: &[Bytes]) -> Vec<Hold> {
        transactions
            .iter()
            .map(|raw| match self.hold_one(raw) {
                Ok(()) => Hold::Held,
                Err(reason) => Hold::Refused(reason),
            })
            .collect()
    }

    fn pending_upgrade(&self) -> Option<aicoin_cluster::PendingUpgrade> {
        crate::upgrade::pending_upgrade(self.chain.store()).map(|u| {
            aicoin_cluster::PendingUpgrade {
                version: u.version.to_string(),
                activation_block: u.activation,
            }
        })
    }

    fn head(&self) -> Result<ChainPoint, LedgerError> {
        let reader = self.chain.store().reader().map_err(LedgerError::chain)?;
        let number = reader.head_number().map_err(LedgerError::chain)?;
        let hash = reader
            .block_hash(number)
            .map_err(LedgerError::chain)?
            .ok_or(LedgerError::Missing(number))?;
        Ok(ChainPoint { number, hash })
    }

    fn apply(&self, mut bytes: &[u8]) -> Result<ChainPoint, LedgerError> {
        let block = SealedBlock::decode(&mut bytes)?;
        let point = ChainPoint {
            number: block.number(),
            hash: block.hash(),
        };
        if let Committed::Imported { next_nonces, .. } = self
            .chain
            .import_committed(block)
            .map_err(LedgerError::chain)?
        {
            self.pool.on_new_block(next_nonces);
        }
        Ok(point)
    }

    fn blocks(&self, from: u64, max: usize, max_bytes: usize) -> Result<Vec<Bytes>, LedgerError> {
        let mut blocks = Vec::new();
        let mut bytes = 0;
        for number in from..=u64::MAX {
            if blocks.len() >= max || bytes >= max_bytes {
                break;
            }
            let Some(block) = self.chain.block(number).map_err(LedgerError::chain)? else {
                break;
            };
            let mut out = Vec::with_capacity(block.length());
            block.encode(&mut out);
            bytes += out.len();
            blocks.push(out.into());
        }
        Ok(blocks)
    }

    fn build(&self) -> Result<Bytes, LedgerError> {
        let sealer = self.sealer.as_ref().ok_or(LedgerError::NotASealer)?;
        let proposal = self
            .chain
            .build(sealer, unix_now(), &mut self.pool.best())
            .map_err(LedgerError::chain)?;
        for (hash, reason) in &proposal.rejected {
            tracing::info!(%hash, reason, "dropped transaction that cannot execute");
        }
        let rejected: Vec<_> = proposal.rejected.iter().map(|(hash, _)| *hash).collect();
        self.pool.remove(&rejected);
        let mut out = Vec::with_capacity(proposal.block.length());
        proposal.block.encode(&mut out);
        Ok(out.into())
    }
}
