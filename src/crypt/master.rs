//! The key that wraps tenant data keys. [`KeyWrap`] is the seam: [`MasterKey`] is the local
//! implementation (`COFFER_MASTER_KEY`, or a key generated into the data dir); a KMS would be
//! another, whose `wrap`/`unwrap` call the service (they run on blocking threads).

use std::io::ErrorKind;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::KeyError;

/// File under the data dir that holds a generated master key (hex, mode 0600).
pub const MASTER_KEY_FILE: &str = "master-key";

/// Wraps and unwraps 32-byte data keys, binding each to a context (tenant and key id).
pub trait KeyWrap: Send + Sync + 'static {
    /// A stable, non-secret id of the wrapping key, stored beside every key it wraps.
    fn id(&self) -> &str;
    fn wrap(&self, secret: &[u8; 32], context: &[u8]) -> Result<Vec<u8>, KeyError>;
    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<[u8; 32], KeyError>;
}

/// A local AES-256 master key. Wrapped form: 12-byte random nonce ‖ AES-256-GCM(data key) ‖
/// tag, with the context as associated data.
pub struct MasterKey {
    key: LessSafeKey,
    id: String,
}

impl MasterKey {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        // The id: the first 8 bytes of HMAC-SHA256(master, label), so it names the key
        // without revealing it.
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes), b"coffer master key id v1");
        let id = hex::encode(&tag.as_ref()[..8]);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("32-byte key"));
        Self { key, id }
    }

    /// Parses 64 hex digits or the standard base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| STANDARD.decode(text).ok())
            .ok_or("must be 64 hex digits or the base64 of 32 bytes")?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| format!("must be 32 bytes (256 bits), got {}", b.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// A new random key, and its hex form.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).expect("system randomness");
        (Self::from_bytes(bytes), hex::encode(bytes))
    }

    /// The key in `data_dir`'s key file, if there is one.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, String> {
        let path = data_dir.join(MASTER_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).map(Some).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Generates a key into `path` (0600, synced); `AlreadyExists` if one is there.
    pub fn create_file(path: &Path) -> std::io::Result<Self> {
        let (key, text) = Self::generate();
        crate::util::create_private_file(path, text.as_bytes())?;
        Ok(key)
    }
}

impl KeyWrap for MasterKey {
    fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, secret: &[u8; 32], context: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; 12];
        SystemRandom::new().fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut buf = secret.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut buf)
            .map_err(|_| KeyError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<[u8; 32], KeyError> {
        if wrapped.len() != 12 + 32 + 16 {
            return Err(KeyError::Unwrap);
        }
        let nonce = Nonce::try_assume_unique_for_key(&wrapped[..12]).map_err(|_| KeyError::Unwrap)?;
        let mut buf = wrapped[12..].to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context), &mut buf).map_err(|_| KeyError::Unwrap)?;
        plain.try_into().map_err(|_| KeyError::Unwrap)
    }
}
