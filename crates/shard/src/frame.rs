//! The shard protocol's one binary frame, both ways: which session, the first position, how
//! many tokens, and their hidden states as raw little-endian f32 (exact parity with a single
//! node needs the very floats the layers produced).
//!
//! ```text
//! session u64 | start u32 | count u32 | count × width f32
//! ```

/// Bytes before the hidden states.
pub const HEADER: usize = 16;

/// One step of a session: the hidden states of tokens `start..start + count`.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub session: u64,
    pub start: u32,
    pub count: u32,
    /// `count` rows of the model's hidden size, row after row.
    pub hidden: Vec<f32>,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame is at least {HEADER} bytes, not {0}")]
    Short(usize),
    #[error("a frame carries at least one token")]
    Empty,
    #[error("{count} tokens of {width} floats are {expected} bytes of hidden states, not {got}")]
    Size {
        count: u32,
        width: usize,
        expected: usize,
        got: usize,
    },
}

/// The bytes of a frame of these parts, written straight from `hidden` (a coordinator's step
/// sends borrowed hidden states with no copy into a [`Frame`] first).
pub fn encode(session: u64, start: u32, count: u32, hidden: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + hidden.len() * 4);
    bytes.extend_from_slice(&session.to_le_bytes());
    bytes.extend_from_slice(&start.to_le_bytes());
    bytes.extend_from_slice(&count.to_le_bytes());
    for value in hidden {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        encode(self.session, self.start, self.count, &self.hidden)
    }

    /// The frame in `bytes`, whose rows are `width` floats each.
    pub fn decode(bytes: &[u8], width: usize) -> Result<Self, FrameError> {
        let (Some(head), Some(body)) = (bytes.get(..HEADER), bytes.get(HEADER..)) else {
            return Err(FrameError::Short(bytes.len()));
        };
        let word =
            |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let session = u64::from(word(0)) | u64::from(word(4)) << 32;
        let (start, count) = (word(8), word(12));
        if count == 0 {
            return Err(FrameError::Empty);
        }
        let expected = (count as usize).saturating_mul(width).saturating_mul(4);
        if body.len() != expected {
            return Err(FrameError::Size {
                count,
                width,
                expected,
                got: body.len(),
            });
        }
        let hidden = body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Self {
            session,
            start,
            count,
            hidden,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_every_float_bit_for_bit() {
        let frame = Frame {
            session: 0x0123_4567_89ab_cdef,
            start: 70,
            count: 2,
            hidden: vec![1.5, -0.0, f32::MIN_POSITIVE, f32::NAN, 3e38, -7.25],
        };
        let bytes = frame.encode();
        assert_eq!(bytes.len(), HEADER + 6 * 4);
        let back = Frame::decode(&bytes, 3).unwrap();
        assert_eq!(
            (back.session, back.start, back.count),
            (frame.session, 70, 2)
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.hidden), bits(&frame.hidden));
    }

    #[test]
    fn bytes_that_are_not_a_frame_are_refused() {
        assert_eq!(Frame::decode(&[0; 15], 3), Err(FrameError::Short(15)));
        let empty = Frame {
            session: 1,
            start: 0,
            count: 0,
            hidden: vec![],
        }
        .encode();
        assert_eq!(Frame::decode(&empty, 3), Err(FrameError::Empty));
        let frame = Frame {
            session: 1,
            start: 0,
            count: 2,
            hidden: vec![0.0; 6],
        }
        .encode();
        assert_eq!(
            Frame::decode(&frame, 4),
            Err(FrameError::Size {
                count: 2,
                width: 4,
                expected: 32,
                got: 24
            })
        );
        assert_eq!(
            Frame::decode(&frame[..frame.len() - 1], 3),
            Err(FrameError::Size {
                count: 2,
                width: 3,
                expected: 24,
                got: 23
            })
        );
    }
}
