//! The OpenAI API's request bodies: any bytes posted to chat completions, completions or
//! embeddings are parsed and checked as the API (and the paid gateway, before routing) does,
//! answered with an OpenAI-shaped error or accepted, never a panic.
#![no_main]

use aicoin_api::inspect::{Endpoint, inspect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for endpoint in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
        let _ = inspect(endpoint, data);
    }
});
