//! The drill's file contents: deterministic from a seed, so any version can be regenerated to
//! check a download or a range without keeping it in memory.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

const BLOCK: usize = 256 * 1024;
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";

/// One version of a file: `size` bytes drawn from `seed`, starting with PNG's signature when
/// `png` (so the media category, which takes images only, accepts it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Content {
    pub seed: u64,
    pub size: u64,
    pub png: bool,
}

impl Content {
    /// The bytes, in blocks.
    pub fn blocks(self) -> impl Iterator<Item = Bytes> + Send + 'static {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut left = self.size;
        let mut first = true;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let n = left.min(BLOCK as u64) as usize;
            let mut block = vec![0u8; n];
            rng.fill_bytes(&mut block);
            if first && self.png {
                let k = PNG.len().min(n);
                block[..k].copy_from_slice(&PNG[..k]);
            }
            first = false;
            left -= n as u64;
            Some(Bytes::from(block))
        })
    }

    pub fn bytes(self) -> Vec<u8> {
        self.blocks().fold(Vec::with_capacity(self.size as usize), |mut all, b| {
            all.extend_from_slice(&b);
            all
        })
    }

    pub fn sha256(self) -> String {
        let mut hash = Sha256::new();
        self.blocks().for_each(|b| hash.update(&b));
        hex::encode(hash.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_png_a_signature() {
        let c = Content { seed: 7, size: 300_000, png: true };
        assert_eq!(c.bytes(), c.bytes());
        assert!(c.bytes().starts_with(PNG));
        assert_eq!(c.bytes().len(), 300_000);
        assert_ne!(c.sha256(), Content { seed: 8, ..c }.sha256());
    }
}
