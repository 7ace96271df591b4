//! Authentication of node-to-node messages. Every request and every response is signed by its
//! sender's validator key over the chain, the endpoint, both parties, a fresh nonce and the
//! body's hash; the receiver accepts it only from a validator the chain spec names, addressed to
//! itself, not seen before and not stale. A response is bound to the request it answers, so it
//! cannot be replayed either.
//!
//! The signature travels in HTTP headers beside the raw body, so a block is not re-encoded to be
//! signed.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, B256, Signature, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use http::HeaderMap;
use parking_lot::{Mutex, RwLock};

/// Header carrying the sender's address.
pub const FROM: &str = "x-aicoin-from";
/// Header carrying the addressee's address.
pub const TO: &str = "x-aicoin-to";
/// Header carrying the message's nonce: microseconds since the Unix epoch, unique per sender.
pub const NONCE: &str = "x-aicoin-nonce";
/// Header (responses only) carrying the nonce of the request answered.
pub const REPLY_TO: &str = "x-aicoin-reply-to";
/// Header carrying the 65-byte signature, hex.
pub const SIGNATURE: &str = "x-aicoin-signature";

/// How far a message's nonce (a timestamp) may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(60);

const DOMAIN: &[u8] = b"aicoin-cluster/1";

/// HTTP headers (name, value) carrying a signed envelope.
pub type SignedHeaders = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    #[error("bad signature: it does not recover to the claimed sender {0}")]
    BadSignature(Address),
    #[error("{0} is not a validator of this chain")]
    UnknownNode(Address),
    #[error("{0} is not a member of this cluster: it was removed")]
    NotAMember(Address),
    #[error("message addressed to {to}, not to this node ({me})")]
    WrongAddressee { to: Address, me: Address },
    #[error("replayed message (nonce {0} already seen from this sender)")]
    Replayed(u64),
    #[error("stale message: its nonce is {0:?} away from this node's clock")]
    Stale(Duration),
    #[error("the response answers another request")]
    WrongReply,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Who signed a message, to whom, and which one it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    pub from: Address,
    pub to: Address,
    pub nonce: u64,
    /// For a response: the request's nonce.
    pub reply_to: Option<u64>,
}

impl Signed {
    /// What the signature covers.
    fn digest(&self, chain: B256, endpoint: &str, body: &[u8]) -> B256 {
        let mut data = Vec::with_capacity(DOMAIN.len() + 32 + endpoint.len() + 40 + 16 + 32 + 3);
        data.extend_from_slice(DOMAIN);
        data.extend_from_slice(chain.as_slice());
        data.extend_from_slice(endpoint.as_bytes());
        data.push(0);
        data.extend_from_slice(self.from.as_slice());
        data.extend_from_slice(self.to.as_slice());
        data.extend_from_slice(&self.nonce.to_be_bytes());
        match self.reply_to {
            Some(n) => {
                data.push(1);
                data.extend_from_slice(&n.to_be_bytes());
            }
            None => data.push(0),
        }
        data.extend_from_slice(keccak256(body).as_slice());
        keccak256(data)
    }

    /// The headers that carry this envelope and its signature over `body`.
    pub fn headers(
        &self,
        key: &PrivateKeySigner,
        chain: B256,
        endpoint: &str,
        body: &[u8],
    ) -> Result<SignedHeaders, AuthError> {
        let signature = key
            .sign_hash_sync(&self.digest(chain, endpoint, body))
            .map_err(|e| AuthError::Sign(e.to_string()))?;
        let mut headers = vec![
            (FROM, self.from.to_string()),
            (TO, self.to.to_string()),
            (NONCE, self.nonce.to_string()),
            (
                SIGNATURE,
                alloy_primitives::hex::encode(signature.as_bytes()),
            ),
        ];
        if let Some(n) = self.reply_to {
            headers.push((REPLY_TO, n.to_string()));
        }
        Ok(headers)
    }

    /// Reads the envelope and its signature from `headers`, checking nothing yet.
    fn parse(headers: &HeaderMap) -> Result<(Self, Signature), AuthError> {
        let text = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(AuthError::Header(name))
        };
        let parse_u64 = |name: &'static str| {
            text(name)?
                .parse::<u64>()
                .map_err(|_| AuthError::Header(name))
        };
        let parse_address = |name: &'static str| {
            text(name)?
                .parse::<Address>()
                .map_err(|_| AuthError::Header(name))
        };
        let envelope = Self {
            from: parse_address(FROM)?,
            to: parse_address(TO)?,
            nonce: parse_u64(NONCE)?,
            reply_to: match headers.contains_key(REPLY_TO) {
                true => Some(parse_u64(REPLY_TO)?),
                false => None,
            },
        };
        let signature = alloy_primitives::hex::decode(text(SIGNATURE)?)
            .ok()
            .and_then(|bytes| Signature::try_from(bytes.as_slice()).ok())
            .ok_or(AuthError::Header(SIGNATURE))?;
        Ok((envelope, signature))
    }

    /// Reads the envelope from `headers` and checks the signature over `body` recovers to the
    /// claimed sender. Who may send, and freshness, are the [`Authenticator`]'s to decide.
    pub fn verify(
        headers: &HeaderMap,
        chain: B256,
        endpoint: &str,
        body: &[u8],
    ) -> Result<Self, AuthError> {
        let (envelope, signature) = Self::parse(headers)?;
        let digest = envelope.digest(chain, endpoint, body);
        match signature.recover_address_from_prehash(&digest) {
            Ok(signer) if signer == envelope.from => Ok(envelope),
            _ => Err(AuthError::BadSignature(envelope.from)),
        }
    }
}

/// The validators memberships have named, and those the latest one removed.
#[derive(Debug, Default)]
struct Removals {
    seen: HashSet<Address>,
    removed: HashSet<Address>,
}

/// This node's side of authentication: its key, the validators it talks to, its nonce clock and
/// the nonces it has seen.
#[derive(Debug)]
pub struct Authenticator {
    key: PrivateKeySigner,
    /// Binds every signature to one chain (its genesis hash).
    chain: B256,
    validators: HashSet<Address>,
    /// Who raft's memberships have named, and of those who the latest no longer does.
    membership: RwLock<Removals>,
    last_nonce: AtomicU64,
    seen: Mutex<HashMap<Address, BTreeSet<u64>>>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Authenticator {
    pub fn new(
        key: PrivateKeySigner,
        chain: B256,
        validators: impl IntoIterator<Item = Address>,
    ) -> Self {
        Self {
            key,
            chain,
            validators: validators.into_iter().collect(),
            membership: RwLock::default(),
            last_nonce: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    pub fn chain(&self) -> B256 {
        self.chain
    }

    /// Whether `address` may take part (an authority of the chain spec).
    pub fn is_validator(&self, address: &Address) -> bool {
        self.validators.contains(address)
    }

    /// Takes raft's latest membership (voters and learners): from now on, a validator an
    /// earlier membership named and this one does not is refused, until a membership names it
    /// again. Validators no membership has named yet are still heard, so a node that was away
    /// while one joined still follows it when it leads.
    pub fn set_members(&self, members: impl IntoIterator<Item = Address>) {
        let members: HashSet<Address> = members.into_iter().collect();
        let mut membership = self.membership.write();
        membership.seen.extend(members.iter().copied());
        membership.removed = membership.seen.difference(&members).copied().collect();
    }

    /// A nonce never issued before by this process, and (clock permitting) by an earlier one:
    /// the current time in microseconds, bumped past the last one issued.
    pub fn next_nonce(&self) -> u64 {
        let now = now_micros();
        let mut last = self.last_nonce.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last_nonce
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Headers for a request to `to` at `endpoint`; returns them with the request's nonce.
    pub fn sign_request(
        &self,
        to: Address,
        endpoint: &str,
        body: &[u8],
    ) -> Result<(u64, SignedHeaders), AuthError> {
        let envelope = Signed {
            from: self.address(),
            to,
            nonce: self.next_nonce(),
            reply_to: None,
        };
        Ok((
            envelope.nonce,
            envelope.headers(&self.key, self.chain, endpoint, body)?,
        ))
    }

    /// Headers for the response to `request`.
    pub fn sign_response(
        &self,
        request: &Signed,
        endpoint: &str,
        body: &[u8],
    ) -> Result<SignedHeaders, AuthError> {
        let envelope = Signed {
            from: self.address(),
            to: request.from,
            nonce: self.next_nonce(),
            reply_to: Some(request.nonce),
        };
        envelope.headers(&self.key, self.chain, endpoint, body)
    }

    /// Whether a request with these headers could be accepted, before its body is read: it
    /// claims a validator as its sender, this node as its addressee, and a fresh nonce. The
    /// claim is proven only by [`Self::check_request`], but a stranger's body is never read.
    pub fn precheck_request(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let (envelope, _) = Signed::parse(headers)?;
        self.check_parties(&envelope, envelope.from)?;
        let distance = now_micros().abs_diff(envelope.nonce);
        if distance > MAX_SKEW.as_micros() as u64 {
            return Err(AuthError::Stale(Duration::from_micros(distance)));
        }
        Ok(())
    }

    /// Accepts a request only if it is signed by a validator, addressed to this node, fresh and
    /// not seen before.
    pub fn check_request(
        &self,
        headers: &HeaderMap,
        endpoint: &str,
        body: &[u8],
    ) -> Result<Signed, AuthError> {
        let envelope = Signed::verify(headers, self.chain, endpoint, body)?;
        self.check_parties(&envelope, envelope.from)?;
        if envelope.reply_to.is_some() {
            return Err(AuthError::WrongReply);
        }
        self.check_fresh(&envelope)?;
        Ok(envelope)
    }

    /// Accepts the response to the request with nonce `request` sent to `peer`.
    pub fn check_response(
        &self,
        headers: &HeaderMap,
        endpoint: &str,
        body: &[u8],
        peer: Address,
        request: u64,
    ) -> Result<Signed, AuthError> {
        let envelope = Signed::verify(headers, self.chain, endpoint, body)?;
        self.check_parties(&envelope, peer)?;
        if envelope.reply_to != Some(request) {
            return Err(AuthError::WrongReply);
        }
        Ok(envelope)
    }

    fn check_parties(&self, envelope: &Signed, expected_sender: Address) -> Result<(), AuthError> {
        if !self.validators.contains(&envelope.from) || envelope.from != expected_sender {
            return Err(AuthError::UnknownNode(envelope.from));
        }
        if self.membership.read().removed.contains(&envelope.from) {
            return Err(AuthError::NotAMember(envelope.from));
        }
        if envelope.to != self.address() {
            return Err(AuthError::WrongAddressee {
                to: envelope.to,
                me: self.address(),
            });
        }
        Ok(())
    }

    /// The nonce must be within [`MAX_SKEW`] of now and new; nonces older than the window are
    /// forgotten, as they would be refused as stale anyway.
    fn check_fresh(&self, envelope: &Signed) -> Result<(), AuthError> {
        let now = now_micros();
        let window = MAX_SKEW.as_micros() as u64;
        let distance = now.abs_diff(envelope.nonce);
        if distance > window {
            return Err(AuthError::Stale(Duration::from_micros(distance)));
        }
        let mut seen = self.seen.lock();
        let nonces = seen.entry(envelope.from).or_default();
        let oldest = now.saturating_sub(window);
        while nonces.first().is_some_and(|n| *n < oldest) {
            nonces.pop_first();
        }
        if !nonces.insert(envelope.nonce) {
            return Err(AuthError::Replayed(envelope.nonce));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn header_map(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn pair() -> (Authenticator, Authenticator, PrivateKeySigner) {
        let (a, b, stranger) = (
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
        );
        let chain = B256::repeat_byte(7);
        let members = [a.address(), b.address()];
        (
            Authenticator::new(a, chain, members),
            Authenticator::new(b, chain, members),
            stranger,
        )
    }

    #[test]
    fn a_signed_request_is_accepted_once() {
        let (a, b, _) = pair();
        let (_, headers) = a.sign_request(b.address(), "vote", b"body").unwrap();
        let headers = header_map(&headers);
        let got = b.check_request(&headers, "vote", b"body").unwrap();
        assert_eq!(got.from, a.address());
        assert_eq!(
            b.check_request(&headers, "vote", b"body"),
            Err(AuthError::Replayed(got.nonce))
        );
    }

    #[test]
    fn tampering_is_refused() {
        let (a, b, _) = pair();
        let (_, headers) = a.sign_request(b.address(), "vote", b"body").unwrap();
        let headers = header_map(&headers);
        // Another body, another endpoint, or another addressee breaks the signature.
        assert_eq!(
            b.check_request(&headers, "vote", b"other"),
            Err(AuthError::BadSignature(a.address()))
        );
        assert_eq!(
            b.check_request(&headers, "append", b"body"),
            Err(AuthError::BadSignature(a.address()))
        );
        let (_, to_a) = a.sign_request(a.address(), "vote", b"body").unwrap();
        assert!(matches!(
            b.check_request(&header_map(&to_a), "vote", b"body"),
            Err(AuthError::WrongAddressee { .. })
        ));
    }

    #[test]
    fn strangers_and_stale_messages_are_refused() {
        let (_, b, stranger) = pair();
        let outsider = Authenticator::new(stranger, b.chain(), [b.address()]);
        let (_, headers) = outsider.sign_request(b.address(), "vote", b"x").unwrap();
        assert_eq!(
            b.check_request(&header_map(&headers), "vote", b"x"),
            Err(AuthError::UnknownNode(outsider.address()))
        );
        let old = Signed {
            from: b.address(),
            to: b.address(),
            nonce: now_micros() - 2 * MAX_SKEW.as_micros() as u64,
            reply_to: None,
        };
        let headers = old.headers(&b.key, b.chain(), "vote", b"x").unwrap();
        assert!(matches!(
            b.check_request(&header_map(&headers), "vote", b"x"),
            Err(AuthError::Stale(_))
        ));
    }

    #[test]
    fn responses_are_bound_to_their_request() {
        let (a, b, _) = pair();
        let (nonce, headers) = a.sign_request(b.address(), "vote", b"q").unwrap();
        let request = b
            .check_request(&header_map(&headers), "vote", b"q")
            .unwrap();
        let reply = header_map(&b.sign_response(&request, "vote", b"r").unwrap());
        assert!(
            a.check_response(&reply, "vote", b"r", b.address(), nonce)
                .is_ok()
        );
        assert_eq!(
            a.check_response(&reply, "vote", b"r", b.address(), nonce + 1),
            Err(AuthError::WrongReply)
        );
        assert!(matches!(
            a.check_response(&reply, "vote", b"r", a.address(), nonce),
            Err(AuthError::UnknownNode(_))
        ));
    }

    #[test]
    fn headers_are_prechecked_before_any_body() {
        let (alice, bob, _) = pair();
        let (_, headers) = alice
            .sign_request(bob.address(), "append", b"any body")
            .unwrap();
        // Passes on the headers alone, whatever the body turns out to be; not yet recorded as
        // seen, so the full check still accepts it once.
        bob.precheck_request(&header_map(&headers)).unwrap();
        bob.check_request(&header_map(&headers), "append", b"any body")
            .unwrap();
        let stranger = Authenticator::new(PrivateKeySigner::random(), bob.chain(), [bob.address()]);
        let (_, headers) = stranger.sign_request(bob.address(), "append", b"").unwrap();
        assert!(matches!(
            bob.precheck_request(&header_map(&headers)),
            Err(AuthError::UnknownNode(_))
        ));
        let (_, headers) = alice.sign_request(alice.address(), "append", b"").unwrap();
        assert!(matches!(
            bob.precheck_request(&header_map(&headers)),
            Err(AuthError::WrongAddressee { .. })
        ));
        assert!(matches!(
            bob.precheck_request(&HeaderMap::new()),
            Err(AuthError::Header(_))
        ));
    }

    #[test]
    fn members_a_membership_removed_are_refused_until_one_names_them_again() {
        let (alice, bob, _) = pair();
        let sign = || alice.sign_request(bob.address(), "vote", b"{}").unwrap().1;
        // Not named by any membership yet (say it joined while this node was away): heard.
        bob.set_members([bob.address()]);
        bob.check_request(&header_map(&sign()), "vote", b"{}")
            .unwrap();
        bob.set_members([alice.address(), bob.address()]);
        bob.check_request(&header_map(&sign()), "vote", b"{}")
            .unwrap();
        // Removed: refused, before any body is read too.
        bob.set_members([bob.address()]);
        assert!(matches!(
            bob.check_request(&header_map(&sign()), "vote", b"{}"),
            Err(AuthError::NotAMember(a)) if a == alice.address()
        ));
        assert!(bob.precheck_request(&header_map(&sign())).is_err());
        // Added back: heard again.
        bob.set_members([alice.address(), bob.address()]);
        bob.check_request(&header_map(&sign()), "vote", b"{}")
            .unwrap();
    }

    #[test]
    fn nonces_increase() {
        let (a, _, _) = pair();
        let first = a.next_nonce();
        assert!(a.next_nonce() > first);
    }
}
