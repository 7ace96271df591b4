//! Byte encodings of stored values that are not RLP: branch nodes and nibble paths.

use alloy_primitives::B256;
use alloy_trie::{BranchNodeCompact, Nibbles, TrieMask};

use crate::StoreError;

/// `state_mask ‖ tree_mask ‖ hash_mask` (u16 big-endian each), a root flag byte with the 32-byte
/// root when set, then the child hashes.
pub(crate) fn encode_branch(node: &BranchNodeCompact) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 + 32 * (node.hashes.len() + 1));
    for mask in [node.state_mask, node.tree_mask, node.hash_mask] {
        out.extend_from_slice(&mask.get().to_be_bytes());
    }
    match node.root_hash {
        Some(root) => {
            out.push(1);
            out.extend_from_slice(root.as_slice());
        }
        None => out.push(0),
    }
    for hash in node.hashes.iter() {
        out.extend_from_slice(hash.as_slice());
    }
    out
}

pub(crate) fn decode_branch(bytes: &[u8]) -> Result<BranchNodeCompact, StoreError> {
    let corrupt = || StoreError::Corrupt("malformed trie branch node".into());
    if bytes.len() < 7 {
        return Err(corrupt());
    }
    let mask = |i: usize| TrieMask::new(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
    let (state_mask, tree_mask, hash_mask) = (mask(0), mask(2), mask(4));
    let (root_hash, rest) = match bytes[6] {
        0 => (None, &bytes[7..]),
        1 if bytes.len() >= 39 => (Some(B256::from_slice(&bytes[7..39])), &bytes[39..]),
        _ => return Err(corrupt()),
    };
    if rest.len() != 32 * hash_mask.count_ones() as usize
        || !tree_mask.is_subset_of(state_mask)
        || !hash_mask.is_subset_of(state_mask)
    {
        return Err(corrupt());
    }
    let hashes = rest.chunks_exact(32).map(B256::from_slice).collect();
    Ok(BranchNodeCompact::new(
        state_mask, tree_mask, hash_mask, hashes, root_hash,
    ))
}

/// One byte per nibble: byte order then equals trie path order.
pub(crate) fn path_key(prefix: &[u8], path: &Nibbles) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + path.len());
    key.extend_from_slice(prefix);
    key.extend(path.iter());
    key
}

pub(crate) fn path_from_key(key: &[u8]) -> Result<Nibbles, StoreError> {
    if key.len() > 64 || key.iter().any(|n| *n > 0xf) {
        return Err(StoreError::Corrupt("malformed trie path".into()));
    }
    Ok(Nibbles::from_nibbles_unchecked(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_round_trip_and_corruption() {
        let node = BranchNodeCompact::new(
            TrieMask::new(0b1011),
            TrieMask::new(0b0001),
            TrieMask::new(0b1010),
            vec![B256::repeat_byte(1), B256::repeat_byte(2)],
            Some(B256::repeat_byte(3)),
        );
        let bytes = encode_branch(&node);
        assert_eq!(decode_branch(&bytes).unwrap(), node);
        assert!(decode_branch(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_branch(&[0xff; 7]).is_err());
    }

    #[test]
    fn path_keys_sort_like_paths() {
        let a = path_key(&[], &Nibbles::from_nibbles([1, 2]));
        let b = path_key(&[], &Nibbles::from_nibbles([1, 2, 0]));
        let c = path_key(&[], &Nibbles::from_nibbles([1, 3]));
        assert!(a < b && b < c);
        assert_eq!(path_from_key(&b).unwrap(), Nibbles::from_nibbles([1, 2, 0]));
        assert!(path_from_key(&[16]).is_err());
    }
}
