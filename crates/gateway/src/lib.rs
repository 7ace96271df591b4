//! The paid inference gateway: what a user's API key is and how any gateway checks it
//! ([`keys`]). (The gateway's serving, quotas and routing come next.)

pub mod keys;

pub use keys::{ApiKey, KeyError};
