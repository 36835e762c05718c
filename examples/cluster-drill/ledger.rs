//! The client-side ledger: for every key a client wrote, the versions it may hold. An
//! acknowledged write narrows it to one; a write whose answer was lost (a cut connection, a 503
//! after the bytes left) adds its version to the possible ones; a refusal (4xx) adds nothing.

use std::collections::BTreeMap;

use crate::content::Content;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    Absent,
    Present { content: Content, sha256: String },
}

#[derive(Default)]
pub struct Ledger {
    keys: BTreeMap<String, Vec<Version>>,
}

impl Ledger {
    /// Before a write is sent: `version` may be the key's from now on. Returns whether it was
    /// new to the key (so a refusal can take it back).
    pub fn begin(&mut self, key: &str, version: &Version) -> bool {
        let possible = self.keys.entry(key.to_string()).or_insert_with(|| vec![Version::Absent]);
        if possible.contains(version) {
            return false;
        }
        possible.push(version.clone());
        true
    }

    /// The write was refused: it changed nothing.
    pub fn refused(&mut self, key: &str, version: &Version, was_new: bool) {
        if was_new && let Some(possible) = self.keys.get_mut(key) {
            possible.retain(|v| v != version);
        }
    }

    /// The write was acknowledged: the key holds `version` and nothing else.
    pub fn acknowledged(&mut self, key: &str, version: Version) {
        self.keys.insert(key.to_string(), vec![version]);
    }

    pub fn possible(&self, key: &str) -> &[Version] {
        self.keys.get(key).map(Vec::as_slice).unwrap_or(&[Version::Absent])
    }

    /// Whether a read that found `sha256` (None: not found) agrees with the ledger.
    pub fn allows(&self, key: &str, sha256: Option<&str>) -> bool {
        self.possible(key).iter().any(|v| match (v, sha256) {
            (Version::Absent, None) => true,
            (Version::Present { sha256: want, .. }, Some(got)) => want == got,
            _ => false,
        })
    }

    /// The one version the key holds when its last write was acknowledged.
    pub fn certain(&self, key: &str) -> Option<&Version> {
        match self.possible(key) {
            [one] => Some(one),
            _ => None,
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.keys.keys()
    }

    pub fn merge(&mut self, other: Ledger) {
        self.keys.extend(other.keys);
    }
}
