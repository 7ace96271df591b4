//! Transaction decoding: any bytes given to `eth_sendRawTransaction` (or found in a block) are
//! decoded and checked without a panic, and what passes re-encodes to the same bytes (so its
//! hash is the hash of what was sent).
#![no_main]

use aicoin_execution::decode_and_validate;
use alloy_eips::eip2718::Encodable2718;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = decode_and_validate(data, 2108, 30_000_000) {
        assert_eq!(
            tx.inner().encoded_2718(),
            data,
            "an accepted transaction re-encodes differently"
        );
    }
});
