//! Sealed-block import, as a full node, a follower or `aicoin import` runs it on blocks from a
//! peer: any bytes are decoded as a sealed block and imported onto a fresh chain without a panic.
//! (No fuzzed block can carry a valid seal, so none is ever committed: the decoder and the
//! checks before the seal's are what run.)
#![no_main]

use std::sync::{Arc, LazyLock};

use aicoin_node::Chain;
use aicoin_primitives::{ChainSpec, SealedBlock};
use aicoin_storage::Store;
use alloy_primitives::Address;
use alloy_rlp::Decodable;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    chain: Chain,
    _dir: tempfile::TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = ChainSpec::local(2108, Address::repeat_byte(1), &[]);
    let store = Store::open(dir.path(), &spec).expect("a fresh chain database");
    Fixture {
        chain: Chain::new(store, Arc::new(spec)),
        _dir: dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let Ok(block) = SealedBlock::decode(&mut &data[..]) else {
        return;
    };
    assert!(
        FIXTURE.chain.import(block, 1 << 40).is_err(),
        "a fuzzed block was imported"
    );
});
