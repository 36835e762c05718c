//! The sealed-object format: an object's bytes as a header and fixed-size AES-256-GCM segments,
//! so that writes and reads stream in bounded memory and a Range read opens only the segments
//! it touches. The construction is the STREAM / segmented-AEAD design of Tink's
//! `AesGcmHkdfStreaming`: a per-object key derived with HKDF from the tenant's data key and a
//! random salt (so nonces never repeat across objects, however many there are), a nonce made of
//! a random prefix, the segment index and a last-segment flag (so segments cannot be reordered,
//! dropped or appended), and the object's identity in every segment's associated data (so a
//! segment cannot move to another object or tenant).
//!
//! ```text
//! header (68 bytes)
//!   0..8    magic "CFRSEAL1"
//!   8..12   S, plaintext bytes per segment, u32 big-endian (65,536)
//!   12..28  id of the tenant data key that sealed the object
//!   28..60  salt, 32 random bytes
//!   60..67  nonce prefix, 7 random bytes
//!   67      0 (reserved)
//! segments i = 0..n-1, each AES-256-GCM(K, nonce_i, aad, plaintext_i) with its 16-byte tag
//!   K        = HKDF-SHA256(ikm = tenant data key, salt = salt, info = "coffer segment key v1")
//!   nonce_i  = nonce prefix ‖ i (u32 big-endian) ‖ 1 if i = n-1 else 0
//!   aad      = the 68 header bytes ‖ the blob key (UTF-8, `tenant-{id}/{category}/{version}/{filename}`)
//!   every segment holds S plaintext bytes but the last, which holds 1..=S (0 only for an
//!   empty object, which is one empty last segment)
//! ```

use std::ops::RangeInclusive;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

pub const MAGIC: &[u8; 8] = b"CFRSEAL1";
pub const HEADER_LEN: usize = 68;
pub const TAG_LEN: usize = 16;
/// Plaintext bytes per segment of objects coffer writes.
pub const SEGMENT: u32 = 64 * 1024;
const INFO: &[u8] = b"coffer segment key v1";

/// Why sealed bytes could not be opened. Every variant means "do not trust these bytes".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("header is malformed")]
    Header,
    #[error("length {0} is not a whole number of segments")]
    Length(u64),
    #[error("segment {0} failed authentication")]
    Segment(u64),
}

/// A tenant data key: 32 secret bytes and the public id written into every object it seals.
#[derive(Clone)]
pub struct DataKey {
    pub id: [u8; 16],
    pub secret: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", hex::encode(self.id))
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub segment: u32,
    pub key_id: [u8; 16],
    pub salt: [u8; 32],
    pub prefix: [u8; 7],
}

impl Header {
    /// A fresh header for a new object sealed with `key_id`.
    pub fn generate(key_id: [u8; 16]) -> Self {
        let rng = SystemRandom::new();
        let mut salt = [0u8; 32];
        let mut prefix = [0u8; 7];
        rng.fill(&mut salt).expect("system randomness");
        rng.fill(&mut prefix).expect("system randomness");
        Self { segment: SEGMENT, key_id, salt, prefix }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.segment.to_be_bytes());
        out[12..28].copy_from_slice(&self.key_id);
        out[28..60].copy_from_slice(&self.salt);
        out[60..67].copy_from_slice(&self.prefix);
        out
    }

    /// Parses a header; `None` when `bytes` does not start with the magic at all (a plaintext
    /// object), `Err` when it does but the rest is not a header this version writes.
    pub fn decode(bytes: &[u8]) -> Option<Result<Self, SealError>> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        if bytes.len() < HEADER_LEN || bytes[67] != 0 {
            return Some(Err(SealError::Header));
        }
        let segment = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if !(1024..=(1 << 24)).contains(&segment) {
            return Some(Err(SealError::Header));
        }
        Some(Ok(Self {
            segment,
            key_id: bytes[12..28].try_into().expect("16 bytes"),
            salt: bytes[28..60].try_into().expect("32 bytes"),
            prefix: bytes[60..67].try_into().expect("7 bytes"),
        }))
    }

    /// Bytes on disk of one full segment.
    pub fn sealed_segment(&self) -> u64 {
        u64::from(self.segment) + TAG_LEN as u64
    }

    /// Plaintext size of a sealed object of `stored` bytes (header included).
    pub fn plaintext_len(&self, stored: u64) -> Result<u64, SealError> {
        let body = stored.checked_sub(HEADER_LEN as u64).ok_or(SealError::Length(stored))?;
        let full = body / self.sealed_segment();
        let rest = body % self.sealed_segment();
        match (full, rest) {
            (0, 0) => Err(SealError::Length(stored)),
            (_, 0) => Ok(full * u64::from(self.segment)),
            (_, r) if r >= TAG_LEN as u64 && (full == 0 || r > TAG_LEN as u64) => {
                Ok(full * u64::from(self.segment) + r - TAG_LEN as u64)
            }
            _ => Err(SealError::Length(stored)),
        }
    }

    /// Number of segments of an object of `plaintext` bytes.
    pub fn segments(&self, plaintext: u64) -> u64 {
        plaintext.div_ceil(u64::from(self.segment)).max(1)
    }

    /// The segments a plaintext byte range touches, and where each begins on disk.
    pub fn span(&self, range: &RangeInclusive<u64>) -> (RangeInclusive<u64>, u64) {
        let first = range.start() / u64::from(self.segment);
        let last = range.end() / u64::from(self.segment);
        (first..=last, HEADER_LEN as u64 + first * self.sealed_segment())
    }
}

/// Seals and opens the segments of one object.
pub struct Sealer {
    key: LessSafeKey,
    header: Header,
    aad: Vec<u8>,
}

impl Sealer {
    /// The sealer of the object `blob_key` whose header is `header`, under `data_key`.
    pub fn new(data_key: &DataKey, header: Header, blob_key: &str) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &header.salt).extract(&data_key.secret);
        let info = [INFO];
        let okm = prk.expand(&info, &AES_256_GCM).expect("HKDF output of one key length");
        let key = LessSafeKey::new(UnboundKey::from(okm));
        let mut aad = header.encode().to_vec();
        aad.extend_from_slice(blob_key.as_bytes());
        Self { key, header, aad }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn nonce(&self, index: u64, last: bool) -> Result<Nonce, SealError> {
        let index = u32::try_from(index).map_err(|_| SealError::Segment(index))?;
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.header.prefix);
        n[7..11].copy_from_slice(&index.to_be_bytes());
        n[11] = u8::from(last);
        Ok(Nonce::assume_unique_for_key(n))
    }

    /// Seals segment `index` in place and returns its tag, to be written right after it.
    pub fn seal_detached(&self, index: u64, last: bool, buf: &mut [u8]) -> ring::aead::Tag {
        let nonce = self.nonce(index, last).expect("objects of at most 2^32 segments");
        self.key.seal_in_place_separate_tag(nonce, Aad::from(&self.aad), buf).expect("segment within AES-GCM's limit")
    }

    /// Opens segment `index` in place; returns the length of its plaintext at the front of `buf`.
    pub fn open(&self, index: u64, last: bool, buf: &mut [u8]) -> Result<usize, SealError> {
        let nonce = self.nonce(index, last)?;
        self.key.open_in_place(nonce, Aad::from(&self.aad), buf).map(|p| p.len()).map_err(|_| SealError::Segment(index))
    }
}

#[cfg(test)]
mod tests;
