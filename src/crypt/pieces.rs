//! The buffers sealed pieces travel in, used again once the writer has let go of them.
//!
//! A long upload seals into pieces of about a megabyte, each handed to a writer that drops it
//! once written. Allocating a new buffer for every piece asked the allocator for a gigabyte
//! per gigabyte uploaded; freed and taken again at that pace, the memory kept going back to the
//! kernel and coming back as fresh pages to fault in and zero. Recycled, an upload's pieces live
//! in the few buffers the pipeline holds anyway.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Cuts pieces off a buffer being filled, and gives the buffer back the oldest piece's memory
/// once nobody else holds it.
pub struct Pieces {
    capacity: usize,
    /// Handles on the pieces sent, oldest first: the writer takes them in that order.
    sent: VecDeque<Bytes>,
    keep: usize,
}

impl Pieces {
    /// Buffers of `capacity` bytes; at most `keep` pieces are watched for their return (the
    /// pieces a pipeline holds at once: more would only keep idle memory).
    pub fn new(capacity: usize, keep: usize) -> Self {
        Self { capacity, sent: VecDeque::with_capacity(keep + 1), keep }
    }

    /// A buffer to fill.
    pub fn buffer(&self) -> BytesMut {
        BytesMut::with_capacity(self.capacity)
    }

    /// The first `at` bytes of `out`, as a piece to send; `out` goes on with the rest in the
    /// oldest piece's buffer when its writer is done with it, else in a new one.
    pub fn split(&mut self, out: &mut BytesMut, at: usize) -> Bytes {
        let piece = out.split_to(at).freeze();
        let mut next = match self.sent.pop_front() {
            Some(oldest) => match oldest.try_into_mut() {
                Ok(mut free) => {
                    free.clear();
                    free
                }
                Err(busy) => {
                    self.sent.push_front(busy);
                    self.buffer()
                }
            },
            None => self.buffer(),
        };
        next.extend_from_slice(out);
        *out = next;
        self.sent.push_back(piece.clone());
        if self.sent.len() > self.keep {
            self.sent.pop_front();
        }
        piece
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_the_writer_dropped_is_filled_again() {
        let mut pieces = Pieces::new(64, 2);
        let mut out = pieces.buffer();
        out.extend_from_slice(b"first piece and a rest");
        let first = pieces.split(&mut out, 11);
        assert_eq!(&first[..], b"first piece");
        assert_eq!(&out[..], b" and a rest", "the rest carries over");
        let first_at = first.as_ptr();
        drop(first); // written

        out.extend_from_slice(b" more");
        let all = out.len();
        let second = pieces.split(&mut out, all);
        assert_eq!(&second[..], b" and a rest more");
        assert!(out.is_empty());
        assert_eq!(out.as_ptr(), first_at, "the first piece's buffer, emptied");
        assert!(out.capacity() >= 64);
    }

    #[test]
    fn a_piece_still_held_is_never_written_over() {
        let mut pieces = Pieces::new(16, 3);
        let mut out = pieces.buffer();
        let mut held = Vec::new();
        for round in 0..10u8 {
            out.extend_from_slice(&[round; 8]);
            held.push(pieces.split(&mut out, 8));
            out.extend_from_slice(&[0xff; 8]); // filling the next one
            out.clear();
        }
        for (round, piece) in held.iter().enumerate() {
            assert_eq!(&piece[..], &[round as u8; 8]);
        }
        // At most `keep` handles are kept: the rest are the writer's alone.
        assert!(pieces.sent.len() <= 3);
    }
}
