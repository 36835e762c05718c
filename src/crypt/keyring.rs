//! Tenant data keys, each stored wrapped by the master key in its own file under the data dir's
//! `keys/` directory, so that destroying one tenant's key is removing one small file.
//!
//! ```text
//! keys/store.json          {"format":1,"master_key_id":"…","plaintext_before_ms":null|ms,"created_at":"…"}
//! keys/tenant-{id}.json    {"format":1,"tenant":"…","key_id":"32 hex","master_key_id":"16 hex",
//!                           "wrapped":"base64(nonce ‖ AES-256-GCM(data key) ‖ tag)","created_at":"…"}
//! ```
//! The wrap's associated data is `coffer data key v1` ‖ 0 ‖ tenant ‖ 0 ‖ key id, so a wrapped key
//! cannot be passed off as another tenant's. Every use of a key reads its file: a key destroyed
//! by `coffer tenant purge` in another process stops working here at once, and a key re-wrapped
//! by `coffer keys rotate-master` keeps working from memory (the same key id).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::{DataKey, KeyError, KeyWrap};
use crate::domain::TenantId;

pub const KEYS_DIR: &str = "keys";
const STORE_FILE: &str = "store.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoreMeta {
    format: u32,
    master_key_id: String,
    /// Objects whose version is older than this may be plaintext (written before the store
    /// existed); `None` once every object is sealed.
    plaintext_before_ms: Option<u64>,
    created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyFile {
    format: u32,
    tenant: String,
    key_id: String,
    master_key_id: String,
    wrapped: String,
    created_at: String,
}

/// Counts of `coffer keys rotate-master`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RewrapReport {
    pub rewrapped: u64,
    pub already: u64,
}

pub struct Keyring {
    dir: PathBuf,
    wrap: Arc<dyn KeyWrap>,
    meta: Mutex<StoreMeta>,
    cache: Mutex<HashMap<String, DataKey>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |e| KeyError::Io(format!("{}: {e}", path.display()))
}

fn context(tenant: &str, key_id: &[u8]) -> Vec<u8> {
    let mut c = b"coffer data key v1\0".to_vec();
    c.extend_from_slice(tenant.as_bytes());
    c.push(0);
    c.extend_from_slice(key_id);
    c
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Writes `bytes` to `dir/name` atomically and durably (0600). With `replace` false, an
/// existing file wins and `Ok(false)` says so.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8], replace: bool) -> Result<bool, KeyError> {
    use std::io::Write;
    let temp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let target = dir.join(name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if replace { std::fs::rename(&temp, &target).map(|()| true) } else { link_new(&temp, &target) }
    })();
    let _ = std::fs::remove_file(&temp);
    let created = written.map_err(io_err(&target))?;
    sync_dir(dir)?;
    Ok(created)
}

fn link_new(temp: &Path, target: &Path) -> std::io::Result<bool> {
    match std::fs::hard_link(temp, target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

impl Keyring {
    /// Whether `data_dir` has a key store.
    pub fn exists(data_dir: &Path) -> bool {
        data_dir.join(KEYS_DIR).join(STORE_FILE).exists()
    }

    /// Opens `data_dir`'s key store, creating it when absent (`plaintext_before_ms`: objects
    /// older than this may be plaintext). Refuses a master key that is not the store's.
    pub fn open_or_create(
        data_dir: &Path,
        wrap: Arc<dyn KeyWrap>,
        plaintext_before_ms: Option<u64>,
    ) -> Result<Self, KeyError> {
        let dir = data_dir.join(KEYS_DIR);
        crate::util::create_private_dir_all(&dir).map_err(io_err(&dir))?;
        let fresh = StoreMeta {
            format: 1,
            master_key_id: wrap.id().to_owned(),
            plaintext_before_ms,
            created_at: chrono::Utc::now().to_rfc3339(),
        };
        let json = serde_json::to_vec_pretty(&fresh).expect("serialisable");
        write_atomically(&dir, STORE_FILE, &json, false)?;
        Self::open(data_dir, wrap)
    }

    /// Opens an existing key store.
    pub fn open(data_dir: &Path, wrap: Arc<dyn KeyWrap>) -> Result<Self, KeyError> {
        let dir = data_dir.join(KEYS_DIR);
        let path = dir.join(STORE_FILE);
        let text = std::fs::read(&path).map_err(io_err(&path))?;
        let meta: StoreMeta =
            serde_json::from_slice(&text).map_err(|e| KeyError::Corrupt(format!("{}: {e}", path.display())))?;
        if meta.master_key_id != wrap.id() {
            return Err(KeyError::WrongMaster { store: meta.master_key_id, given: wrap.id().to_owned() });
        }
        Ok(Self { dir, wrap, meta: Mutex::new(meta), cache: Mutex::new(HashMap::new()) })
    }

    /// The id of the master key the store expects, read without a key (for messages).
    pub fn expected_master(data_dir: &Path) -> Option<String> {
        let text = std::fs::read(data_dir.join(KEYS_DIR).join(STORE_FILE)).ok()?;
        serde_json::from_slice::<StoreMeta>(&text).ok().map(|m| m.master_key_id)
    }

    pub fn master_id(&self) -> String {
        self.wrap.id().to_owned()
    }

    fn key_path(&self, tenant: &str) -> PathBuf {
        self.dir.join(format!("tenant-{tenant}.json"))
    }

    /// Whether an object of version time `version_ms` may be stored in plaintext.
    pub fn may_be_plaintext(&self, version_ms: Option<u64>) -> bool {
        let before = self.meta.lock().expect("meta lock").plaintext_before_ms;
        matches!((before, version_ms), (Some(b), Some(v)) if v < b)
    }

    /// Records that every object is sealed now (end of `coffer keys encrypt-existing`).
    pub fn set_all_sealed(&self) -> Result<(), KeyError> {
        let mut meta = self.meta.lock().expect("meta lock").clone();
        meta.plaintext_before_ms = None;
        write_atomically(&self.dir, STORE_FILE, &serde_json::to_vec_pretty(&meta).expect("serialisable"), true)?;
        *self.meta.lock().expect("meta lock") = meta;
        Ok(())
    }

    /// The tenant's key for sealing new objects, created on first use.
    pub fn current(&self, tenant: &TenantId) -> Result<DataKey, KeyError> {
        loop {
            if let Some(key) = self.load(tenant.as_str())? {
                return Ok(key);
            }
            self.create(tenant.as_str())?;
        }
    }

    /// The tenant's key with id `key_id`; `Gone` when it was destroyed or replaced.
    pub fn find(&self, tenant: &TenantId, key_id: &[u8; 16]) -> Result<DataKey, KeyError> {
        match self.load(tenant.as_str())? {
            Some(key) if &key.id == key_id => Ok(key),
            _ => Err(KeyError::Gone),
        }
    }

    fn load(&self, tenant: &str) -> Result<Option<DataKey>, KeyError> {
        // Read every time (a few hundred bytes): a key destroyed or replaced by another process
        // is noticed at once, whatever the file system's timestamp resolution.
        let path = self.key_path(tenant);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.cache.lock().expect("cache lock").remove(tenant);
                return Ok(None);
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let parsed: KeyFile =
            serde_json::from_slice(&text).map_err(|e| KeyError::Corrupt(format!("{}: {e}", path.display())))?;
        if parsed.tenant != tenant {
            return Err(KeyError::Corrupt(format!("{}: holds the key of tenant {:?}", path.display(), parsed.tenant)));
        }
        let id: [u8; 16] = hex::decode(&parsed.key_id)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError::Corrupt(format!("{}: bad key_id", path.display())))?;
        let mut cache = self.cache.lock().expect("cache lock");
        // The same key, possibly re-wrapped under a new master key by a rotation: the one in
        // memory is still right (a wrapped key only ever unwraps to itself or not at all).
        if let Some(key) = cache.get(tenant).filter(|k| k.id == id) {
            return Ok(Some(key.clone()));
        }
        if parsed.master_key_id != self.wrap.id() {
            return Err(KeyError::OtherMaster(format!(
                "{}: wrapped by master key {}, not {}",
                path.display(),
                parsed.master_key_id,
                self.wrap.id()
            )));
        }
        let wrapped = STANDARD.decode(&parsed.wrapped).map_err(|_| KeyError::Unwrap)?;
        let secret = self.wrap.unwrap(&wrapped, &context(tenant, &id))?;
        let key = DataKey { id, secret };
        cache.insert(tenant.to_owned(), key.clone());
        Ok(Some(key))
    }

    fn create(&self, tenant: &str) -> Result<(), KeyError> {
        let rng = SystemRandom::new();
        let mut id = [0u8; 16];
        let mut secret = [0u8; 32];
        rng.fill(&mut id).and_then(|()| rng.fill(&mut secret)).map_err(|_| KeyError::Random)?;
        let file = KeyFile {
            format: 1,
            tenant: tenant.to_owned(),
            key_id: hex::encode(id),
            master_key_id: self.wrap.id().to_owned(),
            wrapped: STANDARD.encode(self.wrap.wrap(&secret, &context(tenant, &id))?),
            created_at: chrono::Utc::now().to_rfc3339(),
        };
        // Another writer may create the tenant's key first: then theirs is the key.
        let name = format!("tenant-{tenant}.json");
        write_atomically(&self.dir, &name, &serde_json::to_vec_pretty(&file).expect("serialisable"), false)?;
        Ok(())
    }

    /// Destroys the tenant's key: its file overwritten with zeros, synced, removed. Every
    /// object it sealed is unreadable from then on. `false` when there was none.
    pub fn destroy(&self, tenant: &TenantId) -> Result<bool, KeyError> {
        use std::io::Write;
        let path = self.key_path(tenant.as_str());
        self.cache.lock().expect("cache lock").remove(tenant.as_str());
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
        f.write_all(&vec![0u8; len as usize]).and_then(|()| f.sync_all()).map_err(io_err(&path))?;
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Re-wraps every tenant key under `new` (objects are not touched), then makes `new` the
    /// store's master key. Resumable: keys already under `new` are skipped.
    pub fn rewrap(&self, new: &dyn KeyWrap) -> Result<RewrapReport, KeyError> {
        let mut report = RewrapReport::default();
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("tenant-") && n.ends_with(".json"))
            .collect();
        names.sort();
        for name in names {
            let path = self.dir.join(&name);
            let text = std::fs::read(&path).map_err(io_err(&path))?;
            let mut file: KeyFile =
                serde_json::from_slice(&text).map_err(|e| KeyError::Corrupt(format!("{}: {e}", path.display())))?;
            if file.master_key_id == new.id() {
                report.already += 1;
                continue;
            }
            let id =
                hex::decode(&file.key_id).map_err(|_| KeyError::Corrupt(format!("{}: bad key_id", path.display())))?;
            let wrapped = STANDARD.decode(&file.wrapped).map_err(|_| KeyError::Unwrap)?;
            let ctx = context(&file.tenant, &id);
            let secret = self.wrap.unwrap(&wrapped, &ctx)?;
            file.wrapped = STANDARD.encode(new.wrap(&secret, &ctx)?);
            file.master_key_id = new.id().to_owned();
            write_atomically(&self.dir, &name, &serde_json::to_vec_pretty(&file).expect("serialisable"), true)?;
            report.rewrapped += 1;
        }
        let mut meta = self.meta.lock().expect("meta lock").clone();
        meta.master_key_id = new.id().to_owned();
        write_atomically(&self.dir, STORE_FILE, &serde_json::to_vec_pretty(&meta).expect("serialisable"), true)?;
        Ok(report)
    }
}
