//! Encryption at rest for the filesystem store: tenant data keys wrapped by a master key
//! ([`keyring`], [`master`]), objects sealed in authenticated segments ([`segment`], [`stream`]).
//! The format and key hierarchy are documented in ARCHITECTURE.md ("Encryption at rest").
//!
//! Crypto comes from `ring`, already built for TLS: AES-256-GCM with AES-NI and carry-less
//! multiplication in assembly, HKDF-SHA256 and HMAC, and a system random source.

mod keyring;
mod master;
mod pieces;
mod segment;
pub mod stream;

pub use keyring::{KEYS_DIR, Keyring, RewrapReport};
pub use master::{KeyWrap, MASTER_KEY_FILE, MasterKey};
pub use segment::{DataKey, HEADER_LEN, Header, MAGIC, SEGMENT, SealError, Sealer, TAG_LEN};

/// Why a key could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("the system random source failed")]
    Random,
    #[error("a data key does not unwrap with the master key (wrong key, or the key file was altered)")]
    Unwrap,
    #[error("COFFER_MASTER_KEY is not this data dir's master key (key id {given}; keys/store.json expects {store})")]
    WrongMaster { store: String, given: String },
    #[error("{0}; an interrupted `coffer keys rotate-master` — run it again")]
    OtherMaster(String),
    #[error("the tenant's data key was destroyed (purged tenant) or replaced")]
    Gone,
}
