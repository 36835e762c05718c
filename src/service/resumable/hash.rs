//! A SHA-256 whose state survives between requests: the state after each acknowledged PATCH is
//! stored with the upload, so the digest of a file uploaded in pieces, through any instances,
//! costs one pass over its bytes, as for a plain upload.

const INIT: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// SHA-256's compression function over whole blocks: aws-lc's, which picks its assembly at run
/// time (SHA extensions, AVX2, AVX, SSSE3). On a CPU without SHA extensions, sha2's portable
/// code ran at 113–122 MB/s and this at 212–233 MB/s (BENCHMARKS.md); with them, both use them.
fn compress256(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    static CPU_FEATURES: std::sync::Once = std::sync::Once::new();
    if blocks.is_empty() {
        return;
    }
    // SAFETY: initialising aws-lc has no preconditions (it detects the CPU's features, which
    // the assembly is chosen by); without it, the portable code would run.
    CPU_FEATURES.call_once(|| unsafe { aws_lc_sys::CRYPTO_library_init() });
    // SAFETY: `state` is eight words and `blocks` holds `blocks.len()` whole 64-byte blocks:
    // the function reads exactly those blocks and writes only `state`.
    unsafe { aws_lc_sys::SHA256_TransformBlocks(state.as_mut_ptr(), blocks.as_ptr().cast(), blocks.len()) }
}

/// SHA-256 over bytes fed in any number of pieces, serialisable between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableSha256 {
    state: [u32; 8],
    /// Bytes fed so far.
    len: u64,
    /// Bytes of the block not yet compressed (fewer than 64).
    tail: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self { state: INIT, len: 0, tail: Vec::with_capacity(64) }
    }
}

impl ResumableSha256 {
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < 64 {
                return;
            }
            let (block, _) = self.tail.as_chunks::<64>();
            compress256(&mut self.state, block);
            self.tail.clear();
        }
        let (blocks, rest) = data.as_chunks::<64>();
        compress256(&mut self.state, blocks);
        self.tail.extend_from_slice(rest);
    }

    #[cfg(test)]
    fn len(&self) -> u64 {
        self.len
    }

    /// The lowercase hex digest of everything fed.
    pub fn finish(&self) -> String {
        let mut state = self.state;
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % 64 != 56 {
            last.push(0);
        }
        last.extend_from_slice(&(self.len * 8).to_be_bytes());
        let (blocks, _) = last.as_chunks::<64>();
        compress256(&mut state, blocks);
        state.iter().map(|w| format!("{w:08x}")).collect()
    }

    /// `v1:{state}:{len}:{tail}`, all hex but the decimal length.
    pub fn encode(&self) -> String {
        let state: String = self.state.iter().map(|w| format!("{w:08x}")).collect();
        format!("v1:{state}:{}:{}", self.len, hex::encode(&self.tail))
    }

    /// The state [`Self::encode`] wrote; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let (Some("v1"), Some(state), Some(len), Some(tail), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let state = hex::decode(state).ok()?;
        let len: u64 = len.parse().ok()?;
        let tail = hex::decode(tail).ok()?;
        if state.len() != 32 || tail.len() >= 64 || tail.len() as u64 != len % 64 {
            return None;
        }
        let mut words = [0u32; 8];
        for (w, b) in words.iter_mut().zip(state.chunks_exact(4)) {
            *w = u32::from_be_bytes(b.try_into().ok()?);
        }
        Some(Self { state: words, len, tail })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::ResumableSha256;

    #[test]
    fn known_digests() {
        let empty = ResumableSha256::default();
        assert_eq!(empty.finish(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let mut abc = ResumableSha256::default();
        abc.update(b"abc");
        assert_eq!(abc.finish(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn refuses_malformed_states() {
        for bad in ["", "v1", "v2:00:0:", "v1:00:0:", "v1:zz:0:", &format!("v1:{}:3:00", "0".repeat(64)), "v1::::"] {
            assert_eq!(ResumableSha256::decode(bad), None, "{bad:?}");
        }
    }

    proptest! {
        /// Fed in arbitrary pieces, serialised and restored between each, it is SHA-256.
        #[test]
        fn pieces_through_encode_equal_one_pass(data in proptest::collection::vec(any::<u8>(), 0..5000),
                                                cuts in proptest::collection::vec(0usize..5000, 0..8)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut hasher = ResumableSha256::default();
            let mut from = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                hasher.update(&data[from..cut]);
                from = cut;
                hasher = ResumableSha256::decode(&hasher.encode()).expect("own encoding");
            }
            prop_assert_eq!(hasher.len(), data.len() as u64);
            prop_assert_eq!(hasher.finish(), hex::encode(Sha256::digest(&data)));
        }
    }
}
