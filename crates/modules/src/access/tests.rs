use std::sync::Arc;

use aicoin_primitives::{
    AIC, Params,
    governance::purchases_paused_slot,
    modules::{API_ACCESS_ADDRESS, GOVERNANCE_ADDRESS, PARAMS_ADDRESS},
};
use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{Address, Log, TxKind, U256};
use alloy_sol_types::{Revert, SolCall, SolError, SolEvent};
use revm::{
    context::TxEnv,
    context_interface::result::ExecutionResult,
    database::{CacheDB, EmptyDB},
    state::AccountInfo,
};

use super::IApiAccess;
use crate::history::MemoryHistory;

const PERIOD: u64 = 100;
const BUYER: Address = Address::repeat_byte(0xb0);

fn aic(n: u64) -> U256 {
    AIC * U256::from(n)
}

struct Chain {
    db: CacheDB<EmptyDB>,
    block: u64,
}

impl Chain {
    fn new() -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        let params = Params {
            subscription_blocks: U256::from(PERIOD),
            ..Params::default()
        };
        for (key, value) in params.entries() {
            db.insert_account_storage(PARAMS_ADDRESS, key.into(), value)
                .unwrap();
        }
        let funded = AccountInfo {
            balance: aic(100),
            ..Default::default()
        };
        db.insert_account_info(BUYER, funded);
        Self { db, block: 1 }
    }

    fn transact(&mut self, data: Vec<u8>, value: U256) -> ExecutionResult {
        self.transact_as(BUYER, data, value)
    }

    fn transact_as(&mut self, caller: Address, data: Vec<u8>, value: U256) -> ExecutionResult {
        let mut env: EvmEnv = EvmEnv::default();
        env.cfg_env.disable_nonce_check = true;
        env.block_env.number = U256::from(self.block);
        let mut evm = EthEvmFactory::default().create_evm(&mut self.db, env);
        crate::install(evm.precompiles_mut(), Arc::new(MemoryHistory::default()));
        let tx = TxEnv {
            caller,
            kind: TxKind::Call(API_ACCESS_ADDRESS),
            data: data.into(),
            value,
            gas_limit: 1_000_000,
            gas_price: 0,
            ..Default::default()
        };
        evm.transact_commit(tx).unwrap()
    }

    fn buy(&mut self, tier: u8, value: U256) -> ExecutionResult {
        self.transact(IApiAccess::buyCall { tier }.abi_encode(), value)
    }

    fn subscription(&mut self) -> IApiAccess::Subscription {
        let call = IApiAccess::subscriptionCall { account: BUYER };
        let (out, _) = success(self.transact(call.abi_encode(), U256::ZERO));
        IApiAccess::subscriptionCall::abi_decode_returns(&out).unwrap()
    }
}

fn success(result: ExecutionResult) -> (alloy_primitives::Bytes, Vec<Log>) {
    match result {
        ExecutionResult::Success { output, logs, .. } => (output.into_data(), logs),
        other => panic!("expected success, got {other:?}"),
    }
}

fn reason(result: &ExecutionResult) -> String {
    match result {
        ExecutionResult::Revert { output, .. } => Revert::abi_decode(output).unwrap().reason,
        other => panic!("expected a revert, got {other:?}"),
    }
}

#[test]
fn buying_a_tier_at_its_price_subscribes_with_its_quotas() {
    let mut chain = Chain::new();
    let short = chain.buy(2, aic(5) - U256::ONE);
    assert!(
        reason(&short).contains("costs 5000000000000000000 wei"),
        "{short:?}"
    );
    let unknown = chain.buy(4, aic(5));
    assert!(reason(&unknown).contains("no tier 4"), "{unknown:?}");
    assert!(!chain.subscription().active);

    let (out, logs) = success(chain.buy(2, aic(5)));
    let expires = IApiAccess::buyCall::abi_decode_returns(&out).unwrap();
    assert_eq!(expires, 1 + PERIOD);
    let bought = IApiAccess::Purchased::decode_log_data(&logs[0].data).unwrap();
    assert_eq!(
        (bought.account, bought.tier, bought.price),
        (BUYER, 2, aic(5))
    );
    let sub = chain.subscription();
    assert_eq!(
        (
            sub.tier,
            sub.active,
            sub.requestsPerMinute,
            sub.tokensPerDay
        ),
        (2, true, U256::from(60u64), U256::from(100_000u64))
    );
    let revenue = IApiAccess::revenueCall { epoch: 0 }.abi_encode();
    let (out, _) = success(chain.transact(revenue, U256::ZERO));
    assert_eq!(
        IApiAccess::revenueCall::abi_decode_returns(&out).unwrap(),
        aic(5)
    );
    assert_eq!(
        chain
            .db
            .load_account(API_ACCESS_ADDRESS)
            .unwrap()
            .info
            .balance,
        aic(5),
        "the module holds the revenue"
    );

    // It lapses at its expiry block.
    chain.block = expires;
    let lapsed = chain.subscription();
    assert!(!lapsed.active);
    assert_eq!(lapsed.requestsPerMinute, U256::ZERO);
}

#[test]
fn the_same_tier_extends_a_higher_one_upgrades_with_credit_and_a_lower_waits() {
    let mut chain = Chain::new();
    success(chain.buy(1, aic(1)));
    let (out, _) = success(chain.buy(1, aic(1)));
    assert_eq!(
        IApiAccess::buyCall::abi_decode_returns(&out).unwrap(),
        1 + 2 * PERIOD,
        "extended from its end"
    );
    // Half-way through the second Basic period: 150 blocks left, worth 1.5 AIC of Basic, buy
    // 1.5 / 5 of a Standard period on top of the new one.
    chain.block = 51;
    let (out, _) = success(chain.buy(2, aic(5)));
    let left = 1 + 2 * PERIOD - 51;
    assert_eq!(
        IApiAccess::buyCall::abi_decode_returns(&out).unwrap(),
        51 + PERIOD + left / 5
    );
    let lower = chain.buy(1, aic(1));
    assert!(
        reason(&lower).contains("a lower tier can be bought once it expires"),
        "{lower:?}"
    );
    chain.block = chain.subscription().expiresAt;
    let (out, _) = success(chain.buy(1, aic(1)));
    assert_eq!(
        IApiAccess::buyCall::abi_decode_returns(&out).unwrap(),
        chain.block + PERIOD
    );
}

#[test]
fn keys_are_revoked_by_generation_and_purchases_can_be_paused() {
    let mut chain = Chain::new();
    assert_eq!(chain.subscription().keyGeneration, 0);
    let (out, logs) =
        success(chain.transact(IApiAccess::revokeKeysCall {}.abi_encode(), U256::ZERO));
    assert_eq!(
        IApiAccess::revokeKeysCall::abi_decode_returns(&out).unwrap(),
        1
    );
    let revoked = IApiAccess::KeysRevoked::decode_log_data(&logs[0].data).unwrap();
    assert_eq!((revoked.account, revoked.keyGeneration), (BUYER, 1));
    success(chain.buy(3, aic(20)));
    assert_eq!(
        chain.subscription().keyGeneration,
        1,
        "buying keeps the generation"
    );

    let paid_view = chain.transact(IApiAccess::revokeKeysCall {}.abi_encode(), U256::ONE);
    assert!(
        reason(&paid_view).contains("only buy accepts AIC"),
        "{paid_view:?}"
    );

    chain
        .db
        .insert_account_storage(
            GOVERNANCE_ADDRESS,
            purchases_paused_slot().into(),
            U256::ONE,
        )
        .unwrap();
    let paused = chain.buy(3, aic(20));
    assert!(
        reason(&paused).contains("paused tier purchases"),
        "{paused:?}"
    );
}

const VALIDATOR: Address = Address::repeat_byte(0xa0);
const GATEWAY: Address = Address::repeat_byte(0x9a);
const PROVIDER: Address = Address::repeat_byte(0x9b);

impl Chain {
    /// `VALIDATOR` an authority, `PROVIDER` an active provider, the registry in epoch 1.
    fn with_network() -> Self {
        use aicoin_primitives::registry::{
            ProviderField, address_word, authorities_slot, element, epoch_slot, provider_slot,
        };
        let mut chain = Self::new();
        let registry = aicoin_primitives::modules::REGISTRY_ADDRESS;
        let mut put = |slot: alloy_primitives::B256, value: U256| {
            chain
                .db
                .insert_account_storage(registry, slot.into(), value)
                .unwrap();
        };
        put(authorities_slot(), U256::ONE);
        put(element(authorities_slot(), 0), address_word(VALIDATOR));
        // Active (status 1); epoch 1, ending at block 100.
        put(provider_slot(PROVIDER, ProviderField::State), U256::ONE);
        put(epoch_slot(), U256::ONE | (U256::from(100u64) << 64));
        chain
    }

    fn call(&mut self, caller: Address, call: impl SolCall) -> ExecutionResult {
        self.transact_as(caller, call.abi_encode(), U256::ZERO)
    }
}

#[test]
fn only_validators_add_and_remove_gateways() {
    let mut chain = Chain::with_network();
    let add = IApiAccess::addGatewayCall {
        gateway: GATEWAY,
        url: "http://gw.example:8090".into(),
    };
    let refused = chain.call(BUYER, add.clone());
    assert!(
        reason(&refused).contains("only validators add gateways"),
        "{refused:?}"
    );
    let bad_url = chain.call(
        VALIDATOR,
        IApiAccess::addGatewayCall {
            gateway: GATEWAY,
            url: "ftp://gw".into(),
        },
    );
    assert!(
        reason(&bad_url).contains("http:// or https://"),
        "{bad_url:?}"
    );

    let (_, logs) = success(chain.call(VALIDATOR, add.clone()));
    let added = IApiAccess::GatewayAdded::decode_log_data(&logs[0].data).unwrap();
    assert_eq!((added.gateway, added.addedBy), (GATEWAY, VALIDATOR));
    // Adding again re-addresses it, never lists it twice.
    success(chain.call(
        VALIDATOR,
        IApiAccess::addGatewayCall {
            gateway: GATEWAY,
            url: "https://gw.example".into(),
        },
    ));
    let (out, _) = success(chain.call(BUYER, IApiAccess::gatewaysCall {}));
    let listed = IApiAccess::gatewaysCall::abi_decode_returns(&out).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].gateway, listed[0].url.as_str()),
        (GATEWAY, "https://gw.example")
    );

    let refused = chain.call(BUYER, IApiAccess::removeGatewayCall { gateway: GATEWAY });
    assert!(
        reason(&refused).contains("only validators remove"),
        "{refused:?}"
    );
    success(chain.call(
        VALIDATOR,
        IApiAccess::removeGatewayCall { gateway: GATEWAY },
    ));
    let (out, _) = success(chain.call(BUYER, IApiAccess::isGatewayCall { account: GATEWAY }));
    assert!(!IApiAccess::isGatewayCall::abi_decode_returns(&out).unwrap());
    let (out, _) = success(chain.call(BUYER, IApiAccess::gatewaysCall {}));
    assert!(
        IApiAccess::gatewaysCall::abi_decode_returns(&out)
            .unwrap()
            .is_empty()
    );
    let again = chain.call(
        VALIDATOR,
        IApiAccess::removeGatewayCall { gateway: GATEWAY },
    );
    assert!(
        reason(&again).contains("not a registered gateway"),
        "{again:?}"
    );
}

#[test]
fn usage_is_taken_once_per_epoch_from_registered_gateways_of_registered_providers() {
    let mut chain = Chain::with_network();
    let usage = |provider, tokens| IApiAccess::Usage { provider, tokens };
    let report = |epoch, entries: Vec<IApiAccess::Usage>| IApiAccess::reportUsageCall {
        epoch,
        usage: entries,
    };
    let stranger = chain.call(GATEWAY, report(0, vec![usage(PROVIDER, 10)]));
    assert!(
        reason(&stranger).contains("only registered gateways"),
        "{stranger:?}"
    );
    success(chain.call(
        VALIDATOR,
        IApiAccess::addGatewayCall {
            gateway: GATEWAY,
            url: "http://gw".into(),
        },
    ));
    let cases = [
        (
            report(1, vec![usage(PROVIDER, 10)]),
            "epoch 1 is not accepted during epoch 1",
        ),
        (
            report(0, vec![usage(BUYER, 10)]),
            "not a registered provider",
        ),
        (report(0, vec![usage(PROVIDER, 0)]), "has no tokens"),
        (
            report(0, vec![usage(PROVIDER, 1), usage(PROVIDER, 2)]),
            "names a provider twice",
        ),
    ];
    for (call, why) in cases {
        let refused = chain.call(GATEWAY, call);
        assert!(reason(&refused).contains(why), "{why}: {refused:?}");
    }
    let (_, logs) = success(chain.call(GATEWAY, report(0, vec![usage(PROVIDER, 1_234)])));
    let reported = IApiAccess::UsageReported::decode_log_data(&logs[0].data).unwrap();
    assert_eq!((reported.epoch, reported.tokens), (0, U256::from(1_234u64)));
    let twice = chain.call(GATEWAY, report(0, vec![usage(PROVIDER, 1)]));
    assert!(
        reason(&twice).contains("already reported epoch 0"),
        "{twice:?}"
    );
    let (out, _) = success(chain.call(
        BUYER,
        IApiAccess::servedCall {
            epoch: 0,
            provider: PROVIDER,
        },
    ));
    assert_eq!(
        IApiAccess::servedCall::abi_decode_returns(&out).unwrap(),
        1_234
    );
    let (out, _) = success(chain.call(
        BUYER,
        IApiAccess::reportedCall {
            epoch: 0,
            gateway: GATEWAY,
        },
    ));
    assert!(IApiAccess::reportedCall::abi_decode_returns(&out).unwrap());
}
