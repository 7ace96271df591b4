//! A module's storage as words, strings and arrays (laid out as Solidity lays them out), over
//! any [`Slots`]: a call's journaled state while a block executes, or a stored block's state
//! when the RPC, a validator's prober or the CLI read a module back.

use aicoin_primitives::registry::{address_word, element, word_address};
use alloy_primitives::{Address, B256, U256};

use crate::call::{CallResult, Exit, ModuleCall};

/// Reads and writes one account's storage.
pub trait Slots {
    fn load(&mut self, slot: B256) -> CallResult<U256>;
    fn store(&mut self, slot: B256, value: U256) -> CallResult<()>;
}

impl Slots for ModuleCall<'_> {
    fn load(&mut self, slot: B256) -> CallResult<U256> {
        self.read(slot)
    }

    fn store(&mut self, slot: B256, value: U256) -> CallResult<()> {
        self.write(slot, value)
    }
}

/// Storage read through a function (a state reader at some block); writes are refused.
pub struct ReadOnly<F>(pub F);

impl<F, E> Slots for ReadOnly<F>
where
    F: FnMut(B256) -> Result<U256, E>,
    E: std::fmt::Display,
{
    fn load(&mut self, slot: B256) -> CallResult<U256> {
        (self.0)(slot).map_err(|e| Exit::Fatal(e.to_string()))
    }

    fn store(&mut self, _: B256, _: U256) -> CallResult<()> {
        Err(Exit::Fatal("module state is read-only here".into()))
    }
}

/// Strings kept in storage are at most this long (a URL, a model id).
pub const MAX_STRING: usize = 256;

pub fn load_string(slots: &mut impl Slots, slot: B256) -> CallResult<String> {
    String::from_utf8(load_bytes(slots, slot, MAX_STRING)?)
        .map_err(|_| Exit::Fatal("corrupt module state: not UTF-8".into()))
}

/// Bytes stored as Solidity stores `bytes` (at most `max` of them).
pub fn load_bytes(slots: &mut impl Slots, slot: B256, max: usize) -> CallResult<Vec<u8>> {
    let len: usize = slots.load(slot)?.saturating_to();
    if len > max {
        return Err(Exit::Fatal(format!(
            "corrupt module state: a {len}-byte string"
        )));
    }
    let mut bytes = Vec::with_capacity(len);
    for i in 0..len.div_ceil(32) {
        let word = slots.load(element(slot, i as u64))?.to_be_bytes::<32>();
        bytes.extend_from_slice(&word[..(len - 32 * i).min(32)]);
    }
    Ok(bytes)
}

/// Writes `value` at `slot`, clearing the words a longer previous value used.
pub fn store_string(slots: &mut impl Slots, slot: B256, value: &str) -> CallResult<()> {
    store_bytes(slots, slot, value.as_bytes(), MAX_STRING)
}

/// Writes `value` (at most `max` bytes) at `slot` as Solidity stores `bytes`, clearing what a
/// longer one used.
pub fn store_bytes(slots: &mut impl Slots, slot: B256, value: &[u8], max: usize) -> CallResult<()> {
    if value.len() > max {
        return Err(Exit::revert(format!(
            "{} bytes are more than the {max} a module stores here",
            value.len()
        )));
    }
    let previous: usize = slots.load(slot)?.saturating_to();
    let words = aicoin_primitives::registry::string_words(slot, value);
    let written = words.len() - 1;
    for (slot, word) in words {
        slots.store(slot, word)?;
    }
    for i in written..previous.min(max).div_ceil(32) {
        slots.store(element(slot, i as u64), U256::ZERO)?;
    }
    Ok(())
}

pub fn load_strings(slots: &mut impl Slots, slot: B256) -> CallResult<Vec<String>> {
    let len: u64 = slots.load(slot)?.saturating_to();
    (0..len)
        .map(|i| load_string(slots, element(slot, i)))
        .collect()
}

pub fn store_strings(slots: &mut impl Slots, slot: B256, values: &[String]) -> CallResult<()> {
    let previous: u64 = slots.load(slot)?.saturating_to();
    slots.store(slot, U256::from(values.len()))?;
    for (i, value) in values.iter().enumerate() {
        store_string(slots, element(slot, i as u64), value)?;
    }
    for i in values.len() as u64..previous {
        store_string(slots, element(slot, i), "")?;
    }
    Ok(())
}

pub fn load_addresses(slots: &mut impl Slots, slot: B256) -> CallResult<Vec<Address>> {
    let len: u64 = slots.load(slot)?.saturating_to();
    (0..len)
        .map(|i| Ok(word_address(slots.load(element(slot, i))?)))
        .collect()
}

pub fn push_address(slots: &mut impl Slots, slot: B256, address: Address) -> CallResult<()> {
    let len: u64 = slots.load(slot)?.saturating_to();
    slots.store(element(slot, len), address_word(address))?;
    slots.store(slot, U256::from(len + 1))
}

/// Bit fields of one storage word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Packed(pub U256);

impl Packed {
    /// The `bits`-wide field at bit `at`.
    pub fn get(self, at: usize, bits: usize) -> u64 {
        let mask = (U256::ONE << bits) - U256::ONE;
        ((self.0 >> at) & mask).saturating_to()
    }

    /// Sets the `bits`-wide field at bit `at` (a value wider than the field is cut to it).
    pub fn set(mut self, at: usize, bits: usize, value: u64) -> Self {
        let mask = ((U256::ONE << bits) - U256::ONE) << at;
        self.0 = (self.0 & !mask) | ((U256::from(value) << at) & mask);
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct Memory(HashMap<B256, U256>);

    impl Slots for Memory {
        fn load(&mut self, slot: B256) -> CallResult<U256> {
            Ok(self.0.get(&slot).copied().unwrap_or_default())
        }
        fn store(&mut self, slot: B256, value: U256) -> CallResult<()> {
            if value.is_zero() {
                self.0.remove(&slot);
            } else {
                self.0.insert(slot, value);
            }
            Ok(())
        }
    }

    #[test]
    fn strings_and_arrays_round_trip_and_shrinking_leaves_nothing_behind() {
        let mut memory = Memory::default();
        let slot = B256::repeat_byte(3);
        let long = "http://provider.example:8080/".repeat(3);
        store_strings(&mut memory, slot, &[long.clone(), "tiny".into()]).unwrap();
        assert_eq!(
            load_strings(&mut memory, slot).unwrap(),
            [long, "tiny".into()]
        );
        store_strings(&mut memory, slot, &["a".into()]).unwrap();
        assert_eq!(load_strings(&mut memory, slot).unwrap(), ["a"]);
        // Length, one element's length and its one word.
        assert_eq!(memory.0.len(), 3);

        let list = B256::repeat_byte(4);
        push_address(&mut memory, list, Address::repeat_byte(1)).unwrap();
        push_address(&mut memory, list, Address::repeat_byte(2)).unwrap();
        assert_eq!(
            load_addresses(&mut memory, list).unwrap(),
            [Address::repeat_byte(1), Address::repeat_byte(2)]
        );
    }

    #[test]
    fn packed_fields_do_not_overlap() {
        let word = Packed::default()
            .set(0, 8, 3)
            .set(8, 8, 1)
            .set(64, 64, u64::MAX);
        assert_eq!(
            (word.get(0, 8), word.get(8, 8), word.get(64, 64)),
            (3, 1, u64::MAX)
        );
        assert_eq!(word.set(8, 8, 0x1ff).get(8, 8), 0xff);
        assert_eq!(word.set(8, 8, 0x1ff).get(0, 8), 3);
    }
}
