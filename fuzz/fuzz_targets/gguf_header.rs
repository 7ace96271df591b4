//! GGUF headers, as `aicoin serve` and the node read a model file someone handed them: any bytes
//! are read as a GGUF header, and a header that parses is interpreted as the loaders do (the
//! tokenizer rebuilt from its metadata, the llama shape), without a panic or an allocation the
//! file does not pay for.
#![no_main]

use std::io::Cursor;

use candle_core::quantized::gguf_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader the loaders use (`text::gguf::open`).
    let Ok(content) = gguf_file::Content::read(&mut Cursor::new(data)) else {
        return;
    };
    let _ = aicoin_inference::tokenizer_from_gguf(&content.metadata);
    let _ = aicoin_inference::llama::Config::from_gguf(&content);
});
