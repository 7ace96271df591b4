//! The parameters module (`contracts/interfaces/IParams.sol`): views of every chain parameter
//! at the block a call runs on, and [`change`], which the governance module calls when it
//! executes a passed parameter change.

use aicoin_primitives::{
    PARAMS, modules::PARAMS_ADDRESS, param_by_key, param_key, params::ParamDef,
};
use alloy_primitives::{Bytes, U256};
use alloy_sol_types::{SolCall, SolInterface, sol};

use crate::call::{CallResult, Exit, ModuleCall};

sol!("../../contracts/interfaces/IParams.sol");

use IParams::IParamsCalls as Call;

/// Answers one call to `IParams`.
pub fn call(call: &mut ModuleCall<'_>) -> CallResult<Bytes> {
    call.charge_input()?;
    if !call.input.value.is_zero() {
        return Err(Exit::revert("IParams: does not accept AIC"));
    }
    let decoded = Call::abi_decode(call.input.data)
        .map_err(|_| Exit::revert(unknown_function(call.input.data)))?;
    let one = |call: &mut ModuleCall<'_>, name: &str| read(call, name);
    Ok(match decoded {
        Call::get(c) => {
            let def = known(&c.key)?;
            IParams::getCall::abi_encode_returns(&read_def(call, def)?).into()
        }
        Call::all(_) => {
            let mut keys = Vec::with_capacity(PARAMS.len());
            let mut values = Vec::with_capacity(PARAMS.len());
            for def in PARAMS {
                keys.push(def.key());
                values.push(read_def(call, def)?);
            }
            IParams::allCall::abi_encode_returns(&IParams::allReturn { keys, values }).into()
        }
        Call::initialReward(_) => encode_uint(one(call, "initialReward")?),
        Call::halvingInterval(_) => encode_uint(one(call, "halvingInterval")?),
        Call::treasuryShareBps(_) => encode_uint(one(call, "treasuryShareBps")?),
        Call::epochLength(_) => encode_uint(one(call, "epochLength")?),
        Call::minStake(_) => encode_uint(one(call, "minStake")?),
        Call::slashBps(_) => encode_uint(one(call, "slashBps")?),
        Call::subscriptionBlocks(_) => encode_uint(one(call, "subscriptionBlocks")?),
        Call::tier(c) => {
            let prefix = match c.id {
                1 => "basic",
                2 => "standard",
                3 => "premium",
                other => {
                    return Err(Exit::revert(format!(
                        "IParams: no tier {other} (1 Basic, 2 Standard, 3 Premium)"
                    )));
                }
            };
            let tier = IParams::tierReturn {
                price: one(call, &format!("{prefix}Price"))?,
                requestsPerMinute: one(call, &format!("{prefix}Rpm"))?,
                tokensPerDay: one(call, &format!("{prefix}TokensPerDay"))?,
            };
            IParams::tierCall::abi_encode_returns(&tier).into()
        }
        Call::set(_) => {
            return Err(Exit::revert(
                "IParams: only governance may set parameters, by a passed proposal \
                 (IGovernance.propose, kind 0)",
            ));
        }
    })
}

/// Sets parameter `key` to `value` (checked against its bounds) and emits `ParamChanged` from
/// the parameters module, where watchers of IParams look for it. Only the governance module
/// calls this, when it executes a passed proposal.
pub(crate) fn change(
    call: &mut ModuleCall<'_>,
    key: alloy_primitives::B256,
    value: U256,
) -> CallResult<()> {
    let def = known(&key)?;
    def.check(value)
        .map_err(|e| Exit::revert(format!("IParams: {e}")))?;
    let previous = call.read_from(PARAMS_ADDRESS, def.key())?;
    call.write_to(PARAMS_ADDRESS, key, value)?;
    call.emit_from(
        PARAMS_ADDRESS,
        &IParams::ParamChanged {
            key,
            previous,
            value,
        },
    )
}

pub(crate) fn known(key: &alloy_primitives::B256) -> CallResult<&'static ParamDef> {
    param_by_key(key).ok_or_else(|| {
        let name = String::from_utf8_lossy(key.as_slice())
            .trim_end_matches('\0')
            .to_string();
        Exit::revert(format!("IParams: unknown parameter {name:?} ({key})"))
    })
}

fn encode_uint(value: U256) -> Bytes {
    IParams::getCall::abi_encode_returns(&value).into()
}

/// The parameter called `name`: a name the module's code spells, so an unknown one is this
/// code's error, reported as such rather than read as an empty slot.
fn read(call: &mut ModuleCall<'_>, name: &str) -> CallResult<U256> {
    let def = known(&param_key(name))
        .map_err(|_| Exit::Fatal(format!("IParams reads an undefined parameter {name:?}")))?;
    read_def(call, def)
}

fn read_def(call: &mut ModuleCall<'_>, def: &ParamDef) -> CallResult<U256> {
    call.read(def.key())
}

fn unknown_function(data: &[u8]) -> String {
    match data.get(..4) {
        Some(selector) => format!(
            "IParams: no function with selector 0x{}",
            alloy_primitives::hex::encode(selector)
        ),
        None => "IParams: call data shorter than a function selector".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aicoin_primitives::{Params, modules::PARAMS_ADDRESS};
    use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
    use alloy_primitives::{Address, Log, TxKind};
    use alloy_sol_types::{Revert, SolError};
    use revm::{
        context::TxEnv,
        context_interface::result::ExecutionResult,
        database::{CacheDB, EmptyDB},
    };

    fn genesis_state() -> CacheDB<EmptyDB> {
        let mut db = CacheDB::new(EmptyDB::default());
        for (key, value) in Params::default().entries() {
            db.insert_account_storage(PARAMS_ADDRESS, key.into(), value)
                .unwrap();
        }
        // A user with coins to (try to) send along.
        let funded = revm::state::AccountInfo {
            balance: U256::from(10u64).pow(U256::from(18u64)),
            ..Default::default()
        };
        db.insert_account_info(Address::repeat_byte(7), funded);
        db
    }

    /// Runs `data` from `caller` to `to` with `value` and `gas`, and keeps the changes.
    fn transact(
        db: &mut CacheDB<EmptyDB>,
        caller: Address,
        to: Address,
        data: Vec<u8>,
        (value, gas): (U256, u64),
    ) -> ExecutionResult {
        let mut env = EvmEnv::default();
        env.cfg_env.disable_nonce_check = true;
        let mut evm = EthEvmFactory::default().create_evm(db, env);
        crate::install(
            evm.precompiles_mut(),
            std::sync::Arc::new(crate::history::MemoryHistory::default()),
        );
        let tx = TxEnv {
            caller,
            kind: TxKind::Call(to),
            data: data.into(),
            value,
            gas_limit: gas,
            gas_price: 0,
            ..Default::default()
        };
        evm.transact_commit(tx).unwrap()
    }

    fn call(db: &mut CacheDB<EmptyDB>, caller: Address, data: Vec<u8>) -> ExecutionResult {
        transact_to(db, caller, PARAMS_ADDRESS, data)
    }

    fn transact_to(
        db: &mut CacheDB<EmptyDB>,
        caller: Address,
        to: Address,
        data: Vec<u8>,
    ) -> ExecutionResult {
        transact(db, caller, to, data, (U256::ZERO, 1_000_000))
    }

    /// Runtime code that forwards its call data to the module with `opcode` (`STATICCALL` or
    /// `DELEGATECALL`) and returns or reverts with what came back.
    fn forwarder(opcode: u8) -> revm::bytecode::Bytecode {
        let mut code = vec![0x36, 0x5f, 0x5f, 0x37, 0x5f, 0x5f, 0x36, 0x5f, 0x73];
        code.extend_from_slice(PARAMS_ADDRESS.as_slice());
        code.extend_from_slice(&[0x5a, opcode, 0x3d, 0x5f, 0x5f, 0x3e, 0x60, 0x29, 0x57]);
        code.extend_from_slice(&[0x3d, 0x5f, 0xfd, 0x5b, 0x3d, 0x5f, 0xf3]);
        revm::bytecode::Bytecode::new_raw(code.into())
    }

    fn install_code(db: &mut CacheDB<EmptyDB>, at: Address, code: revm::bytecode::Bytecode) {
        let info = revm::state::AccountInfo {
            code_hash: code.hash_slow(),
            code: Some(code),
            ..Default::default()
        };
        db.insert_account_info(at, info);
    }

    fn revert_reason(result: &ExecutionResult) -> String {
        match result {
            ExecutionResult::Revert { output, .. } => Revert::abi_decode(output).unwrap().reason,
            other => panic!("expected a revert, got {other:?}"),
        }
    }

    fn output(result: ExecutionResult) -> (alloy_primitives::Bytes, Vec<Log>) {
        match result {
            ExecutionResult::Success { output, logs, .. } => (output.into_data(), logs),
            other => panic!("expected success, got {other:?}"),
        }
    }

    #[test]
    fn views_read_the_parameters_from_module_storage() {
        let mut db = genesis_state();
        let user = Address::repeat_byte(7);
        let key = param_key("epochLength");
        let (out, _) = output(call(&mut db, user, IParams::getCall { key }.abi_encode()));
        assert_eq!(
            IParams::getCall::abi_decode_returns(&out).unwrap(),
            U256::from(100u64)
        );
        let (out, _) = output(call(
            &mut db,
            user,
            IParams::tierCall { id: 2 }.abi_encode(),
        ));
        let tier = IParams::tierCall::abi_decode_returns(&out).unwrap();
        assert_eq!(tier.price, aicoin_primitives::AIC * U256::from(5u64));
        assert_eq!(tier.requestsPerMinute, U256::from(60u64));
        let (out, _) = output(call(&mut db, user, IParams::allCall {}.abi_encode()));
        let all = IParams::allCall::abi_decode_returns(&out).unwrap();
        assert_eq!(all.keys.len(), PARAMS.len());
        assert_eq!(
            all.keys.iter().zip(&all.values).find(|(k, _)| **k == key),
            Some((&key, &U256::from(100u64)))
        );
    }

    #[test]
    fn every_typed_getter_reads_the_parameter_it_names() {
        let mut db = genesis_state();
        let user = Address::repeat_byte(7);
        let getters: [(Vec<u8>, &str); 7] = [
            (IParams::initialRewardCall {}.abi_encode(), "initialReward"),
            (
                IParams::halvingIntervalCall {}.abi_encode(),
                "halvingInterval",
            ),
            (
                IParams::treasuryShareBpsCall {}.abi_encode(),
                "treasuryShareBps",
            ),
            (IParams::epochLengthCall {}.abi_encode(), "epochLength"),
            (IParams::minStakeCall {}.abi_encode(), "minStake"),
            (IParams::slashBpsCall {}.abi_encode(), "slashBps"),
            (
                IParams::subscriptionBlocksCall {}.abi_encode(),
                "subscriptionBlocks",
            ),
        ];
        let defaults = Params::default();
        for (data, name) in getters {
            let (out, _) = output(call(&mut db, user, data));
            assert_eq!(
                IParams::getCall::abi_decode_returns(&out).unwrap(),
                defaults.get(name).unwrap(),
                "{name}"
            );
        }
        for (id, prefix) in [(1u8, "basic"), (2, "standard"), (3, "premium")] {
            let (out, _) = output(call(&mut db, user, IParams::tierCall { id }.abi_encode()));
            let tier = IParams::tierCall::abi_decode_returns(&out).unwrap();
            assert_eq!(tier.price, defaults.get(&format!("{prefix}Price")).unwrap());
            assert_eq!(
                tier.requestsPerMinute,
                defaults.get(&format!("{prefix}Rpm")).unwrap()
            );
            assert_eq!(
                tier.tokensPerDay,
                defaults.get(&format!("{prefix}TokensPerDay")).unwrap()
            );
        }
    }

    #[test]
    fn bad_calls_revert_with_a_reason() {
        let mut db = genesis_state();
        let user = Address::repeat_byte(7);
        let unknown = IParams::getCall {
            key: param_key("epochs"),
        };
        assert!(revert_reason(&call(&mut db, user, unknown.abi_encode())).contains("\"epochs\""));
        assert!(revert_reason(&call(&mut db, user, vec![1, 2, 3, 4])).contains("0x01020304"));
        assert!(
            revert_reason(&call(
                &mut db,
                user,
                IParams::tierCall { id: 4 }.abi_encode()
            ))
            .contains("no tier 4")
        );
        let paid = transact(
            &mut db,
            user,
            PARAMS_ADDRESS,
            IParams::epochLengthCall {}.abi_encode(),
            (U256::from(1u64), 1_000_000),
        );
        assert!(revert_reason(&paid).contains("does not accept AIC"));
        // Gas bounds the call even though it costs nothing: too little for the read halts.
        let starved = transact(
            &mut db,
            user,
            PARAMS_ADDRESS,
            IParams::epochLengthCall {}.abi_encode(),
            (U256::ZERO, 21_000 + 1_000),
        );
        assert!(
            matches!(starved, ExecutionResult::Halt { .. }),
            "{starved:?}"
        );
    }

    #[test]
    fn no_call_but_a_direct_one_is_answered() {
        let mut db = genesis_state();
        // A contract delegating to the module would read and write its own storage as the
        // module's: refused, views included.
        let proxy = Address::repeat_byte(0x99);
        install_code(&mut db, proxy, forwarder(0xf4));
        let view = IParams::epochLengthCall {}.abi_encode();
        let delegated = transact_to(&mut db, Address::repeat_byte(7), proxy, view);
        assert!(
            revert_reason(&delegated).contains("direct calls only"),
            "{delegated:?}"
        );
    }

    #[test]
    fn set_is_refused_for_parameters_change_only_by_governance() {
        let mut db = genesis_state();
        let set = IParams::setCall {
            key: param_key("epochLength"),
            value: U256::from(10u64),
        }
        .abi_encode();
        let refused = call(&mut db, Address::repeat_byte(7), set);
        assert!(
            revert_reason(&refused).contains("only governance may set parameters"),
            "{refused:?}"
        );
        let (out, _) = output(call(
            &mut db,
            Address::repeat_byte(8),
            IParams::epochLengthCall {}.abi_encode(),
        ));
        assert_eq!(
            IParams::epochLengthCall::abi_decode_returns(&out).unwrap(),
            U256::from(100u64)
        );
    }
}
