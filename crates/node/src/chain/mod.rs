//! The chain engine: builds sealed blocks from pool transactions on top of the head, and imports
//! blocks sealed elsewhere after checking their seal and re-executing them. Both run a block
//! through one execution path (`Chain::execute`: the transactions, then the end-of-block system
//! step), and
//! both commit a block with its seal and state in one storage transaction, then announce the new
//! head.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use aicoin_consensus::{HeaderError, header_template, seal_block, validate_header};
use aicoin_execution::{
    BlockBuilder, BuiltBlock, ExecError, StateDb, TxError, TxValidationError, block_env,
    validate_transaction,
};
use aicoin_primitives::{ChainSpec, NewBlock, Seal, SealedBlock};
use aicoin_storage::{Store, StoreError};
use aicoin_txpool::BestTransactions;
use alloy_consensus::{Header, TxEnvelope, proofs};
use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use tokio::sync::broadcast;

/// How this node seals the blocks it produces.
#[derive(Debug, Clone)]
pub struct Sealer {
    pub key: PrivateKeySigner,
    /// Receives the miners' share of each block reward.
    pub beneficiary: Address,
    pub gas_limit: u64,
}

/// The outcome of one production round.
#[derive(Debug)]
pub struct Produced {
    pub block: Arc<NewBlock>,
    /// Senders whose transactions the block included, with their next nonce.
    pub next_nonces: Vec<(Address, u64)>,
    /// Pool transactions that cannot execute (and never will as they are).
    pub rejected: Vec<(B256, String)>,
    pub timings: BlockTimings,
}

/// Senders whose transactions a block included, with their next nonce.
pub type NextNonces = Vec<(Address, u64)>;

/// A sealed block built for a cluster to commit.
#[derive(Debug)]
pub struct Proposal {
    pub block: SealedBlock,
    /// Pool transactions that cannot execute (and never will as they are).
    pub rejected: Vec<(B256, String)>,
}

/// What importing a committed block did.
#[derive(Debug)]
pub enum Committed {
    /// It was stored already (a replayed entry).
    Known,
    Imported {
        block: Arc<NewBlock>,
        /// Senders whose transactions the block included, with their next nonce.
        next_nonces: Vec<(Address, u64)>,
    },
}

/// Where a block's production time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockTimings {
    /// Running the transactions and paying the reward.
    pub execution: Duration,
    /// Writing the state changes and updating the state root.
    pub state_root: Duration,
    /// Storing the block and making it durable.
    pub commit: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exec(Box<ExecError>),
    #[error("invalid header: {0}")]
    Header(#[from] HeaderError),
    #[error("sealing failed: {0}")]
    Seal(#[from] aicoin_consensus::SealError),
    #[error("invalid transaction {index}: {error}")]
    Transaction {
        index: usize,
        error: TxValidationError,
    },
    #[error(
        "block {number} was committed as {committed}, but this data dir holds {stored} there: \
         it was written by another chain"
    )]
    Conflict {
        number: u64,
        stored: B256,
        committed: B256,
    },
    #[error("block {number}: {field} is {got}, execution gives {expected}")]
    Mismatch {
        number: u64,
        field: &'static str,
        got: B256,
        expected: B256,
    },
    #[error("block {number}: gasUsed is {got}, execution gives {expected}")]
    GasUsedMismatch {
        number: u64,
        got: u64,
        expected: u64,
    },
    #[error("block {number}: logsBloom differs from the one execution gives")]
    BloomMismatch { number: u64 },
}

/// The chain engine. Cheap to share; production and import must not run concurrently (the
/// store refuses a second writer for the same height).
#[derive(Debug)]
pub struct Chain {
    store: Store,
    spec: Arc<ChainSpec>,
    new_blocks: broadcast::Sender<Arc<NewBlock>>,
    /// The last block [`Chain::build`] proposed, by hash, with what executing it gave: when the
    /// cluster commits that very block, importing it reuses the execution instead of running
    /// every transaction a second time.
    proposed: Mutex<Option<(B256, BuiltBlock)>>,
}

impl Chain {
    pub fn new(store: Store, spec: Arc<ChainSpec>) -> Self {
        let (new_blocks, _) = broadcast::channel(256);
        Self {
            store,
            spec,
            new_blocks,
            proposed: Mutex::new(None),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn spec(&self) -> &Arc<ChainSpec> {
        &self.spec
    }

    /// Stored block `number` with its seal and transactions, as blocks travel between nodes
    /// (none for genesis, which no one sealed).
    pub fn block(&self, number: u64) -> Result<Option<SealedBlock>, ChainError> {
        Ok(self.store.reader()?.sealed_block(number)?)
    }

    /// New heads as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<NewBlock>> {
        self.new_blocks.subscribe()
    }

    /// The channel new heads are announced on, for components that subscribe later.
    pub fn new_blocks(&self) -> broadcast::Sender<Arc<NewBlock>> {
        self.new_blocks.clone()
    }

    /// Builds, seals and commits the next block from `candidates` at `timestamp` (seconds).
    pub fn produce(
        &self,
        sealer: &Sealer,
        timestamp: u64,
        candidates: &mut BestTransactions,
    ) -> Result<Produced, ChainError> {
        let (header, built, rejected, execution) = self.propose(sealer, timestamp, candidates)?;
        let next_nonces = next_nonces(&built);
        let (block, mut timings) =
            self.commit(header, built, |header| sign(header, &sealer.key))?;
        timings.execution = execution;
        Ok(Produced {
            block,
            next_nonces,
            rejected,
            timings,
        })
    }

    /// Builds and seals the next block as [`Chain::produce`] does, but stores nothing: a
    /// replicated validator proposes the block to its cluster, and every member (itself too)
    /// imports it once a majority has it. What executing it gave is kept in memory until the
    /// next import, which reuses it if that is this very block.
    pub fn build(
        &self,
        sealer: &Sealer,
        timestamp: u64,
        candidates: &mut BestTransactions,
    ) -> Result<Proposal, ChainError> {
        let (mut header, built, rejected, _) = self.propose(sealer, timestamp, candidates)?;
        // The state root needs the trie as this block leaves it: write it, read the root, and
        // drop the transaction uncommitted.
        let mut discarded = self.store.begin_block(header.number)?;
        header.state_root = discarded.apply_state(&built.changes)?;
        drop(discarded);
        complete_header(&mut header, &built);
        let block = seal_block(header, built.transactions.clone(), &sealer.key)?;
        *self.proposed.lock().unwrap_or_else(PoisonError::into_inner) = Some((block.hash(), built));
        Ok(Proposal { block, rejected })
    }

    /// Runs the pool's best transactions on the head for a block at `timestamp`.
    #[allow(clippy::type_complexity)]
    fn propose(
        &self,
        sealer: &Sealer,
        timestamp: u64,
        candidates: &mut BestTransactions,
    ) -> Result<(Header, BuiltBlock, Vec<(B256, String)>, Duration), ChainError> {
        let reader = self.store.reader()?;
        let head = reader.head_number()?;
        let parent = reader.header(head)?.ok_or_else(|| missing(head))?;
        let parent_hash = reader.block_hash(head)?.ok_or_else(|| missing(head))?;
        let header = header_template(
            &parent,
            parent_hash,
            sealer.beneficiary,
            timestamp,
            sealer.gas_limit,
            sealer.key.address(),
        );
        let started = Instant::now();
        let mut rejected = Vec::new();
        let built = self.execute(
            reader,
            &header,
            Transactions::Pool(candidates, &mut rejected),
        )?;
        Ok((header, built, rejected, started.elapsed()))
    }

    /// The one block-execution path, producing and importing alike: runs the block described
    /// by `header` on its parent's state (`reader`'s head), with the transactions `source`
    /// gives, then the end-of-block system step (the reward; epoch settlement and executed
    /// proposals join it there).
    fn execute(
        &self,
        reader: aicoin_storage::Reader,
        header: &Header,
        source: Transactions<'_>,
    ) -> Result<BuiltBlock, ChainError> {
        let parent = header.number - 1;
        let issued = reader.issued()?;
        let mut builder = BlockBuilder::new(
            StateDb::at(reader, parent)?,
            block_env(self.spec.chain_id, header),
        );
        match source {
            Transactions::Pool(candidates, rejected) => {
                while let Some(candidate) = candidates.next() {
                    if builder.gas_left() < 21_000 {
                        break;
                    }
                    match builder.execute(candidate.tx.clone()) {
                        Ok(_) => {}
                        // Does not fit this block: the sender's transactions wait for the next.
                        Err(ExecError::Tx {
                            error: TxError::BlockGasExhausted { .. },
                            ..
                        }) => candidates.skip_sender(candidate.sender()),
                        Err(ExecError::Tx {
                            hash,
                            error: TxError::Invalid(reason),
                        }) => {
                            rejected.push((hash, reason.to_string()));
                            candidates.skip_sender(candidate.sender());
                        }
                        Err(fatal) => return Err(fatal.into()),
                    }
                }
            }
            Transactions::Sealed(transactions) => {
                for (index, tx) in transactions.into_iter().enumerate() {
                    let tx = validate_transaction(tx, self.spec.chain_id, header.gas_limit)
                        .map_err(|error| ChainError::Transaction { index, error })?;
                    builder.execute(tx)?;
                }
            }
        }
        Ok(builder.finish(
            &self.spec.tokenomics,
            header.number,
            issued,
            self.spec.treasury,
        )?)
    }

    /// Imports a block a replicated cluster committed. Idempotent: a block already stored at
    /// its height is accepted when it is the same block (a restarted member replays the entries
    /// after its last recorded one) and refused when it is not. Its timestamp is not compared
    /// with this machine's clock: the majority accepted it, and a member with a skewed clock
    /// must not diverge from the rest.
    pub fn import_committed(&self, block: SealedBlock) -> Result<Committed, ChainError> {
        let number = block.number();
        let hash = block.hash();
        let reader = self.store.reader()?;
        if number <= reader.head_number()? {
            let stored = reader.block_hash(number)?;
            return match stored == Some(hash) {
                true => Ok(Committed::Known),
                false => Err(ChainError::Conflict {
                    number,
                    stored: stored.unwrap_or_default(),
                    committed: hash,
                }),
            };
        }
        drop(reader);
        // The block this node proposed (the hash covers its parent and every transaction): its
        // execution is already known.
        let proposed = self
            .proposed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|(proposed, built)| {
                *proposed == hash && built.transactions == block.transactions
            })
            .map(|(_, built)| built);
        let timestamp = block.header.timestamp;
        let (block, next_nonces) = self.import_block(block, timestamp, proposed)?;
        Ok(Committed::Imported { block, next_nonces })
    }

    /// Verifies a block sealed elsewhere (seal, links, every transaction, and every root after
    /// re-executing it) and commits it as the new head.
    pub fn import(&self, block: SealedBlock, now: u64) -> Result<Arc<NewBlock>, ChainError> {
        Ok(self.import_block(block, now, None)?.0)
    }

    /// Checks `header` against the head and commits the block; `executed` is what running
    /// exactly these transactions on the head gave, when this node already knows it.
    fn import_block(
        &self,
        block: SealedBlock,
        now: u64,
        executed: Option<BuiltBlock>,
    ) -> Result<(Arc<NewBlock>, NextNonces), ChainError> {
        let reader = self.store.reader()?;
        let head = reader.head_number()?;
        let parent = reader.header(head)?.ok_or_else(|| missing(head))?;
        let parent_hash = reader.block_hash(head)?.ok_or_else(|| missing(head))?;
        let SealedBlock {
            header,
            seal,
            transactions,
        } = block;
        validate_header(&self.spec, &parent, parent_hash, &header, &seal, now)?;
        let built = match executed {
            Some(built) => built,
            None => {
                check_transactions_root(&header, &transactions)?;
                let built = self.execute(reader, &header, Transactions::Sealed(transactions))?;
                check_results(&header, &built)?;
                built
            }
        };
        let number = header.number;
        let sealed = header.clone();
        let next_nonces = next_nonces(&built);
        let (block, _) = self.commit(header, built, move |computed| {
            if computed.state_root != sealed.state_root {
                return Err(ChainError::Mismatch {
                    number,
                    field: "stateRoot",
                    got: sealed.state_root,
                    expected: computed.state_root,
                });
            }
            Ok((sealed, seal))
        })?;
        Ok((block, next_nonces))
    }
}

/// Where a block's transactions come from: the pool when producing (one that cannot execute is
/// skipped and reported), the sealed block when importing (one that fails rejects the block).
enum Transactions<'a> {
    Pool(&'a mut BestTransactions, &'a mut Vec<(B256, String)>),
    Sealed(Vec<TxEnvelope>),
}

/// Signs `header` as this node's block.
fn sign(header: Header, key: &PrivateKeySigner) -> Result<(Header, Seal), ChainError> {
    let block = seal_block(header, Vec::new(), key)?;
    Ok((block.header, block.seal))
}

fn check_transactions_root(header: &Header, transactions: &[TxEnvelope]) -> Result<(), ChainError> {
    let tx_root = proofs::calculate_transaction_root(transactions);
    if tx_root != header.transactions_root {
        return Err(ChainError::Mismatch {
            number: header.number,
            field: "transactionsRoot",
            got: header.transactions_root,
            expected: tx_root,
        });
    }
    Ok(())
}

/// Checks every result an imported header claims but the state root (checked when the state
/// is written).
fn check_results(header: &Header, built: &BuiltBlock) -> Result<(), ChainError> {
    let number = header.number;
    if header.gas_used != built.gas_used {
        return Err(ChainError::GasUsedMismatch {
            number,
            got: header.gas_used,
            expected: built.gas_used,
        });
    }
    if header.logs_bloom != built.logs_bloom {
        return Err(ChainError::BloomMismatch { number });
    }
    if header.receipts_root != built.receipts_root {
        return Err(ChainError::Mismatch {
            number,
            field: "receiptsRoot",
            got: header.receipts_root,
            expected: built.receipts_root,
        });
    }
    Ok(())
}

impl Chain {
    /// Writes the block's state, completes the header with the results (`finalize` seals it, or
    /// checks it against the block being imported and gives its seal), stores the block and
    /// commits.
    fn commit(
        &self,
        mut header: Header,
        built: BuiltBlock,
        finalize: impl FnOnce(Header) -> Result<(Header, Seal), ChainError>,
    ) -> Result<(Arc<NewBlock>, BlockTimings), ChainError> {
        let started = Instant::now();
        let mut writer = self.store.begin_block(header.number)?;
        header.state_root = writer.apply_state(&built.changes)?;
        let state_root = started.elapsed();
        complete_header(&mut header, &built);
        let (header, seal) = finalize(header)?;
        let hash = header.hash_slow();
        writer.insert_block(
            &header,
            hash,
            Some(&seal),
            &built.transactions,
            &built.senders,
            &built.receipts,
            built.issued,
        )?;
        writer.insert_system_logs(&built.system_logs)?;
        writer.commit()?;
        let timings = BlockTimings {
            state_root,
            commit: started.elapsed() - state_root,
            ..Default::default()
        };
        let transactions = built.transactions.iter().map(|tx| *tx.tx_hash()).collect();
        let block = Arc::new(NewBlock {
            header,
            hash,
            transactions,
        });
        // No subscriber is fine.
        let _ = self.new_blocks.send(block.clone());
        Ok((block, timings))
    }
}

impl From<ExecError> for ChainError {
    fn from(e: ExecError) -> Self {
        Self::Exec(Box::new(e))
    }
}

/// Fills in what executing the block decided, except the state root.
fn complete_header(header: &mut Header, built: &BuiltBlock) {
    header.transactions_root = built.transactions_root;
    header.receipts_root = built.receipts_root;
    header.logs_bloom = built.logs_bloom;
    header.gas_used = built.gas_used;
}

fn missing(number: u64) -> ChainError {
    StoreError::Corrupt(format!("block {number} is missing")).into()
}

fn next_nonces(built: &BuiltBlock) -> Vec<(Address, u64)> {
    let mut next: HashMap<Address, u64> = HashMap::new();
    for (tx, sender) in built.transactions.iter().zip(&built.senders) {
        let nonce = alloy_consensus::Transaction::nonce(tx) + 1;
        let entry = next.entry(*sender).or_default();
        *entry = (*entry).max(nonce);
    }
    next.into_iter().collect()
}

#[cfg(test)]
mod tests;
