//! JSON-RPC parameter parsing: any bytes sent as a request (a call or a batch, to any method the
//! node serves) are answered, never a panic. The node's own module over a fresh dev chain
//! answers them, as the server does after its HTTP layers.
#![no_main]

use std::sync::{Arc, LazyLock};

use aicoin_primitives::{ChainSpec, dev::dev_signers};
use aicoin_rpc::{RpcState, rpc_module};
use aicoin_storage::Store;
use alloy_primitives::Address;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    module: jsonrpsee::RpcModule<()>,
    _dir: tempfile::TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let signers = dev_signers().expect("the dev accounts");
    let dev: Vec<Address> = signers.iter().map(|s| s.address()).collect();
    let spec = Arc::new(ChainSpec::local(2108, Address::repeat_byte(1), &dev));
    let store = Store::open(dir.path(), &spec).expect("a fresh chain database");
    let state = Arc::new(RpcState::detached(store, spec, signers));
    // The filters' upkeep task is spawned as the module is built.
    let module = {
        let _entered = runtime.enter();
        rpc_module(state)
    };
    Fixture {
        runtime,
        module,
        _dir: dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = &*FIXTURE;
    let _ = fixture
        .runtime
        .block_on(fixture.module.raw_json_request(text, 1));
});
