//! Requests signed by a node's key. A validator's probe and a gateway's forwarded request carry
//! five headers: the signer's address, the provider the request is for (so one provider cannot
//! pass a request on to another and claim its work), a Unix timestamp, a random nonce (two
//! identical requests in the same second are still two requests), and an EIP-191 signature over
//! the method, path, provider, timestamp, nonce and the body's keccak hash. A provider lets an
//! unpaid inference request through only when the signature recovers the named signer, the
//! signer is one the chain allows (an authority or a registered gateway), the request is for
//! this provider, the timestamp is within [`MAX_SKEW`] of its clock, and the same signer,
//! timestamp and nonce were not seen before.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use alloy_primitives::{Address, Signature, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use http::{HeaderMap, request::Parts};
use parking_lot::Mutex;

use crate::{Access, ApiError};

pub const SIGNER_HEADER: &str = "x-aicoin-signer";
pub const TIMESTAMP_HEADER: &str = "x-aicoin-timestamp";
pub const SIGNATURE_HEADER: &str = "x-aicoin-signature";
pub const NONCE_HEADER: &str = "x-aicoin-nonce";
pub const TARGET_HEADER: &str = "x-aicoin-to";

/// How far a request's timestamp may be from the provider's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(60);

/// A signed request's envelope: everything signed besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The provider it is for.
    pub to: Address,
    pub timestamp: u64,
    pub nonce: u64,
}

/// What is signed.
pub fn message(envelope: &Envelope<'_>, body: &[u8]) -> String {
    let Envelope {
        method,
        path,
        to,
        timestamp,
        nonce,
    } = envelope;
    format!(
        "aicoin-request\n{method} {path}\nto {to}\n{timestamp}\n{nonce}\n{}",
        keccak256(body)
    )
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The five headers that sign `body` sent as `method path` to the provider `to`, now.
pub fn sign(
    key: &PrivateKeySigner,
    to: Address,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<[(&'static str, String); 5], alloy_signer::Error> {
    let envelope = Envelope {
        method,
        path,
        to,
        timestamp: unix_now(),
        nonce: rand::random(),
    };
    let signature = key.sign_message_sync(message(&envelope, body).as_bytes())?;
    Ok([
        (SIGNER_HEADER, key.address().to_string()),
        (TARGET_HEADER, to.to_string()),
        (TIMESTAMP_HEADER, envelope.timestamp.to_string()),
        (NONCE_HEADER, envelope.nonce.to_string()),
        (
            SIGNATURE_HEADER,
            alloy_primitives::hex::encode_prefixed(signature.as_bytes()),
        ),
    ])
}

/// Why a request is not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "this provider serves the AICoin network only: requests must be signed by a validator \
         or gateway (header {0} is missing); buy API access through a gateway instead"
    )]
    Unsigned(&'static str),
    #[error("header {0} is malformed")]
    Malformed(&'static str),
    #[error("the request's timestamp is {skew} s away from this provider's clock (at most 60)")]
    Stale { skew: u64 },
    #[error("the signature does not recover the signer {0}")]
    WrongSigner(Address),
    #[error("{0} is not a validator or gateway of this chain")]
    NotAllowed(Address),
    #[error("the request is signed for provider {0}, not this one")]
    WrongProvider(Address),
    #[error("this signed request was already served once")]
    Replayed,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, Refusal> {
    headers
        .get(name)
        .ok_or(Refusal::Unsigned(name))?
        .to_str()
        .map_err(|_| Refusal::Malformed(name))
}

/// The signer of a request for provider `me`, with its timestamp and nonce, if its signature
/// and timestamp hold at `now`.
pub fn verify(
    headers: &HeaderMap,
    me: Address,
    method: &str,
    path: &str,
    body: &[u8],
    now: u64,
) -> Result<(Address, u64, u64), Refusal> {
    let signer: Address = header(headers, SIGNER_HEADER)?
        .parse()
        .map_err(|_| Refusal::Malformed(SIGNER_HEADER))?;
    let to: Address = header(headers, TARGET_HEADER)?
        .parse()
        .map_err(|_| Refusal::Malformed(TARGET_HEADER))?;
    let timestamp: u64 = header(headers, TIMESTAMP_HEADER)?
        .parse()
        .map_err(|_| Refusal::Malformed(TIMESTAMP_HEADER))?;
    let nonce: u64 = header(headers, NONCE_HEADER)?
        .parse()
        .map_err(|_| Refusal::Malformed(NONCE_HEADER))?;
    let signature: Signature = header(headers, SIGNATURE_HEADER)?
        .parse()
        .map_err(|_| Refusal::Malformed(SIGNATURE_HEADER))?;
    let skew = now.abs_diff(timestamp);
    if skew > MAX_SKEW.as_secs() {
        return Err(Refusal::Stale { skew });
    }
    let envelope = Envelope {
        method,
        path,
        to,
        timestamp,
        nonce,
    };
    match signature.recover_address_from_msg(message(&envelope, body).as_bytes()) {
        Ok(recovered) if recovered == signer && to == me => Ok((signer, timestamp, nonce)),
        Ok(recovered) if recovered == signer => Err(Refusal::WrongProvider(to)),
        _ => Err(Refusal::WrongSigner(signer)),
    }
}

/// The access policy of provider `me`: signed requests for it from allowed signers, each
/// served once.
pub struct SignedAccess {
    me: Address,
    allowed: Box<dyn Fn(&Address) -> bool + Send + Sync>,
    /// Requests served within the last [`MAX_SKEW`] × 2, by signer, timestamp and nonce (not
    /// by signature: a signature has a second, malleated form), with when they were seen.
    seen: Mutex<HashMap<(Address, u64, u64), u64>>,
}

impl SignedAccess {
    /// `allowed` says whether an address may sign (asked per request: the chain's authorities
    /// and gateways can change).
    pub fn new(me: Address, allowed: impl Fn(&Address) -> bool + Send + Sync + 'static) -> Self {
        Self {
            me,
            allowed: Box::new(allowed),
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn admit(&self, parts: &Parts, body: &[u8], now: u64) -> Result<Address, Refusal> {
        let path = parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |p| p.as_str());
        let (signer, timestamp, nonce) = verify(
            &parts.headers,
            self.me,
            parts.method.as_str(),
            path,
            body,
            now,
        )?;
        if !(self.allowed)(&signer) {
            return Err(Refusal::NotAllowed(signer));
        }
        let mut seen = self.seen.lock();
        // A signature older than twice the skew can no longer pass the timestamp check.
        seen.retain(|_, at| now.saturating_sub(*at) <= 2 * MAX_SKEW.as_secs());
        if seen.insert((signer, timestamp, nonce), now).is_some() {
            return Err(Refusal::Replayed);
        }
        Ok(signer)
    }
}

impl Access for SignedAccess {
    fn check(&self, parts: &Parts, body: &[u8]) -> Result<(), ApiError> {
        match self.admit(parts, body, unix_now()) {
            Ok(_) => Ok(()),
            Err(refusal) => Err(ApiError::unauthorized(refusal.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, String)], path: &str) -> Parts {
        let mut builder = http::Request::builder().method("POST").uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_fresh_signatures_of_allowed_signers_pass_once() {
        let validator = PrivateKeySigner::random();
        let stranger = PrivateKeySigner::random();
        let allowed = validator.address();
        let me = Address::repeat_byte(0x9e);
        let access = SignedAccess::new(me, move |a| *a == allowed);
        let body = br#"{"model":"tiny"}"#;
        let path = "/v1/chat/completions";
        let headers = sign(&validator, me, "POST", path, body).unwrap();
        let now = unix_now();

        assert_eq!(
            access.admit(&request(&headers, path), body, now),
            Ok(validator.address())
        );
        assert_eq!(
            access.admit(&request(&headers, path), body, now),
            Err(Refusal::Replayed)
        );
        // The same headers over another body or path do not verify.
        let fresh = sign(&validator, me, "POST", path, body).unwrap();
        assert_eq!(
            access.admit(&request(&fresh, path), b"{}", now),
            Err(Refusal::WrongSigner(validator.address()))
        );
        assert_eq!(
            access.admit(&request(&fresh, "/v1/completions"), body, now),
            Err(Refusal::WrongSigner(validator.address()))
        );
        assert_eq!(
            access.admit(&request(&fresh, path), body, now + 61),
            Err(Refusal::Stale { skew: 61 })
        );
        let theirs = sign(&stranger, me, "POST", path, body).unwrap();
        assert_eq!(
            access.admit(&request(&theirs, path), body, now),
            Err(Refusal::NotAllowed(stranger.address()))
        );
        assert_eq!(
            access.admit(&request(&[], path), body, now),
            Err(Refusal::Unsigned(SIGNER_HEADER))
        );
        // Two signatures of the same request in the same second differ (the nonce).
        let twice = sign(&validator, me, "POST", path, body).unwrap();
        assert_ne!(twice[4], fresh[4]);
        assert_eq!(
            access.admit(&request(&twice, path), body, now),
            Ok(validator.address())
        );
        // A request signed for another provider is refused here.
        let elsewhere = sign(&validator, stranger.address(), "POST", path, body).unwrap();
        assert_eq!(
            access.admit(&request(&elsewhere, path), body, now),
            Err(Refusal::WrongProvider(stranger.address()))
        );
        let error = access.check(&request(&[], path), body).unwrap_err();
        assert_eq!(error.status, http::StatusCode::UNAUTHORIZED);
    }
}
