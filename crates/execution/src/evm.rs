//! The one EVM factory: Ethereum's EVM (alloy-evm's, Osaka rules) with the chain modules
//! installed among its precompiles. Block building, `eth_call`, `eth_estimateGas`,
//! `eth_createAccessList` and every tracer get their EVM here, so a module behaves the same in
//! each of them.

use std::sync::Arc;

use aicoin_modules::History;
use alloy_evm::{
    Database, Evm, EvmEnv, EvmFactory,
    eth::{EthEvm, EthEvmContext, EthEvmFactory},
    precompiles::PrecompilesMap,
};
use revm::{
    Inspector,
    context::{BlockEnv, TxEnv},
    context_interface::result::{EVMError, HaltReason},
    database_interface::DBErrorMarker,
    inspector::NoOpInspector,
    primitives::hardfork::SpecId,
};

/// Builds AICoin's EVM: [`EthEvmFactory`]'s, plus the modules' precompiles, which read the
/// chain's earlier blocks from `history`.
#[derive(Clone)]
pub struct AicoinEvmFactory {
    history: Arc<dyn History>,
}

impl AicoinEvmFactory {
    pub fn new(history: Arc<dyn History>) -> Self {
        Self { history }
    }
}

impl std::fmt::Debug for AicoinEvmFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AicoinEvmFactory").finish_non_exhaustive()
    }
}

/// The EVM [`AicoinEvmFactory`] builds.
pub type AicoinEvm<DB, I = NoOpInspector> = EthEvm<DB, I, PrecompilesMap>;

impl EvmFactory for AicoinEvmFactory {
    type Evm<DB: Database, I: Inspector<EthEvmContext<DB>>> = AicoinEvm<DB, I>;
    type Context<DB: Database> = EthEvmContext<DB>;
    type Tx = TxEnv;
    type Error<DBError: DBErrorMarker> = EVMError<DBError>;
    type HaltReason = HaltReason;
    type Spec = SpecId;
    type BlockEnv = BlockEnv;
    type Precompiles = PrecompilesMap;

    fn create_evm<DB: Database>(&self, db: DB, env: EvmEnv) -> Self::Evm<DB, NoOpInspector> {
        self.with_modules(EthEvmFactory::default().create_evm(db, env))
    }

    fn create_evm_with_inspector<DB: Database, I: Inspector<Self::Context<DB>>>(
        &self,
        db: DB,
        env: EvmEnv,
        inspector: I,
    ) -> Self::Evm<DB, I> {
        self.with_modules(EthEvmFactory::default().create_evm_with_inspector(db, env, inspector))
    }
}

impl AicoinEvmFactory {
    fn with_modules<DB: Database, I: Inspector<EthEvmContext<DB>>>(
        &self,
        mut evm: AicoinEvm<DB, I>,
    ) -> AicoinEvm<DB, I> {
        aicoin_modules::install(evm.precompiles_mut(), self.history.clone());
        evm
    }
}
