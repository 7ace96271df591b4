//! The one EVM factory: Ethereum's EVM (alloy-evm's, Osaka rules) with the chain modules
//! installed among its precompiles. Block building, `eth_call`, `eth_estimateGas`,
//! `eth_createAccessList` and every tracer get their EVM here, so a module behaves the same in
//! each of them.

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

/// Builds AICoin's EVM: [`EthEvmFactory`]'s, plus the modules' precompiles.
#[derive(Debug, Default, Clone, Copy)]
pub struct AicoinEvmFactory;

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
        with_modules(EthEvmFactory::default().create_evm(db, env))
    }

    fn create_evm_with_inspector<DB: Database, I: Inspector<Self::Context<DB>>>(
        &self,
        db: DB,
        env: EvmEnv,
        inspector: I,
    ) -> Self::Evm<DB, I> {
        with_modules(EthEvmFactory::default().create_evm_with_inspector(db, env, inspector))
    }
}

fn with_modules<DB: Database, I: Inspector<EthEvmContext<DB>>>(
    mut evm: AicoinEvm<DB, I>,
) -> AicoinEvm<DB, I> {
    aicoin_modules::install(evm.precompiles_mut());
    evm
}
