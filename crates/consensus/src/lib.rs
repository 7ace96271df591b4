//! Proof-of-authority rules: how a producer seals a header, and what an importer checks before
//! it executes a block (shape, linkage, timing, and a seal from the authority set).

mod header;
mod seal;

pub use header::{
    HeaderError, MAX_FUTURE_DRIFT_SECS, genesis_shape, header_template, validate_header,
};
pub use seal::{
    MAX_EXTRA_DATA, SealError, named_sealer, recover_sealer, seal_block, sealer_extra_data,
    version_tag,
};
