//! What each sealed append leaves in memory for the next one of the same upload on this
//! instance: the data file's header, the key that sealed it and the tail's plaintext. With
//! them, the next append starts sealing at once, and its writing thread opens `.tus-data`,
//! checks the header and the key and cuts the file, all before its first write — instead of a
//! trip to the blocking pool to read them back before anything else can begin.
//!
//! An entry is used only for the very state it was saved with: a state names the tail's slot
//! and the tag of the header that sealed it (random per append), so the catalog names an
//! entry's state only while that slot holds exactly that tail — whichever instance appended
//! since, the state differs and the entry is ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use crate::crypt::{DataKey, Header};

/// At most this many uploads' tails are kept (each at most a segment, 64 KiB): beyond it, an
/// append reads its tail back as it would after a restart.
const KEPT: usize = 32;

/// One upload as its last append on this instance left it.
pub(super) struct Resume {
    pub state: String,
    pub offset: u64,
    pub header: Header,
    pub data_key: DataKey,
    /// The tail's plaintext (1..=segment bytes).
    pub tail: Bytes,
}

/// The entries, by partial object directory.
#[derive(Default)]
pub(super) struct Resumes(Mutex<HashMap<PathBuf, Resume>>);

impl Resumes {
    /// The entry of `dir` if it was saved at exactly `state` and `offset`; it is taken out
    /// either way (the append it serves saves the next one).
    pub fn take(&self, dir: &Path, state: &str, offset: u64) -> Option<Resume> {
        let found = self.0.lock().expect("resumes lock").remove(dir)?;
        (found.state == state && found.offset == offset).then_some(found)
    }

    pub fn keep(&self, dir: PathBuf, resume: Resume) {
        let mut kept = self.0.lock().expect("resumes lock");
        if kept.len() >= KEPT && !kept.contains_key(&dir) {
            let any = kept.keys().next().cloned();
            if let Some(any) = any {
                kept.remove(&any);
            }
        }
        kept.insert(dir, resume);
    }

    pub fn forget(&self, dir: &Path) {
        self.0.lock().expect("resumes lock").remove(dir);
    }
}
