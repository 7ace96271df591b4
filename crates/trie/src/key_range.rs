//! Inclusive ranges of 32-byte hashed keys, and the range a nibble prefix covers.

use alloy_primitives::{B256, U256};
use alloy_trie::Nibbles;

/// An inclusive range `[start, end]` of hashed keys; empty when `start > end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    pub start: B256,
    pub end: B256,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn under(prefix: &Nibbles) -> Self {
        let mut start = B256::ZERO;
        let mut end = B256::repeat_byte(0xff);
        for i in 0..prefix.len() {
            let nibble = prefix.get_unchecked(i);
            let (byte, shift) = (i / 2, if i.is_multiple_of(2) { 4 } else { 0 });
            start[byte] |= nibble << shift;
            end[byte] = (end[byte] & !(0xf << shift)) | (nibble << shift);
        }
        Self { start, end }
    }

    /// Keys in `self` that sort before every key of `other`.
    pub fn before(self, other: &Self) -> Self {
        match U256::from_be_bytes(other.start.0).checked_sub(U256::from(1u8)) {
            Some(end) => Self {
                start: self.start,
                end: B256::from(end.to_be_bytes()),
            },
            None => Self::EMPTY,
        }
    }

    /// Keys in `self` that sort after every key of `other`.
    pub fn after(self, other: &Self) -> Self {
        match U256::from_be_bytes(other.end.0).checked_add(U256::from(1u8)) {
            Some(start) => Self {
                start: B256::from(start.to_be_bytes()),
                end: self.end,
            },
            None => Self::EMPTY,
        }
    }

    pub const EMPTY: Self = Self {
        start: B256::repeat_byte(0xff),
        end: B256::ZERO,
    };

    pub fn is_empty(&self) -> bool {
        self.start > self.end
    }

    pub fn contains(&self, key: &B256) -> bool {
        self.start <= *key && *key <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::b256;

    #[test]
    fn prefix_ranges() {
        let r = KeyRange::under(&Nibbles::from_nibbles([0xa, 0xb, 0xc]));
        assert_eq!(
            r.start,
            b256!("0xabc0000000000000000000000000000000000000000000000000000000000000")
        );
        assert_eq!(
            r.end,
            b256!("0xabcfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")
        );
        let all = KeyRange::under(&Nibbles::default());
        assert_eq!((all.start, all.end), (B256::ZERO, B256::repeat_byte(0xff)));
        let inner = KeyRange::under(&Nibbles::from_nibbles([0xa, 0xb, 0xc, 0x1]));
        assert_eq!(
            r.before(&inner).end,
            b256!("0xabc0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")
        );
        assert_eq!(
            r.after(&inner).start,
            b256!("0xabc2000000000000000000000000000000000000000000000000000000000000")
        );
        assert!(all.before(&all).is_empty());
        assert!(all.after(&all).is_empty());
    }
}
